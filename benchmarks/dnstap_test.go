package benchmarks

import (
	"path/filepath"
	"sync/atomic"
	"testing"

	"github.com/geodns/geodns/resolver"
	"github.com/geodns/geodns/route"
	"github.com/geodns/geodns/zones"
	"github.com/miekg/dns"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

// BenchmarkServeWireDnstap measures what the dnstap query log costs per
// query on the server's path: off, and on writing to a file (the writer
// goroutine encodes and writes; the query path copies the two messages
// into the queue, or counts a drop when it is full). Drops are reported:
// a writer that keeps up drops none.
func BenchmarkServeWireDnstap(b *testing.B) {
	z, err := zones.LoadFile("../examples/zones/example.com.yaml", nil)
	if err != nil {
		b.Fatal(err)
	}
	var set atomic.Pointer[zones.Set]
	set.Store(zones.NewSet(z))
	for _, q := range []struct{ name, qname string }{{"static", "mail.example.com."}, {"service", "www.example.com."}} {
		req := new(dns.Msg).SetQuestion(q.qname, dns.TypeA)
		req.SetEdns0(1232, false)
		wire, err := req.Pack()
		if err != nil {
			b.Fatal(err)
		}
		for _, on := range []bool{false, true} {
			name := q.name + "/off"
			if on {
				name = q.name + "/on"
			}
			b.Run(name, func(b *testing.B) {
				cfg := resolver.Config{Metrics: resolver.NewMetrics(prometheus.NewRegistry())}
				var tap *resolver.Dnstap
				if on {
					if tap, err = resolver.NewDnstap(resolver.DnstapConfig{File: filepath.Join(b.TempDir(), "tap.fstrm")}, "bench", "geodns", cfg.Metrics); err != nil {
						b.Fatal(err)
					}
					cfg.Dnstap = tap
				}
				h := resolver.NewHandler(&set, &route.Router{}, cfg, nil)
				buf := make([]byte, 0, 4096)
				b.ReportAllocs()
				for b.Loop() {
					if resp := h.ServeWire(wire, testClient, false, buf); len(resp) < 12 {
						b.Fatal("no response")
					}
				}
				if tap != nil {
					tap.Close()
					b.ReportMetric(testutil.ToFloat64(cfg.Metrics.DnstapDropped())/float64(b.N), "drops/op")
				}
			})
		}
	}
}
