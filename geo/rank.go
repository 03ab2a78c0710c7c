package geo

import (
	"math"
	"math/bits"
	"net/netip"
	"slices"
	"strings"

	"github.com/geodns/geodns/zones"
)

// TieFactor: sites within 5 % of the nearest distance count as equally near.
const TieFactor = 1.05

const earthRadiusKm = 6371.0088

// Distance returns the great-circle (haversine) distance in km.
func Distance(lat1, lon1, lat2, lon2 float64) float64 {
	const rad = math.Pi / 180
	dLat := (lat2 - lat1) * rad
	dLon := (lon2 - lon1) * rad
	a := math.Sin(dLat/2)*math.Sin(dLat/2) +
		math.Cos(lat1*rad)*math.Cos(lat2*rad)*math.Sin(dLon/2)*math.Sin(dLon/2)
	return 2 * earthRadiusKm * math.Asin(math.Sqrt(min(1, a)))
}

// SiteDistance is one site and its distance from a client.
type SiteDistance struct {
	Site string
	Km   float64
}

// Rank orders sites by distance from loc into groups of equally near
// sites: a group holds every site within TieFactor of the group's nearest.
// dist, if not nil, receives every site's distance, nearest first.
func Rank(sites []*zones.Site, loc Location, dist *[]SiteDistance) [][]string {
	ds := make([]SiteDistance, len(sites))
	for i, s := range sites {
		ds[i] = SiteDistance{s.Name, Distance(loc.Lat, loc.Lon, s.Lat, s.Lon)}
	}
	slices.SortStableFunc(ds, func(a, b SiteDistance) int {
		switch {
		case a.Km < b.Km:
			return -1
		case a.Km > b.Km:
			return 1
		}
		return 0
	})
	if dist != nil {
		*dist = ds
	}
	var groups [][]string
	for i := 0; i < len(ds); {
		limit := ds[i].Km * TieFactor
		j := i
		var g []string
		for ; j < len(ds) && ds[j].Km <= limit; j++ {
			g = append(g, ds[j].Site)
		}
		groups = append(groups, g)
		i = j
	}
	return groups
}

// MatchRule returns the index of the first rule that matches the client,
// or -1. Within a rule every given criterion must match (country AND
// continent AND subdivision AND cidr); within a criterion any listed value
// does. Subdivisions match an ISO 3166-2 code or a name, any case.
func MatchRule(rules []zones.Rule, loc Location, addr netip.Addr) int {
	addr = addr.Unmap()
	for i, r := range rules {
		if len(r.Countries) > 0 && !slices.Contains(r.Countries, loc.Country) {
			continue
		}
		if len(r.Continents) > 0 && !slices.Contains(r.Continents, loc.Continent) {
			continue
		}
		if len(r.Subdivisions) > 0 && !slices.ContainsFunc(r.Subdivisions, func(s string) bool {
			return (loc.Subdivision != "" && strings.EqualFold(s, loc.Subdivision)) ||
				(loc.SubdivisionName != "" && strings.EqualFold(s, loc.SubdivisionName))
		}) {
			continue
		}
		if len(r.CIDRs) > 0 && !slices.ContainsFunc(r.CIDRs, func(p netip.Prefix) bool { return p.Contains(addr) }) {
			continue
		}
		return i
	}
	return -1
}

// CIDRScope lengthens base, the prefix length an answer for addr holds
// for, until addr/base lies wholly inside or wholly outside every rule
// network (where a rule answers differently from its surroundings). It
// lengthens no further than that: the result is as wide as is still true.
func CIDRScope(rules []zones.Rule, addr netip.Addr, base int) int {
	addr = addr.Unmap()
	for _, r := range rules {
		for _, c := range r.CIDRs {
			if c.Addr().Is4() != addr.Is4() || c.Bits() <= base {
				continue
			}
			if c.Contains(addr) {
				base = c.Bits() // inside: the scope must stay inside
				continue
			}
			// Outside: one bit past where addr and the rule network part.
			base = max(base, commonBits(addr, c.Addr())+1)
		}
	}
	return base
}

// commonBits returns how many leading bits a and b share.
func commonBits(a, b netip.Addr) int {
	x, y := a.As16(), b.As16()
	n := 0
	if a.Is4() {
		n = -96 // As16 puts IPv4 behind a 96-bit prefix
	}
	for i := range x {
		d := x[i] ^ y[i]
		if d == 0 {
			n += 8
			continue
		}
		return n + bits.LeadingZeros8(d)
	}
	return n
}
