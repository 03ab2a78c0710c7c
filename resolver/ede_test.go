package resolver

import (
	"net/netip"
	"sync/atomic"
	"testing"
	"time"

	"github.com/geodns/geodns/resolver/dnstest"
	"github.com/geodns/geodns/route"
	"github.com/geodns/geodns/zones"
	"github.com/miekg/dns"
	"github.com/stretchr/testify/require"
)

// edes returns the Extended DNS Errors of m.
func edes(m *dns.Msg) []dns.EDNS0_EDE {
	var out []dns.EDNS0_EDE
	if o := m.IsEdns0(); o != nil {
		for _, e := range o.Option {
			if x, ok := e.(*dns.EDNS0_EDE); ok {
				out = append(out, *x)
			}
		}
	}
	return out
}

// serveBoth answers q through ServeWire (twice: the engine fills its
// cache, then answers from it) and the oracle, and requires the three
// responses to agree.
func serveBoth(t *testing.T, h *Handler, q *dns.Msg) *dns.Msg {
	t.Helper()
	wire, err := q.Pack()
	require.NoError(t, err)
	full := oracleWire(h, wire, testClient, false)
	for range 2 {
		got := h.ServeWire(wire, testClient, false, nil)
		require.Equal(t, normalized(t, full), normalized(t, got), "engine and oracle agree: %v", q.Question[0])
	}
	m := new(dns.Msg)
	require.NoError(t, m.Unpack(full))
	return m
}

// TestEDE: Extended DNS Errors (RFC 8914), only to clients that sent EDNS.
// Before, no response carried one.
func TestEDE(t *testing.T) {
	h := newTestHandler(t, Config{})
	h.now = fixedNow
	edns := func(name string, qt uint16) *dns.Msg {
		q := new(dns.Msg).SetQuestion(name, qt)
		q.SetEdns0(1232, false)
		return q
	}

	t.Run("REFUSED outside our zones: 20 Not Authoritative", func(t *testing.T) {
		m := serveBoth(t, h, edns("www.example.org.", dns.TypeA))
		require.Equal(t, dns.RcodeRefused, m.Rcode)
		require.Equal(t, []dns.EDNS0_EDE{{InfoCode: dns.ExtendedErrorCodeNotAuthoritative}}, edes(m))
	})
	t.Run("with a cookie and ECS, appended after the cached EDE", func(t *testing.T) {
		q := ecsQuery("www.example.org.", dns.TypeA, subnet("198.51.100.0/24"))
		o := q.IsEdns0()
		o.Option = append([]dns.EDNS0{&dns.EDNS0_COOKIE{Code: dns.EDNS0COOKIE, Cookie: "0102030405060708"}}, o.Option...)
		m := serveBoth(t, h, q)
		require.Equal(t, []dns.EDNS0_EDE{{InfoCode: dns.ExtendedErrorCodeNotAuthoritative}}, edes(m))
		require.Len(t, m.IsEdns0().Option, 3, "EDE, cookie, ECS")
		wire, _ := q.Pack()
		require.True(t, fromCache(h, wire, testClient, false), "the cache answers it")
	})
	t.Run("no EDNS, no EDE", func(t *testing.T) {
		m := serveBoth(t, h, new(dns.Msg).SetQuestion("www.example.org.", dns.TypeA))
		require.Equal(t, dns.RcodeRefused, m.Rcode)
		require.Nil(t, m.IsEdns0())
	})
	t.Run("zone transfer: 18 Prohibited", func(t *testing.T) {
		for _, qt := range []uint16{dns.TypeAXFR, dns.TypeIXFR} {
			m := h.Answer(edns("example.net.", qt), testClient, true)
			require.Equal(t, dns.RcodeRefused, m.Rcode)
			require.Equal(t, []dns.EDNS0_EDE{{InfoCode: dns.ExtendedErrorCodeProhibited}}, edes(m))
		}
	})
	t.Run("answers in our zones carry none", func(t *testing.T) {
		for _, n := range []string{"www.example.net.", "nope.example.net.", "x.d.example.net."} {
			require.Empty(t, edes(serveBoth(t, h, edns(n, dns.TypeA))), n)
		}
	})
}

// TestEDEOnPanic: the SERVFAIL of a recovered panic carries EDE 0 (Other)
// on both entries, ServeWire and ServeDNS.
func TestEDEOnPanic(t *testing.T) {
	z, err := zones.Compile("example.net.yaml", []byte(testZone), "example.net.", time.Unix(1700000000, 0), nil)
	require.NoError(t, err)
	var set atomic.Pointer[zones.Set]
	set.Store(zones.NewSet(z))
	h := NewHandler(&set, panicRouter{}, Config{}, nil)
	q := new(dns.Msg).SetQuestion("svc.example.net.", dns.TypeA)
	q.SetEdns0(1232, false)
	wire, err := q.Pack()
	require.NoError(t, err)
	m := new(dns.Msg)
	require.NoError(t, m.Unpack(h.ServeWire(wire, testClient, false, nil)))
	require.Equal(t, dns.RcodeServerFailure, m.Rcode)
	require.Equal(t, []dns.EDNS0_EDE{{InfoCode: dns.ExtendedErrorCodeOther}}, edes(m))

	rec := &dnstest.Recorder{}
	NewHandler(nil, nil, Config{}, nil).ServeDNS(rec, q) // no zone source: the lookup panics
	require.Equal(t, dns.RcodeServerFailure, rec.Msg.Rcode)
	require.Equal(t, []dns.EDNS0_EDE{{InfoCode: dns.ExtendedErrorCodeOther}}, edes(rec.Msg))
}

// allDownRouter answers every service under its all-down policy.
type allDownRouter struct{ noRouter }

func (allDownRouter) Route(string, *zones.Service, netip.Prefix, bool) route.Decision {
	return route.Decision{AllDown: true, Addrs: []netip.Addr{netip.MustParseAddr("192.0.2.10")}}
}

// TestEDEAllDown: an answer made under a service's all_down policy says
// so with EDE 0 (Other) "all sites down", from the cache too.
func TestEDEAllDown(t *testing.T) {
	z, err := zones.Compile("example.net.yaml", []byte(testZone), "example.net.", time.Unix(1700000000, 0), nil)
	require.NoError(t, err)
	var set atomic.Pointer[zones.Set]
	set.Store(zones.NewSet(z))
	h := NewHandler(&set, allDownRouter{}, Config{}, nil)
	q := new(dns.Msg).SetQuestion("svc.example.net.", dns.TypeA)
	q.SetEdns0(1232, false)
	m := serveBoth(t, h, q)
	require.Len(t, m.Answer, 1)
	require.Equal(t, []dns.EDNS0_EDE{{InfoCode: dns.ExtendedErrorCodeOther, ExtraText: "all sites down"}}, edes(m))
	// The same name up: no EDE.
	h2 := newTestHandler(t, Config{})
	require.Empty(t, edes(serveBoth(t, h2, q)))
}
