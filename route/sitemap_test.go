package route

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"math/rand/v2"
	"net/netip"
	"slices"
	"sort"
	"sync/atomic"
	"testing"
	"time"

	"github.com/geodns/geodns/geo"
	"github.com/geodns/geodns/geo/geotest"
	"github.com/geodns/geodns/opstate"
	"github.com/geodns/geodns/zones"
	"github.com/stretchr/testify/require"
)

const mapZoneYAML = `
soa: {ns: ns1.example.net., mbox: hostmaster.example.net.}
records:
  "@": {NS: [ns1.example.net.]}
  www: {service: web}
sites:
  us-east: {lat: 39.04, lon: -77.49}
  us-west: {lat: 37.34, lon: -121.89}
  eu:      {lat: 50.11, lon: 8.68}
  ap:      {lat: 35.68, lon: 139.69}
services:
  web:
    answers: 2
    endpoints:
      - {site: us-east, address: 192.0.2.10}
      - {site: us-east, address: 192.0.2.11}
      - {site: us-east, address: "2001:db8::10"}
      - {site: us-west, address: 198.51.100.10}
      - {site: us-west, address: "2001:db8::20"}
      - {site: eu, address: 203.0.113.10}
      - {site: ap, address: 203.0.113.20}
    rules:
      - {match: {country: [MX]}, sites: [us-west, us-east]}
      - {match: {continent: [OC]}, sites: [ap]}
`

// mapPlaces are where the test databases put networks: cities, a
// country without coordinates, and a record with neither (which places
// nothing, so the next database is asked).
var mapPlaces = []geotest.Entry{
	{Country: "US", Continent: "NA", Lat: 40.7, Lon: -74.0},  // New York
	{Country: "US", Continent: "NA", Lat: 47.6, Lon: -122.3}, // Seattle
	{Country: "US", Continent: "NA", Lat: 38.9, Lon: -99.6},  // Kansas: US sites tie
	{Country: "MX", Continent: "NA", Lat: 25.7, Lon: -100.3}, // a rule
	{Country: "FR", Continent: "EU", Lat: 48.9, Lon: 2.35},   // Paris
	{Country: "DE", Continent: "EU", Lat: 52.5, Lon: 13.4},   // Berlin: Paris's class
	{Country: "AU", Continent: "OC", Lat: -33.9, Lon: 151.2}, // a rule
	{Country: "JP", Continent: "AS", NoCoords: true},         // default order, located
	{NoCoords: true}, // places nothing
	{Country: "BR", Continent: "SA", Lat: -23.5, Lon: -46.6},  // São Paulo
	{Country: "IN", Continent: "AS", Lat: 19.1, Lon: 72.9},    // Mumbai: between eu and ap
	{Country: "US", Continent: "NA", Lat: 40.71, Lon: -74.01}, // New York, another record
}

// mapDatabases writes two overlapping databases of n random networks
// each (a GeoIP2-City one with IPv4 and IPv6, a DB-IP IPv4 one) and
// returns a locator over them and every network written.
func mapDatabases(t *testing.T, n int) (*geo.Locator, []netip.Prefix) {
	t.Helper()
	rng := rand.New(rand.NewPCG(7, 11))
	var nets []netip.Prefix
	entries := func(v6 bool) []geotest.Entry {
		var out []geotest.Entry
		for range n {
			e := mapPlaces[rng.IntN(len(mapPlaces))]
			var p netip.Prefix
			if v6 && rng.IntN(2) == 0 {
				a := [16]byte{0x20, 0x01, 0x0d, 0xb8, byte(rng.IntN(4)), byte(rng.IntN(256)), byte(rng.IntN(256))}
				p = netip.PrefixFrom(netip.AddrFrom16(a), 32+rng.IntN(33)).Masked()
			} else {
				// Clustered in a few /8s, so networks are neighbours and overlap.
				a := [4]byte{[]byte{10, 11, 100, 203}[rng.IntN(4)], byte(rng.IntN(256)), byte(rng.IntN(256)), byte(rng.IntN(256))}
				p = netip.PrefixFrom(netip.AddrFrom4(a), 12+rng.IntN(17)).Masked()
			}
			e.CIDR = p.String()
			if !e.NoCoords || e.Country != "" || rng.IntN(3) == 0 {
				out = append(out, e)
				nets = append(nets, p)
			}
		}
		return out
	}
	dir := t.TempDir()
	a := geotest.MaxMind(t, dir, "a.mmdb", entries(true))
	b := geotest.DBIP(t, dir, "b.mmdb", false, entries(false))
	loc, err := geo.NewLocator([]string{a, b}, slog.New(slog.NewTextHandler(io.Discard, nil)))
	require.NoError(t, err)
	return loc, nets
}

// samples are addresses around and inside every network: each edge, one
// past it, and random ones.
func samples(nets []netip.Prefix, rng *rand.Rand) []netip.Addr {
	var out []netip.Addr
	for _, p := range nets {
		first := p.Masked().Addr()
		last := lastOf(p)
		out = append(out, first, last, first.Prev(), last.Next())
		b := first.AsSlice()
		for i := p.Bits() / 8; i < len(b); i++ {
			b[i] |= byte(rng.IntN(256)) & (0xff >> max(0, p.Bits()-8*i))
		}
		a, _ := netip.AddrFromSlice(b)
		out = append(out, a)
	}
	for range 2000 {
		out = append(out, netip.AddrFrom4([4]byte{byte(rng.IntN(256)), byte(rng.IntN(256)), byte(rng.IntN(256)), byte(rng.IntN(256))}))
	}
	out = append(out, netip.IPv4Unspecified(), netip.MustParseAddr("255.255.255.255"), netip.IPv6Unspecified(),
		netip.MustParseAddr("ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff"), netip.MustParseAddr("2a00::1"))
	var valid []netip.Addr
	for _, a := range out {
		if a.IsValid() {
			valid = append(valid, a)
		}
	}
	return valid
}

func lastOf(p netip.Prefix) netip.Addr {
	b := p.Masked().Addr().AsSlice()
	for i := range b {
		if keep := p.Bits() - 8*i; keep < 8 {
			b[i] |= 0xff >> max(0, keep)
		}
	}
	a, _ := netip.AddrFromSlice(b)
	return a
}

// exactClass is what the router derives for addr without a map.
func exactClass(svc *zones.Service, loc *geo.Locator, addr netip.Addr) mapClass {
	l, located := loc.Locate(addr)
	g, rule := siteGroups(svc, l, located, addr, nil)
	return mapClass{groups: g, rule: rule, hasCoords: l.HasCoords}
}

// TestSiteMapMatchesLocate: for addresses at every edge of every network
// of two overlapping databases, and random ones, the compiled map gives
// the class a database lookup and ranking give; and every address of the
// prefix it says the class holds for has that class too.
func TestSiteMapMatchesLocate(t *testing.T) {
	z, err := zones.Compile("example.net.yaml", []byte(mapZoneYAML), "example.net.", time.Now(), nil)
	require.NoError(t, err)
	svc := z.Services["web"]
	loc, nets := mapDatabases(t, 1500)
	m := compileMapT(t, svc, loc)
	require.Equal(t, loc.Generation(), m.gen)
	t.Logf("%d classes, %d IPv4 runs, %d IPv6 runs from %d networks", len(m.classes), m.fam[0].runs(), m.fam[1].runs(), len(nets))
	require.Greater(t, len(m.classes), 5)
	rng := rand.New(rand.NewPCG(3, 5))
	checked := 0
	for _, a := range samples(nets, rng) {
		cls, bits := m.lookup(a)
		want := exactClass(svc, loc, a)
		require.Equal(t, want, m.classes[cls], "%v", a)
		block := netip.PrefixFrom(a, bits).Masked()
		require.True(t, block.Contains(a))
		for _, b := range []netip.Addr{block.Addr(), lastOf(block)} {
			require.Equal(t, want, exactClass(svc, loc, b), "%v: the class holds for %v, but not at %v", a, block, b)
		}
		checked++
	}
	t.Logf("%d addresses checked", checked)
}

// TestSpanTableLookup: the bucketed lookup (a whole bucket's class read
// from its entry, or a search of its runs) gives what a search of all the
// runs gives: the run holding the address, and the shortest prefix of the
// address inside that run. Both kinds of bucket occur in both families.
func TestSpanTableLookup(t *testing.T) {
	z, err := zones.Compile("example.net.yaml", []byte(mapZoneYAML), "example.net.", time.Now(), nil)
	require.NoError(t, err)
	loc, nets := mapDatabases(t, 1500)
	m := compileMapT(t, z.Services["web"], loc)
	for f := range m.fam {
		whole := 0
		for _, e := range m.fam[f].bucket {
			whole += int(e & bucketWhole)
		}
		t.Logf("family %d: %d runs, %d of %d buckets whole", f, m.fam[f].runs(), whole, len(m.fam[f].bucket))
		require.Greater(t, whole, 0)
		require.Less(t, whole, len(m.fam[f].bucket))
	}
	rng := rand.New(rand.NewPCG(7, 11))
	addrs := samples(nets, rng)
	for range 2000 { // whole buckets of IPv6 too
		addrs = append(addrs, netip.AddrFrom16([16]byte{byte(rng.IntN(256)), byte(rng.IntN(256)), 0, byte(rng.IntN(256)), 15: byte(rng.IntN(256))}))
	}
	for _, a := range addrs {
		checkSpanLookup(t, &m.fam[b2i(!a.Is4())], a)
	}
}

// TestSpanTableDense: tables with thousands of runs in one bucket, runs at
// and around bucket edges, and large classes, against a search of all the
// runs.
func TestSpanTableDense(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for _, v6 := range []bool{false, true} {
		starts := map[netip.Addr]bool{}
		if v6 {
			starts[netip.IPv6Unspecified()] = true
		} else {
			starts[netip.IPv4Unspecified()] = true
		}
		addr := func(x uint32) netip.Addr { // x in the top 32 bits
			if v6 {
				return netip.AddrFrom16([16]byte{byte(x >> 24), byte(x >> 16), byte(x >> 8), byte(x), 8: byte(rng.IntN(2))})
			}
			return netip.AddrFrom4([4]byte{byte(x >> 24), byte(x >> 16), byte(x >> 8), byte(x)})
		}
		for range 3000 { // dense: one bucket of either width
			starts[addr(0x0a0b0000|rng.Uint32N(1<<12))] = true
		}
		for range 500 { // bucket edges
			b := rng.Uint32N(1<<12) << 20
			starts[addr(b)] = true
			starts[addr(b-1)] = true
		}
		for range 2000 {
			starts[addr(rng.Uint32())] = true
		}
		var tab spanTable
		for _, a := range slices.SortedFunc(maps.Keys(starts), netip.Addr.Compare) {
			h, l := key(a)
			c := rng.Uint32N(50)
			if rng.IntN(10) == 0 {
				c = 1<<26 + rng.Uint32N(1000)
			}
			tab.hi, tab.cls = append(tab.hi, h), append(tab.cls, c)
			if v6 {
				tab.lo = append(tab.lo, l)
			}
		}
		tab.finish()
		for a := range starts {
			for _, x := range []netip.Addr{a, a.Prev(), a.Next()} {
				if x.IsValid() && x.Is4() == !v6 {
					checkSpanLookup(t, &tab, x)
				}
			}
		}
		for range 5000 {
			checkSpanLookup(t, &tab, addr(rng.Uint32()))
			checkSpanLookup(t, &tab, addr(0x0a0b0000|rng.Uint32N(1<<16)))
		}
	}
}

// checkSpanLookup compares tab's lookup of a with a search of all its
// runs and a walk out from a to the shortest prefix inside its run.
func checkSpanLookup(t *testing.T, tab *spanTable, a netip.Addr) {
	t.Helper()
	h, l := key(a)
	k := sort.Search(tab.runs(), func(m int) bool { // the last run starting at or before a
		sh, sl, _ := tab.run(m)
		return less(h, l, sh, sl)
	}) - 1
	sh, sl, want := tab.run(k)
	bits := a.BitLen() // the shortest prefix of a inside run k
	for bits > 0 {
		wider := netip.PrefixFrom(a, bits-1).Masked()
		fh, fl := key(wider.Addr())
		lh, ll := key(lastOf(wider))
		inRun := !less(fh, fl, sh, sl)
		if k+1 < tab.runs() {
			nh, nl, _ := tab.run(k + 1)
			inRun = inRun && less(lh, ll, nh, nl)
		}
		if !inRun {
			break
		}
		bits--
	}
	cls, scope := tab.lookup(a)
	require.Equal(t, want, cls, "%v", a)
	require.Equal(t, bits, scope, "%v", a)
}

func compileMapT(t *testing.T, svc *zones.Service, loc *geo.Locator) *siteMap {
	t.Helper()
	m := compileMap(t.Context(), svc, loc)
	require.NotNil(t, m)
	return m
}

// TestSiteMapRoutesAsFresh: a router whose service has a compiled map
// decides what a router without one decides (Explain: located and ranked
// anew), through dials, a drain, all-down and a return ramp with the clock
// moving through it, for clients across two databases; and every network
// in its ECS scope gets the same sites, the map's scope and the lookup's.
// (The map's may be wider than the database network's, where neighbours
// rank alike. Where a network of the second database has networks of the
// first inside it, the lookup's is the first database's empty network
// around the client: Locate narrows it.)
func TestSiteMapRoutesAsFresh(t *testing.T) {
	z, err := zones.Compile("example.net.yaml", []byte(mapZoneYAML), "example.net.", time.Now(), nil)
	require.NoError(t, err)
	svc := z.Services["web"]
	loc, nets := mapDatabases(t, 400)
	t0 := time.Date(2026, 12, 2, 12, 0, 0, 0, time.UTC)
	now := t0
	clock := func() time.Time { return now }
	op := &swapOp{}
	mapped := &Router{Loc: loc, Operator: op, Now: clock, turns: counter()}
	fresh := &Router{Loc: loc, Operator: op, Now: clock, turns: counter()}
	other := &Router{Loc: loc, Operator: op, Now: clock} // for the scope checks (sites only), so that fresh and mapped turn in step
	mapped.CompileSiteMaps(zones.NewSet(z))
	require.NotNil(t, mapped.planFor(z.Origin, svc).idx.smap.Load(), "the map is in use")

	rng := rand.New(rand.NewPCG(1, 2))
	var clients []netip.Prefix
	for _, a := range samples(nets, rng) {
		bits := a.BitLen()
		if rng.IntN(2) == 0 {
			bits = min(bits, 24) // an ECS /24 (or /24 of IPv6)
		}
		clients = append(clients, netip.PrefixFrom(a, bits).Masked())
	}
	version := uint64(0)
	set := func(sites map[string]opstate.Override, lifted map[string]time.Time, dials []opstate.Dial) {
		version++
		op.cur.Store(opstate.NewState(sites, nil, lifted, dials, version))
	}
	mappedSeen := 0
	compare := func(phase string) {
		t.Helper()
		for pass := range 2 {
			for _, c := range clients {
				for _, v6 := range []bool{false, true} {
					got := mapped.Route(z.Origin, svc, c, v6)
					want, _ := fresh.Explain(z.Origin, svc, c, v6)
					if got.Why.Mapped {
						mappedSeen++
						require.Equal(t, want.Why.Located, got.Why.Located)
						lat, lon, ok := mapped.Where(c.Addr())
						require.True(t, ok)
						got.Why.Lat, got.Why.Lon, got.Why.Mapped = lat, lon, false
					}
					freshScope := want.Scope
					want.Scope = got.Scope
					require.Equal(t, want, got, "%s, pass %d: %v v6 %v", phase, pass, c, v6)
					if pass == 0 && got.Why.Bucket < 0 {
						// The whole scope is answered alike (hashed answers
						// hold for the hashed network only, checked above),
						// the map's and the lookup's.
						for _, scope := range []int{got.Scope, freshScope} {
							block := netip.PrefixFrom(c.Addr(), scope).Masked()
							for _, b := range []netip.Addr{block.Addr(), lastOf(block)} {
								w, _ := other.Explain(z.Origin, svc, netip.PrefixFrom(b, c.Bits()).Masked(), v6)
								require.Equal(t, got.Sites, w.Sites, "%s: scope /%d of %v (v6 %v: %+v) holds not for %v", phase, scope, c, v6, got, b)
							}
						}
					}
				}
			}
		}
	}
	set(nil, nil, nil)
	compare("all up")
	set(nil, nil, []opstate.Dial{{Service: "web", Site: "us-east", Weight: 0.5}})
	compare("us-east dialed")
	set(map[string]opstate.Override{"us-west": opstate.Drain}, nil, nil)
	compare("us-west drained")
	set(map[string]opstate.Override{"us-east": opstate.ForceDown, "us-west": opstate.ForceDown, "eu": opstate.ForceDown, "ap": opstate.ForceDown}, nil, nil)
	compare("all down")
	lifted := map[string]time.Time{"site:us-east": t0}
	for _, s := range []time.Duration{0, 10 * time.Second, 30 * time.Second, 61 * time.Second} {
		now = t0.Add(s)
		set(map[string]opstate.Override{"us-west": opstate.Drain}, lifted, nil)
		compare(fmt.Sprintf("us-east ramping at %v, us-west drained", s))
	}
	require.Greater(t, mappedSeen, 1000, "decisions from the map")
}

// TestSiteMapCompiledByRun: the plan loop compiles a service's map in the
// background once its clients come from many networks (not before),
// queries then take decisions from it, and a new zone version of the same
// sites reuses it.
func TestSiteMapCompiledByRun(t *testing.T) {
	z, err := zones.Compile("example.net.yaml", []byte(mapZoneYAML), "example.net.", time.Now(), nil)
	require.NoError(t, err)
	loc, nets := mapDatabases(t, 200)
	r := &Router{Loc: loc}
	var cur atomic.Pointer[zones.Set]
	cur.Store(zones.NewSet(z))
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan struct{})
	go func() { r.Run(ctx, cur.Load); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	svc := z.Services["web"]
	for i := range mapAfter - 1 {
		r.Route(z.Origin, svc, netip.PrefixFrom(netip.AddrFrom4([4]byte{11, byte(i >> 8), byte(i), 0}), 24), false)
	}
	r.Changed()
	time.Sleep(100 * time.Millisecond) // what a compile would take here, and more
	require.Nil(t, r.planFor(z.Origin, svc).idx.smap.Load(), "%d networks: the memo serves them", mapAfter-1)
	r.Route(z.Origin, svc, prefix("12.0.0.0/24"), false)
	require.Eventually(t, func() bool { return r.planFor(z.Origin, z.Services["web"]).idx.smap.Load() != nil },
		10*time.Second, 10*time.Millisecond, "the map is compiled")
	m := r.planFor(z.Origin, z.Services["web"]).idx.smap.Load()
	mappedSeen := 0
	for _, n := range nets {
		if d := r.Route(z.Origin, z.Services["web"], n, false); d.Why.Mapped {
			mappedSeen++
		}
	}
	require.Greater(t, mappedSeen, len(nets)/3, "located clients are placed by the map")

	z2, err := zones.Compile("example.net.yaml", []byte(mapZoneYAML), "example.net.", time.Now(), nil)
	require.NoError(t, err)
	cur.Store(zones.NewSet(z2))
	r.Changed()
	require.Eventually(t, func() bool { return r.planFor(z2.Origin, z2.Services["web"]).idx.smap.Load() == m }, 10*time.Second, 10*time.Millisecond,
		"the new version's service ranks alike: the same map")
}
