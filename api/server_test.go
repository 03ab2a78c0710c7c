package api

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/geodns/geodns/geo"
	"github.com/geodns/geodns/health"
	"github.com/geodns/geodns/opstate"
	"github.com/geodns/geodns/resolver"
	"github.com/geodns/geodns/route"
	"github.com/geodns/geodns/zones"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"
)

// countingLocator places every address in New York and counts lookups.
type countingLocator struct{ n atomic.Int64 }

func (l *countingLocator) Generation() uint64 { return 0 }

func (l *countingLocator) Locate(a netip.Addr) (geo.Location, bool) {
	l.n.Add(1)
	n, _ := a.Prefix(8)
	return geo.Location{Country: "US", Lat: 40.7, Lon: -74.0, HasCoords: true, Network: n}, true
}

// manyServices is a zone with n services of two endpoints each; the first
// spill of them spill over.
func manyServices(t testing.TB, n, spill int) *zones.Zone {
	t.Helper()
	var b strings.Builder
	b.WriteString("soa: {ns: ns1.example.net., mbox: h.example.net.}\nrecords:\n  \"@\": {NS: [ns1.example.net.]}\n")
	for i := range n {
		fmt.Fprintf(&b, "  s%d: {service: s%d}\n", i, i)
	}
	b.WriteString("sites:\n  east: {lat: 39, lon: -77}\n  west: {lat: 37, lon: -122}\nservices:\n")
	for i := range n {
		fmt.Fprintf(&b, "  s%d:\n", i)
		if i < spill {
			b.WriteString("    spillover: true\n")
		}
		fmt.Fprintf(&b, "    endpoints:\n      - {site: east, address: 192.0.2.%d}\n      - {site: west, address: 198.51.100.%d}\n", i%250+1, i%250+1)
	}
	z, err := zones.Compile("example.net.yaml", []byte(b.String()), "example.net.", time.Now(), nil)
	require.NoError(t, err)
	return z
}

// TestStatusStartsNoWork: GET /api/v1/status after a reload with 300
// services (10 with spillover) starts no demand estimate (each one 65,536
// GeoIP lookups): reads only read what the router's plan loop published.
// It used to start one per service, spillover or not, on the GET.
func TestStatusStartsNoWork(t *testing.T) {
	var set atomic.Pointer[zones.Set]
	set.Store(zones.NewSet(manyServices(t, 300, 10)))
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	hm := health.NewManager(health.Options{Log: quiet})
	hm.SetZones(set.Load())
	loc := &countingLocator{}
	op := opstate.OpenFile(opstate.FileOptions{Log: quiet})
	router := &route.Router{Loc: loc, Health: hm, Operator: op}
	s := &Server{Zones: &set, Health: hm, Operator: op, Router: router, Resolver: resolver.NewHandler(&set, router, resolver.Config{}, quiet).Uncounted(),
		Gatherer: prometheus.NewRegistry(), Log: quiet}
	srv := httptest.NewServer(s.Handler())
	defer srv.Close()
	for range 5 {
		resp, err := http.Get(srv.URL + "/api/v1/status")
		require.NoError(t, err)
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		require.Equal(t, http.StatusOK, resp.StatusCode)
	}
	require.Never(t, func() bool { return loc.n.Load() > 0 }, 300*time.Millisecond, 10*time.Millisecond,
		"status looked clients up: a demand estimate ran")
}

// TestDrainNotSaved: a drain whose state file cannot be written is
// answered 503, is not in effect, and /readyz says why until a write
// succeeds. (It used to be answered 200, applied, and lost at restart.)
func TestDrainNotSaved(t *testing.T) {
	z, err := zones.Compile("example.net.yaml", []byte(fuzzZone), "example.net.", time.Now(), nil)
	require.NoError(t, err)
	var set atomic.Pointer[zones.Set]
	set.Store(zones.NewSet(z))
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	dir := filepath.Join(t.TempDir(), "state")
	require.NoError(t, os.Mkdir(dir, 0o755))
	hm := health.NewManager(health.Options{Log: quiet, StateFile: filepath.Join(dir, "health.json")})
	hm.SetZones(set.Load())
	op := opstate.OpenFile(opstate.FileOptions{Log: quiet, Path: filepath.Join(dir, "operator.json")})
	router := &route.Router{Health: hm, Operator: op}
	s := &Server{Zones: &set, Health: hm, Operator: op, Router: router, Resolver: resolver.NewHandler(&set, router, resolver.Config{}, quiet).Uncounted(),
		Gatherer: prometheus.NewRegistry(), Token: "t0ken", Log: quiet}
	srv := httptest.NewServer(s.Handler())
	defer srv.Close()
	do := func(method, path string) (int, string) {
		req, err := http.NewRequest(method, srv.URL+path, nil)
		require.NoError(t, err)
		req.Header.Set("Authorization", "Bearer t0ken")
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(body)
	}
	code, body := do("GET", "/readyz")
	require.Equal(t, http.StatusOK, code, body)

	// The state directory becomes unwritable (a file where it was: root
	// ignores read-only permissions).
	require.NoError(t, os.RemoveAll(dir))
	require.NoError(t, os.WriteFile(dir, nil, 0o644))
	code, body = do("POST", "/api/v1/sites/east/drain")
	require.Equal(t, http.StatusServiceUnavailable, code, body)
	require.Contains(t, body, "state file not written")
	require.Empty(t, op.Load().Sites(), "the drain is not in effect")
	code, body = do("GET", "/readyz")
	require.Equal(t, http.StatusServiceUnavailable, code, body)
	require.Contains(t, body, "state file not written")

	require.NoError(t, os.Remove(dir))
	require.NoError(t, os.Mkdir(dir, 0o755))
	code, body = do("POST", "/api/v1/sites/east/drain")
	require.Equal(t, http.StatusOK, code, body)
	code, body = do("GET", "/readyz")
	require.Equal(t, http.StatusOK, code, body)
}

// BenchmarkStatus is one GET /api/v1/status of 300 services (10 with
// spillover) through the handler, with the router's plans published.
func BenchmarkStatus(b *testing.B) {
	var set atomic.Pointer[zones.Set]
	set.Store(zones.NewSet(manyServices(b, 300, 10)))
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	hm := health.NewManager(health.Options{Log: quiet})
	hm.SetZones(set.Load())
	loc := &countingLocator{}
	op := opstate.OpenFile(opstate.FileOptions{Log: quiet})
	router := &route.Router{Loc: loc, Health: hm, Operator: op}
	s := &Server{Zones: &set, Health: hm, Operator: op, Router: router, Resolver: resolver.NewHandler(&set, router, resolver.Config{}, quiet).Uncounted(),
		Gatherer: prometheus.NewRegistry(), Log: quiet}
	h := s.Handler()
	req := httptest.NewRequest("GET", "/api/v1/status", nil)
	b.ReportAllocs()
	for b.Loop() {
		w := httptest.NewRecorder()
		h.ServeHTTP(w, req)
		if w.Code != http.StatusOK {
			b.Fatal(w.Code)
		}
	}
	if n := loc.n.Load(); n > 0 {
		b.Fatalf("%d GeoIP lookups: a demand estimate ran", n)
	}
}

// TestUnknownNames: a call naming a site, endpoint, service or dial site
// no zone serves is answered 404 with the closest name, and changes
// nothing: `undrain us-eats` used to answer 200 and leave the real drain
// of us-east in place.
func TestUnknownNames(t *testing.T) {
	s := testServer(t)
	srv := httptest.NewServer(s.Handler())
	defer srv.Close()
	do := func(method, path, body string) (int, Error) {
		req, err := http.NewRequest(method, srv.URL+path, strings.NewReader(body))
		require.NoError(t, err)
		req.Header.Set("Authorization", "Bearer t0ken")
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		defer resp.Body.Close()
		var e Error
		require.NoError(t, json.NewDecoder(resp.Body).Decode(&e))
		return resp.StatusCode, e
	}
	code, e := do("POST", "/api/v1/sites/east/drain", "")
	require.Equal(t, 200, code, e.Error)
	code, e = do("POST", "/api/v1/services/web/sites/west/dial", `{"dial_percent": 50}`)
	require.Equal(t, 200, code, e.Error)
	before := s.Operator.Load()

	for _, tc := range []struct{ name, method, path, body, msg, meant string }{
		{"site", "POST", "/api/v1/sites/eats/undrain", "", `no site "eats" in the served zones; did you mean "east"?`, "east"},
		{"site far from any", "POST", "/api/v1/sites/mars/drain", "", `no site "mars" in the served zones`, ""},
		{"endpoint", "POST", "/api/v1/endpoints/192.0.2.11/force-down", "", `no endpoint "192.0.2.11" in the served zones; did you mean "192.0.2.10"?`, "192.0.2.10"},
		{"service", "POST", "/api/v1/services/wbe/sites/east/dial", `{"dial_percent": 10}`, `no service "wbe" in the served zones; did you mean "web"?`, "web"},
		{"dial site", "DELETE", "/api/v1/services/web/sites/wset/dial", "", `service "web" has no site "wset"; did you mean "west"?`, "west"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, e := do(tc.method, tc.path, tc.body)
			require.Equal(t, http.StatusNotFound, code)
			require.Equal(t, tc.msg, e.Error)
			require.Equal(t, tc.meant, e.DidYouMean)
			require.Same(t, before, s.Operator.Load(), "nothing changed")
		})
	}
	require.Equal(t, opstate.Drain, s.Operator.Load().Sites()["east"], "the real drain is still in place")

	// A stale override (of a site no zone serves any more) can be lifted.
	_, err := s.Operator.Apply(opstate.Site("gone", opstate.Drain))
	require.NoError(t, err)
	code, e = do("POST", "/api/v1/sites/gone/undrain", "")
	require.Equal(t, 200, code, e.Error)
	require.NotContains(t, s.Operator.Load().Sites(), "gone")
}

// TestAuthSchemeAndBodySize: the Authorization scheme is case-insensitive
// (RFC 9110 11.1: "bearer" was refused 401 as if missing), and a body over
// the limit is 413 saying so (it was 400 "the body must be ...").
func TestAuthSchemeAndBodySize(t *testing.T) {
	s := testServer(t)
	srv := httptest.NewServer(s.Handler())
	defer srv.Close()
	do := func(auth, path, body string) (int, Error) {
		req, err := http.NewRequest("POST", srv.URL+path, strings.NewReader(body))
		require.NoError(t, err)
		req.Header.Set("Authorization", auth)
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		defer resp.Body.Close()
		var e Error
		require.NoError(t, json.NewDecoder(resp.Body).Decode(&e))
		return resp.StatusCode, e
	}
	for _, auth := range []string{"bearer t0ken", "BEARER t0ken", "Bearer  t0ken"} {
		code, e := do(auth, "/api/v1/sites/east/drain", "")
		require.Equal(t, 200, code, "%q: %s", auth, e.Error)
	}
	code, _ := do("Basic t0ken", "/api/v1/sites/east/drain", "")
	require.Equal(t, http.StatusUnauthorized, code)
	code, _ = do("bearer wrong", "/api/v1/sites/east/drain", "")
	require.Equal(t, http.StatusForbidden, code)

	long := `{"reason": "` + strings.Repeat("x", 5000) + `"}`
	code, e := do("Bearer t0ken", "/api/v1/sites/east/drain", long)
	require.Equal(t, http.StatusRequestEntityTooLarge, code, e.Error)
	require.Contains(t, e.Error, "over 4096 bytes")
	code, e = do("Bearer t0ken", "/api/v1/services/web/sites/west/dial", `{"dial_percent": 50, "reason": "`+strings.Repeat("x", 5000)+`"}`)
	require.Equal(t, http.StatusRequestEntityTooLarge, code, e.Error)
	code, e = do("Bearer t0ken", "/api/v1/sites/east/drain", strings.Repeat("not json ", 600))
	require.Equal(t, http.StatusRequestEntityTooLarge, code, "too large and not JSON: %s", e.Error)
	// Chunked (a reader of unknown length: no Content-Length): the same.
	req, err := http.NewRequest("POST", srv.URL+"/api/v1/sites/east/drain", io.MultiReader(strings.NewReader(strings.Repeat("not json ", 600))))
	require.NoError(t, err)
	req.Header.Set("Authorization", "Bearer t0ken")
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusRequestEntityTooLarge, resp.StatusCode, "chunked, too large, not JSON")
}

// warnStore is an operator store with a Warning, as a node of an NS set
// whose operator state in etcd does not decode.
type warnStore struct {
	*opstate.FileStore
	warn error
}

func (w warnStore) Warning() error { return w.warn }

// TestReadyzOperatorWarning: an operator state in etcd that does not
// decode leaves the node serving its last one: /readyz stays 200 (else
// every node of the set would leave its load balancer at once) and says
// which key and why.
func TestReadyzOperatorWarning(t *testing.T) {
	z, err := zones.Compile("example.net.yaml", []byte(fuzzZone), "example.net.", time.Now(), nil)
	require.NoError(t, err)
	var set atomic.Pointer[zones.Set]
	set.Store(zones.NewSet(z))
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	hm := health.NewManager(health.Options{Log: quiet})
	hm.SetZones(set.Load())
	op := warnStore{opstate.OpenFile(opstate.FileOptions{Log: quiet}),
		errors.New("the operator state in etcd (/geodns/operator) is not readable: invalid character 'o'")}
	router := &route.Router{Health: hm, Operator: op}
	s := &Server{Zones: &set, Health: hm, Operator: op, Router: router, Resolver: resolver.NewHandler(&set, router, resolver.Config{}, quiet).Uncounted(),
		Gatherer: prometheus.NewRegistry(), Log: quiet}
	srv := httptest.NewServer(s.Handler())
	defer srv.Close()
	resp, err := http.Get(srv.URL + "/readyz")
	require.NoError(t, err)
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	require.Equal(t, http.StatusOK, resp.StatusCode, string(body))
	require.Contains(t, string(body), `"ready": true`)
	require.Contains(t, string(body), "the operator state in etcd (/geodns/operator) is not readable: invalid character 'o'")
}

// TestMissesAreJSON: a request no route takes is answered in JSON as
// every other error: 405 with the path's methods in Allow, or 404. Before,
// both were the mux's plain text ("Method Not Allowed").
func TestMissesAreJSON(t *testing.T) {
	srv := httptest.NewServer(testServer(t).Handler())
	defer srv.Close()
	for _, tc := range []struct{ method, path, allow, msg string }{
		{"DELETE", "/api/v1/status", "GET, HEAD", "DELETE is not allowed on /api/v1/status (allowed: GET, HEAD)"},
		{"GET", "/api/v1/sites/east/drain", "POST", "GET is not allowed on /api/v1/sites/east/drain (allowed: POST)"},
		{"PUT", "/api/v1/services/web/sites/east/dial", "POST, DELETE", "PUT is not allowed on /api/v1/services/web/sites/east/dial (allowed: POST, DELETE)"},
		{"GET", "/api/v1/nothing", "", "no such path: /api/v1/nothing"},
	} {
		req, err := http.NewRequest(tc.method, srv.URL+tc.path, nil)
		require.NoError(t, err)
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		var e Error
		require.NoError(t, json.NewDecoder(resp.Body).Decode(&e), "%s %s: JSON", tc.method, tc.path)
		resp.Body.Close()
		want := http.StatusMethodNotAllowed
		if tc.allow == "" {
			want = http.StatusNotFound
		}
		require.Equal(t, want, resp.StatusCode, "%s %s", tc.method, tc.path)
		require.Equal(t, tc.allow, resp.Header.Get("Allow"), "%s %s", tc.method, tc.path)
		require.Equal(t, tc.msg, e.Error)
		require.Equal(t, "application/json", resp.Header.Get("Content-Type"))
	}
}
