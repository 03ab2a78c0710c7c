package benchmarks

import (
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"sync/atomic"
	"testing"
	"time"

	"github.com/geodns/geodns/geo"
	"github.com/geodns/geodns/geo/geotest"
	"github.com/geodns/geodns/resolver"
	"github.com/geodns/geodns/route"
	"github.com/geodns/geodns/zones"
	"github.com/miekg/dns"
)

func realLocator(b *testing.B) *geo.Locator {
	b.Helper()
	l, err := geo.NewLocator(geotest.RealDB(b, "../data/geoip"), slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		b.Fatal(err)
	}
	return l
}

// clients are spread over the address space, so lookups walk different
// parts of the tree and decode different records.
var clients = []netip.Addr{
	netip.MustParseAddr("128.32.1.1"), netip.MustParseAddr("3.80.0.1"), netip.MustParseAddr("81.2.69.142"),
	netip.MustParseAddr("133.11.0.1"), netip.MustParseAddr("1.1.1.1"), netip.MustParseAddr("142.150.0.1"),
	netip.MustParseAddr("129.237.0.1"), netip.MustParseAddr("2001:67c:2e8::1"),
}

// BenchmarkLocate measures one client lookup in the real DB-IP data.
func BenchmarkLocate(b *testing.B) {
	l := realLocator(b)
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		if _, ok := l.Locate(clients[i%len(clients)]); !ok {
			b.Fatal("not located")
		}
		i++
	}
}

// BenchmarkServiceAnswer measures a geo-routed answer: ECS parsed, client
// located in the real data, sites ranked, the message built and packed.
func BenchmarkServiceAnswer(b *testing.B) {
	_, h := loadExampleServed(b, &route.Router{Loc: realLocator(b)})
	// wire: the server's path (ServeWire: cached packed variants); the
	// others go through Answer (a dns.Msg in, one out, packed again).
	for _, c := range []struct {
		name      string
		ecs, wire bool
	}{{"ecs", true, false}, {"source-address", false, false}, {"wire-ecs", true, true}, {"wire-source-address", false, true}} {
		b.Run(c.name, func(b *testing.B) {
			reqs := wwwQueries(c.ecs, false)
			if c.wire {
				wires := packAll(reqs)
				buf := make([]byte, 0, 4096)
				b.ReportAllocs()
				i := 0
				for b.Loop() {
					if resp := h.ServeWire(wires[i%len(wires)], clients[i%len(clients)], false, buf); len(resp) < 40 {
						b.Fatal("no answer")
					}
					i++
				}
				return
			}
			buf := make([]byte, 0, 4096)
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				m := h.Answer(reqs[i%len(reqs)], clients[i%len(clients)], false)
				if len(m.Answer) == 0 {
					b.Fatal("no answer")
				}
				if _, err := m.PackBuffer(buf); err != nil {
					b.Fatal(err)
				}
				i++
			}
		})
	}
}

// wwwQueries is www.example.com A with EDNS (and DO), one per client of
// clients, with an ECS option for the client's /24 or /56 when ecs is set.
func wwwQueries(ecs, do bool) []*dns.Msg {
	reqs := make([]*dns.Msg, len(clients))
	for i, a := range clients {
		m := new(dns.Msg).SetQuestion("www.example.com.", dns.TypeA)
		m.SetEdns0(1232, do)
		if ecs {
			e := &dns.EDNS0_SUBNET{Code: dns.EDNS0SUBNET, Family: 1, SourceNetmask: 24, Address: net.IP(netip.PrefixFrom(a, 24).Masked().Addr().AsSlice())}
			if a.Is6() {
				e.Family, e.SourceNetmask = 2, 56
				e.Address = net.IP(netip.PrefixFrom(a, 56).Masked().Addr().AsSlice())
			}
			m.IsEdns0().Option = append(m.IsEdns0().Option, e)
		}
		reqs[i] = m
	}
	return reqs
}

// packAll packs each message.
func packAll(ms []*dns.Msg) [][]byte {
	wires := make([][]byte, len(ms))
	for i, m := range ms {
		wires[i], _ = m.Pack()
	}
	return wires
}

// BenchmarkServiceAnswerParallel is wire-ecs on every P at once (run with
// -cpu 2): what the cores share on a service answer's path (an entry, the
// router's memo and counters) shows as time per answer above the
// one-core figure.
func BenchmarkServiceAnswerParallel(b *testing.B) {
	_, h := loadExampleServed(b, &route.Router{Loc: realLocator(b)})
	wires := packAll(wwwQueries(true, false))
	b.ReportAllocs()
	var next atomic.Int32
	b.RunParallel(func(pb *testing.PB) {
		buf := make([]byte, 0, 4096)
		// Each goroutine starts at its own client: two in step on one
		// client would be one resolver's network on both cores.
		for i := int(next.Add(3)); pb.Next(); i++ {
			if resp := h.ServeWire(wires[i%len(wires)], clients[i%len(clients)], false, buf); len(resp) < 40 {
				panic("no answer")
			}
		}
	})
}

// ecsQuery is www.example.com A with EDNS and an ECS option for an IPv4
// /24, and the offset of the option's address in it.
func ecsQuery(b *testing.B) ([]byte, int) {
	m := new(dns.Msg).SetQuestion("www.example.com.", dns.TypeA)
	m.SetEdns0(1232, false)
	m.IsEdns0().Option = append(m.IsEdns0().Option, &dns.EDNS0_SUBNET{Code: dns.EDNS0SUBNET, Family: 1, SourceNetmask: 24,
		Address: net.IP{198, 51, 100, 0}})
	w, err := m.Pack()
	if err != nil {
		b.Fatal(err)
	}
	// The option ends the message: family(2) source(1) scope(1) address(3).
	return w, len(w) - 3
}

// spreadNet is the i-th of n /24s spread over the unicast IPv4 space
// (1.0.0.0 to 223.255.255.0), so consecutive ones fall far apart.
func spreadNet(i, n int) [3]byte {
	const first, nets = 1 << 16, 223<<16 - 1<<16 + 1<<16 // 1.0.0.0/24 .. 223.255.255.0/24
	x := first + int(uint64(i)*uint64(nets)/uint64(n))
	return [3]byte{byte(x >> 16), byte(x >> 8), byte(x)}
}

// BenchmarkServiceAnswerNetworks is the server's path (ServeWire, cached
// packed variants) for a geo name asked with ECS from networks=N distinct
// client /24s in turn, located in the real DB-IP data: 1 is one resolver's
// users, 200000 a spread no cache of decisions holds (issue 23's 200,000
// distinct ECS /24s).
func BenchmarkServiceAnswerNetworks(b *testing.B) {
	loc := realLocator(b)
	_, memoH := loadExampleRouted(b, &route.Router{Loc: loc})
	mapped := &route.Router{Loc: loc}
	z, mapH := loadExampleServed(b, mapped) // as the server: plans published, maps compiled by the loop too
	mapped.CompileSiteMaps(zones.NewSet(z))
	// One network never has a map compiled (the loop waits for many
	// placements): the memo with the plans the loop publishes, as the
	// server answers one resolver.
	_, servedH := loadExampleServed(b, &route.Router{Loc: loc})
	src := netip.MustParseAddr("127.0.0.1")
	for _, c := range []struct {
		how string
		h   *resolver.Handler
		n   int
	}{{"memo", memoH, 1}, {"memo", memoH, 1000}, {"memo", memoH, 200_000}, {"served", servedH, 1}, {"map", mapH, 1}, {"map", mapH, 1000}, {"map", mapH, 200_000}} {
		h, n := c.h, c.n
		b.Run(fmt.Sprintf("%s/networks=%d", c.how, n), func(b *testing.B) {
			q, at := ecsQuery(b)
			nets := make([][3]byte, n)
			for i := range nets {
				nets[i] = spreadNet(i, n)
			}
			buf := make([]byte, 0, 4096)
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				copy(q[at:], nets[i%n][:])
				if resp := h.ServeWire(q, src, false, buf); len(resp) < 40 {
					b.Fatal("no answer")
				}
				i++
			}
		})
	}
}

// BenchmarkRoute is the routing decision alone for a geo service, with
// the real DB-IP data: one client network asked over and over, or 200,000
// distinct /24s in turn.
func BenchmarkRoute(b *testing.B) {
	z, _ := loadExample(b)
	var svc *zones.Service
	for _, s := range z.Services {
		if len(s.Sites) > 1 && !s.CNAME {
			svc = s
			break
		}
	}
	if svc == nil {
		b.Fatal("no geo service in the example zone")
	}
	r := &route.Router{Loc: realLocator(b)}
	mapped := &route.Router{Loc: r.Loc}
	start := time.Now()
	mapped.CompileSiteMaps(zones.NewSet(z))
	b.Logf("site map compiled in %v", time.Since(start))
	for _, c := range []struct {
		how string
		r   *route.Router
		n   int
	}{{"memo", r, 1}, {"memo", r, 200_000}, {"map", mapped, 1}, {"map", mapped, 200_000}} {
		r, n := c.r, c.n
		b.Run(fmt.Sprintf("%s/networks=%d", c.how, n), func(b *testing.B) {
			nets := make([]netip.Prefix, n)
			for i := range nets {
				x := spreadNet(i, n)
				nets[i] = netip.PrefixFrom(netip.AddrFrom4([4]byte{x[0], x[1], x[2], 0}), 24)
			}
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				if d := r.Route(z.Origin, svc, nets[i%n], false); len(d.Sites) == 0 {
					b.Fatal("no site")
				}
				i++
			}
		})
	}
}
