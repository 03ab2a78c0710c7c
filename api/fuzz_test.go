package api

import (
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/geodns/geodns/health"
	"github.com/geodns/geodns/opstate"
	"github.com/geodns/geodns/resolver"
	"github.com/geodns/geodns/route"
	"github.com/geodns/geodns/zones"
	"github.com/prometheus/client_golang/prometheus"
)

const fuzzZone = `soa: {ns: ns1.example.net., mbox: h.example.net.}
records:
  "@": {NS: [ns1.example.net.]}
  www: {service: web}
sites:
  east: {lat: 39, lon: -77}
  west: {lat: 37, lon: -122}
services:
  web:
    endpoints:
      - {site: east, address: 192.0.2.10}
      - {site: west, address: 198.51.100.10}
`

func testServer(t testing.TB) *Server {
	t.Helper()
	z, err := zones.Compile("example.net.yaml", []byte(fuzzZone), "example.net.", time.Now(), nil)
	if err != nil {
		t.Fatal(err)
	}
	var set atomic.Pointer[zones.Set]
	set.Store(zones.NewSet(z))
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	hm := health.NewManager(health.Options{Log: quiet})
	hm.SetZones(set.Load())
	op := opstate.OpenFile(opstate.FileOptions{Log: quiet})
	router := &route.Router{Health: hm, Operator: op}
	return &Server{Zones: &set, Health: hm, Operator: op, Router: router, Resolver: resolver.NewHandler(&set, router, resolver.Config{}, quiet),
		Gatherer: prometheus.NewRegistry(), Token: "t0ken", Log: quiet}
}

// FuzzRequest: no request makes the API fail (5xx) or panic.
func FuzzRequest(f *testing.F) {
	for _, s := range []struct{ method, target, auth string }{
		{"GET", "/api/v1/explain?name=www.example.net&client=198.51.100.0/24&type=AAAA", ""},
		{"GET", "/api/v1/explain?name=..&client=::1/200", ""},
		{"POST", "/api/v1/sites/east/drain", "Bearer t0ken"},
		{"POST", "/api/v1/endpoints/192.0.2.10/force-down", "Bearer t0ken"},
		{"POST", "/api/v1/sites/east/undrain", "Bearer wrong"},
		{"GET", "/api/v1/status", ""},
		{"GET", "/readyz", ""},
	} {
		f.Add(s.method, s.target, s.auth, "")
	}
	h := testServer(f).Handler()
	f.Fuzz(func(t *testing.T, method, target, auth, body string) {
		if _, err := url.ParseRequestURI(target); err != nil || !strings.HasPrefix(target, "/") {
			return
		}
		if method == "" || strings.ContainsAny(method, " \t\r\n") {
			return
		}
		req, err := http.NewRequest(method, "http://api"+target, strings.NewReader(body))
		if err != nil {
			return
		}
		if auth != "" && !strings.ContainsAny(auth, "\r\n") {
			req.Header.Set("Authorization", auth)
		}
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if rec.Code >= 500 {
			t.Fatalf("%s %s: %d %s", method, target, rec.Code, rec.Body.String())
		}
	})
}
