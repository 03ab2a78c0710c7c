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

const zoneYAML = `
soa: {ns: ns1.example.net., mbox: hostmaster.example.net.}
records:
  "@": {NS: [ns1.example.net.]}
  www: {service: web}
  cdn: {service: edge}
sites:
  us-east: {lat: 39.04, lon: -77.49}
  us-west: {lat: 37.34, lon: -121.89}
  eu:      {lat: 50.11, lon: 8.68}
services:
  web:
    answers: 2
    endpoints:
      - {site: us-east, address: 192.0.2.10}
      - {site: us-east, address: 192.0.2.11}
      - {site: us-east, address: 192.0.2.12}
      - {site: us-east, address: "2001:db8::10"}
      - {site: us-west, address: 198.51.100.10}
      - {site: us-west, address: 198.51.100.11}
      - {site: eu, address: 203.0.113.10}
    rules:
      - {match: {country: [MX]}, sites: [us-west, us-east]}
      - {match: {cidr: [192.0.2.0/26]}, sites: [eu]}
  edge:
    endpoints:
      - {site: us-east, cname: east.cdn.example.org.}
      - {site: eu, cname: eu.cdn.example.org.}
`

func loadZone(t *testing.T) *zones.Zone {
	t.Helper()
	z, err := zones.Compile("example.net.yaml", []byte(zoneYAML), "example.net.", time.Now(), nil)
	require.NoError(t, err)
	return z
}

// fakeLocator places addresses by the longest listed network that holds them.
type fakeLocator map[string]geo.Location

func (fakeLocator) Generation() uint64 { return 0 }

func (f fakeLocator) Locate(a netip.Addr) (geo.Location, bool) {
	var best geo.Location
	for p, loc := range f {
		pp := netip.MustParsePrefix(p)
		if pp.Contains(a) && (!best.Network.IsValid() || pp.Bits() > best.Network.Bits()) {
			best = loc
			best.Network = pp
		}
	}
	return best, best.Known()
}

var places = fakeLocator{
	"10.10.0.0/16":    {Country: "US", Lat: 40.7, Lon: -74.0, HasCoords: true},  // New York
	"10.20.0.0/20":    {Country: "US", Lat: 47.6, Lon: -122.3, HasCoords: true}, // Seattle
	"10.30.0.0/16":    {Country: "US", Lat: 38.9, Lon: -99.6, HasCoords: true},  // Kansas: US sites tie
	"10.40.0.0/16":    {Country: "MX", Lat: 25.7, Lon: -80.2, HasCoords: true},  // near east, but a rule
	"10.50.0.0/16":    {Country: "FR", Lat: 48.9, Lon: 2.35, HasCoords: true},   // Paris
	"10.60.0.0/16":    {Country: "JP"},                                          // no coordinates
	"0.0.0.0/0":       {},                                                       // the rest: unknown
	"2001:db8::/32":   {Country: "US", Lat: 37.8, Lon: -122.4, HasCoords: true}, // San Francisco
	"198.18.0.0/15":   {Country: "US", Lat: 40.7, Lon: -74.0, HasCoords: true},
	"192.0.2.0/24":    {Country: "US", Lat: 40.7, Lon: -74.0, HasCoords: true},
	"192.0.2.128/25":  {Country: "US", Lat: 40.7, Lon: -74.0, HasCoords: true},
	"203.0.113.0/24":  {Country: "US", Lat: 40.7, Lon: -74.0, HasCoords: true},
	"100.64.0.0/10":   {Country: "US", Lat: 40.7, Lon: -74.0, HasCoords: true},
	"172.16.0.0/12":   {Country: "US", Lat: 40.7, Lon: -74.0, HasCoords: true},
	"169.254.0.0/16":  {Country: "US", Lat: 40.7, Lon: -74.0, HasCoords: true},
	"192.168.0.0/16":  {Country: "US", Lat: 40.7, Lon: -74.0, HasCoords: true},
	"233.252.0.0/24":  {Country: "US", Lat: 40.7, Lon: -74.0, HasCoords: true},
	"240.0.0.0/4":     {Country: "US", Lat: 40.7, Lon: -74.0, HasCoords: true},
	"255.255.0.0/16":  {Country: "US", Lat: 40.7, Lon: -74.0, HasCoords: true},
	"127.0.0.0/8":     {Country: "US", Lat: 40.7, Lon: -74.0, HasCoords: true},
	"100.100.0.0/16":  {Country: "US", Lat: 40.7, Lon: -74.0, HasCoords: true},
	"198.51.100.0/24": {Country: "US", Lat: 40.7, Lon: -74.0, HasCoords: true},
}

func prefix(s string) netip.Prefix { return netip.MustParsePrefix(s) }

func sitesOf(d Decision) []string { return d.Sites }

func TestRouteByDistance(t *testing.T) {
	z := loadZone(t)
	web := z.Services["web"]
	r := &Router{Loc: places}

	d := r.Route(z.Origin, web, prefix("10.10.1.0/24"), false)
	require.Equal(t, []string{"us-east"}, sitesOf(d), "New York: east")
	require.Len(t, d.Addrs, 2, "answers: 2 of east's three")
	require.Equal(t, 16, d.Scope, "min(source /24, database /16)")

	d = r.Route(z.Origin, web, prefix("10.20.3.0/24"), false)
	require.Equal(t, []string{"us-west"}, sitesOf(d), "Seattle: west")
	require.ElementsMatch(t, []netip.Addr{netip.MustParseAddr("198.51.100.10"), netip.MustParseAddr("198.51.100.11")}, d.Addrs)
	require.Equal(t, 20, d.Scope)

	d = r.Route(z.Origin, web, prefix("10.50.0.0/24"), false)
	require.Equal(t, []string{"eu"}, sitesOf(d), "Paris: eu")

	d = r.Route(z.Origin, web, prefix("10.10.0.0/12"), false)
	require.Equal(t, 12, d.Scope, "never longer than the source prefix")
}

func TestRouteTiesShare(t *testing.T) {
	z := loadZone(t)
	r := &Router{Loc: places}
	seen := map[string]bool{}
	for range 20 {
		d := r.Route(z.Origin, z.Services["web"], prefix("10.30.0.0/24"), false)
		require.Equal(t, []string{"us-east", "us-west"}, sitesOf(d), "Kansas is within 5 % of both")
		for _, a := range d.Addrs {
			seen[a.String()] = true
		}
	}
	require.Len(t, seen, 5, "rotation reaches every address of both sites")
}

func TestRouteRules(t *testing.T) {
	z := loadZone(t)
	r := &Router{Loc: places}
	d, tr := r.Explain(z.Origin, z.Services["web"], prefix("10.40.0.0/24"), false)
	require.Equal(t, 0, tr.Rule)
	require.Equal(t, []string{"us-west"}, sitesOf(d), "Mexico goes west by rule, though east is nearer")

	d, tr = r.Explain(z.Origin, z.Services["web"], prefix("192.0.2.0/24"), false)
	require.Equal(t, 1, tr.Rule)
	require.Equal(t, []string{"eu"}, sitesOf(d))
	require.Equal(t, 24, d.Scope)

	// A /24 client half inside the rule's /26: the scope must not claim the
	// whole /24, only the /26 the rule holds for.
	d = r.Route(z.Origin, z.Services["web"], prefix("192.0.2.0/26"), false)
	require.Equal(t, []string{"eu"}, sitesOf(d))
	require.Equal(t, 26, d.Scope, "inside the rule's /26, not its /24 surroundings")
	d = r.Route(z.Origin, z.Services["web"], prefix("192.0.2.128/25"), false)
	require.Equal(t, []string{"us-east"}, sitesOf(d))
	require.Equal(t, 25, d.Scope)
}

// TestRouteRuleSitesDown: a rule puts its sites first; when they are all
// down its clients go on to the other sites, nearest first, as anyone's
// do. Before, they got the all-down policy (serve-all: dead addresses),
// uncounted, while other sites were up. A rule with only: true keeps its
// clients to its sites.
func TestRouteRuleSitesDown(t *testing.T) {
	z := loadZone(t)
	web := z.Services["web"]
	euDown := &Router{Loc: places, Operator: downHealth{"site:eu": true}}
	d, tr := euDown.Explain(z.Origin, web, prefix("192.0.2.0/26"), false)
	require.Equal(t, 1, tr.Rule)
	require.Equal(t, []string{"us-east"}, sitesOf(d), "the rule's eu is down: New York's nearest up site")
	require.False(t, d.AllDown)
	require.Equal(t, 26, d.Scope)
	require.Equal(t, []string{"eu"}, tr.Down)

	usDown := &Router{Loc: places, Operator: downHealth{"site:us-east": true, "site:us-west": true}}
	d = usDown.Route(z.Origin, web, prefix("10.40.0.0/24"), false)
	require.Equal(t, []string{"eu"}, sitesOf(d), "Mexico's rule sites both down: eu")
	require.False(t, d.AllDown)

	only := *web
	only.Rules = append([]zones.Rule(nil), web.Rules...)
	only.Rules[1].Only = true
	d = euDown.Route(z.Origin, &only, prefix("192.0.2.0/26"), false)
	require.True(t, d.AllDown, "only: the rule's clients stay with its sites")
	require.Empty(t, d.Sites)
	require.Len(t, d.Addrs, 2, "serve-all")
	d = euDown.Route(z.Origin, &only, prefix("10.10.1.0/24"), false)
	require.Equal(t, []string{"us-east"}, sitesOf(d), "others are not confined")
}

// TestRouteAnycastOnce: an address at two sites that answer together (an
// anycast address checked at each; serve-all) is one record of the answer.
// Before, it was answered twice.
func TestRouteAnycastOnce(t *testing.T) {
	z, err := zones.Compile("example.net.yaml", []byte(`
soa: {ns: ns1.example.net., mbox: hostmaster.example.net.}
records:
  "@": {NS: [ns1.example.net.]}
  any: {service: any}
sites:
  us-east: {lat: 39.04, lon: -77.49}
  us-west: {lat: 37.34, lon: -121.89}
services:
  any:
    answers: 4
    endpoints:
      - {site: us-east, address: 192.0.2.1}
      - {site: us-west, address: 192.0.2.1}
      - {site: us-west, address: 198.51.100.1}
`), "example.net.", time.Now(), nil)
	require.NoError(t, err)
	svc := z.Services["any"]
	want := []netip.Addr{netip.MustParseAddr("192.0.2.1"), netip.MustParseAddr("198.51.100.1")}
	for range 10 {
		d := (&Router{Loc: places}).Route(z.Origin, svc, prefix("10.30.0.0/24"), false)
		require.Equal(t, []string{"us-east", "us-west"}, sitesOf(d), "Kansas: both")
		require.ElementsMatch(t, want, d.Addrs)
		all := downHealth{"site:us-east": true, "site:us-west": true}
		d = (&Router{Loc: places, Operator: all}).Route(z.Origin, svc, prefix("10.30.0.0/24"), false)
		require.True(t, d.AllDown)
		require.ElementsMatch(t, want, d.Addrs, "serve-all")
	}
}

func TestRouteWithoutLocation(t *testing.T) {
	z := loadZone(t)
	web := z.Services["web"]
	for name, r := range map[string]*Router{"no database": {}, "unknown network": {Loc: places}} {
		d, tr := r.Explain(z.Origin, web, prefix("100.100.1.0/24"), false)
		if name == "unknown network" {
			d, tr = r.Explain(z.Origin, web, prefix("11.0.0.0/24"), false)
		}
		require.False(t, tr.Located, name)
		require.Equal(t, []string{"us-east"}, sitesOf(d), "%s: default order, first site", name)
	}
	d := (&Router{}).Route(z.Origin, web, prefix("11.0.0.0/24"), false)
	require.Equal(t, 1, d.Scope, "no database: the answer holds up to the first bit 11/8 and the rule's 192.0.2.0/26 differ in")

	d, tr := (&Router{Loc: places}).Explain(z.Origin, web, prefix("10.60.0.0/24"), false)
	require.True(t, tr.Located, "a country without coordinates")
	require.Equal(t, []string{"us-east"}, sitesOf(d), "default order")
}

func TestRouteIPv6(t *testing.T) {
	z := loadZone(t)
	d := (&Router{Loc: places}).Route(z.Origin, z.Services["web"], prefix("2001:db8:1::/48"), true)
	require.Equal(t, []netip.Addr{netip.MustParseAddr("2001:db8::10")}, d.Addrs, "San Francisco, but only east has IPv6")
	require.Equal(t, 0, d.Scope, "one site with IPv6: the answer does not depend on the client")
}

func TestRouteCNAMEService(t *testing.T) {
	z := loadZone(t)
	r := &Router{Loc: places}
	d := r.Route(z.Origin, z.Services["edge"], prefix("10.50.0.0/24"), false)
	require.Equal(t, []string{"eu.cdn.example.org."}, d.Names)
	d = r.Route(z.Origin, z.Services["edge"], prefix("10.10.0.0/24"), true)
	require.Equal(t, []string{"east.cdn.example.org."}, d.Names, "CNAME services ignore the family")
}

// downHealth forces endpoints down by ID (address or CNAME), and sites
// by "site:NAME", as operator overrides.
type downHealth map[string]bool

func (h downHealth) Load() *opstate.State { return forcedDown(h, 1) }

// forcedDown is an operator state of version v with the endpoints and
// sites in down forced down.
func forcedDown(down map[string]bool, v uint64) *opstate.State {
	sites, eps := map[string]opstate.Override{}, map[string]opstate.Override{}
	for k, d := range down {
		if !d {
			continue
		}
		if s, ok := strings.CutPrefix(k, "site:"); ok {
			sites[s] = opstate.ForceDown
		} else {
			eps[k] = opstate.ForceDown
		}
	}
	return opstate.NewState(sites, eps, nil, nil, v)
}

func TestRouteHealth(t *testing.T) {
	z := loadZone(t)
	web := z.Services["web"]
	ny := prefix("10.10.1.0/24")

	d := (&Router{Loc: places, Operator: downHealth{"site:us-east": true}}).Route(z.Origin, web, ny, false)
	require.Equal(t, []string{"us-west"}, sitesOf(d), "east down: the next nearest")
	require.False(t, d.AllDown)

	// Two of east's three IPv4 endpoints down (a site is up per family):
	// 1/3 < site_up_ratio 0.5, so east is down for A.
	d = (&Router{Loc: places, Operator: downHealth{"192.0.2.10": true, "192.0.2.11": true, "2001:db8::10": true}}).Route(z.Origin, web, ny, false)
	require.Equal(t, []string{"us-west"}, sitesOf(d))

	// One down: east still up, answering only its up endpoints.
	for range 5 {
		d = (&Router{Loc: places, Operator: downHealth{"192.0.2.10": true}}).Route(z.Origin, web, ny, false)
		require.Equal(t, []string{"us-east"}, sitesOf(d))
		require.NotContains(t, d.Addrs, netip.MustParseAddr("192.0.2.10"))
	}

	all := downHealth{"site:us-east": true, "site:us-west": true, "site:eu": true}
	d = (&Router{Loc: places, Operator: all}).Route(z.Origin, web, ny, false)
	require.True(t, d.AllDown)
	require.Len(t, d.Addrs, 2, "serve-all, limited to answers")

	nodata := *web
	nodata.AllDown = zones.AllDownNoData
	d = (&Router{Loc: places, Operator: all}).Route(z.Origin, &nodata, ny, false)
	require.True(t, d.AllDown)
	require.Empty(t, d.Addrs)

	fb := *web
	fb.AllDown, fb.Fallback = zones.AllDownFallback, []netip.Addr{netip.MustParseAddr("192.0.2.99"), netip.MustParseAddr("2001:db8::99")}
	d = (&Router{Loc: places, Operator: all}).Route(z.Origin, &fb, ny, false)
	require.Equal(t, []netip.Addr{netip.MustParseAddr("192.0.2.99")}, d.Addrs)
}
