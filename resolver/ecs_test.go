package resolver

import (
	"io"
	"log/slog"
	"net"
	"net/netip"
	"sync/atomic"
	"testing"
	"time"

	"github.com/geodns/geodns/geo"
	"github.com/geodns/geodns/geo/geotest"
	"github.com/geodns/geodns/route"
	"github.com/geodns/geodns/zones"
	"github.com/miekg/dns"
	"github.com/stretchr/testify/require"
)

// newGeoHandler serves the test zone with a small GeoIP database:
// 198.51.100.0/24 in San Jose (west), 203.0.113.0/24 in New York (east),
// 2001:db8:aa::/48 in Seattle (west).
func newGeoHandler(t *testing.T) *Handler {
	t.Helper()
	h, _ := newGeoHandlerWith(t, Config{})
	return h
}

// newGeoHandlerWith is newGeoHandler with cfg, returning its router too.
func newGeoHandlerWith(t *testing.T, cfg Config) (*Handler, *route.Router) {
	t.Helper()
	db := geotest.MaxMind(t, t.TempDir(), "city.mmdb", []geotest.Entry{
		{CIDR: "198.51.100.0/24", Country: "US", Continent: "NA", Lat: 37.34, Lon: -121.89},
		{CIDR: "203.0.113.0/24", Country: "US", Continent: "NA", Lat: 40.71, Lon: -74.0},
		{CIDR: "2001:db8:aa::/48", Country: "US", Continent: "NA", Lat: 47.6, Lon: -122.3},
	})
	loc, err := geo.NewLocator([]string{db}, slog.New(slog.NewTextHandler(io.Discard, nil)))
	require.NoError(t, err)
	z, err := zones.Compile("example.net.yaml", []byte(testZone), "example.net.", time.Now(), nil)
	require.NoError(t, err)
	var set atomic.Pointer[zones.Set]
	set.Store(zones.NewSet(z))
	r := &route.Router{Loc: loc}
	return NewHandler(&set, r, cfg, nil), r
}

func ecsQuery(name string, qtype uint16, e *dns.EDNS0_SUBNET) *dns.Msg {
	m := new(dns.Msg).SetQuestion(name, qtype)
	m.SetEdns0(1232, false)
	if e != nil {
		e.Code = dns.EDNS0SUBNET
		m.IsEdns0().Option = append(m.IsEdns0().Option, e)
	}
	return m
}

func subnet(p string) *dns.EDNS0_SUBNET {
	pp := netip.MustParsePrefix(p)
	e := &dns.EDNS0_SUBNET{Family: 1, SourceNetmask: uint8(pp.Bits()), Address: net.IP(pp.Addr().AsSlice())}
	if pp.Addr().Is6() {
		e.Family = 2
	}
	return e
}

func responseECS(t *testing.T, m *dns.Msg) *dns.EDNS0_SUBNET {
	t.Helper()
	opt := m.IsEdns0()
	require.NotNil(t, opt)
	for _, o := range opt.Option {
		if e, ok := o.(*dns.EDNS0_SUBNET); ok {
			return e
		}
	}
	return nil
}

func addrs(m *dns.Msg) []string {
	var out []string
	for _, rr := range m.Answer {
		switch x := rr.(type) {
		case *dns.A:
			out = append(out, x.A.String())
		case *dns.AAAA:
			out = append(out, x.AAAA.String())
		}
	}
	return out
}

var (
	east4    = []string{"192.0.2.10", "192.0.2.11"}
	west4    = []string{"198.51.100.10"}
	resolver = netip.MustParseAddr("192.0.2.200") // a resolver nowhere in the database
)

func TestECSRouting(t *testing.T) {
	h := newGeoHandler(t)
	for _, c := range []struct {
		name   string
		qname  string
		qtype  uint16
		ecs    *dns.EDNS0_SUBNET
		remote netip.Addr
		want   []string
		scope  int // of the echoed option; -1: no option expected
	}{
		{"west client subnet", "svc.example.net.", dns.TypeA, subnet("198.51.100.0/24"), resolver, west4, 24},
		{"east client subnet", "svc.example.net.", dns.TypeA, subnet("203.0.113.0/24"), resolver, east4, 24},
		{"a /28 is narrower than the database's /24", "svc.example.net.", dns.TypeA, subnet("198.51.100.16/28"), resolver, west4, 24},
		{"a /16 reaches past the database network", "svc.example.net.", dns.TypeA, subnet("198.51.0.0/16"), resolver, east4, 16},
		{"IPv6 client subnet, A answer", "svc.example.net.", dns.TypeA, subnet("2001:db8:aa:100::/56"), resolver, west4, 48},
		{"no ECS: the source address", "svc.example.net.", dns.TypeA, nil, netip.MustParseAddr("198.51.100.7"), west4, -1},
		{"source prefix 0: the source address, scope 0", "svc.example.net.", dns.TypeA, &dns.EDNS0_SUBNET{Family: 1, Address: net.IPv4zero.To4()}, netip.MustParseAddr("198.51.100.7"), west4, 0},
		{"private subnet ignored", "svc.example.net.", dns.TypeA, subnet("10.1.0.0/16"), netip.MustParseAddr("198.51.100.7"), west4, 0},
		// Not globally reachable (IANA's special-purpose registries): no
		// client is located by them. Before, they were routed as clients.
		{"shared address space (CGNAT) ignored", "svc.example.net.", dns.TypeA, subnet("100.64.0.0/24"), netip.MustParseAddr("198.51.100.7"), west4, 0},
		{"benchmarking range ignored", "svc.example.net.", dns.TypeA, subnet("198.18.0.0/24"), netip.MustParseAddr("198.51.100.7"), west4, 0},
		{"reserved 240/4 ignored", "svc.example.net.", dns.TypeA, subnet("240.0.0.0/24"), netip.MustParseAddr("198.51.100.7"), west4, 0},
		{"this network 0/8 ignored", "svc.example.net.", dns.TypeA, subnet("0.1.0.0/24"), netip.MustParseAddr("198.51.100.7"), west4, 0},
		{"IPv6 discard-only ignored", "svc.example.net.", dns.TypeA, subnet("100::/56"), netip.MustParseAddr("198.51.100.7"), west4, 0},
		{"static name: scope 0", "www.example.net.", dns.TypeA, subnet("198.51.100.0/24"), resolver, []string{"192.0.2.80", "192.0.2.81"}, 0},
		{"CNAME into a service carries its scope", "svcalias.example.net.", dns.TypeA, subnet("198.51.100.0/24"), resolver, west4, 24},
		{"one site with IPv6: scope 0", "svc.example.net.", dns.TypeAAAA, subnet("203.0.113.0/24"), resolver, []string{"2001:db8::10"}, 0},
	} {
		t.Run(c.name, func(t *testing.T) {
			m := h.Answer(ecsQuery(c.qname, c.qtype, c.ecs), c.remote, false)
			require.Equal(t, dns.RcodeSuccess, m.Rcode)
			require.ElementsMatch(t, c.want, addrs(m))
			e := responseECS(t, m)
			if c.scope < 0 {
				require.Nil(t, e, "no option unless asked")
				return
			}
			require.NotNil(t, e)
			require.Equal(t, c.ecs.Family|boolFamily(c.ecs.Family == 0), e.Family)
			require.Equal(t, c.ecs.SourceNetmask, e.SourceNetmask, "source prefix echoed")
			require.Equal(t, uint8(c.scope), e.SourceScope)
			_, err := m.Pack()
			require.NoError(t, err)
		})
	}
}

func boolFamily(b bool) uint16 {
	if b {
		return 1
	}
	return 0
}

func TestECSMalformed(t *testing.T) {
	h := newGeoHandler(t)
	bad := map[string][]dns.EDNS0{
		"scope set in a query": {&dns.EDNS0_SUBNET{Code: dns.EDNS0SUBNET, Family: 1, SourceNetmask: 24, SourceScope: 24, Address: net.IPv4(198, 51, 100, 0).To4()}},
		"prefix too long":      {&dns.EDNS0_SUBNET{Code: dns.EDNS0SUBNET, Family: 1, SourceNetmask: 33, Address: net.IPv4(198, 51, 100, 0).To4()}},
		"unknown family":       {&dns.EDNS0_SUBNET{Code: dns.EDNS0SUBNET, Family: 3, SourceNetmask: 8, Address: net.IPv4(198, 0, 0, 0).To4()}},
		"two options":          {subnetOpt("198.51.100.0/24"), subnetOpt("203.0.113.0/24")},
	}
	for name, opts := range bad {
		t.Run(name, func(t *testing.T) {
			m := new(dns.Msg).SetQuestion("svc.example.net.", dns.TypeA)
			m.SetEdns0(1232, false)
			m.IsEdns0().Option = opts
			resp := h.Answer(m, resolver, false)
			require.Equal(t, dns.RcodeFormatError, resp.Rcode)
			require.Empty(t, resp.Answer)
		})
	}
	// miekg/dns masks the address it packs: these are written by hand.
	for name, edit := range map[string]func([]byte) []byte{
		"bits past the prefix": func(w []byte) []byte { w[len(w)-5] = 20; return w },                         // 198.51.100.0/20
		"address too long":     func(w []byte) []byte { w[len(w)-5] = 16; return w },                         // three bytes for a /16
		"address too short":    func(w []byte) []byte { w[len(w)-5] = 32; return w },                         // three bytes for a /32
		"address bytes short":  func(w []byte) []byte { w[len(w)-12]--; w[len(w)-8]--; return w[:len(w)-1] }, // two bytes for a /24
	} {
		t.Run(name, func(t *testing.T) {
			wire, err := ecsQuery("svc.example.net.", dns.TypeA, subnet("198.51.100.0/24")).Pack()
			require.NoError(t, err)
			m := new(dns.Msg)
			require.NoError(t, m.Unpack(h.ServeWire(edit(wire), resolver, false, nil)))
			require.Equal(t, dns.RcodeFormatError, m.Rcode)
			require.Empty(t, m.Answer)
		})
	}
}

func subnetOpt(p string) *dns.EDNS0_SUBNET {
	e := subnet(p)
	e.Code = dns.EDNS0SUBNET
	return e
}

// The ECS option must survive a real server and the wire format.
func TestECSOverTheWire(t *testing.T) {
	addr := serveHandler(t, newGeoHandler(t), ServeOptions{})
	r, _, err := (&dns.Client{Timeout: 2 * time.Second}).Exchange(ecsQuery("svc.example.net.", dns.TypeA, subnet("198.51.100.0/24")), addr)
	require.NoError(t, err)
	require.Equal(t, west4, addrs(r))
	e := responseECS(t, r)
	require.Equal(t, uint8(24), e.SourceScope)
	require.Equal(t, "198.51.100.0", e.Address.String())
}

// TestLocalNetworks: the edges of the networks no client is reached at.
func TestLocalNetworks(t *testing.T) {
	for addr, want := range map[string]bool{
		"0.255.255.255": true, "1.0.0.0": false,
		"100.63.255.255": false, "100.64.0.0": true, "100.127.255.255": true, "100.128.0.0": false,
		"192.0.0.255": true, "192.0.1.0": false, "191.255.255.255": false,
		"198.17.255.255": false, "198.18.0.0": true, "198.19.255.255": true, "198.20.0.0": false,
		"239.255.255.255": false, "240.0.0.0": true, "255.255.255.255": true,
		"192.0.2.1": false, "198.51.100.1": false, "203.0.113.1": false, // documentation: usable
		"100::1": true, "100:0:0:1::": false, "64:ff9b:1::1": true, "64:ff9b::1": false,
		"2001:2::1": true, "2001:3::1": false, "5f00::1": true, "2001:db8::1": false,
	} {
		require.Equal(t, want, local(netip.MustParseAddr(addr)), addr)
	}
}

// TestUsableFirstOctet: the IPv4 first octets usable decides by alone
// agree with the full checks for every address tried in them.
func TestUsableFirstOctet(t *testing.T) {
	for b0 := range 256 {
		for _, b1 := range []byte{0, 1, 15, 16, 31, 32, 63, 64, 127, 128, 168, 254, 255} {
			for _, b2 := range []byte{0, 2, 99, 100, 255} {
				for _, b3 := range []byte{0, 1, 255} {
					a := netip.AddrFrom4([4]byte{byte(b0), b1, b2, b3})
					c := clientSubnet{family: 1, source: 24, prefix: netip.PrefixFrom(a, 24)}
					require.Equal(t, usableAddr(a), c.usable(), "%v", a)
				}
			}
		}
	}
}
