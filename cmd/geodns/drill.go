package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/signal"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/geodns/geodns/api"
	"github.com/miekg/dns"
)

// sampleClients are real networks spread over the world (placements as in
// DB-IP): a drill without --clients uses those the drained site answers.
var sampleClients = []string{
	"3.80.0.0/24", "96.224.0.0/24", "128.112.0.0/24", "129.170.0.0/24", "128.103.0.0/24", // US east
	"8.8.8.0/24", "128.32.0.0/24", "171.64.0.0/24", "128.95.0.0/24", "132.239.0.0/24", // US west
	"128.174.0.0/24", "129.237.0.0/24", "128.83.0.0/24", "129.82.0.0/24", // US middle
	"142.150.0.0/24", "137.82.0.0/24", "132.206.0.0/24", // Canada
	"81.2.69.0/24", "193.0.0.0/24", "130.149.0.0/24", "129.132.0.0/24", // Europe
	"133.11.0.0/24", "143.248.0.0/24", "137.132.0.0/24", "14.139.0.0/24", // Asia
	"1.1.1.0/24", "130.216.0.0/24", "128.250.0.0/24", // Oceania
}

// drill is the fire drill: drain a site through the API, time how long its
// clients take to move (through DNS, with ECS), hold, undrain, time their
// return. It exits 1 if a time exceeds its limit.
func drill(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("drill", flag.ContinueOnError)
	fs.SetOutput(stderr)
	apiURL := fs.String("api", defaultAPI(), "the geodns admin API; $GEODNS_API when not given")
	site := fs.String("site", "", "the site to drain")
	clients := fs.String("clients", "", "client networks near the site, comma separated (default: sample networks the site answers)")
	name := fs.String("name", "", "the name to query (default: the first name of a service at the site)")
	hold := fs.Duration("duration", 30*time.Second, "how long to hold the drain")
	limit := fs.Duration("limit", 3*time.Second, "the most moving away or back may take")
	dnsAddr := fs.String("dns", "", "the DNS server to query (default: the first address in /api/v1/status)")
	nsList := fs.String("ns", "", "the NS set: every nameserver to watch, ADDR:PORT comma separated (default: --dns alone); the drill fails if any one lags")
	wait := fs.Duration("wait", 30*time.Second, "how long to wait for the clients to move (and to come back) before giving up")
	token := fs.String("token", os.Getenv("GEODNS_API_TOKEN"), "API token (default $GEODNS_API_TOKEN)")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if *site == "" || fs.NArg() > 0 {
		fmt.Fprint(stderr, "usage: geodns drill --api URL --site SITE [--ns ADDR,...] [--clients NET,...] [--duration 30s] [--limit 3s]\n")
		return 2
	}
	say := func(format string, a ...any) { fmt.Fprintf(stdout, format+"\n", a...) }
	fail := func(format string, a ...any) int { fmt.Fprintf(stderr, "geodns drill: "+format+"\n", a...); return 1 }

	var st api.Status
	if err := getJSON(*apiURL+"/api/v1/status", &st); err != nil {
		return fail("%v", err)
	}
	// A site winning its clients back (just restarted or undrained) has
	// few of them yet: the drill starts once its return ramp is done.
	for waited, said := time.Now(), false; ; {
		ramping := ""
		for _, svc := range st.Services {
			for _, s := range svc.Sites {
				if s.Name == *site && s.State == api.StateRamping {
					ramping = s.Reason
				}
			}
		}
		if ramping == "" {
			break
		}
		if time.Since(waited) > 10*time.Minute {
			return fail("%s is still returning after 10 minutes: %s", *site, ramping)
		}
		if !said {
			say("waiting for %s to win its clients back first (%s)", *site, ramping)
			said = true
		}
		time.Sleep(time.Second)
		if err := getJSON(*apiURL+"/api/v1/status", &st); err != nil {
			return fail("%v", err)
		}
	}
	if *dnsAddr == "" {
		if len(st.DNS) == 0 {
			return fail("the API reports no DNS address; give --dns")
		}
		*dnsAddr = st.DNS[0]
	}
	// The site's addresses tell its answers from the others'.
	mine := map[string]bool{}
	up, why := false, ""
	var ramp time.Duration // the longest return ramp of a service at the site: the return may take that long
	for _, svc := range st.Services {
		for _, s := range svc.Sites {
			if s.Name != *site {
				continue
			}
			up = up || s.Up
			if !s.Up && why == "" {
				why = s.Reason // "every endpoint is down: ...", "drained by ..."
			}
			if r, err := time.ParseDuration(svc.ReturnRamp); err == nil {
				ramp = max(ramp, r)
			}
			for _, ep := range s.Endpoints {
				mine[ep.ID] = true
			}
			if *name == "" && len(svc.Names) > 0 {
				*name = svc.Names[0]
			}
		}
	}
	if len(mine) == 0 {
		var sites []string
		for _, svc := range st.Services {
			for _, s := range svc.Sites {
				sites = append(sites, s.Name)
			}
		}
		if m := suggest(*site, sites); m != "" {
			return fail("no service has a site %q; did you mean %q?", *site, m)
		}
		return fail("no service has a site %q", *site)
	}
	if !up {
		// Its clients are elsewhere already: there is nothing to time.
		return fail("%s is down, so there is nothing to drill: %s", *site, why)
	}
	var nets []netip.Prefix
	candidates := sampleClients
	if *clients != "" {
		candidates = strings.Split(*clients, ",")
	}
	for _, c := range candidates {
		p, err := api.ParseClient(strings.TrimSpace(c))
		if err != nil {
			return fail("client %q: %v", c, err)
		}
		nets = append(nets, p)
	}
	q := &querier{server: *dnsAddr, name: *name, mine: mine}
	ns := nameservers{q}
	if *nsList != "" {
		ns = nil
		for _, a := range strings.Split(*nsList, ",") {
			a = strings.TrimSpace(a)
			if _, _, err := net.SplitHostPort(a); err != nil {
				return fail("--ns %q: want ADDR:PORT", a)
			}
			ns = append(ns, &querier{server: a, name: *name, mine: mine})
		}
	}
	if *clients == "" {
		var near []netip.Prefix
		for _, p := range nets {
			if on, err := q.onSite(p); err == nil && on {
				near = append(near, p)
			}
		}
		if len(near) == 0 {
			return fail("none of the sample networks is answered by %s now; give --clients", *site)
		}
		nets = near
	}
	say("drill: site %s, name %s, %d clients %v, DNS %s", *site, *name, len(nets), nets, ns)

	post := func(action string) error {
		req, _ := http.NewRequest(http.MethodPost, *apiURL+"/api/v1/sites/"+*site+"/"+action, nil)
		req.Header.Set("Authorization", "Bearer "+*token)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			body, _ := io.ReadAll(io.LimitReader(resp.Body, 1024))
			return fmt.Errorf("%s: %s %s", action, resp.Status, strings.TrimSpace(string(body)))
		}
		return nil
	}
	// Whatever happens from here, the site is undrained on the way out.
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	drained := false
	defer func() {
		if drained {
			if err := post("undrain"); err != nil {
				fmt.Fprintf(stderr, "geodns drill: UNDRAIN FAILED, site %s is still drained: %v\n", *site, err)
			}
		}
	}()

	if err := post("drain"); err != nil {
		return fail("%v", err)
	}
	drained = true
	// An interrupt (Ctrl-C) ends the drill early: said as such, not as
	// nameservers lagging, and the site is undrained on the way out.
	interrupted := func() int {
		return fail("interrupted; site %s is undrained", *site)
	}
	moved, err := ns.waitAll(ctx, nets, false, *wait, func(q *querier, d time.Duration, err error) {
		switch {
		case err == nil:
			say("  %s: moved off %s in %.2f s", q.server, *site, d.Seconds())
		case ctx.Err() == nil:
			say("  %s: LAGS: %v", q.server, err)
		}
	})
	if ctx.Err() != nil {
		return interrupted()
	}
	if err != nil {
		return fail("waiting for clients to move: %v", err)
	}
	say("drained %s: all %d clients moved off it in %.2f s on %d nameserver(s)", *site, len(nets), moved.Seconds(), len(ns))
	t1 := time.Now()
	for time.Since(t1) < *hold && ctx.Err() == nil {
		for _, q := range ns {
			if on, err := q.anyOnSite(nets); err == nil && on {
				return fail("a client was answered by the drained site during the hold, on %s", q.server)
			}
		}
		sleepCtx(ctx, 200*time.Millisecond)
	}
	if ctx.Err() != nil {
		return interrupted() // undrained by the deferred call
	}
	if err := post("undrain"); err != nil {
		return fail("%v", err)
	}
	drained = false
	back, err := ns.waitAll(ctx, nets, true, *wait+ramp, func(q *querier, d time.Duration, err error) {
		switch {
		case err == nil:
			say("  %s: back on %s in %.2f s", q.server, *site, d.Seconds())
		case ctx.Err() == nil:
			say("  %s: LAGS: %v", q.server, err)
		}
	})
	if ctx.Err() != nil {
		return fail("interrupted; site %s was undrained, its clients not yet seen back", *site)
	}
	if err != nil {
		return fail("waiting for clients to come back: %v", err)
	}
	say("undrained %s: all %d clients back in %.2f s (return ramp %v)", *site, len(nets), back.Seconds(), ramp)
	if moved > *limit || back > *limit+ramp {
		return fail("over the limit of %v (move %.2f s, return %.2f s of which the ramp may take %v)", *limit, moved.Seconds(), back.Seconds(), ramp)
	}
	say("drill passed: move %.2f s, return %.2f s (limit %v, return ramp %v)", moved.Seconds(), back.Seconds(), *limit, ramp)
	return 0
}

// nameservers are the NS set a drill watches.
type nameservers []*querier

func (ns nameservers) String() string {
	var out []string
	for _, q := range ns {
		out = append(out, q.server)
	}
	return strings.Join(out, ",")
}

// waitAll waits on every nameserver at once, tells each one's time (or
// failure) to report as it comes, and returns the slowest time, or an
// error naming every nameserver that lagged.
func (ns nameservers) waitAll(ctx context.Context, nets []netip.Prefix, want bool, max time.Duration, report func(*querier, time.Duration, error)) (time.Duration, error) {
	type result struct {
		q   *querier
		d   time.Duration
		err error
	}
	results := make(chan result, len(ns))
	for _, q := range ns {
		go func() {
			d, err := q.waitAll(ctx, nets, want, max)
			results <- result{q, d, err}
		}()
	}
	var slowest time.Duration
	var lagging []string
	for range ns {
		r := <-results
		report(r.q, r.d, r.err)
		if r.err != nil {
			lagging = append(lagging, r.q.server)
		}
		slowest = maxDur(slowest, r.d)
	}
	if len(lagging) > 0 {
		slices.Sort(lagging)
		return 0, fmt.Errorf("%s lagged (not done after %v)", strings.Join(lagging, ", "), max)
	}
	return slowest, nil
}

func maxDur(a, b time.Duration) time.Duration {
	if a > b {
		return a
	}
	return b
}

type querier struct {
	server, name string
	mine         map[string]bool
}

// onSite reports whether client is answered with an address of the site.
func (q *querier) onSite(client netip.Prefix) (bool, error) {
	m := new(dns.Msg).SetQuestion(dns.Fqdn(q.name), dns.TypeA)
	m.SetEdns0(1232, false)
	e := &dns.EDNS0_SUBNET{Code: dns.EDNS0SUBNET, Family: 1, SourceNetmask: uint8(client.Bits()), Address: net.IP(client.Addr().AsSlice())}
	if client.Addr().Is6() {
		e.Family = 2
	}
	m.IsEdns0().Option = append(m.IsEdns0().Option, e)
	r, _, err := (&dns.Client{Timeout: time.Second}).Exchange(m, q.server)
	if err != nil {
		return false, err
	}
	return slices.ContainsFunc(r.Answer, func(rr dns.RR) bool {
		a, ok := rr.(*dns.A)
		return ok && q.mine[a.A.String()]
	}), nil
}

func (q *querier) anyOnSite(nets []netip.Prefix) (bool, error) {
	for _, p := range nets {
		on, err := q.onSite(p)
		if err != nil || on {
			return on, err
		}
	}
	return false, nil
}

// waitAll polls until every client is (want) or is not (!want) on the site.
func (q *querier) waitAll(ctx context.Context, nets []netip.Prefix, want bool, max time.Duration) (time.Duration, error) {
	start := time.Now()
	for {
		done := true
		for _, p := range nets {
			on, err := q.onSite(p)
			if err != nil || on != want {
				done = false
				break
			}
		}
		if done {
			return time.Since(start), nil
		}
		if time.Since(start) > max {
			return 0, fmt.Errorf("not done after %v", max)
		}
		if !sleepCtx(ctx, 20*time.Millisecond) {
			return 0, ctx.Err()
		}
	}
}

func sleepCtx(ctx context.Context, d time.Duration) bool {
	select {
	case <-ctx.Done():
		return false
	case <-time.After(d):
		return true
	}
}

func getJSON(url string, v any) error {
	c := &http.Client{Timeout: 5 * time.Second}
	resp, err := c.Get(url)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s: %s", url, resp.Status)
	}
	return json.NewDecoder(resp.Body).Decode(v)
}
