package ui

import (
	"bytes"
	"encoding/json"
	"math"
	"net/http"
	"slices"
	"sort"
	"time"

	"github.com/geodns/geodns/zones"
)

// MapData is the answer of GET /ui/map.json.
type MapData struct {
	// Generation is the router's plan generation the shading was routed
	// with; Computed when.
	Generation uint64    `json:"generation"`
	Computed   time.Time `json:"computed"`
	CellDeg    float64   `json:"cell_deg"`
	// Networks is how many sampled client networks the GeoIP data placed
	// (0: no database, or the sample is not built yet).
	Networks int          `json:"sampled_networks"`
	Services []MapService `json:"services"`
}

// MapService is one service's sites and where each region goes.
type MapService struct {
	Zone  string    `json:"zone"`
	Name  string    `json:"name"`
	Sites []MapSite `json:"sites"`
	// Cells and Shares are routed for the service asked for only (the
	// first when none is): one service's map per request bounds the work.
	Routed bool      `json:"routed"`
	Cells  []MapCell `json:"cells"`
	// Shares is each site's share of the sampled networks now ("all-down"
	// for the policy's answers).
	Shares map[string]float64 `json:"shares"`
}

// MapSite is a site of a service, where it is and how it stands.
type MapSite struct {
	Name string  `json:"name"`
	Lat  float64 `json:"lat"`
	Lon  float64 `json:"lon"`
	Up   bool    `json:"up"`
	// Keeps is the share of its own clients the site keeps now (dial ×
	// ramp, 0 when down), Dial and Ramp its factors.
	Keeps float64 `json:"keeps"`
	Dial  float64 `json:"dial"`
	Ramp  float64 `json:"ramp"`
}

// MapCell is one grid cell: Row and Col from the top-left, Site the site
// most of its sampled networks are sent to ("all-down": the policy
// answers), Share the part of them that goes there, N how many networks
// the sample placed in it.
type MapCell struct {
	Row   int     `json:"r"`
	Col   int     `json:"c"`
	Site  string  `json:"site"`
	Share float64 `json:"share"`
	N     int     `json:"n"`
}

// mapCache is the maps computed for one plan generation, zone set and
// sample, by service asked for.
type mapCache struct {
	gen    uint64
	set    *zones.Set
	sample *sample
	bodies map[string][]byte // "zone service" -> the answer
}

// maxCachedMaps bounds the maps kept for one generation: the names asked
// for come from the request.
const maxCachedMaps = 64

// serveMap answers GET /ui/map.json[?zone=Z&service=S].
func (s *Server) serveMap(w http.ResponseWriter, r *http.Request) {
	body := s.mapJSON(r.URL.Query().Get("zone"), r.URL.Query().Get("service"))
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.Write(body)
}

// mapJSON returns the map for the current plans, computed once per plan
// generation (the router's plan loop moves it on every change, and every
// few seconds): many tabs polling cost one computation per change.
func (s *Server) mapJSON(zone, service string) []byte {
	s.mapMu.Lock()
	defer s.mapMu.Unlock()
	gen, set, sm := s.Router.PlanGeneration(), s.Zones.Load(), s.sample.Load()
	c := s.mapOut
	if c == nil || c.gen != gen || c.set != set || c.sample != sm || len(c.bodies) >= maxCachedMaps {
		c = &mapCache{gen: gen, set: set, sample: sm, bodies: map[string][]byte{}}
		s.mapOut = c
	}
	// Keyed by what is routed, not by what was asked: every name not
	// served gets the first service's map, computed once, not once per
	// name a client makes up.
	key := ""
	if z := set.Zone(zone); z != nil && z.Services[service] != nil {
		key = z.Origin + " " + service
	}
	if b, ok := c.bodies[key]; ok {
		return b
	}
	var buf bytes.Buffer
	json.NewEncoder(&buf).Encode(s.compute(gen, set, sm, zone, service))
	c.bodies[key] = buf.Bytes()
	return c.bodies[key]
}

// compute lists every service's sites, and routes every sampled network
// of the service asked for (the first if none or an unknown one is)
// through the router, as a query from that network would be routed now.
func (s *Server) compute(gen uint64, set *zones.Set, sm *sample, zone, service string) MapData {
	out := MapData{Generation: gen, Computed: time.Now().UTC(), CellDeg: CellDeg, Services: []MapService{}}
	if sm != nil {
		out.Networks = sm.networks
	}
	zs := set.Zones()
	sort.Slice(zs, func(i, j int) bool { return zs[i].Origin < zs[j].Origin })
	if z := set.Zone(zone); z == nil || z.Services[service] == nil {
		zone, service = "", "" // the first service
	}
	for _, z := range zs {
		names := make([]string, 0, len(z.Services))
		for n := range z.Services {
			names = append(names, n)
		}
		sort.Strings(names)
		for _, n := range names {
			svc := z.Services[n]
			ms := MapService{Zone: z.Origin, Name: n, Cells: []MapCell{}, Shares: map[string]float64{}}
			for _, site := range svc.Sites {
				st := s.Router.Standing(z.Origin, svc, site.Name)
				ms.Sites = append(ms.Sites, MapSite{Name: site.Name, Lat: site.Lat, Lon: site.Lon, Up: st.Up,
					Keeps: round3(st.Weight), Dial: round3(st.Dial), Ramp: round3(st.Ramp)})
			}
			if zone == "" && service == "" {
				zone, service = z.Origin, n
			}
			if sm != nil && z.Origin == zone && n == service {
				ms.Routed = true
				v6 := !slices.ContainsFunc(svc.Endpoints, func(ep zones.Endpoint) bool { return ep.CNAME != "" || ep.Address.Is4() })
				total := 0.0
				got := map[string]float64{}
				for _, c := range sm.cells {
					clear(got)
					for _, net := range c.nets {
						d, _ := s.Router.Explain(z.Origin, svc, net, v6)
						switch {
						case d.AllDown:
							got["all-down"]++
						case len(d.Sites) > 0:
							for _, site := range d.Sites { // equally near sites share the client
								got[site] += 1 / float64(len(d.Sites))
							}
						}
					}
					best, bestN := "", 0.0
					for site, k := range got {
						if k > bestN || (k == bestN && site < best) {
							best, bestN = site, k
						}
						// Each cell weighs by the networks placed in it.
						ms.Shares[site] += k / float64(len(c.nets)) * float64(c.count)
					}
					total += float64(c.count)
					ms.Cells = append(ms.Cells, MapCell{Row: c.row, Col: c.col, Site: best, Share: round3(bestN / float64(len(c.nets))), N: c.count})
				}
				for site := range ms.Shares {
					ms.Shares[site] = round3(ms.Shares[site] / total)
				}
			}
			out.Services = append(out.Services, ms)
		}
	}
	return out
}

func round3(f float64) float64 { return math.Round(f*1000) / 1000 }
