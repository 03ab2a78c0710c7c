package api

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/geodns/geodns/health"
	"github.com/geodns/geodns/opstate"
	"github.com/geodns/geodns/resolver"
	"github.com/geodns/geodns/route"
	"github.com/geodns/geodns/zones"
	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"
	"github.com/getkin/kin-openapi/routers/legacy"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"
)

// liveZone has a site whose backend answers (west) and one whose backend
// refuses connections (east), each checked over HTTP on loopback.
func liveZone(east, west string) string {
	return fmt.Sprintf(`soa: {ns: ns1.example.net., mbox: h.example.net.}
records:
  "@": {NS: [ns1.example.net.]}
  www: {service: web}
sites:
  east: {lat: 39, lon: -77}
  west: {lat: 37, lon: -122}
  north: {lat: 60, lon: -100}
services:
  web:
    return_ramp: 1h
    endpoints:
      - {site: east, address: 192.0.2.10, check: web, target: "%s"}
      - {site: west, address: 198.51.100.10, check: web, target: "%s"}
      - {site: north, address: 203.0.113.10}
checks:
  web: {type: http, interval: 200ms, timeout: 150ms, rise: 1, fall: 1}
`, east, west)
}

// refused returns a loopback address nothing listens on.
func refused(t *testing.T) string {
	ln, err := net.Listen("tcp", "127.0.0.2:0")
	require.NoError(t, err)
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

// liveServer runs the API over real health checks against real backends.
func liveServer(t *testing.T) (*Server, string) {
	t.Helper()
	west := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok") }))
	ln, err := net.Listen("tcp", "127.0.0.3:0")
	require.NoError(t, err)
	west.Listener = ln
	west.Start()
	t.Cleanup(west.Close)
	z, err := zones.Compile("example.net.yaml", []byte(liveZone(refused(t), ln.Addr().String())), "example.net.", time.Now(), nil)
	require.NoError(t, err)
	var set atomic.Pointer[zones.Set]
	set.Store(zones.NewSet(z))
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	router := &route.Router{Loc: &countingLocator{}}
	hm := health.NewManager(health.Options{Log: quiet, Allow: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}, OnChange: router.Changed})
	hm.SetZones(set.Load())
	op := opstate.OpenFile(opstate.FileOptions{Log: quiet, Path: t.TempDir() + "/operator.json"})
	op.Watch(func(*opstate.State) { router.Changed() })
	router.Health, router.Operator = hm, op
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	go hm.Run(ctx)
	go router.Run(ctx, set.Load)
	s := &Server{Zones: &set, Health: hm, Operator: op, Router: router, Resolver: resolver.NewHandler(&set, router, resolver.Config{}, quiet).Uncounted(),
		Gatherer: prometheus.NewRegistry(), Token: "t0ken", Version: "test", DNS: []string{"127.0.0.1:5353"}, Log: quiet}
	srv := httptest.NewServer(s.Handler())
	t.Cleanup(srv.Close)
	require.Eventually(t, func() bool {
		resp, err := http.Get(srv.URL + "/readyz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		svc := z.Services["web"]
		return resp.StatusCode == 200 && !router.Standing(z.Origin, svc, "east").Up
	}, 10*time.Second, 20*time.Millisecond, "ready, east down")
	return s, srv.URL
}

// checker validates requests and answers against api/openapi.yaml.
type checker struct {
	t      *testing.T
	base   string
	router routers.Router
	seen   map[string]bool // "METHOD path-template status" checked
}

func newChecker(t *testing.T, base string) *checker {
	loader := openapi3.NewLoader()
	doc, err := loader.LoadFromData(OpenAPI())
	require.NoError(t, err)
	require.NoError(t, doc.Validate(loader.Context), "the OpenAPI file itself is valid")
	doc.Servers = openapi3.Servers{{URL: base}}
	r, err := legacy.NewRouter(doc)
	require.NoError(t, err)
	return &checker{t: t, base: base, router: r, seen: map[string]bool{}}
}

// do makes a call, checks the request and the answer against the OpenAPI
// file, and returns the answer's status and body.
func (c *checker) do(method, path, token, body string) (int, string) {
	t := c.t
	t.Helper()
	req, err := http.NewRequest(method, c.base+path, strings.NewReader(body))
	require.NoError(t, err)
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	out, err := io.ReadAll(resp.Body)
	require.NoError(t, err)

	vreq, _ := http.NewRequest(method, c.base+path, strings.NewReader(body))
	vreq.Header = req.Header.Clone()
	rt, params, err := c.router.FindRoute(vreq)
	require.NoError(t, err, "%s %s is in the OpenAPI file", method, path)
	opts := &openapi3filter.Options{AuthenticationFunc: openapi3filter.NoopAuthenticationFunc, IncludeResponseStatus: true, MultiError: true}
	in := &openapi3filter.RequestValidationInput{Request: vreq, PathParams: params, Route: rt, Options: opts}
	if resp.StatusCode < 400 {
		require.NoError(t, openapi3filter.ValidateRequest(context.Background(), in), "request %s %s %s", method, path, body)
	}
	err = openapi3filter.ValidateResponse(context.Background(), &openapi3filter.ResponseValidationInput{
		RequestValidationInput: in, Status: resp.StatusCode, Header: resp.Header,
		Body: io.NopCloser(bytes.NewReader(out)), Options: opts})
	require.NoError(t, err, "answer of %s %s (%d): %s", method, path, resp.StatusCode, out)
	c.seen[fmt.Sprintf("%s %s %d", method, rt.Path, resp.StatusCode)] = true
	return resp.StatusCode, string(out)
}

// TestOpenAPI: the answers of a live server — status, explain, drains,
// forced states, dials and their errors — match api/openapi.yaml, which
// documents every route the server has. The checker fails on a key the
// file does not list (every object is closed), so a CamelCase key or an
// internal struct leaking into the JSON fails here.
func TestOpenAPI(t *testing.T) {
	s, base := liveServer(t)
	c := newChecker(t, base)
	var st Status

	code, body := c.do("GET", "/healthz", "", "")
	require.Equal(t, 200, code, body)
	code, body = c.do("GET", "/readyz", "", "")
	require.Equal(t, 200, code, body)
	code, body = c.do("GET", "/api/v1/openapi.yaml", "", "")
	require.Equal(t, 200, code)
	require.Equal(t, string(OpenAPI()), body)

	// Status: east is down and says why.
	code, body = c.do("GET", "/api/v1/status", "", "")
	require.Equal(t, 200, code, body)
	require.NoError(t, json.Unmarshal([]byte(body), &st))
	east := st.Services[0].Sites[0]
	require.Equal(t, StateDown, east.State, body)
	require.Contains(t, east.Reason, "check web failing: connection refused", body)
	require.Equal(t, "connection refused", east.Endpoints[0].LastErr)
	require.Equal(t, StateUp, st.Services[0].Sites[1].State)
	require.Contains(t, st.Services[0].Sites[1].Endpoints[0].Reason, "check web passing: HTTP 200")
	require.Equal(t, "not checked", st.Services[0].Sites[2].Endpoints[0].Reason)

	// Explain, for an address and for a network (ECS).
	for _, client := range []string{"198.51.100.7", "198.51.100.0/24"} {
		code, body = c.do("GET", "/api/v1/explain?name=www.example.net&client="+client, "", "")
		require.Equal(t, 200, code, body)
		require.Contains(t, body, `"has_coordinates": true`)
		require.Contains(t, body, `"km":`)
	}
	code, body = c.do("GET", "/api/v1/explain?name=www.example.org&client=192.0.2.1&type=AAAA", "", "")
	require.Equal(t, 200, code, body)
	code, body = c.do("GET", "/api/v1/explain?name=www.example.net", "", "")
	require.Equal(t, 400, code, body)
	code, body = c.do("GET", "/api/v1/cluster", "", "")
	require.Equal(t, 404, code, body) // a single node (cmd/geodns/cluster_test.go checks a cluster's)

	// Drains and forced states, with a reason, and their errors.
	code, body = c.do("POST", "/api/v1/sites/west/drain", "t0ken", `{"reason": "kernel upgrade"}`)
	require.Equal(t, 200, code, body)
	require.Contains(t, body, `"call": "POST /api/v1/sites/west/drain"`)
	code, body = c.do("POST", "/api/v1/endpoints/192.0.2.10/force-down", "t0ken", "")
	require.Equal(t, 200, code, body)
	code, body = c.do("POST", "/api/v1/sites/west/drain", "", "")
	require.Equal(t, 401, code, body)
	code, body = c.do("POST", "/api/v1/sites/west/drain", "wrong", "")
	require.Equal(t, 403, code, body)
	code, body = c.do("POST", "/api/v1/sites/west/drian", "t0ken", "")
	require.Equal(t, 404, code, body)
	code, body = c.do("POST", "/api/v1/sites/wets/undrain", "t0ken", "")
	require.Equal(t, 404, code, body)
	code, body = c.do("POST", "/api/v1/endpoints/192.0.2.11/drain", "t0ken", "")
	require.Equal(t, 404, code, body)
	code, body = c.do("POST", "/api/v1/sites/west/drain", "t0ken", `{"why": "typo"}`)
	require.Equal(t, 400, code, body)

	// Dials: the new name, the old one, clearing, and their errors.
	code, body = c.do("POST", "/api/v1/services/web/sites/north/dial", "t0ken", `{"dial_percent": 40, "reason": "canary"}`)
	require.Equal(t, 200, code, body)
	require.Contains(t, body, `"dial_percent": 40`)
	code, body = c.do("POST", "/api/v1/services/web/sites/east/dial", "t0ken", `{"weight": 25}`)
	require.Equal(t, 200, code, body)
	require.Contains(t, body, `"dial_percent": 25`, "the old input name still sets a dial")
	code, body = c.do("DELETE", "/api/v1/services/web/sites/east/dial", "t0ken", "")
	require.Equal(t, 200, code, body)
	require.Contains(t, body, `"dial_percent": null`)
	code, body = c.do("POST", "/api/v1/services/web/sites/east/dial", "t0ken", `{"dial_percent": 101}`)
	require.Equal(t, 400, code, body)
	code, body = c.do("POST", "/api/v1/services/webb/sites/east/dial", "t0ken", `{"dial_percent": 50}`)
	require.Equal(t, 404, code, body)
	code, body = c.do("DELETE", "/api/v1/services/web/sites/esat/dial", "t0ken", "")
	require.Equal(t, 404, code, body)
	code, body = c.do("POST", "/api/v1/services/web/sites/east/dial", "", `{"dial_percent": 50}`)
	require.Equal(t, 401, code, body)

	// Status with overrides and dials, each saying who made it.
	code, body = c.do("GET", "/api/v1/status", "", "")
	require.Equal(t, 200, code, body)
	st = Status{}
	require.NoError(t, json.Unmarshal([]byte(body), &st))
	west := st.Services[0].Sites[1]
	require.Equal(t, StateDrained, west.State)
	require.Contains(t, west.Reason, "drained by POST /api/v1/sites/west/drain from 127.0.0.1:")
	require.Contains(t, west.Reason, ": kernel upgrade")
	east = st.Services[0].Sites[0]
	require.Equal(t, StateDown, east.State, "its only endpoint is forced down")
	require.Equal(t, StateForcedDown, east.Endpoints[0].State)
	require.Contains(t, east.Endpoints[0].Reason, "forced down by POST /api/v1/endpoints/192.0.2.10/force-down")
	require.Len(t, st.Overrides.Dials, 1)
	require.Equal(t, "canary", st.Overrides.Dials[0].Reason)

	// Explain names why each site is out.
	code, body = c.do("GET", "/api/v1/explain?name=www.example.net&client=198.51.100.0/24", "", "")
	require.Equal(t, 200, code, body)
	require.Contains(t, body, "drained by POST /api/v1/sites/west/drain")
	require.Contains(t, body, "forced down by POST /api/v1/endpoints/192.0.2.10/force-down")

	// Back: the undrain of a site that returns ramps (return_ramp 1h).
	code, body = c.do("POST", "/api/v1/sites/west/undrain", "t0ken", "")
	require.Equal(t, 200, code, body)
	require.Contains(t, body, `"override": "none"`)
	code, body = c.do("POST", "/api/v1/endpoints/192.0.2.10/undrain", "t0ken", "")
	require.Equal(t, 200, code, body)
	code, body = c.do("GET", "/api/v1/status", "", "")
	require.Equal(t, 200, code, body)
	require.Contains(t, body, `"state": "ramping"`)
	require.Contains(t, body, `"state": "dialed"`)

	// Every documented route and status the server answers was seen above.
	for _, want := range []string{
		"GET /api/v1/status 200", "GET /api/v1/explain 200", "GET /api/v1/explain 400",
		"POST /api/v1/sites/{name}/{action} 200", "POST /api/v1/sites/{name}/{action} 404",
		"POST /api/v1/endpoints/{name}/{action} 200", "POST /api/v1/endpoints/{name}/{action} 404",
		"POST /api/v1/services/{service}/sites/{site}/dial 200", "DELETE /api/v1/services/{service}/sites/{site}/dial 200",
		"POST /api/v1/services/{service}/sites/{site}/dial 404", "GET /api/v1/cluster 404",
	} {
		require.True(t, c.seen[want], "not exercised: %s", want)
	}
	_ = s
}
