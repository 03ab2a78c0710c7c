package main

import (
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"strings"
	"sync/atomic"

	"github.com/geodns/geodns/resolver"
	"github.com/geodns/geodns/route"
	"github.com/geodns/geodns/zones"
	"github.com/miekg/dns"
)

// explain prints how a name is answered for a client: its location, the
// rule or site distances, the chosen site and addresses, and the ECS scope.
func explain(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("explain", flag.ContinueOnError)
	fs.SetOutput(stderr)
	dir := fs.String("zones", "zones", "directory of <zone>.yaml files")
	client := fs.String("client", "", "client address or network, e.g. 203.0.113.7 or 203.0.113.0/24")
	var geoip listFlag
	fs.Var(&geoip, "geoip", "GeoIP database (.mmdb); repeatable")
	// Accept flags after the name too: explain www.example.com A --client ...
	var pos []string
	for rest := args; ; {
		if err := fs.Parse(rest); err != nil {
			return 2
		}
		if fs.NArg() == 0 {
			break
		}
		pos = append(pos, fs.Arg(0))
		rest = fs.Args()[1:]
	}
	if *client == "" || len(pos) < 1 || len(pos) > 2 {
		fmt.Fprint(stderr, "usage: geodns explain [--zones DIR] [--geoip FILE]... --client IP[/LEN] NAME [TYPE]\n")
		return 2
	}
	prefix, err := parseClient(*client)
	if err != nil {
		fmt.Fprintf(stderr, "geodns explain: --client: %v\n", err)
		return 2
	}
	qtype := dns.TypeA
	if len(pos) == 2 {
		t, ok := dns.StringToType[strings.ToUpper(pos[1])]
		if !ok {
			fmt.Fprintf(stderr, "geodns explain: unknown type %q\n", pos[1])
			return 2
		}
		qtype = t
	}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	var set atomic.Pointer[zones.Set]
	if err := zones.NewWatcher(*dir, &set, nil, log).Scan(true); err != nil {
		for _, e := range zones.Errors(err) {
			fmt.Fprintf(stderr, "warning: %v\n", e)
		}
	}
	locator := newLocator(geoip, slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelWarn})))
	router := &route.Router{Loc: locator}
	name := dns.CanonicalName(dns.Fqdn(pos[0]))

	w := &explainer{out: stdout}
	w.printf("question  %s %s from %s\n", name, dns.TypeToString[qtype], prefix)
	z := set.Load().Find(name, qtype)
	if z == nil {
		w.printf("answer    REFUSED: %s is in none of the zones in %s\n", name, *dir)
		return 1
	}
	w.printf("zone      %s (serial %d)\n", z.Origin, z.SOA().Serial)
	traced := func(svc *zones.Service, owner string, t uint16) []dns.RR {
		d, tr := router.Explain(z.Origin, svc, prefix, t == dns.TypeAAAA)
		w.trace(owner, svc, tr, d, t)
		return nil
	}
	z.Lookup(name, qtype, false, traced)

	// The answer itself, exactly as the server builds it.
	var zs atomic.Pointer[zones.Set]
	zs.Store(set.Load())
	h := resolver.NewHandler(&zs, router, resolver.Config{}, log)
	req := new(dns.Msg).SetQuestion(name, qtype)
	req.SetEdns0(1232, false)
	if prefix.Bits() < prefix.Addr().BitLen() {
		e := &dns.EDNS0_SUBNET{Code: dns.EDNS0SUBNET, Family: 1, SourceNetmask: uint8(prefix.Bits()), Address: prefix.Addr().AsSlice()}
		if prefix.Addr().Is6() {
			e.Family = 2
		}
		req.IsEdns0().Option = append(req.IsEdns0().Option, e)
	}
	resp := h.Answer(req, prefix.Addr(), true)
	w.printf("rcode     %s\n", dns.RcodeToString[resp.Rcode])
	for _, rr := range resp.Answer {
		w.printf("answer    %s\n", rr.String())
	}
	for _, rr := range resp.Ns {
		w.printf("authority %s\n", rr.String())
	}
	if opt := resp.IsEdns0(); opt != nil {
		for _, o := range opt.Option {
			if e, ok := o.(*dns.EDNS0_SUBNET); ok {
				w.printf("ecs scope /%d (the answer holds for %s/%d)\n", e.SourceScope, prefix.Addr(), e.SourceScope)
			}
		}
	}
	return 0
}

func parseClient(s string) (netip.Prefix, error) {
	if strings.Contains(s, "/") {
		p, err := netip.ParsePrefix(s)
		if err != nil {
			return p, err
		}
		return p.Masked(), nil
	}
	a, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Prefix{}, err
	}
	return netip.PrefixFrom(a.Unmap(), a.Unmap().BitLen()), nil
}

type explainer struct{ out io.Writer }

func (w *explainer) printf(format string, args ...any) { fmt.Fprintf(w.out, format, args...) }

func (w *explainer) trace(owner string, svc *zones.Service, tr route.Trace, d route.Decision, qtype uint16) {
	w.printf("service   %s routes %s (%s)\n", svc.Name, owner, dns.TypeToString[qtype])
	loc := tr.Location
	switch {
	case tr.Located:
		w.printf("location  %s %s %s %s lat %.4f lon %.4f (network %s, %s)\n", loc.Continent, loc.Country,
			orDash(loc.Subdivision+loc.SubdivisionName), orDash(loc.City), loc.Lat, loc.Lon, loc.Network, loc.Source)
	case loc.Network.IsValid():
		w.printf("location  unknown: no record for network %s\n", loc.Network)
	default:
		w.printf("location  unknown: no GeoIP database\n")
	}
	switch {
	case tr.Rule >= 0:
		w.printf("rule      %d matches: sites %v\n", tr.Rule+1, svc.Rules[tr.Rule].Sites)
	case len(tr.Distances) > 0:
		for _, sd := range tr.Distances {
			w.printf("distance  %-12s %8.0f km\n", sd.Site, sd.Km)
		}
	default:
		w.printf("order     default: %v\n", svc.SiteOrder)
	}
	w.printf("groups    %v (sites within 5%% of the nearest share the answer)\n", tr.Groups)
	if len(tr.Down) > 0 {
		w.printf("down      %v\n", tr.Down)
	}
	if d.AllDown {
		w.printf("all down  policy applies\n")
	}
	answer := fmt.Sprint(d.Addrs)
	if svc.CNAME {
		answer = fmt.Sprint(d.Names)
	}
	w.printf("chosen    %v -> %s, scope /%d\n", d.Sites, answer, d.Scope)
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
