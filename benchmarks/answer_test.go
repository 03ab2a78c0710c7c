package benchmarks

import (
	"net/netip"
	"sync/atomic"
	"testing"

	"github.com/geodns/geodns/resolver"
	"github.com/geodns/geodns/zones"
	"github.com/miekg/dns"
)

var testClient = netip.MustParseAddr("127.0.0.1")

func loadExample(b *testing.B) (*zones.Zone, *resolver.Handler) {
	b.Helper()
	z, err := zones.LoadFile("../examples/zones/example.com.yaml", nil)
	if err != nil {
		b.Fatal(err)
	}
	var set atomic.Pointer[zones.Set]
	set.Store(zones.NewSet(z))
	return z, resolver.NewHandler(&set, nil, resolver.Config{}, nil)
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
// query in wire format to the response in wire format (the fast path for
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
	}
}
