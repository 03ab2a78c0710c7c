package route

import (
	"context"
	"fmt"
	"math"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/geodns/geodns/geo"
	"github.com/geodns/geodns/geo/geotest"
	"github.com/geodns/geodns/zones"
	"github.com/stretchr/testify/require"
)

// The simulation's layout: four sites, the biggest in the US east, each
// with a capacity near its share of clients when all are up (as an operator
// sizes sites). Spillover moves only the clients of sites that lost them:
// a survivor whose own clients already exceed its capacity share stays
// above it (with ap at capacity 40 here, ap kept 26.3 % against 22.2 %).
const simZone = `
soa: {ns: ns1.example.net., mbox: hostmaster.example.net.}
records:
  "@": {NS: [ns1.example.net.]}
  www: {service: web}
sites:
  us-east: {lat: 39.04, lon: -77.49, capacity: 100}
  us-west: {lat: 37.34, lon: -121.89, capacity: 30}
  eu:      {lat: 50.11, lon: 8.68, capacity: 75}
  ap:      {lat: 1.35, lon: 103.82, capacity: 75}
services:
  web:
    %s
    endpoints:
      - {site: us-east, address: 192.0.2.10}
      - {site: us-west, address: 198.51.100.10}
      - {site: eu, address: 203.0.113.10}
      - {site: ap, address: 192.0.2.20}
`

var simSites = []string{"us-east", "us-west", "eu", "ap"}

func simService(t testing.TB, extra string) (*zones.Zone, *zones.Service) {
	t.Helper()
	z, err := zones.Compile("sim.yaml", []byte(fmt.Sprintf(simZone, extra)), "example.net.", time.Now(), nil)
	require.NoError(t, err)
	return z, z.Services["web"]
}

// realLocator opens the DB-IP Lite City data that scripts/fetch-geoip.sh
// fetches (make test does).
func realLocator(t testing.TB) *geo.Locator {
	t.Helper()
	l, err := geo.NewLocator(geotest.RealDB(t, "../data/geoip"), nil)
	require.NoError(t, err)
	return l
}

// simClients are real client networks, weighted equally: the /24s at
// x.y.37.0 and x.y.201.0 of every IPv4 /16 that DB-IP places with
// coordinates. (Demand's estimate samples x.y.128.0: other networks.)
func simClients(t testing.TB, loc *geo.Locator) []netip.Prefix {
	var out []netip.Prefix
	for n := 0; n < 1<<16; n++ {
		for _, third := range []byte{37, 201} {
			a := netip.AddrFrom4([4]byte{byte(n >> 8), byte(n), third, 0})
			if l, ok := loc.Locate(a); ok && l.HasCoords {
				out = append(out, netip.PrefixFrom(a, 24))
			}
		}
	}
	require.GreaterOrEqual(t, len(out), 100_000, "the simulation needs 100,000 located client networks")
	return out
}

// shares routes every client and returns each site's share, and each
// client's site.
func shares(r *Router, z *zones.Zone, svc *zones.Service, clients []netip.Prefix) (map[string]float64, []string) {
	got := map[string]float64{}
	sites := make([]string, len(clients))
	for i, c := range clients {
		d := r.Route(z.Origin, svc, c, false)
		if len(d.Sites) > 0 {
			sites[i] = d.Sites[0]
			for _, s := range d.Sites {
				got[s] += 1 / float64(len(d.Sites)) // ties share
			}
		}
	}
	for s := range got {
		got[s] /= float64(len(clients))
	}
	return got, sites
}

func waitDemand(t testing.TB, r *Router, svc *zones.Service) map[string]float64 {
	t.Helper()
	r.estimateDemands(context.Background(), zones.NewSet(&zones.Zone{Origin: "example.net.", Services: map[string]*zones.Service{"web": svc}}))
	est, ok := r.Demand(svc)
	require.True(t, ok)
	return est
}

// TestSpilloverSimulation routes 100,000+ real client networks over four
// sites: all up, then the biggest (us-east) down without and with spillover.
func TestSpilloverSimulation(t *testing.T) {
	loc := realLocator(t)
	clients := simClients(t, loc)
	z, plain := simService(t, "spillover: false")
	zs, spill := simService(t, "spillover: {max_load: 0.8}")
	capacity := map[string]float64{}
	for _, s := range spill.Sites {
		capacity[s.Name] = s.Capacity
	}

	up := &Router{Loc: loc}
	allUp, _ := shares(up, z, plain, clients)
	eastDown := &Router{Loc: loc, Operator: downHealth{"site:us-east": true}}
	waitDemand(t, eastDown, spill)
	without, _ := shares(eastDown, z, plain, clients)
	with, _ := shares(eastDown, zs, spill, clients)

	survivorCap := capacity["us-west"] + capacity["eu"] + capacity["ap"]
	var b strings.Builder
	fmt.Fprintf(&b, "%d client /24s (DB-IP Lite), weighted equally; us-east (capacity 100 of 280) down\n", len(clients))
	fmt.Fprintf(&b, "%-8s %8s %8s | %12s %12s %14s\n", "site", "capacity", "all up", "no spillover", "spillover", "cap-proportional")
	for _, s := range simSites {
		target := 0.0
		if s != "us-east" {
			target = capacity[s] / survivorCap
		}
		fmt.Fprintf(&b, "%-8s %8.0f %7.1f%% | %11.1f%% %11.1f%% %13.1f%%\n", s, capacity[s], 100*allUp[s], 100*without[s], 100*with[s], 100*target)
	}
	t.Log("\n" + b.String())
	require.Zero(t, with["us-east"])
	for _, s := range simSites[1:] {
		require.InEpsilon(t, capacity[s]/survivorCap, with[s], 0.10, "%s: within 10%% of its capacity share", s)
	}

	// Without spillover one survivor takes every east client.
	require.InDelta(t, allUp["us-west"]+allUp["us-east"], without["us-west"]+without["eu"]-allUp["eu"], 0.01)
	gained := map[string]float64{}
	for _, s := range simSites[1:] {
		gained[s] = without[s] - allUp[s]
	}
	require.Greater(t, gained["us-west"]+gained["eu"], 0.99*allUp["us-east"], "east's clients went to the next nearest")
}

// TestDialMovesItsShare: a dial at 75 % on us-east (dialed down by 25 %)
// moves 25 % ± 2 % of east's clients, and only east's; a dial at 25 % keeps
// a quarter.
func TestDialMovesItsShare(t *testing.T) {
	loc := realLocator(t)
	clients := simClients(t, loc)
	z, svc := simService(t, "spillover: false")
	_, before := shares(&Router{Loc: loc}, z, svc, clients)
	for _, dial := range []int{75, 25} {
		zd, dialed := simService(t, fmt.Sprintf("dials: {us-east: %d}", dial))
		_, after := shares(&Router{Loc: loc}, zd, dialed, clients)
		east, moved, others := 0, 0, 0
		for i := range clients {
			if before[i] == "us-east" {
				east++
				if after[i] != "us-east" {
					moved++
				}
			} else if after[i] != before[i] {
				others++
			}
		}
		share := float64(moved) / float64(east)
		t.Logf("dial us-east %d%%: %d of %d east clients moved (%.2f%%); clients of other sites moved: %d", dial, moved, east, 100*share, others)
		require.InDelta(t, 1-float64(dial)/100, share, 0.02)
		require.Zero(t, others, "a dial moves its own site's clients only")
	}
}

// TestStickiness: the same network gets the same site every time, from a
// fresh router too (a restart), while nothing changes, in the cases where
// hashing decides: a dial, a spread, a ramp at a fixed point.
func TestStickiness(t *testing.T) {
	loc := realLocator(t)
	clients := simClients(t, loc)[:2000]
	z, svc := simService(t, "spillover: {max_load: 0.8}\n    dials: {us-west: 50}")
	mk := func() *Router { return &Router{Loc: loc, Operator: downHealth{"site:us-east": true}} }
	first := mk()
	waitDemand(t, first, svc)
	_, want := shares(first, z, svc, clients)
	for range 1000 / 100 { // 1,000 queries per client in all, over 10 routers ("restarts")
		r := mk()
		waitDemand(t, r, svc)
		for range 100 {
			_, got := shares(r, z, svc, clients[:20])
			require.Equal(t, want[:20], got)
		}
		_, got := shares(r, z, svc, clients)
		require.Equal(t, want, got)
	}
	spread := map[string]int{}
	for _, s := range want {
		spread[s]++
	}
	require.Greater(t, len(spread), 2, "the spread sends east's clients to more than one site: %v", spread)
}

func TestWaterFill(t *testing.T) {
	capShare := []float64{0.5, 0.3, 0.2}
	load := []float64{0.1, 0.3, 0.0}
	given := make([]float64, 3)
	waterFill([]int{0, 1, 2}, capShare, load, given, 0.4)
	// Level λ: 0.5λ-0.1 + 0.2λ = 0.4 → λ = 5/7 < 1 = site 1's utilization.
	require.InDelta(t, 0.5*5/7.0-0.1, given[0], 1e-9)
	require.Zero(t, given[1])
	require.InDelta(t, 0.2*5/7.0, given[2], 1e-9)
	require.InDelta(t, 0.4, given[0]+given[1]+given[2], 1e-9)
	require.False(t, math.IsNaN(given[0]))
}
