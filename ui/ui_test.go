package ui

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"github.com/geodns/geodns/geo"
	"github.com/geodns/geodns/geo/geotest"
	"github.com/geodns/geodns/opstate"
	"github.com/geodns/geodns/route"
	"github.com/geodns/geodns/zones"
	"github.com/stretchr/testify/require"
)

const testZone = `soa: {ns: ns1.example.net., mbox: hostmaster.example.net.}
records:
  "@": {NS: [ns1.example.net.]}
  www: {service: web}
  api: {service: api}
sites:
  us-east: {lat: 39.04, lon: -77.49}
  us-west: {lat: 37.34, lon: -121.89}
  eu: {lat: 50.11, lon: 8.68}
services:
  web:
    return_ramp: 0s
    endpoints:
      - {site: us-east, address: 192.0.2.10}
      - {site: us-west, address: 198.51.100.10}
      - {site: eu, address: 203.0.113.10}
  api:
    endpoints:
      - {site: us-west, address: 198.51.100.20}
      - {site: eu, address: 203.0.113.20}
`

// page is a status page over a real router, a real operator store and a
// small DB-IP database: New York (3/8), San Jose (13/8), Frankfurt (80/8).
type page struct {
	s      *Server
	router *route.Router
	op     *opstate.FileStore
	set    *zones.Set
	srv    *httptest.Server
}

func newPage(t *testing.T) *page {
	t.Helper()
	db := geotest.DBIP(t, t.TempDir(), "city.mmdb", false, []geotest.Entry{
		{CIDR: "3.0.0.0/8", Country: "US", City: "New York", Lat: 40.71, Lon: -74.01},
		{CIDR: "13.0.0.0/8", Country: "US", City: "San Jose", Lat: 37.33, Lon: -121.89},
		{CIDR: "80.0.0.0/8", Country: "DE", City: "Frankfurt", Lat: 50.11, Lon: 8.68},
	})
	loc, err := geo.NewLocator([]string{db}, nil)
	require.NoError(t, err)
	z, err := zones.Compile("example.net.yaml", []byte(testZone), "example.net.", time.Now(), nil)
	require.NoError(t, err)
	p := &page{set: zones.NewSet(z), op: opstate.OpenFile(opstate.FileOptions{})}
	var cur atomic.Pointer[zones.Set]
	cur.Store(p.set)
	p.router = &route.Router{Loc: loc, Operator: p.op}
	p.router.Refresh(p.set)
	p.s = &Server{Zones: &cur, Router: p.router, Loc: loc, Operator: p.op}
	p.op.Watch(p.s.OperatorChanged)
	p.s.sample.Store(buildSample(context.Background(), loc))
	p.srv = httptest.NewServer(p.s.Handler())
	t.Cleanup(p.srv.Close)
	return p
}

func (p *page) get(t *testing.T, path string) (*http.Response, string) {
	t.Helper()
	resp, err := http.Get(p.srv.URL + path)
	require.NoError(t, err)
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, string(b)
}

func (p *page) mapData(t *testing.T) MapData {
	t.Helper()
	_, body := p.get(t, "/ui/map.json?zone=example.net.&service=web")
	var m MapData
	require.NoError(t, json.Unmarshal([]byte(body), &m))
	require.Len(t, m.Services, 2)
	require.Equal(t, "api", m.Services[0].Name)
	m.Services = m.Services[1:] // web: the tests' service
	return m
}

// cellAt returns the cell holding lat, lon.
func cellAt(t *testing.T, svc MapService, lat, lon float64) MapCell {
	t.Helper()
	r, c := int(math.Floor((90-lat)/CellDeg)), int(math.Floor((lon+180)/CellDeg))
	for _, cl := range svc.Cells {
		if cl.Row == r && cl.Col == c {
			return cl
		}
	}
	t.Fatalf("no cell at %g,%g", lat, lon)
	return MapCell{}
}

func TestMapRoutesTheSample(t *testing.T) {
	p := newPage(t)
	m := p.mapData(t)
	require.Equal(t, 3*256, m.Networks, "one /24 in every /16 of the three /8s")
	svc := m.Services[0]
	require.Len(t, svc.Cells, 3)
	ny, sj, fra := cellAt(t, svc, 40.71, -74.01), cellAt(t, svc, 37.33, -121.89), cellAt(t, svc, 50.11, 8.68)
	require.Equal(t, "us-east", ny.Site)
	require.Equal(t, "us-west", sj.Site)
	require.Equal(t, "eu", fra.Site)
	require.Equal(t, 256, ny.N)
	require.InDelta(t, 1.0/3, svc.Shares["us-east"], 0.001)

	// Computed once per plan generation: the same bytes until the router moves.
	again := p.mapData(t)
	require.Equal(t, m.Computed, again.Computed)

	// A drain: New York goes to the next nearest site.
	_, err := p.op.Apply(opstate.Site("us-east", opstate.Drain))
	require.NoError(t, err)
	p.router.Refresh(p.set)
	d := p.mapData(t)
	require.Greater(t, d.Generation, m.Generation)
	svc = d.Services[0]
	require.Equal(t, "us-west", cellAt(t, svc, 40.71, -74.01).Site)
	require.Zero(t, svc.Shares["us-east"])
	require.False(t, svc.Sites[0].Up)

	// A dial of half: New York's networks split between us-east and the next.
	_, err = p.op.Apply(opstate.Site("us-east", ""))
	require.NoError(t, err)
	_, err = p.op.Apply(opstate.DialOf("web", "us-east", 0.5))
	require.NoError(t, err)
	p.router.Refresh(p.set)
	svc = p.mapData(t).Services[0]
	ny = cellAt(t, svc, 40.71, -74.01)
	require.Less(t, ny.Share, 1.0, "a dialed region is split: %+v", ny)
	require.Greater(t, svc.Shares["us-east"], 0.0)
	require.Less(t, svc.Shares["us-east"], 1.0/3)
	require.InDelta(t, 0.5, svc.Sites[0].Keeps, 0.001)
}

// TestMapOneServicePerRequest: the map routes only the service asked for
// (the first without a name), and lists every service's sites.
func TestMapOneServicePerRequest(t *testing.T) {
	p := newPage(t)
	for q, want := range map[string]string{"": "api", "?zone=example.net.&service=api": "api",
		"?zone=example.net.&service=web": "web", "?zone=nowhere.&service=web": "api"} {
		_, body := p.get(t, "/ui/map.json"+q)
		var m MapData
		require.NoError(t, json.Unmarshal([]byte(body), &m))
		require.Len(t, m.Services, 2, q)
		for _, svc := range m.Services {
			require.Equal(t, svc.Name == want, svc.Routed, "%q: %s", q, svc.Name)
			require.Equal(t, svc.Name == want, len(svc.Cells) > 0, "%q: %s", q, svc.Name)
			require.NotEmpty(t, svc.Sites)
		}
	}
	_, body := p.get(t, "/ui/map.json?zone=example.net.&service=api")
	var m MapData
	require.NoError(t, json.Unmarshal([]byte(body), &m))
	require.Equal(t, "us-west", cellAt(t, m.Services[0], 40.71, -74.01).Site, "api has no us-east")
}

// TestMapUnknownNamesComputedOnce: 200 requests naming zones that are not
// served all get the first service's map, computed once for the plan
// generation. Before, each name not served was a cache entry of its own:
// every new one routed the whole sample again (11 ms of CPU each with the
// DB-IP data, 23 times a cached answer's), and after 64 the cache was
// emptied, so anyone could keep the map's lock and a core busy.
func TestMapUnknownNamesComputedOnce(t *testing.T) {
	p := newPage(t)
	var first time.Time
	for i := range 200 {
		_, body := p.get(t, fmt.Sprintf("/ui/map.json?zone=nowhere-%d.&service=web", i))
		var m MapData
		require.NoError(t, json.Unmarshal([]byte(body), &m))
		require.True(t, m.Services[0].Routed, "the first service's map")
		if i == 0 {
			first = m.Computed
		}
		require.Equal(t, first, m.Computed, "request %d computed the map again", i)
	}
}

func TestTimeline(t *testing.T) {
	p := newPage(t)
	p.s.observe(time.Now())
	// Drained and lifted between two looks: both still show.
	_, err := p.op.Apply(opstate.Site("us-east", opstate.Drain))
	require.NoError(t, err)
	_, err = p.op.Apply(opstate.Site("us-east", ""))
	require.NoError(t, err)
	_, err = p.op.Apply(opstate.DialOf("web", "eu", 0.25))
	require.NoError(t, err)
	p.router.Refresh(p.set)
	p.s.observe(time.Now())
	_, body := p.get(t, "/ui/events.json")
	var ev struct{ Events []Event }
	require.NoError(t, json.Unmarshal([]byte(body), &ev))
	var texts []string
	for _, e := range ev.Events {
		texts = append(texts, e.Kind+": "+e.Text)
	}
	require.Equal(t, []string{
		"dial: dial web at eu: 25 %",
		"drain: site us-east: drained lifted",
		"drain: site us-east: drained",
		"start: status page watching",
	}, texts, "newest first")
}

func TestAssets(t *testing.T) {
	p := newPage(t)
	resp, body := p.get(t, "/ui/")
	require.Equal(t, 200, resp.StatusCode)
	require.Contains(t, body, `<script src="app.js"`)
	require.Contains(t, resp.Header.Get("Content-Security-Policy"), "script-src 'self'")
	require.Equal(t, "DENY", resp.Header.Get("X-Frame-Options"))
	require.NotRegexp(t, `(src|stylesheet" href)="(https?:)?//`, body, "no asset from elsewhere: the page works air-gapped")
	resp, body = p.get(t, "/ui/world.json")
	require.Equal(t, 200, resp.StatusCode)
	require.Less(t, len(body), 300<<10)
	var w struct {
		Countries []struct{ Name, D string }
	}
	require.NoError(t, json.Unmarshal([]byte(body), &w))
	require.Greater(t, len(w.Countries), 150)
	resp, body = p.get(t, "/ui/app.js")
	require.Equal(t, 200, resp.StatusCode)
	require.Contains(t, body, "sessionStorage")
	require.NotContains(t, body, "localStorage", "the token never outlives the tab")
	resp, _ = p.get(t, "/ui/nothing.js")
	require.Equal(t, 404, resp.StatusCode)
}
