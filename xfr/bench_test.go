package xfr

import (
	"net/netip"
	"testing"

	"github.com/miekg/dns"
)

// BenchmarkServeWire: what the transfer wrapper adds to an ordinary query
// (the TSIG and SOA checks) over the inner handler's fast path.
func BenchmarkServeWire(b *testing.B) {
	h := newHarness(b, b.TempDir())
	m := new(dns.Msg).SetQuestion("ns1.t.test.", dns.TypeA)
	m.SetEdns0(1232, false)
	q, _ := m.Pack()
	out := make([]byte, 0, 4096)
	remote := netip.MustParseAddr("127.0.0.1")
	for _, c := range []struct {
		name string
		h    interface {
			ServeWire(q []byte, remote netip.Addr, tcp bool, out []byte) []byte
		}
	}{{"inner", h.srv.opts.Inner}, {"wrapped", h.srv}} {
		b.Run(c.name, func(b *testing.B) {
			for b.Loop() {
				c.h.ServeWire(q, remote, false, out)
			}
		})
	}
}
