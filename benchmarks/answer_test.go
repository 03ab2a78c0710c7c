package benchmarks

import (
	"context"
	"net"
	"net/netip"
	"runtime"
	"sync/atomic"
	"testing"
	"time"

	"github.com/geodns/geodns/resolver"
	"github.com/geodns/geodns/route"
	"github.com/geodns/geodns/zones"
	"github.com/miekg/dns"
)

var testClient = netip.MustParseAddr("127.0.0.1")

func loadExample(b *testing.B) (*zones.Zone, *resolver.Handler) {
	return loadExampleRouted(b, &route.Router{})
}

// loadExampleRouted is loadExample with the handler routing by r.
func loadExampleRouted(b *testing.B, r *route.Router) (*zones.Zone, *resolver.Handler) {
	b.Helper()
	z, err := zones.LoadFile("../examples/zones/example.com.yaml", nil)
	if err != nil {
		b.Fatal(err)
	}
	var set atomic.Pointer[zones.Set]
	set.Store(zones.NewSet(z))
	return z, resolver.NewHandler(&set, r, resolver.Config{}, nil)
}

// loadExampleServed is loadExampleRouted with r's plan loop running, as
// in the server: queries take the plans it publishes.
func loadExampleServed(b *testing.B, r *route.Router) (*zones.Zone, *resolver.Handler) {
	b.Helper()
	z, h := loadExampleRouted(b, r)
	set := zones.NewSet(z)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		r.Run(ctx, func() *zones.Set { return set })
	}()
	b.Cleanup(func() { cancel(); <-done })
	for r.PlanGeneration() == 0 {
		time.Sleep(time.Millisecond)
	}
	return z, h
}

var answerCases = []struct {
	name  string
	qname string
	qtype uint16
	want  zones.Result
}{
	{"positive", "mail.example.com.", dns.TypeA, zones.Success},
	{"nxdomain", "nope.example.com.", dns.TypeA, zones.NXDomain},
	{"wildcard", "host42.dev.example.com.", dns.TypeA, zones.Success},
	{"referral", "www.lab.example.com.", dns.TypeA, zones.Delegation},
}

// BenchmarkLookup measures the zone lookup alone: the tree walk that every
// answer starts with. It should not allocate, except to synthesize
// wildcard records.
func BenchmarkLookup(b *testing.B) {
	z, _ := loadExample(b)
	for _, c := range answerCases {
		b.Run(c.name, func(b *testing.B) {
			if r := z.Lookup(c.qname, c.qtype, true, nil).Result; r != c.want {
				b.Fatalf("result %v, want %v", r, c.want)
			}
			b.ReportAllocs()
			for b.Loop() {
				z.Lookup(c.qname, c.qtype, true, nil)
			}
		})
	}
}

// BenchmarkAnswer measures the whole answer: the request in, the response
// message built and packed to wire format as the server sends it.
func BenchmarkAnswer(b *testing.B) {
	_, h := loadExample(b)
	for _, c := range answerCases {
		b.Run(c.name, func(b *testing.B) {
			req := new(dns.Msg).SetQuestion(c.qname, c.qtype)
			req.SetEdns0(1232, false)
			buf := make([]byte, 0, 4096)
			b.ReportAllocs()
			for b.Loop() {
				m := h.Answer(req, testClient, false)
				if _, err := m.PackBuffer(buf); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkServeWire measures what the server runs per UDP query: the
// query in wire format to the response in wire format (a cache hit for
// these: a packed response copied and patched).
func BenchmarkServeWire(b *testing.B) {
	_, h := loadExample(b)
	for _, c := range answerCases {
		b.Run(c.name, func(b *testing.B) {
			req := new(dns.Msg).SetQuestion(c.qname, c.qtype)
			req.SetEdns0(1232, false)
			wire, err := req.Pack()
			if err != nil {
				b.Fatal(err)
			}
			buf := make([]byte, 0, 4096)
			b.ReportAllocs()
			for b.Loop() {
				if resp := h.ServeWire(wire, testClient, false, buf); len(resp) < 12 {
					b.Fatal("no response")
				}
			}
		})
	}
	// A resolver that sends DNS cookies (BIND's do by default): the first
	// query of a client has its client cookie only, later ones our server
	// cookie too, which is checked (SipHash) and echoed.
	for _, c := range []struct{ name, cookie string }{
		{"cookie-client", "0102030405060708"},
		{"cookie-server", ""},
	} {
		b.Run(c.name, func(b *testing.B) {
			ask := func(cookie string) ([]byte, string) {
				req := new(dns.Msg).SetQuestion("mail.example.com.", dns.TypeA)
				req.SetEdns0(1232, false)
				req.IsEdns0().Option = []dns.EDNS0{&dns.EDNS0_COOKIE{Code: dns.EDNS0COOKIE, Cookie: cookie}}
				wire, err := req.Pack()
				if err != nil {
					b.Fatal(err)
				}
				resp := new(dns.Msg)
				if err := resp.Unpack(h.ServeWire(wire, testClient, false, nil)); err != nil {
					b.Fatal(err)
				}
				return wire, resp.IsEdns0().Option[0].(*dns.EDNS0_COOKIE).Cookie
			}
			wire, _ := ask("0102030405060708")
			if c.cookie == "" {
				_, ours := ask("0102030405060708")
				wire, _ = ask(ours)
			}
			buf := make([]byte, 0, 4096)
			b.ReportAllocs()
			for b.Loop() {
				if resp := h.ServeWire(wire, testClient, false, buf); len(resp) < 12 {
					b.Fatal("no response")
				}
			}
		})
		// As the UDP readers serve: with the time of the batch, read once
		// per recvmmsg, rather than a clock reading per query.
		b.Run(c.name+"-at", func(b *testing.B) {
			req := new(dns.Msg).SetQuestion("mail.example.com.", dns.TypeA)
			req.SetEdns0(1232, false)
			req.IsEdns0().Option = []dns.EDNS0{&dns.EDNS0_COOKIE{Code: dns.EDNS0COOKIE, Cookie: "0102030405060708"}}
			wire, err := req.Pack()
			if err != nil {
				b.Fatal(err)
			}
			if c.cookie == "" {
				resp := new(dns.Msg)
				if err := resp.Unpack(h.ServeWire(wire, testClient, false, nil)); err != nil {
					b.Fatal(err)
				}
				req.IsEdns0().Option = []dns.EDNS0{resp.IsEdns0().Option[0]}
				if wire, err = req.Pack(); err != nil {
					b.Fatal(err)
				}
			}
			buf := make([]byte, 0, 4096)
			now := time.Now()
			b.ReportAllocs()
			for b.Loop() {
				if resp := h.ServeWireAt(wire, testClient, false, buf, now); len(resp) < 12 {
					b.Fatal("no response")
				}
			}
		})
	}
}

// BenchmarkServeWireRRL measures what response rate limiting costs per UDP
// query: off, and on with a rate no client reaches (every response is
// accounted and sent), for one client and for clients spread over 65,536
// networks (/24s), so the accounts do not all sit in a processor cache.
func BenchmarkServeWireRRL(b *testing.B) {
	z, err := zones.LoadFile("../examples/zones/example.com.yaml", nil)
	if err != nil {
		b.Fatal(err)
	}
	var set atomic.Pointer[zones.Set]
	set.Store(zones.NewSet(z))
	for _, c := range answerCases {
		req := new(dns.Msg).SetQuestion(c.qname, c.qtype)
		req.SetEdns0(1232, false)
		wire, err := req.Pack()
		if err != nil {
			b.Fatal(err)
		}
		for _, mode := range []string{"off", "on", "on-many-clients"} {
			b.Run(c.name+"/"+mode, func(b *testing.B) {
				cfg := resolver.Config{}
				if mode != "off" {
					cfg.RRL = resolver.RRLConfig{ResponsesPerSecond: 1 << 30}
				}
				h := resolver.NewHandler(&set, &route.Router{}, cfg, nil)
				clients := []netip.Addr{netip.MustParseAddr("198.51.100.7")}
				if mode == "on-many-clients" {
					clients = clients[:0]
					for i := range 1 << 16 {
						clients = append(clients, netip.AddrFrom4([4]byte{100, byte(i >> 8), byte(i), 7}))
					}
				}
				buf := make([]byte, 0, 4096)
				i := 0
				b.ReportAllocs()
				for b.Loop() {
					wire[0], wire[1] = byte(i>>8), byte(i) // resolvers pick a new ID per query
					if resp := h.ServeWire(wire, clients[i&(len(clients)-1)], false, buf); len(resp) < 12 {
						b.Fatal("no response")
					}
					i++
				}
			})
		}
	}
}

// BenchmarkRandomNameFlood is a random-subdomain flood: every query asks
// for a name never asked before, and gets NXDOMAIN. It reports the heap
// in use after the run (after a collection): what the answer cache kept.
func BenchmarkRandomNameFlood(b *testing.B) {
	_, h := loadExample(b)
	req := new(dns.Msg).SetQuestion("r0000000000.example.com.", dns.TypeA)
	req.SetEdns0(1232, false)
	wire, err := req.Pack()
	if err != nil {
		b.Fatal(err)
	}
	// The label "r0000000000" starts at byte 13: its digits are rewritten
	// per query.
	digits := wire[14:24]
	buf := make([]byte, 0, 4096)
	var before runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	n := 0
	b.ReportAllocs()
	for b.Loop() {
		putDigits(digits, n)
		n++
		resp := h.ServeWire(wire, testClient, false, buf)
		if len(resp) < 12 || resp[3]&0xF != dns.RcodeNameError {
			b.Fatal("not NXDOMAIN")
		}
	}
	b.StopTimer()
	var after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&after)
	runtime.KeepAlive(h) // the handler holds the cache: measured with it
	b.ReportMetric(float64(int64(after.HeapAlloc)-int64(before.HeapAlloc))/(1<<20), "heap-MiB")
}

// putDigits writes n in decimal into digits, right-aligned: a new name
// per query, in place in the query's bytes.
func putDigits(digits []byte, n int) {
	for i := len(digits) - 1; i >= 0; i-- {
		digits[i] = byte('0' + n%10)
		n /= 10
	}
}

// The addresses of discardWriter, made once: not the handler's cost.
var (
	benchLocal  net.Addr = &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 53}
	benchRemote net.Addr = &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 5353}
)

// discardWriter is a dns.ResponseWriter that keeps nothing.
type discardWriter struct{ n int }

func (w *discardWriter) LocalAddr() net.Addr       { return benchLocal }
func (w *discardWriter) RemoteAddr() net.Addr      { return benchRemote }
func (w *discardWriter) WriteMsg(m *dns.Msg) error { w.n++; return nil }
func (w *discardWriter) Write(b []byte) (int, error) {
	w.n++
	return len(b), nil
}
func (w *discardWriter) Close() error        { return nil }
func (w *discardWriter) TsigStatus() error   { return nil }
func (w *discardWriter) TsigTimersOnly(bool) {}
func (w *discardWriter) Hijack()             {}

// BenchmarkServeDNS measures the dns.Handler API (for miekg/dns servers):
// a dns.Msg in, the response written as wire.
func BenchmarkServeDNS(b *testing.B) {
	_, h := loadExample(b)
	for _, c := range answerCases {
		b.Run(c.name, func(b *testing.B) {
			req := new(dns.Msg).SetQuestion(c.qname, c.qtype)
			req.SetEdns0(1232, false)
			w := new(discardWriter)
			b.ReportAllocs()
			for b.Loop() {
				h.ServeDNS(w, req)
			}
			if w.n == 0 {
				b.Fatal("nothing written")
			}
		})
	}
}
