package route

import (
	"context"
	"fmt"
	"net/netip"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/geodns/geodns/geo"
	"github.com/geodns/geodns/opstate"
	"github.com/geodns/geodns/zones"
	"github.com/stretchr/testify/require"
)

// movingLocator is places until moved: then New York's network is in
// Paris, under a new generation.
type movingLocator struct{ moved atomic.Bool }

func (l *movingLocator) Generation() uint64 {
	if l.moved.Load() {
		return 1
	}
	return 0
}

func (l *movingLocator) Locate(a netip.Addr) (geo.Location, bool) {
	loc, ok := places.Locate(a)
	if l.moved.Load() && loc.Network == prefix("10.10.0.0/16") {
		loc.Country, loc.Lat, loc.Lon = "FR", 48.9, 2.35
	}
	return loc, ok
}

// TestMemoMatchesFreshDecisions: the memoized Route answers exactly what a
// decision made from scratch (Explain: the client located and ranked anew)
// answers, query after query, while dials, overrides, return ramps (the
// clock moving through one), spillover, all-down and the database change
// under it. Two routers see the same state and rotate in step. Twice:
// with plans built by queries, and published by the plan loop (a round
// after each change, as Run does), where queries find the published plans
// in the router's slots.
func TestMemoMatchesFreshDecisions(t *testing.T) {
	for _, published := range []bool{false, true} {
		t.Run(fmt.Sprintf("published=%v", published), func(t *testing.T) { memoMatchesFresh(t, published) })
	}
}

func memoMatchesFresh(t *testing.T, published bool) {
	// Capacities, so that the spread follows the demand estimate.
	src := strings.NewReplacer("lon: -77.49}", "lon: -77.49, capacity: 100}", "lon: -121.89}", "lon: -121.89, capacity: 30}",
		"lon: 8.68}", "lon: 8.68, capacity: 75}").Replace(zoneYAML)
	z, err := zones.Compile("example.net.yaml", []byte(src+`  spill:
    spillover: {max_load: 0.8}
    endpoints:
      - {site: us-east, address: 192.0.2.20}
      - {site: us-west, address: 198.51.100.20}
      - {site: eu, address: 203.0.113.20}
`), "example.net.", time.Now(), nil)
	require.NoError(t, err)
	web, edge, spill := z.Services["web"], z.Services["edge"], z.Services["spill"]
	require.True(t, spill.Spillover)
	t0 := time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)
	now := t0
	clock := func() time.Time { return now }
	op := &swapOp{}
	loc := &movingLocator{}
	memoized := &Router{Loc: loc, Operator: op, Now: clock, turns: counter(), Log: quiet}
	fresh := &Router{Loc: loc, Operator: op, Now: clock, turns: counter()}

	var clients []netip.Prefix
	for _, p := range []string{"10.10.1.0/24", "10.10.1.7/32", "10.20.3.0/24", "10.30.0.0/24", "10.40.2.0/24",
		"10.50.0.0/24", "10.60.9.0/24", "192.0.2.5/32", "192.0.2.0/26", "192.0.2.200/32", "198.51.100.0/24",
		"10.10.0.0/16", "0.0.0.0/0", "2001:db8:1::/48", "2001:db8:1:2::/56", "2001:db8::1/128", "2a00::/32"} {
		clients = append(clients, prefix(p))
	}
	for i := range 300 { // New Yorkers: each dial and ramp keeps some
		clients = append(clients, netip.PrefixFrom(netip.AddrFrom4([4]byte{10, 10, byte(i), 0}), 24))
	}

	version := uint64(0)
	set := func(sites, eps map[string]opstate.Override, lifted map[string]time.Time, dials []opstate.Dial) {
		version++
		op.cur.Store(opstate.NewState(sites, eps, lifted, dials, version))
	}
	memoized.loop.running.Store(published)
	compare := func(phase string) {
		t.Helper()
		if published {
			memoized.Refresh(zones.NewSet(z)) // the loop's round after the change
		}
		for pass := range 3 {
			for _, s := range []string{"web", "edge", "spill"} {
				svc := web
				switch s {
				case "edge":
					svc = edge
				case "spill":
					svc = spill
				}
				for _, c := range clients {
					for _, v6 := range []bool{false, true} {
						got := memoized.Route(z.Origin, svc, c, v6)
						want, _ := fresh.Explain(z.Origin, svc, c, v6)
						require.Equal(t, want, got, "%s, pass %d: %s %v v6 %v", phase, pass, s, c, v6)
					}
				}
			}
		}
	}

	set(nil, nil, nil, nil)
	compare("all up")
	set(nil, nil, nil, []opstate.Dial{{Service: "web", Site: "us-east", Weight: 0.5}, {Service: "spill", Site: "us-east", Weight: 0.3}})
	compare("us-east dialed")
	for _, r := range []*Router{memoized, fresh} {
		r.estimateDemands(context.Background(), zones.NewSet(z)) // the spread changes, the plan does not
	}
	compare("us-east dialed, demand estimated")
	set(map[string]opstate.Override{"us-east": opstate.ForceDown}, nil, nil, nil)
	compare("us-east down")
	set(nil, map[string]opstate.Override{"192.0.2.10": opstate.ForceDown}, nil, nil)
	compare("an endpoint down")
	set(map[string]opstate.Override{"us-east": opstate.ForceDown, "us-west": opstate.ForceDown, "eu": opstate.ForceDown}, nil, nil, nil)
	compare("all down")
	lifted := map[string]time.Time{"site:us-east": t0}
	set(nil, nil, lifted, nil)
	for _, s := range []time.Duration{0, 10 * time.Second, 30 * time.Second, 59 * time.Second, 61 * time.Second, 2 * time.Minute, 30 * time.Second} {
		now = t0.Add(s)
		compare(fmt.Sprintf("us-east ramping at %v", s))
	}
	now = t0.Add(time.Hour)
	set(map[string]opstate.Override{"us-west": opstate.Drain}, nil, lifted, nil)
	compare("us-west drained")
	loc.moved.Store(true)
	compare("database reloaded")
}

// TestMemoBounded: the memo does not grow with distinct client networks.
// Placements used to be kept up to 131,072 of them (tens of MB).
func TestMemoBounded(t *testing.T) {
	z := loadZone(t)
	web := z.Services["web"]
	r := &Router{Loc: newYork{}}
	route := func(from, n int) {
		for i := from; i < from+n; i++ {
			c := netip.PrefixFrom(netip.AddrFrom4([4]byte{byte(i >> 16), byte(i >> 8), byte(i), 0}), 24)
			require.NotEmpty(t, r.Route(z.Origin, web, c, false).Sites)
		}
	}
	heap := func() uint64 {
		runtime.GC()
		var m runtime.MemStats
		runtime.ReadMemStats(&m)
		return m.HeapAlloc
	}
	route(0, 4*memoSlots) // the memo is full
	before := heap()
	route(4*memoSlots, 200_000)
	after := heap()
	require.Less(t, int64(after)-int64(before), int64(2<<20), "200,000 more networks: %d bytes more on the heap", int64(after)-int64(before))
	require.Less(t, before, uint64(memoSlots*memoEntryBytes+8<<20), "a full memo: %d bytes on the heap", before)
}

// countingLocator counts its lookups.
type countingLocator struct {
	Locator
	calls atomic.Int64
}

func (l *countingLocator) Locate(a netip.Addr) (geo.Location, bool) {
	l.calls.Add(1)
	return l.Locator.Locate(a)
}

// TestMemoCollidingNetworksKept: memoWays networks whose keys share a
// set, asked in turn, stay memoized; one more evicts.
func TestMemoCollidingNetworksKept(t *testing.T) {
	z := loadZone(t)
	web := z.Services["web"]
	loc := &countingLocator{Locator: newYork{}}
	r := &Router{Loc: loc}
	var same []netip.Prefix
	var want uint64
	for i := 0; len(same) < memoWays+1; i++ {
		c := netip.PrefixFrom(netip.AddrFrom4([4]byte{10, byte(i >> 8), byte(i), 0}), 24)
		set := memoSetIndex(web, c, false)
		if len(same) == 0 {
			want = set
		}
		if set == want {
			same = append(same, c)
		}
	}
	for range 10 {
		for _, c := range same[:memoWays] {
			require.Equal(t, []string{"us-east"}, r.Route(z.Origin, web, c, false).Sites)
		}
	}
	require.Equal(t, int64(memoWays), loc.calls.Load(), "colliding networks: each located once")
	for range 10 {
		for _, c := range same {
			require.Equal(t, []string{"us-east"}, r.Route(z.Origin, web, c, false).Sites, "one more evicts one of them")
		}
	}
}

// counter is a Router.turns that counts 1, 2, 3...: two routers given one
// each and asked the same turn their answers in step.
func counter() func() uint32 {
	var n uint32
	return func() uint32 { n++; return n }
}
