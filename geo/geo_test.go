package geo

import (
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"unsafe"

	"github.com/geodns/geodns/geo/geotest"
	"github.com/geodns/geodns/zones"
	"github.com/stretchr/testify/require"
)

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

var maxmindEntries = []geotest.Entry{
	{CIDR: "198.51.100.0/24", Country: "US", Continent: "NA", Subdivision: "CA", City: "San Jose", Lat: 37.34, Lon: -121.89},
	{CIDR: "203.0.113.0/25", Country: "DE", Continent: "EU", Subdivision: "HE", City: "Frankfurt", Lat: 50.11, Lon: 8.68},
	{CIDR: "203.0.113.128/25", Country: "JP", NoCoords: true}, // country only, no continent: derived
	{CIDR: "2001:db8:1::/48", Country: "AU", Continent: "OC", Lat: -33.87, Lon: 151.21},
}

func TestLocateMaxMind(t *testing.T) {
	path := geotest.MaxMind(t, t.TempDir(), "city.mmdb", maxmindEntries)
	l, err := NewLocator([]string{path}, quiet)
	require.NoError(t, err)

	loc, ok := l.Locate(netip.MustParseAddr("198.51.100.77"))
	require.True(t, ok)
	require.Equal(t, "US", loc.Country)
	require.Equal(t, "NA", loc.Continent)
	require.Equal(t, "US-CA", loc.Subdivision)
	require.Equal(t, "San Jose", loc.City)
	require.True(t, loc.HasCoords)
	require.InDelta(t, 37.34, loc.Lat, 1e-9)
	require.Equal(t, "198.51.100.0/24", loc.Network.String(), "the IPv4 network, not its IPv6 alias")

	loc, ok = l.Locate(netip.MustParseAddr("::ffff:203.0.113.5"))
	require.True(t, ok, "v4-mapped addresses are IPv4")
	require.Equal(t, "DE", loc.Country)
	require.Equal(t, "203.0.113.0/25", loc.Network.String())

	loc, ok = l.Locate(netip.MustParseAddr("203.0.113.200"))
	require.True(t, ok, "a country is a location even without coordinates")
	require.Equal(t, "AS", loc.Continent, "continent derived from JP")
	require.False(t, loc.HasCoords)

	loc, ok = l.Locate(netip.MustParseAddr("2001:db8:1:2::1"))
	require.True(t, ok)
	require.Equal(t, "AU", loc.Country)
	require.Equal(t, "2001:db8:1::/48", loc.Network.String())

	loc, ok = l.Locate(netip.MustParseAddr("192.0.2.1"))
	require.False(t, ok)
	require.True(t, loc.Network.IsValid(), "an unknown address still has the network the miss holds for")
	require.False(t, loc.Network.Contains(netip.MustParseAddr("198.51.100.1")))
	require.True(t, loc.Network.Contains(netip.MustParseAddr("192.0.2.1")))
}

// TestLocateNetworkNarrowedByEarlierDatabase: a client the second
// database places, in a network of it that the first database places
// parts of, is located with the first database's empty network around it:
// the network (an ECS scope) claims none of the addresses the first
// database places elsewhere.
func TestLocateNetworkNarrowedByEarlierDatabase(t *testing.T) {
	dir := t.TempDir()
	first := geotest.MaxMind(t, dir, "first.mmdb", []geotest.Entry{{CIDR: "10.0.1.0/24", Country: "FR", Lat: 48.9, Lon: 2.35}})
	second := geotest.MaxMind(t, dir, "second.mmdb", []geotest.Entry{{CIDR: "10.0.0.0/16", Country: "US", Lat: 40.7, Lon: -74}})
	l, err := NewLocator([]string{first, second}, quiet)
	require.NoError(t, err)
	paris := netip.MustParsePrefix("10.0.1.0/24")
	for _, a := range []string{"10.0.0.7", "10.0.2.5", "10.0.200.1"} {
		loc, ok := l.Locate(netip.MustParseAddr(a))
		require.True(t, ok, a)
		require.Equal(t, "US", loc.Country, a)
		require.True(t, loc.Network.Contains(netip.MustParseAddr(a)), "%s in %v", a, loc.Network)
		require.False(t, loc.Network.Overlaps(paris), "%s: %v claims the first database's %v", a, loc.Network, paris)
	}
	loc, ok := l.Locate(netip.MustParseAddr("10.0.1.9"))
	require.True(t, ok)
	require.Equal(t, "FR", loc.Country)
	require.Equal(t, paris, loc.Network)
}

func TestLocateDBIP(t *testing.T) {
	dir := t.TempDir()
	v4 := geotest.DBIP(t, dir, "dbip-city-ipv4.mmdb", false, []geotest.Entry{
		{CIDR: "198.51.100.0/24", Country: "us", SubdivisionName: "Virginia", City: "Ashburn", Lat: 39.04, Lon: -77.49},
	})
	v6 := geotest.DBIP(t, dir, "dbip-city-ipv6.mmdb", true, []geotest.Entry{
		{CIDR: "2001:db8:2::/48", Country: "GB", SubdivisionName: "England", City: "London", Lat: 51.51, Lon: -0.13},
	})
	l, err := NewLocator([]string{v4, v6}, quiet)
	require.NoError(t, err)
	require.Len(t, l.Databases(), 2)

	loc, ok := l.Locate(netip.MustParseAddr("198.51.100.1"))
	require.True(t, ok)
	require.Equal(t, "US", loc.Country, "upper-cased")
	require.Equal(t, "NA", loc.Continent, "derived: DB-IP has no continent")
	require.Equal(t, "Virginia", loc.SubdivisionName)
	require.Equal(t, "", loc.Subdivision)
	require.Equal(t, v4, loc.Source)

	loc, ok = l.Locate(netip.MustParseAddr("2001:db8:2::9"))
	require.True(t, ok, "IPv6 from the IPv6 file")
	require.Equal(t, "EU", loc.Continent)
	require.Equal(t, v6, loc.Source)
}

func TestLocatorWithoutDatabase(t *testing.T) {
	l, err := NewLocator(nil, quiet)
	require.NoError(t, err)
	loc, ok := l.Locate(netip.MustParseAddr("198.51.100.1"))
	require.False(t, ok)
	require.False(t, loc.Network.IsValid())

	_, err = NewLocator([]string{"/nonexistent/city.mmdb"}, quiet)
	require.ErrorContains(t, err, "/nonexistent/city.mmdb")
}

func TestLocatorReloadsChangedFile(t *testing.T) {
	dir := t.TempDir()
	path := geotest.MaxMind(t, dir, "city.mmdb", maxmindEntries)
	l, err := NewLocator([]string{path}, quiet)
	require.NoError(t, err)
	loc, _ := l.Locate(netip.MustParseAddr("198.51.100.1"))
	require.Equal(t, "US", loc.Country)

	geotest.MaxMind(t, dir, "city.mmdb", []geotest.Entry{{CIDR: "198.51.100.0/24", Country: "CA", Lat: 45.5, Lon: -73.6}})
	require.NoError(t, l.reload(false))
	loc, _ = l.Locate(netip.MustParseAddr("198.51.100.1"))
	require.Equal(t, "CA", loc.Country)

	require.False(t, l.Failing(path))

	// A broken replacement keeps the database that works, and says it
	// fails (geodns_geoip_load_failing): a log line alone is missed.
	require.NoError(t, writeFile(path, "not a database"))
	require.Error(t, l.reload(false))
	loc, _ = l.Locate(netip.MustParseAddr("198.51.100.1"))
	require.Equal(t, "CA", loc.Country)
	require.True(t, l.Failing(path))
	geotest.MaxMind(t, dir, "city.mmdb", maxmindEntries)
	require.NoError(t, l.reload(false))
	require.False(t, l.Failing(path), "it opens again")

	// A path that never opened (a typo) fails from the start.
	typo := filepath.Join(dir, "city.mmbd")
	l, err = NewLocator([]string{path, typo}, quiet)
	require.Error(t, err)
	require.True(t, l.Failing(typo))
	require.False(t, l.Failing(path))
}

func TestDistance(t *testing.T) {
	// New York (JFK) to Los Angeles (LAX): 3,983 km great-circle.
	require.InDelta(t, 3983, Distance(40.6413, -73.7781, 33.9416, -118.4085), 15)
	require.Zero(t, Distance(10, 20, 10, 20))
	// Antipodes: half the circumference.
	require.InDelta(t, 20015, Distance(0, 0, 0, 180), 5)
}

var sites = []*zones.Site{
	{Name: "us-east", Lat: 39.04, Lon: -77.49},
	{Name: "us-west", Lat: 37.34, Lon: -121.89},
	{Name: "eu", Lat: 50.11, Lon: 8.68},
	{Name: "ap", Lat: -33.87, Lon: 151.21},
}

func TestRank(t *testing.T) {
	var dist []SiteDistance
	chicago := Location{Lat: 41.88, Lon: -87.63, HasCoords: true}
	require.Equal(t, [][]string{{"us-east"}, {"us-west"}, {"eu"}, {"ap"}}, Rank(sites, chicago, &dist))
	require.Equal(t, "us-east", dist[0].Site)
	require.InDelta(t, 913, dist[0].Km, 15)

	// Halfway between the US sites: equally near within 5 %, one group.
	kansas := Location{Lat: 38.9, Lon: -99.6, HasCoords: true}
	require.Equal(t, [][]string{{"us-east", "us-west"}, {"eu"}, {"ap"}}, Rank(sites, kansas, nil))

	sydney := Location{Lat: -33.9, Lon: 151.2, HasCoords: true}
	require.Equal(t, "ap", Rank(sites, sydney, nil)[0][0])
}

func TestMatchRule(t *testing.T) {
	rules := []zones.Rule{
		{Countries: []string{"CA", "MX"}, Sites: []string{"us-east"}},
		{Countries: []string{"US"}, Subdivisions: []string{"US-CA", "oregon"}, Sites: []string{"us-west"}},
		{Continents: []string{"EU"}, Sites: []string{"eu"}},
		{CIDRs: []netip.Prefix{netip.MustParsePrefix("192.0.2.0/24")}, Sites: []string{"ap"}},
	}
	any4 := netip.MustParseAddr("198.51.100.1")
	for _, c := range []struct {
		name string
		loc  Location
		addr netip.Addr
		want int
	}{
		{"country", Location{Country: "MX"}, any4, 0},
		{"country and subdivision code", Location{Country: "US", Subdivision: "US-CA"}, any4, 1},
		{"subdivision by name, any case", Location{Country: "US", SubdivisionName: "Oregon"}, any4, 1},
		{"all criteria must match", Location{Country: "GB", Subdivision: "US-CA"}, any4, -1},
		{"other US state", Location{Country: "US", Subdivision: "US-NY"}, any4, -1},
		{"continent", Location{Country: "FR", Continent: "EU"}, any4, 2},
		{"cidr", Location{}, netip.MustParseAddr("192.0.2.77"), 3},
		{"cidr with a v4-mapped address", Location{}, netip.MustParseAddr("::ffff:192.0.2.77"), 3},
		{"first match wins", Location{Country: "CA", Continent: "EU"}, netip.MustParseAddr("192.0.2.1"), 0},
		{"nothing", Location{}, any4, -1},
	} {
		t.Run(c.name, func(t *testing.T) {
			require.Equal(t, c.want, MatchRule(rules, c.loc, c.addr))
		})
	}
}

func TestCIDRScope(t *testing.T) {
	rules := []zones.Rule{{CIDRs: []netip.Prefix{netip.MustParsePrefix("203.0.113.0/26"), netip.MustParsePrefix("2001:db8::/48")}}}
	a := netip.MustParseAddr("203.0.113.200")
	require.Equal(t, 25, CIDRScope(rules, a, 16), ".200 is outside the /26: /25 keeps the rule out")
	require.Equal(t, 26, CIDRScope(rules, netip.MustParseAddr("203.0.113.7"), 16), "inside: the rule's own /26")
	require.Equal(t, 28, CIDRScope(rules, netip.MustParseAddr("203.0.113.7"), 28), "already inside")
	require.Equal(t, 16, CIDRScope(rules, netip.MustParseAddr("198.51.100.1"), 16), "rule elsewhere")
	require.Equal(t, 1, CIDRScope(rules, netip.MustParseAddr("100.1.1.1"), 0), "100 = 0110..., 203 = 1100...: they part at the first bit")
	require.Equal(t, 5, CIDRScope(rules, netip.MustParseAddr("192.1.1.1"), 0), "192 = 1100 0000, 203 = 1100 1011: they part at the fifth bit")
	require.Equal(t, 48, CIDRScope(rules, netip.MustParseAddr("2001:db8::1"), 32))
}

func writeFile(path, s string) error {
	return os.WriteFile(path, []byte(s), 0o644)
}

// TestDatabaseOverwrittenInPlace: the database is read from a copy of its
// own, so a file truncated and rewritten in place under a running server
// (cp new.mmdb city.mmdb) neither faults the lookups (SIGBUS on the
// truncated pages of a mapping of the file) nor changes their answers
// before the reload.
func TestDatabaseOverwrittenInPlace(t *testing.T) {
	path := geotest.MaxMind(t, t.TempDir(), "city.mmdb", maxmindEntries)
	l, err := NewLocator([]string{path}, quiet)
	require.NoError(t, err)
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_TRUNC, 0)
	require.NoError(t, err)
	_, err = f.Write([]byte("not a database"))
	require.NoError(t, err)
	require.NoError(t, f.Close())
	loc, ok := l.Locate(netip.MustParseAddr("203.0.113.5"))
	require.True(t, ok)
	require.Equal(t, "Frankfurt", loc.City)
}

// TestDatabaseCopyIsFileBacked: the copy is an unlinked file mapped
// shared (page cache, reclaimable), not anonymous memory held resident.
func TestDatabaseCopyIsFileBacked(t *testing.T) {
	path := geotest.MaxMind(t, t.TempDir(), "city.mmdb", maxmindEntries)
	d, err := openDB(path)
	require.NoError(t, err)
	defer releasePrivate(d.data)
	maps, err := os.ReadFile("/proc/self/maps")
	require.NoError(t, err)
	start := fmt.Sprintf("%x-", uintptr(unsafe.Pointer(&d.data[0])))
	var line string
	for _, l := range strings.Split(string(maps), "\n") {
		if strings.HasPrefix(l, start) {
			line = l
		}
	}
	require.NotEmpty(t, line, "the mapping of the copy")
	require.Contains(t, line, "(deleted)", "an unlinked file: %s", line)
	require.Contains(t, line, " r--s ", "read-only and shared: %s", line)
}

// TestDecodedRecordsKept: networks that share a record get it decoded
// once and each its own Network, and what the kept records answer is what
// decoding answers, also when more records than slots churn them.
func TestDecodedRecordsKept(t *testing.T) {
	var entries []geotest.Entry
	const nets, records = 3 * decodeSlots, 3 * decodeSlots / 2 // two networks a record
	for i := range nets {
		r := i % records
		entries = append(entries, geotest.Entry{CIDR: fmt.Sprintf("10.%d.%d.0/24", i>>8, i&255), Country: []string{"us", "de", "jp"}[r%3],
			SubdivisionName: fmt.Sprintf("state %d", r/3), City: fmt.Sprintf("city %d", r), Lat: float64(r%90) + 0.5, Lon: float64(r%180) - 90})
	}
	path := geotest.DBIP(t, t.TempDir(), "dbip-city-ipv4.mmdb", false, entries)
	l, err := NewLocator([]string{path}, quiet)
	require.NoError(t, err)
	d := (*l.dbs.Load())[0]
	decoded := func(a netip.Addr) Location { // the lookup without kept records
		res := d.r.Lookup(a)
		loc, err := d.decode(res)
		require.NoError(t, err)
		loc.Network, loc.Source = res.Prefix(), d.path
		return loc
	}
	for pass := range 2 {
		for i := range nets {
			a := netip.AddrFrom4([4]byte{10, byte(i >> 8), byte(i), 7})
			got, ok := l.Locate(a)
			require.True(t, ok)
			want := decoded(a)
			require.Equal(t, want, got, "pass %d, %v", pass, a)
			require.Equal(t, fmt.Sprintf("10.%d.%d.0/24", i>>8, i&255), got.Network.String())
			require.Equal(t, fmt.Sprintf("city %d", i%records), got.City)
		}
	}
	// The second network of a record finds it decoded (unless another
	// record took its slot since).
	kept := 0
	for i := range records {
		a := netip.AddrFrom4([4]byte{10, byte(i >> 8), byte(i), 1})
		off := d.r.Lookup(a).Offset()
		if rec := d.decoded[(uint64(off)*0x9e3779b97f4a7c15)>>(64-decodeBits)].Load(); rec != nil && rec.offset == off {
			kept++
		}
	}
	require.Greater(t, kept, decodeSlots/2, "records kept: %d of %d slots", kept, decodeSlots)
}
