package main

import (
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/url"
	"strings"
	"sync/atomic"

	"github.com/geodns/geodns/api"
	"github.com/geodns/geodns/health"
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
	apiURL := fs.String("api", "", "explain with a running server's state (health, drains, dials, ramps) through its admin API, e.g. http://127.0.0.1:8053")
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
		fmt.Fprint(stderr, "usage: geodns explain [--zones DIR] [--geoip FILE]... [--api URL] --client IP[/LEN] NAME [TYPE]\n")
		return 2
	}
	prefix, err := api.ParseClient(*client)
	if err != nil {
		fmt.Fprintf(stderr, "geodns explain: --client: %v\n", err)
		return 2
	}
	qtype := dns.TypeA
	if len(pos) == 2 {
		if qtype = dns.StringToType[strings.ToUpper(pos[1])]; qtype == 0 {
			fmt.Fprintf(stderr, "geodns explain: unknown type %q\n", pos[1])
			return 2
		}
	}
	if *apiURL != "" {
		var e api.Explanation
		q := url.Values{"name": {pos[0]}, "client": {prefix.String()}, "type": {dns.TypeToString[qtype]}}
		c := &ctlClient{base: strings.TrimRight(*apiURL, "/")}
		if err := c.do("GET", "/api/v1/explain?"+q.Encode(), nil, false, &e); err != nil {
			fmt.Fprintf(stderr, "geodns explain: %v\n", err)
			return 1
		}
		printExplanation(stdout, e)
		if e.Zone == "" {
			fmt.Fprintf(stdout, "answer    REFUSED: %s is in none of the served zones\n", e.Name)
			return 1
		}
		return 0
	}
	// Offline: the zone files as they are: static checks as they say,
	// every other endpoint up (nothing is probed).
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	var set atomic.Pointer[zones.Set]
	if err := zones.NewWatcher(*dir, &set, nil, quiet).Scan(true); err != nil {
		for _, e := range zones.Errors(err) {
			fmt.Fprintf(stderr, "warning: %v\n", e)
		}
	}
	locator := newLocator(geoip, slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelWarn})))
	checks := health.NewManager(health.Options{Log: quiet})
	if s := set.Load(); s != nil {
		checks.SetZones(s)
		checks.Static()
	}
	router := &route.Router{Loc: locator, Health: checks}
	h := resolver.NewHandler(&set, router, resolver.Config{}, quiet)
	e := api.Explain(set.Load(), router, h.Uncounted(), pos[0], qtype, prefix)
	printExplanation(stdout, e)
	if e.Zone == "" {
		fmt.Fprintf(stdout, "answer    REFUSED: %s is in none of the zones in %s\n", e.Name, *dir)
		return 1
	}
	return 0
}

func printExplanation(w io.Writer, e api.Explanation) {
	p := func(format string, args ...any) { fmt.Fprintf(w, format, args...) }
	p("question  %s %s from %s\n", e.Name, e.Type, e.Client)
	if e.Zone == "" {
		return
	}
	p("zone      %s (serial %d)\n", e.Zone, e.Serial)
	for _, s := range e.Services {
		p("service   %s routes %s (%s)\n", s.Service, s.Owner, s.Type)
		switch loc := s.Location; {
		case loc != nil:
			p("location  %s %s %s %s lat %.4f lon %.4f (network %s, %s)\n", loc.Continent, loc.Country,
				orDash(loc.Subdivision+loc.SubdivisionName), orDash(loc.City), loc.Lat, loc.Lon, loc.Network, loc.Source)
		case s.Network != "":
			p("location  unknown: no record for network %s\n", s.Network)
		default:
			p("location  unknown: no GeoIP database\n")
		}
		switch {
		case s.Rule > 0:
			p("rule      %d matches: sites %v\n", s.Rule, s.RuleSites)
		case len(s.Distances) > 0:
			for _, sd := range s.Distances {
				p("distance  %-12s %8.0f km\n", sd.Site, sd.Km)
			}
		default:
			p("order     default: %v\n", s.Order)
		}
		p("groups    %v (sites within 5%% of the nearest share the answer)\n", s.Groups)
		if len(s.Down) > 0 {
			p("down      %v\n", s.Down)
		}
		for _, ss := range s.Sites {
			if ss.State != api.StateUp {
				p("site      %-12s %s: %s\n", ss.Site, ss.State, ss.Reason)
			}
		}
		for _, t := range s.Traffic {
			state := "down"
			if t.Up {
				state = fmt.Sprintf("keeps %.1f%% (dial %.1f%%, ramp %.1f%%)", t.Keeps, t.Dial, t.Ramp)
				if t.Keeps <= 0 {
					state += ": none kept" // no bucket drawn
				} else if t.Keeps < 100 {
					verdict := "kept"
					if t.Bucket >= t.Keeps {
						verdict = "moved"
					}
					state += fmt.Sprintf("; client bucket %.1f%%: %s", t.Bucket, verdict)
				}
			}
			p("traffic   %-12s %s\n", t.Site, state)
		}
		if s.SpilledFrom != "" {
			var parts []string
			for _, sh := range s.Spill {
				parts = append(parts, fmt.Sprintf("%s %.1f%%", sh.Site, sh.Share))
			}
			p("spill     %s's clients spread by spare capacity: %s (client network %s)\n", s.SpilledFrom,
				orDash(strings.Join(parts, ", ")), s.HashedNet)
		}
		if r := s.Ramp; r != nil && r.ReturnedEarly {
			p("ramping   returned early to %s: the next site %s is %.0f km farther (over %.0f km)\n", r.HeldBy, r.Next, r.DetourKm, r.MaxDetourKm)
		} else if r != nil {
			p("ramping   held back by %s: to %s, %.0f km farther (within %.0f km)\n", r.HeldBy, r.Next, r.DetourKm, r.MaxDetourKm)
		}
		if s.AllDown {
			p("all down  the service's all_down policy answers\n")
		}
		answer := fmt.Sprint(s.Addresses)
		if len(s.Names) > 0 {
			answer = fmt.Sprint(s.Names)
		}
		p("chosen    %v -> %s, scope /%d\n", s.Chosen, answer, s.Scope)
	}
	p("rcode     %s\n", e.Rcode)
	for _, rr := range e.Answer {
		p("answer    %s\n", rr)
	}
	for _, rr := range e.Ns {
		p("authority %s\n", rr)
	}
	if e.Scope != nil {
		p("ecs scope /%d (the answer holds for the client's /%d)\n", *e.Scope, *e.Scope)
	}
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
