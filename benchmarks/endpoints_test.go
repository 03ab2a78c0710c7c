package benchmarks

import (
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/geodns/geodns/health"
	"github.com/geodns/geodns/resolver"
	"github.com/geodns/geodns/route"
	"github.com/geodns/geodns/zones"
	"github.com/miekg/dns"
)

// endpointsZone is a zone whose service web has n endpoints spread over
// three sites, half IPv4 and half IPv6, each probed by a static check.
func endpointsZone(b *testing.B, n int) *zones.Set {
	b.Helper()
	var z strings.Builder
	z.WriteString("soa: {ns: ns1.example.net., mbox: h.example.net.}\nrecords:\n  \"@\": {NS: [ns1.example.net.]}\n  www: {service: web}\n")
	z.WriteString("sites:\n  east: {lat: 39, lon: -77}\n  west: {lat: 37, lon: -122}\n  eu: {lat: 50, lon: 8}\n")
	z.WriteString("checks:\n  up: {type: static}\nservices:\n  web:\n    endpoints:\n")
	sites := []string{"east", "west", "eu"}
	for i := range n {
		addr := netip.AddrFrom4([4]byte{10, byte(i >> 16), byte(i >> 8), byte(i)}).String()
		if i%2 == 1 {
			addr = netip.AddrFrom16([16]byte{0x20, 0x01, 0x0d, 0xb8, 14: byte(i >> 8), 15: byte(i)}).String()
		}
		fmt.Fprintf(&z, "      - {site: %s, address: \"%s\", check: up}\n", sites[(i/2)%3], addr)
	}
	zone, err := zones.Compile("example.net.yaml", []byte(z.String()), "example.net.", time.Now(), nil)
	if err != nil {
		b.Fatal(err)
	}
	return zones.NewSet(zone)
}

// BenchmarkRouteEndpoints routes a query of a service with 2 and with
// 10,000 endpoints through the router and the real health manager: the
// per-query cost must not grow with the endpoints (SPEC: a service with
// 10,000 endpoints costs a query what one with 2 does).
func BenchmarkRouteEndpoints(b *testing.B) {
	client := netip.MustParsePrefix("198.51.100.0/24")
	for _, n := range []int{2, 10000} {
		b.Run(fmt.Sprintf("endpoints=%d", n), func(b *testing.B) {
			set := endpointsZone(b, n)
			m := health.NewManager(health.Options{Log: slog.New(slog.NewTextHandler(io.Discard, nil))})
			m.SetZones(set)
			r := &route.Router{Health: m}
			z := set.Zone("example.net.")
			svc := z.Services["web"]
			if d := r.Route(z.Origin, svc, client, false); len(d.Addrs) != 2 && n > 2 || len(d.Addrs) == 0 {
				b.Fatalf("answer %v", d.Addrs)
			}
			b.ReportAllocs()
			for b.Loop() {
				r.Route(z.Origin, svc, client, false)
			}
		})
	}
}

// BenchmarkServeEndpoints answers a query for a service with 2 and with
// 10,000 endpoints through the whole engine (ServeWire: parse, route,
// the packed variant for the decision, patched): the cost must not grow
// with the endpoints either.
func BenchmarkServeEndpoints(b *testing.B) {
	for _, n := range []int{2, 10000} {
		b.Run(fmt.Sprintf("endpoints=%d", n), func(b *testing.B) {
			var set atomic.Pointer[zones.Set]
			set.Store(endpointsZone(b, n))
			m := health.NewManager(health.Options{Log: slog.New(slog.NewTextHandler(io.Discard, nil))})
			m.SetZones(set.Load())
			h := resolver.NewHandler(&set, &route.Router{Health: m}, resolver.Config{}, nil)
			q := new(dns.Msg).SetQuestion("www.example.net.", dns.TypeA)
			q.SetEdns0(1232, false)
			wire, err := q.Pack()
			if err != nil {
				b.Fatal(err)
			}
			buf := make([]byte, 0, 4096)
			r := new(dns.Msg)
			if err := r.Unpack(h.ServeWire(wire, testClient, false, buf)); err != nil || len(r.Answer) == 0 {
				b.Fatalf("answer %v %v", r, err)
			}
			b.ReportAllocs()
			for b.Loop() {
				if resp := h.ServeWire(wire, testClient, false, buf); len(resp) < 40 {
					b.Fatal("no answer")
				}
			}
		})
	}
}
