package main

import (
	"fmt"
	"math"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/geodns/geodns/geo/geotest"
	"github.com/miekg/dns"
	"github.com/oschwald/maxminddb-golang/v2"
	"github.com/stretchr/testify/require"
)

// realDB returns the DB-IP Lite City files fetched by scripts/fetch-geoip.sh.
func realDB(t *testing.T) []string { return geotest.RealDB(t, "../../data/geoip") }

// realPrefixes are client networks whose DB-IP placement spans both US
// coasts, the middle of the country, Canada, Europe, Asia and Oceania:
// universities, cloud regions, ISPs and public resolvers.
var realPrefixes = []string{
	// US west
	"8.8.8.0/24", "13.52.0.0/24", "52.8.0.0/24", "34.82.0.0/24", "104.244.42.0/24", "24.4.0.0/24",
	"71.202.0.0/24", "128.32.0.0/24", "171.64.0.0/24", "128.95.0.0/24", "128.97.0.0/24", "132.239.0.0/24",
	// US east
	"3.80.0.0/24", "54.80.0.0/24", "96.224.0.0/24", "71.167.0.0/24", "98.229.0.0/24", "128.103.0.0/24",
	"129.170.0.0/24", "128.112.0.0/24",
	// middle of the US
	"128.174.0.0/24", "129.237.0.0/24", "128.83.0.0/24", "165.91.0.0/24", "35.8.0.0/24", "141.211.0.0/24",
	"128.104.0.0/24", "129.82.0.0/24", "128.138.0.0/24",
	// Canada
	"142.150.0.0/24", "137.82.0.0/24", "132.206.0.0/24", "129.97.0.0/24",
	// Europe
	"81.2.69.0/24", "193.0.0.0/24", "130.149.0.0/24", "129.132.0.0/24", "131.111.0.0/24", "141.2.0.0/24",
	// Asia
	"133.11.0.0/24", "143.248.0.0/24", "137.132.0.0/24", "147.8.0.0/24", "14.139.0.0/24", "202.12.27.0/24",
	// Oceania
	"1.1.1.0/24", "129.94.0.0/24", "130.216.0.0/24", "128.250.0.0/24",
	// IPv6
	"2001:4860:4860::/48", "2001:67c:2e8::/48", "2a00:1450:4001::/48", "2620:0:860::/48", "2400:cb00::/48",
}

type testSite struct {
	name     string
	lat, lon float64
	addr     string
}

var layouts = map[string][]testSite{
	"two": {
		{"us-east", 39.04, -77.49, "192.0.2.1"},
		{"us-west", 37.34, -121.89, "192.0.2.2"},
	},
	"four": {
		{"us-east", 39.04, -77.49, "192.0.2.1"},
		{"us-west", 37.34, -121.89, "192.0.2.2"},
		{"eu", 50.11, 8.68, "192.0.2.3"},
		{"ap", 1.35, 103.82, "192.0.2.4"},
	},
}

func layoutZone(name string, sites []testSite) string {
	var b strings.Builder
	fmt.Fprintf(&b, "soa: {ns: ns1.example.net., mbox: hostmaster.example.net.}\nrecords:\n  \"@\": {NS: [ns1.example.net.]}\n  www: {service: web}\nsites:\n")
	for _, s := range sites {
		fmt.Fprintf(&b, "  %s: {lat: %v, lon: %v}\n", s.name, s.lat, s.lon)
	}
	fmt.Fprintf(&b, "services:\n  web:\n    ttl: 30\n    endpoints:\n")
	for _, s := range sites {
		fmt.Fprintf(&b, "      - {site: %s, address: %s}\n", s.name, s.addr)
	}
	return b.String()
}

// dbPlace reads where the database places addr, without the geo package.
func dbPlace(t *testing.T, files []string, addr netip.Addr) (lat, lon float64, where string) {
	t.Helper()
	for _, f := range files {
		r, err := maxminddb.Open(f)
		require.NoError(t, err)
		var rec struct {
			CC   string  `maxminddb:"country_code"`
			City string  `maxminddb:"city"`
			Lat  float64 `maxminddb:"latitude"`
			Lon  float64 `maxminddb:"longitude"`
		}
		res := r.Lookup(addr)
		found := res.Found()
		if found {
			require.NoError(t, res.Decode(&rec))
		}
		r.Close()
		if found {
			return rec.Lat, rec.Lon, rec.CC + " " + rec.City
		}
	}
	t.Fatalf("DB-IP has no record for %s", addr)
	return 0, 0, ""
}

// cosineKm is the spherical law of cosines: a second formula, so the test
// does not check the server's haversine against itself.
func cosineKm(lat1, lon1, lat2, lon2 float64) float64 {
	r := math.Pi / 180
	c := math.Sin(lat1*r)*math.Sin(lat2*r) + math.Cos(lat1*r)*math.Cos(lat2*r)*math.Cos((lon2-lon1)*r)
	return 6371.0088 * math.Acos(math.Max(-1, math.Min(1, c)))
}

// TestRealGeoIP sends each real prefix as ECS to geodns serving with the
// real DB-IP data, and requires the site nearest to where the database
// places the prefix (or one of the sites within 5 % of it).
func TestRealGeoIP(t *testing.T) {
	files := realDB(t)
	require.GreaterOrEqual(t, len(realPrefixes), 40)
	dir := t.TempDir()
	for name, sites := range layouts {
		require.NoError(t, os.WriteFile(filepath.Join(dir, name+".test.yaml"), []byte(layoutZone(name, sites)), 0o644))
	}
	addr, _ := startGeodns(t, dir, "two.test.", "--geoip", files[0], "--geoip", files[1])
	c := &dns.Client{Timeout: 2 * time.Second}

	for _, layout := range []string{"two", "four"} {
		sites := layouts[layout]
		bySite := map[string]int{}
		var report []string
		for _, p := range realPrefixes {
			pp := netip.MustParsePrefix(p)
			lat, lon, where := dbPlace(t, files, pp.Addr())
			type sd struct {
				name string
				km   float64
			}
			var ds []sd
			for _, s := range sites {
				ds = append(ds, sd{s.name, cosineKm(lat, lon, s.lat, s.lon)})
			}
			sort.Slice(ds, func(i, j int) bool { return ds[i].km < ds[j].km })
			want := map[string]bool{}
			for _, d := range ds {
				if d.km <= ds[0].km*1.05 {
					want[d.name] = true
				}
			}

			q := question("www."+layout+".test.", dns.TypeA)
			q.SetEdns0(1232, false)
			e := &dns.EDNS0_SUBNET{Code: dns.EDNS0SUBNET, Family: 1, SourceNetmask: uint8(pp.Bits()), Address: net.IP(pp.Addr().AsSlice())}
			if pp.Addr().Is6() {
				e.Family = 2
			}
			q.IsEdns0().Option = append(q.IsEdns0().Option, e)
			r, _, err := c.Exchange(q, addr)
			require.NoError(t, err, p)
			require.Equal(t, dns.RcodeSuccess, r.Rcode, p)
			require.NotEmpty(t, r.Answer, p)
			var got []string
			for _, rr := range r.Answer {
				a := rr.(*dns.A).A.String()
				for _, s := range sites {
					if s.addr == a {
						got = append(got, s.name)
						require.True(t, want[s.name], "%s (%s): answered %s, nearest is %s at %.0f km", p, where, s.name, ds[0].name, ds[0].km)
						bySite[s.name]++
					}
				}
			}
			require.NotEmpty(t, got, "%s: answer %v is no site's address", p, r.Answer)
			scope := -1
			for _, o := range r.IsEdns0().Option {
				if s, ok := o.(*dns.EDNS0_SUBNET); ok {
					scope = int(s.SourceScope)
				}
			}
			require.True(t, scope > 0 && scope <= pp.Bits(), "%s: scope /%d", p, scope)
			report = append(report, fmt.Sprintf("%-20s %-36s -> %-8s %6.0f km  scope /%d", p, where, strings.Join(got, ","), ds[0].km, scope))
		}
		t.Logf("%s-site layout, %d prefixes:\n%s", layout, len(realPrefixes), strings.Join(report, "\n"))
		t.Logf("%s-site answers per site: %v", layout, bySite)
		for _, s := range sites {
			require.GreaterOrEqual(t, bySite[s.name], 3, "%s layout: too few clients for %s to show anything", layout, s.name)
		}
	}
}

func TestExplainCommand(t *testing.T) {
	files := realDB(t)
	code, out, errOut := runGeodns(t, "explain", "--zones", "../../examples/zones", "--geoip", files[0], "--geoip", files[1],
		"--client", "128.32.0.0/24", "www.example.com", "A")
	require.Equal(t, 0, code, errOut)
	t.Logf("geodns explain:\n%s", out)
	for _, want := range []string{
		"location  NA US California Berkeley",
		"(network 128.32.0.0/16",
		"distance  us-west            67 km",
		"chosen    [us-west] -> [198.51.100.10], scope /16",
		"answer    www.example.com.\t30\tIN\tA\t198.51.100.10",
		"ecs scope /16",
	} {
		require.Contains(t, out, want)
	}
	code, out, _ = runGeodns(t, "explain", "--zones", "../../examples/zones", "--client", "192.0.2.1", "www.example.org")
	require.Equal(t, 1, code)
	require.Contains(t, out, "REFUSED")
}
