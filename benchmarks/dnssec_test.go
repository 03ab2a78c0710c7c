package benchmarks

import (
	"encoding/binary"
	"os"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/geodns/geodns/dnssec"
	"github.com/geodns/geodns/resolver"
	"github.com/geodns/geodns/route"
	"github.com/geodns/geodns/zones"
	"github.com/miekg/dns"
)

// exampleHandler serves the example zone, signed (a dnssec: key and a
// signer) or not, routing with the real GeoIP data.
func exampleHandler(b *testing.B, signed bool, router resolver.Router) *resolver.Handler {
	b.Helper()
	src, err := os.ReadFile("../examples/zones/example.com.yaml")
	if err != nil {
		b.Fatal(err)
	}
	// Small caches: the flood reaches its steady state (caches full, new
	// names answered by the full path, signatures evicted) within its
	// first thousands of queries, as a server under a long flood is; the
	// static and geo answers fit either way.
	cfg := resolver.Config{CacheBytes: 4 << 20}
	if signed {
		src = []byte(strings.Replace(string(src), "\nrecords:", "\ndnssec: {algorithm: ECDSAP256SHA256}\nrecords:", 1))
		m := dnssec.NewManager(dnssec.Options{Store: dnssec.Store{Dir: b.TempDir()}, CacheBytes: 4 << 20})
		if err := m.Sync([]dnssec.ZoneConfig{{Origin: "example.com."}}); err != nil {
			b.Fatal(err)
		}
		cfg.Signer = resolver.NewSigner(m)
	}
	z, err := zones.Compile("example.com.yaml", src, "example.com.", time.Unix(1700000000, 0), nil)
	if err != nil {
		b.Fatal(err)
	}
	if signed != (z.DNSSEC != nil) {
		b.Fatal("the example zone's dnssec: key was not set as meant")
	}
	var set atomic.Pointer[zones.Set]
	set.Store(zones.NewSet(z))
	return resolver.NewHandler(&set, router, cfg, nil)
}

// BenchmarkSigned measures what signing costs a query with DO=1 on the
// server's path (ServeWire), signed zone against the same zone unsigned,
// in the same run: a static answer, a geo answer for clients sent as ECS
// (real DB-IP data), and a random-name NXDOMAIN flood, which a signed
// zone answers with an NSEC signed online (compact denial).
func BenchmarkSigned(b *testing.B) {
	router := &route.Router{Loc: realLocator(b)}
	handlers := []*resolver.Handler{exampleHandler(b, false, router), exampleHandler(b, true, router)}
	// Each case runs unsigned then signed, next to each other: on a busy
	// machine the ratio of neighbours means more than the times.
	for _, kase := range []string{"static", "geo-ecs", "nxdomain-flood"} {
		for _, signed := range []bool{false, true} {
			mode := "unsigned"
			h := handlers[0]
			if signed {
				mode, h = "signed", handlers[1]
			}
			benchSigned(b, kase, mode, h, signed)
		}
	}
}

func benchSigned(b *testing.B, kase, mode string, h *resolver.Handler, signed bool) {
	switch kase {
	case "static":
		b.Run("static/"+mode, func(b *testing.B) {
			req := new(dns.Msg).SetQuestion("mail.example.com.", dns.TypeA)
			req.SetEdns0(1232, true)
			wire, _ := req.Pack()
			buf := make([]byte, 0, 4096)
			check(b, h.ServeWire(wire, testClient, false, buf), signed)
			b.ReportAllocs()
			cpu := startCPU()
			n := 0
			for b.Loop() {
				if resp := h.ServeWire(wire, testClient, false, buf); len(resp) < 40 {
					b.Fatal("no answer")
				}
				n++
			}
			cpu.report(b, n)
		})
	case "geo-ecs":
		b.Run("geo-ecs/"+mode, func(b *testing.B) {
			wires := packAll(wwwQueries(true, true))
			buf := make([]byte, 0, 4096)
			check(b, h.ServeWire(wires[0], clients[0], false, buf), signed)
			b.ReportAllocs()
			cpu := startCPU()
			i := 0
			for b.Loop() {
				if resp := h.ServeWire(wires[i%len(wires)], clients[i%len(clients)], false, buf); len(resp) < 40 {
					b.Fatal("no answer")
				}
				i++
			}
			cpu.report(b, i)
		})
	case "nxdomain-flood":
		b.Run("nxdomain-flood/"+mode, func(b *testing.B) {
			req := new(dns.Msg).SetQuestion("r0000000000.example.com.", dns.TypeA)
			req.SetEdns0(1232, true)
			wire, _ := req.Pack()
			digits := wire[14:24]
			buf := make([]byte, 0, 4096)
			check(b, h.ServeWire(wire, testClient, false, buf), signed)
			b.ReportAllocs()
			cpu := startCPU()
			var n uint64
			for b.Loop() {
				n++
				v := n
				for i := len(digits) - 1; i >= 0; i-- {
					digits[i] = byte('0' + v%10)
					v /= 10
				}
				binary.BigEndian.PutUint16(wire, uint16(n))
				if resp := h.ServeWire(wire, testClient, false, buf); len(resp) < 12 {
					b.Fatal("no answer")
				}
			}
			cpu.report(b, int(n))
		})
	}
}

// cpuMeter reads the process's CPU time: on this shared 2-core VM the
// wall time per query mostly measures waiting for a processor, the CPU
// time what the query costs (run with GOMAXPROCS=1).
type cpuMeter time.Duration

func cpuTime() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func startCPU() cpuMeter { return cpuMeter(cpuTime()) }

// report adds cpu-ns/op, the CPU time of the n queries since start.
func (c cpuMeter) report(b *testing.B, n int) {
	if n > 0 {
		b.ReportMetric(float64(cpuTime()-time.Duration(c))/float64(n), "cpu-ns/op")
	}
}

// check fails the benchmark unless resp is signed exactly when meant.
func check(b *testing.B, resp []byte, signed bool) {
	b.Helper()
	m := new(dns.Msg)
	if err := m.Unpack(resp); err != nil {
		b.Fatal(err)
	}
	sigs := 0
	for _, rr := range append(m.Answer, m.Ns...) {
		if rr.Header().Rrtype == dns.TypeRRSIG {
			sigs++
		}
	}
	if (sigs > 0) != signed {
		b.Fatalf("signed=%v but %d signatures in\n%v", signed, sigs, m)
	}
}
