package route

import (
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/geodns/geodns/geo"
	"github.com/geodns/geodns/opstate"
	"github.com/geodns/geodns/zones"
	"github.com/stretchr/testify/require"
)

// newYork places every IPv4 address in New York, in a /8 network.
type newYork struct{}

func (newYork) Generation() uint64 { return 0 }

func (newYork) Locate(a netip.Addr) (geo.Location, bool) {
	n, _ := a.Prefix(8)
	return geo.Location{Country: "US", Lat: 40.7, Lon: -74.0, HasCoords: true, Network: n}, true
}

// fakeTraffic returns fixed dials and one return time for every endpoint
// of the sites in back.
type fakeTraffic struct {
	dials map[string]float64 // "service/site"
	back  map[string]time.Time
}

func (f fakeTraffic) Load() *opstate.State {
	var dials []opstate.Dial
	for k, w := range f.dials {
		svc, site, _ := strings.Cut(k, "/")
		dials = append(dials, opstate.Dial{Service: svc, Site: site, Weight: w})
	}
	lifted := map[string]time.Time{}
	for site, t := range f.back {
		lifted["site:"+site] = t
	}
	return opstate.NewState(nil, nil, lifted, dials, 1)
}

// newYorkers are 4,096 client /24s, all placed in New York (east's).
func newYorkers() []netip.Prefix {
	var out []netip.Prefix
	for i := range 4096 {
		out = append(out, netip.PrefixFrom(netip.AddrFrom4([4]byte{11, byte(i >> 8), byte(i), 0}), 24))
	}
	return out
}

func TestReturnRampIsMonotonic(t *testing.T) {
	z := loadZone(t)
	web := z.Services["web"]
	require.Equal(t, zones.DefaultReturnRamp, web.ReturnRamp)
	t0 := time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)
	now := t0
	r := &Router{Loc: newYork{}, Operator: fakeTraffic{back: map[string]time.Time{"us-east": t0}}, Now: func() time.Time { return now }}
	clients := newYorkers()
	onEast := make([]bool, len(clients))
	prev := -1
	for s := 0; s <= 63; s += 3 {
		now = t0.Add(time.Duration(s) * time.Second)
		n := 0
		for i, c := range clients {
			d := r.Route(z.Origin, web, c, false)
			east := d.Sites[0] == "us-east"
			require.False(t, onEast[i] && !east, "%v left east again at %d s", c, s)
			onEast[i] = east
			if east {
				n++
			} else {
				require.True(t, d.Degraded, "a client not yet won back gets the short TTL")
			}
			if s > 0 && s < 60 {
				require.Equal(t, 24, d.Scope, "mid-ramp the decision holds for the hashed /24, not the database's /8")
			}
		}
		share := float64(n) / float64(len(clients))
		want := min(1, float64(s/3)/20) // 20 steps of 3 s
		require.InDelta(t, want, share, 0.03, "at %d s", s)
		require.GreaterOrEqual(t, n, prev)
		prev = n
	}
	require.Equal(t, len(clients), prev, "every client back after the ramp")

	// A service with return_ramp 0 takes everything back at once.
	instant := *web
	instant.ReturnRamp = 0
	now = t0
	d := r.Route(z.Origin, &instant, clients[0], false)
	require.Equal(t, []string{"us-east"}, d.Sites)
	require.Equal(t, 8, d.Scope, "no hashing: the database network is the scope")
}

func TestDialFromAPIBeatsZone(t *testing.T) {
	z := loadZone(t)
	web := *z.Services["web"]
	web.Dials = map[string]float64{"us-east": 0}
	clients := newYorkers()[:500]
	count := func(r *Router) int {
		n := 0
		for _, c := range clients {
			if d := r.Route(z.Origin, &web, c, false); d.Sites[0] == "us-east" {
				n++
			}
		}
		return n
	}
	require.Zero(t, count(&Router{Loc: newYork{}}), "the zone dials east to 0")
	r := &Router{Loc: newYork{}, Operator: fakeTraffic{dials: map[string]float64{"web/us-east": 0.5}}}
	require.InDelta(t, 250, count(r), 40, "the API's 50 %% beats the zone's 0")
	d, tr := r.Explain(z.Origin, &web, clients[0], false)
	require.False(t, d.Degraded, "a steady dial keeps the full TTL")
	require.Equal(t, 0.5, tr.Traffic[0].Weight)
	require.Equal(t, netip.MustParsePrefix("11.0.0.0/24"), tr.HashedNet)
}

func TestDialWithNowhereElseKeepsClients(t *testing.T) {
	z := loadZone(t)
	edge := *z.Services["edge"] // us-east and eu
	edge.Dials = map[string]float64{"us-east": 0.1, "eu": 0}
	for _, c := range newYorkers()[:200] {
		d := (&Router{Loc: newYork{}}).Route(z.Origin, &edge, c, false)
		require.False(t, d.AllDown, "dialed, not down")
		require.NotEmpty(t, d.Names)
	}
}

func TestSpilloverSpreadsByCapacity(t *testing.T) {
	// Without a database every client is east's (the default order) and
	// demand follows capacity: east 0.5, west 0.25, eu 0.25.
	z := loadZone(t)
	web := *z.Services["web"]
	web.Spillover, web.MaxLoad = true, 1
	web.Sites = []*zones.Site{
		{Name: "us-east", Lat: 39.04, Lon: -77.49, Capacity: 2},
		{Name: "us-west", Lat: 37.34, Lon: -121.89, Capacity: 1},
		{Name: "eu", Lat: 50.11, Lon: 8.68, Capacity: 1},
	}
	r := &Router{Operator: downHealth{"site:us-east": true}}
	web.Rules = nil
	got := map[string]int{}
	for _, c := range newYorkers() {
		d, tr := r.Explain(z.Origin, &web, c, false)
		require.Equal(t, "us-east", tr.SpilledFrom)
		got[d.Sites[0]]++
		require.True(t, d.Degraded)
	}
	// Capacity shares: east 0.5, west 0.25, eu 0.25; survivors' demand
	// 0.25 each. max_load 1: west has no room (0.25 = 1 x 0.25), nor eu;
	// the water fill raises both to 0.5: an even split.
	require.InDelta(t, 2048, got["us-west"], 150)
	require.InDelta(t, 2048, got["eu"], 150)

	// max_load 3: west, the nearest, has room for all of east's half
	// (3 x 0.25 - 0.25 = 0.5). A new service value, as a zone reload makes:
	// the router keeps what it derives per service.
	roomy := web
	roomy.MaxLoad = 3
	got = map[string]int{}
	for _, c := range newYorkers() {
		got[r.Route(z.Origin, &roomy, c, false).Sites[0]]++
	}
	require.Equal(t, 4096, got["us-west"], "nearest first while under max_load: %v", got)
}
