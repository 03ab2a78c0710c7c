package resolver

import (
	"encoding/binary"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/geodns/geodns/resolver/dnstest"
	"github.com/geodns/geodns/route"
	"github.com/geodns/geodns/zones"
	"github.com/miekg/dns"
	"github.com/stretchr/testify/require"
)

// normalized renders a response for comparison: header, then each section
// in lower case and sorted (names compare without case, and service
// answers rotate), with the ECS option's scope.
func normalized(t testing.TB, wire []byte) string {
	t.Helper()
	m := new(dns.Msg)
	require.NoError(t, m.Unpack(wire))
	var b strings.Builder
	fmt.Fprintf(&b, "id=%d rcode=%d qr=%v aa=%v tc=%v rd=%v cd=%v q=%v\n", m.Id, m.Rcode, m.Response, m.Authoritative,
		m.Truncated, m.RecursionDesired, m.CheckingDisabled, m.Question)
	for _, sec := range [][]dns.RR{m.Answer, m.Ns, m.Extra} {
		var lines []string
		for _, rr := range sec {
			lines = append(lines, strings.ToLower(rr.String()))
		}
		slices.Sort(lines)
		fmt.Fprintf(&b, "%q\n", lines)
	}
	return b.String()
}

// fastQueries are queries the cache answers: every kind of answer in the
// test zone, in odd letter case, with and without EDNS, DO, ECS and DNS
// cookies.
func fastQueries() []*dns.Msg {
	var out []*dns.Msg
	names := []string{"www.example.net.", "WwW.ExAmple.NET.", "example.net.", "mail.example.net.", "nothere.example.net.",
		"a.b.c.example.net.", "b.c.example.net.", "alias.example.net.", "chain.example.net.", "dangling.example.net.",
		"away.example.net.", "foo.wild.example.net.", "x.wild.example.net.", "q.cn.example.net.", "sub.example.net.",
		"deep.sub.example.net.", "big.example.net.", "svc.example.net.", "SVC.example.NET.", "svcalias.example.net.",
		"example.org.", ".",
		// DNAME (RFC 6672) and names with any octet (issue 17)
		"a.b.d.example.net.", "X.B.D.example.net.", "d.example.net.", "nx.d.example.net.",
		strings.Repeat("y", 63) + ".long.example.net.", `\#esc.example.net.`, `\#ESC.example.net.`,
		`e\.x.example.net.`, `E\.X.example.net.`, `z.\#w.example.net.`, "esccname.example.net.",
		// absent names answered from their encloser's template, of many
		// lengths and depths (absent.go)
		"n.example.net.", "A.B.C.D.NoThErE.example.net.", "x.y.foo.wild.example.net.", "F.wild.example.net.",
		strings.Repeat("q", 63) + "." + strings.Repeat("r", 63) + "." + strings.Repeat("s", 63) + ".wild.example.net.",
		strings.Repeat("t", 63) + "." + strings.Repeat("u", 63) + "." + strings.Repeat("v", 63) + ".nx.example.net.",
		`\000.wild.example.net.`, `a\.b.nothere.example.net.`, "geodns-absent-3c9f1e.example.net.", "nx.deep.sub.example.net."}
	types := []uint16{dns.TypeA, dns.TypeAAAA, dns.TypeMX, dns.TypeTXT, dns.TypeNS, dns.TypeSOA, dns.TypeANY, dns.TypeDS, dns.TypeCNAME}
	ecs := []string{"", "198.51.100.0/24", "203.0.113.0/24", "10.0.0.0/8", "2001:db8:aa::/48", "0.0.0.0/0"}
	id := uint16(1)
	for _, n := range names {
		for _, qt := range types {
			for v := range 6 + len(ecs) {
				q := new(dns.Msg).SetQuestion(n, qt)
				q.Id = id
				id++
				q.RecursionDesired = v%2 == 0
				q.CheckingDisabled = v%3 == 0
				switch {
				case v == 0:
				case v == 1:
					q.SetEdns0(512, false)
				case v == 2:
					q.SetEdns0(4096, true)
				case v == 3:
					q.SetEdns0(1232, false)
				case v == 4+len(ecs): // a client cookie (BIND's resolvers send one)
					q.SetEdns0(1232, false)
					q.IsEdns0().Option = []dns.EDNS0{&dns.EDNS0_COOKIE{Code: dns.EDNS0COOKIE, Cookie: "0102030405060708"}}
				case v == 5+len(ecs): // a server cookie not ours, then ECS
					q = ecsQuery(n, qt, subnet("198.51.100.0/24"))
					q.Id = id
					o := q.IsEdns0()
					o.Option = append([]dns.EDNS0{&dns.EDNS0_COOKIE{Code: dns.EDNS0COOKIE,
						Cookie: "0102030405060708" + "0100000065a0bc00" + "1122334455667788"}}, o.Option...)
				default:
					if e := ecs[v-4]; e != "" {
						q = ecsQuery(n, qt, subnet(e))
						q.Id = id
					} else {
						q.SetEdns0(1400, true)
					}
				}
				out = append(out, q)
			}
		}
	}
	return out
}

// oddQueries are queries outside the common shape: other opcodes and
// classes, question counts, EDNS versions and options, malformed cookies
// and ECS options, OPT records out of place, other records in the
// additional section.
func oddQueries() []*dns.Msg {
	mk := func(f func(*dns.Msg)) *dns.Msg {
		q := new(dns.Msg).SetQuestion("www.example.net.", dns.TypeA)
		q.Id = 4242
		f(q)
		return q
	}
	opt := func(q *dns.Msg, o ...dns.EDNS0) {
		q.SetEdns0(1232, false)
		q.IsEdns0().Option = o
	}
	return []*dns.Msg{
		mk(func(q *dns.Msg) { q.Opcode = dns.OpcodeNotify }),
		mk(func(q *dns.Msg) { q.Opcode = dns.OpcodeStatus; q.SetEdns0(1232, true) }),
		mk(func(q *dns.Msg) { q.Question = append(q.Question, q.Question[0]) }),
		mk(func(q *dns.Msg) { q.Question = nil }),
		mk(func(q *dns.Msg) { q.Question[0].Qclass = dns.ClassCHAOS }),
		mk(func(q *dns.Msg) {
			q.Question[0] = dns.Question{Name: "ID.Server.", Qtype: dns.TypeTXT, Qclass: dns.ClassCHAOS}
		}),
		mk(func(q *dns.Msg) {
			q.Question[0] = dns.Question{Name: "version.bind.", Qtype: dns.TypeTXT, Qclass: dns.ClassCHAOS}
			opt(q, &dns.EDNS0_COOKIE{Code: dns.EDNS0COOKIE, Cookie: "0102030405060708"})
		}),
		mk(func(q *dns.Msg) { q.Question[0].Qclass = dns.ClassHESIOD; q.SetEdns0(1232, false) }),
		mk(func(q *dns.Msg) { q.Question[0].Qclass = dns.ClassANY }),
		mk(func(q *dns.Msg) { q.Question[0].Qtype = dns.TypeAXFR }),
		mk(func(q *dns.Msg) { q.Question[0].Qtype = dns.TypeOPT; q.SetEdns0(1232, false) }),
		mk(func(q *dns.Msg) { q.SetEdns0(1232, false); q.IsEdns0().SetVersion(1) }),
		mk(func(q *dns.Msg) { opt(q, &dns.EDNS0_NSID{Code: dns.EDNS0NSID}) }),
		mk(func(q *dns.Msg) {
			opt(q, &dns.EDNS0_NSID{Code: dns.EDNS0NSID}, &dns.EDNS0_COOKIE{Code: dns.EDNS0COOKIE, Cookie: "0102030405060708"})
		}),
		mk(func(q *dns.Msg) { opt(q, &dns.EDNS0_PADDING{Padding: make([]byte, 12)}) }),
		mk(func(q *dns.Msg) { opt(q, &dns.EDNS0_COOKIE{Code: dns.EDNS0COOKIE, Cookie: "010203040506070809101112"}) }),
		mk(func(q *dns.Msg) {
			co := &dns.EDNS0_COOKIE{Code: dns.EDNS0COOKIE, Cookie: "0102030405060708"}
			opt(q, co, &dns.EDNS0_COOKIE{Code: dns.EDNS0COOKIE, Cookie: "0a0b"})
		}),
		mk(func(q *dns.Msg) {
			e := subnet("198.51.100.0/24")
			e.SourceScope = 24
			opt(q, e)
		}),
		mk(func(q *dns.Msg) { opt(q, subnet("198.51.100.0/24"), subnet("203.0.113.0/24")) }),
		mk(func(q *dns.Msg) {
			opt(q, &dns.EDNS0_SUBNET{Code: dns.EDNS0SUBNET, Family: 0, Address: net.IPv4zero.To4()})
		}),
		mk(func(q *dns.Msg) {
			o := &dns.OPT{Hdr: dns.RR_Header{Name: ".", Rrtype: dns.TypeOPT}}
			q.Answer = append(q.Answer, o)
		}),
		mk(func(q *dns.Msg) { q.SetEdns0(1232, false); q.Extra = append(q.Extra, q.Extra[0]) }),
		mk(func(q *dns.Msg) {
			q.Extra = append(q.Extra, &dns.TXT{Hdr: dns.RR_Header{Name: "www.example.net.", Rrtype: dns.TypeTXT, Class: dns.ClassINET}, Txt: []string{"x"}})
			q.SetEdns0(1232, true)
		}),
		mk(func(q *dns.Msg) { q.SetTsig("key.", dns.HmacSHA256, 300, 1700000000) }),
	}
}

// fromCache answers wire through ServeWire and reports whether the cache
// answered it (the engine resolved nothing).
func fromCache(h *Handler, wire []byte, client netip.Addr, tcp bool) bool {
	n := 0
	h.onResolve = func() { n++ }
	defer func() { h.onResolve = nil }()
	h.ServeWire(wire, client, tcp, nil)
	return n == 0
}

// TestEngineMatchesOracle: every entry of the engine — ServeWire on a
// cache miss and on a hit, ServeDNS, Answer and the Uncounted view of
// explains — answers every query what the oracle (the old full path)
// answers it, for clients with and without a location, over UDP and TCP.
func TestEngineMatchesOracle(t *testing.T) {
	for _, h := range []*Handler{newTestHandler(t, Config{ServerID: "ns1", Version: "v1"}), newGeoHandler(t)} {
		h.now = fixedNow // both date the same cookies
		cached, n := 0, 0
		for _, q := range append(fastQueries(), oddQueries()...) {
			wire, err := q.Pack()
			require.NoError(t, err)
			for _, client := range []netip.Addr{testClient, netip.MustParseAddr("198.51.100.7")} {
				for _, tcp := range []bool{false, true} {
					want := normalized(t, oracleWire(h, wire, client, tcp))
					msg := func(m *dns.Msg) string {
						w, err := m.Pack()
						require.NoError(t, err)
						return normalized(t, w)
					}
					for i := range 2 {
						got := h.ServeWire(wire, client, tcp, make([]byte, 0, 512))
						require.Equal(t, want, normalized(t, got), "ServeWire #%d: %v from %v tcp=%v", i, q, client, tcp)
					}
					require.Equal(t, want, msg(h.Answer(q, client, tcp)), "Answer: %v", q)
					require.Equal(t, want, msg(h.Uncounted().Answer(q, client, tcp)), "Uncounted: %v", q)
					rec := &dnstest.Recorder{Remote: &net.UDPAddr{IP: client.AsSlice(), Port: 5300}}
					if tcp {
						rec.Remote = &net.TCPAddr{IP: client.AsSlice(), Port: 5300}
					}
					h.ServeDNS(rec, q)
					require.Equal(t, 1, rec.Writes)
					require.Equal(t, want, msg(rec.Msg), "ServeDNS: %v", q)
					if fromCache(h, wire, client, tcp) {
						cached++
					}
					n++
				}
			}
		}
		t.Logf("%d of %d queries answered from the cache once asked", cached, n)
		require.Greater(t, cached, n/2, "most of these queries are answered from the cache")
	}
}

// countingRouter counts the routing decisions asked of it.
type countingRouter struct {
	Router
	n *int
}

func (r countingRouter) Route(origin string, svc *zones.Service, client netip.Prefix, v6 bool) route.Decision {
	*r.n++
	return r.Router.Route(origin, svc, client, v6)
}

// TestOneAnswerPerQuery: no query runs the engine twice. Each query is
// resolved at most once (on a miss: once; on a hit: never), and each
// service name in its answer is routed once, whether the cache knows the
// name, knows the service but not the decision, or not at all. Before,
// a miss ran the full handler to fill the cache and the fast path then
// answered, and names the cache refused were answered twice.
func TestOneAnswerPerQuery(t *testing.T) {
	h := newGeoHandler(t)
	routes := 0
	h.router = countingRouter{h.router, &routes}
	resolves := 0
	h.onResolve = func() { resolves++ }
	for _, q := range append(fastQueries(), oddQueries()...) {
		wire, err := q.Pack()
		require.NoError(t, err)
		for _, client := range []netip.Addr{testClient, netip.MustParseAddr("198.51.100.7"), netip.MustParseAddr("203.0.113.9")} {
			for i := range 2 {
				resolves, routes = 0, 0
				resp := h.ServeWire(wire, client, false, nil)
				m := new(dns.Msg)
				if resp != nil {
					require.NoError(t, m.Unpack(resp))
				}
				services := 0
				for _, rr := range m.Answer {
					if strings.HasPrefix(strings.ToLower(rr.Header().Name), "svc.") {
						services++
					}
				}
				require.LessOrEqual(t, resolves, 1, "%v #%d: resolved once at most", q.Question, i)
				require.LessOrEqual(t, routes, max(1, services), "%v #%d: routed once per service answered", q.Question, i)
			}
		}
	}
	// A name the cache keeps: resolved on the first query only.
	wire, _ := new(dns.Msg).SetQuestion("www.example.net.", dns.TypeA).Pack()
	h.fast.Store(nil)
	resolves = 0
	for range 5 {
		h.ServeWire(wire, testClient, false, nil)
	}
	require.Equal(t, 1, resolves)
}

// TestCacheFollowsReloads: a new zone set is a new cache.
func TestCacheFollowsReloads(t *testing.T) {
	h := newTestHandler(t, Config{})
	q := new(dns.Msg).SetQuestion("www.example.net.", dns.TypeA)
	wire, _ := q.Pack()
	first := normalized(t, h.ServeWire(wire, testClient, false, nil))
	require.Contains(t, first, "192.0.2.80")
	z := strings.Replace(testZone, "192.0.2.80, 192.0.2.81", "192.0.2.90", 1)
	compiled, err := zones.Compile("example.net.yaml", []byte(z), "example.net.", time.Unix(1700000000, 0), nil)
	require.NoError(t, err)
	h.zones.Store(h.zones.Load().With(compiled))
	require.Contains(t, normalized(t, h.ServeWire(wire, testClient, false, nil)), "192.0.2.90")
}

// TestParseQuery: what the one parser makes of odd messages, and which
// queries the cache may answer.
func TestParseQuery(t *testing.T) {
	h := newTestHandler(t, Config{ServerID: "ns1"})
	mk := func(f func(*dns.Msg)) []byte {
		q := new(dns.Msg).SetQuestion("www.example.net.", dns.TypeA)
		f(q)
		w, err := q.Pack()
		require.NoError(t, err)
		return w
	}
	var fq query
	require.Equal(t, parsedOK, parseQuery(mk(func(*dns.Msg) {}), &fq))
	require.True(t, h.cacheable(&fq))
	require.Equal(t, parseDrop, parseQuery(mk(func(q *dns.Msg) { q.Response = true }), new(query)))
	require.Equal(t, parseDrop, parseQuery(mk(func(*dns.Msg) {})[:11], new(query)))
	require.Equal(t, parseError, parseQuery(mk(func(*dns.Msg) {})[:14], new(query)))
	require.Equal(t, parsedOK, parseQuery(append(mk(func(*dns.Msg) {}), 0), new(query)), "trailing bytes are ignored, as miekg/dns does")
	for name, w := range map[string][]byte{
		"notify": mk(func(q *dns.Msg) { q.Opcode = dns.OpcodeNotify }),
		"chaos":  mk(func(q *dns.Msg) { q.Question[0].Qclass = dns.ClassCHAOS }),
		"two qs": mk(func(q *dns.Msg) { q.Question = append(q.Question, q.Question[0]) }),
		"edns1":  mk(func(q *dns.Msg) { q.SetEdns0(1232, false); q.IsEdns0().SetVersion(1) }),
		"nsid": mk(func(q *dns.Msg) {
			q.SetEdns0(1232, false)
			q.IsEdns0().Option = []dns.EDNS0{&dns.EDNS0_NSID{Code: dns.EDNS0NSID}}
		}),
		"cookie of 12 bytes": mk(func(q *dns.Msg) {
			q.SetEdns0(1232, false)
			q.IsEdns0().Option = []dns.EDNS0{&dns.EDNS0_COOKIE{Code: dns.EDNS0COOKIE, Cookie: "010203040506070809101112"}}
		}),
		"ecs scope": mk(func(q *dns.Msg) {
			e := subnet("198.51.100.0/24")
			e.SourceScope = 24
			*q = *ecsQuery("www.example.net.", dns.TypeA, e)
		}),
		"ecs bits": func() []byte { // 198.51.100.0/20: bits set past the prefix
			w := mk(func(q *dns.Msg) { *q = *ecsQuery("www.example.net.", dns.TypeA, subnet("198.51.100.0/24")) })
			w[len(w)-5] = 20
			return w
		}(),
		"opt in answer": mk(func(q *dns.Msg) {
			q.Answer = append(q.Answer, &dns.OPT{Hdr: dns.RR_Header{Name: ".", Rrtype: dns.TypeOPT}})
		}),
	} {
		var fq query
		require.Equal(t, parsedOK, parseQuery(w, &fq), name)
		require.False(t, h.cacheable(&fq), name)
	}
}

// FuzzEngine: any message gets from ServeWire what the oracle (the old
// full path) answers it, on a cache miss and on a hit; a message either
// cannot read is only required to get no answer or a FORMERR.
func FuzzEngine(f *testing.F) {
	for i, q := range fastQueries() {
		if i%7 == 0 {
			w, _ := q.Pack()
			f.Add(w, false)
		}
	}
	for _, q := range oddQueries() {
		w, _ := q.Pack()
		f.Add(w, true)
	}
	// DNAME and escaped names, each seeded (issue 17).
	for _, n := range []string{"www.x.d.example.net.", strings.Repeat("y", 63) + ".long.example.net.",
		`\#esc.example.net.`, `e\.x.example.net.`, `q.\#w.example.net.`, "esccname.example.net.", "nope.example.org."} {
		q := new(dns.Msg).SetQuestion(n, dns.TypeA)
		q.SetEdns0(1232, false)
		w, _ := q.Pack()
		f.Add(w, false)
	}
	h := newTestHandler(f, Config{ServerID: "fuzz"})
	h.now = fixedNow
	f.Fuzz(func(t *testing.T, wire []byte, tcp bool) {
		var fq query
		status := parseQuery(wire, &fq)
		got := h.ServeWire(wire, testClient, tcp, nil)
		again := h.ServeWire(wire, testClient, tcp, nil)
		if got == nil {
			require.Nil(t, again)
			require.NotEqual(t, parsedOK, status, "only what is not a query is dropped")
			return
		}
		require.Equal(t, normalized(t, got), normalized(t, again), "a hit answers what the miss did (service answers rotate)")
		back := new(dns.Msg)
		require.NoError(t, back.Unpack(got), "the response unpacks")
		require.Equal(t, binary.BigEndian.Uint16(wire), back.Id)
		// The dns.Msg API decodes it as Unpack does (msgwire.go).
		req := new(dns.Msg)
		if req.Unpack(wire) != nil {
			req = new(dns.Msg)
		}
		decoded, err := msgFromWire(got, req)
		require.NoError(t, err)
		require.Equal(t, back, decoded)
		if !tcp {
			require.LessOrEqual(t, len(got), max(512, int(h.cfg.MaxUDPSize)))
		}
		if err := new(dns.Msg).Unpack(wire); err != nil || status != parsedOK {
			// One of the parsers cannot read it: the other may be stricter
			// (miekg/dns checks record data; ours refuses a compressed
			// question name).
			return
		}
		if fq.ecs != nil && len(fq.ecs) >= 4 && len(fq.ecs)-4 != (int(fq.ecs[2])+7)/8 {
			return // an ECS address in more or fewer bytes than its prefix needs: FORMERR (RFC 7871 6), the oracle read it leniently
		}
		require.Equal(t, normalized(t, oracleWire(h, wire, testClient, tcp)), normalized(t, got))
	})
}

// fixedNow is the clock of handlers whose fast and full answers are
// compared: the cookies they make carry the time.
func fixedNow() time.Time { return time.Unix(1_800_000_000, 0) }

// TestCookiesFromCache: the cache answers a query with a DNS cookie as
// the oracle does: a fresh server cookie of ours is echoed, an old,
// foreign or missing one is replaced by one made now; and it takes such
// queries (BIND's resolvers send a cookie with every query).
func TestCookiesFromCache(t *testing.T) {
	h := newTestHandler(t, Config{CookieSecret: []byte("0123456789abcdef")})
	now := fixedNow()
	h.now = func() time.Time { return now }
	ask := func(cookie string, client netip.Addr) string {
		t.Helper()
		q := ecsQuery("www.example.net.", dns.TypeA, nil)
		q.IsEdns0().Option = []dns.EDNS0{&dns.EDNS0_COOKIE{Code: dns.EDNS0COOKIE, Cookie: cookie}}
		wire, err := q.Pack()
		require.NoError(t, err)
		require.True(t, fromCache(h, wire, client, false) || fromCache(h, wire, client, false), "the cache answers it")
		got := h.ServeWire(wire, client, false, nil)
		require.Equal(t, normalized(t, oracleWire(h, wire, client, false)), normalized(t, got))
		m := new(dns.Msg)
		require.NoError(t, m.Unpack(got))
		return m.IsEdns0().Option[0].(*dns.EDNS0_COOKIE).Cookie
	}
	const clientCookie = "0102030405060708"
	first := ask(clientCookie, testClient)
	require.Len(t, first, 2*cookieReplyLen)
	require.Equal(t, clientCookie, first[:16])
	require.Equal(t, first, ask(first, testClient), "a fresh cookie of ours is echoed")

	now = now.Add(40 * time.Minute) // older than cookieRenew: replaced
	renewed := ask(first, testClient)
	require.NotEqual(t, first, renewed)
	require.Equal(t, fmt.Sprintf("01000000%08x", uint32(now.Unix())), renewed[16:32], "version 1, made now")

	other := netip.MustParseAddr("198.51.100.7")
	require.NotEqual(t, renewed, ask(renewed, other), "a cookie made for another address is replaced")
	require.Equal(t, renewed, ask(clientCookie+"0100000065a0bc001122334455667788", testClient),
		"a server cookie not ours is replaced by ours, made now")
}

// lastRouter remembers the last decision it made.
type lastRouter struct {
	Router
	last *zones.Decision
}

func (r lastRouter) Route(origin string, svc *zones.Service, client netip.Prefix, v6 bool) zones.Decision {
	d := r.Router.Route(origin, svc, client, v6)
	*r.last = d
	return d
}

// TestRotatedAddressesFromOneVariant: a site of many endpoints answers a
// few at a time, rotated by the router; the cache keeps one response for
// the site and writes each query's decision's addresses into it, so the
// name is resolved once, not once per rotation (a site of 10,000
// endpoints would otherwise never be answered from the cache).
func TestRotatedAddressesFromOneVariant(t *testing.T) {
	z, err := zones.Compile("example.net.yaml", []byte(`
soa: {ns: ns1.example.net., mbox: h.example.net.}
records:
  "@": {NS: [ns1.example.net.]}
  www: {service: web}
sites:
  east: {lat: 39, lon: -77}
services:
  web:
    answers: 2
    endpoints:
      - {site: east, address: 192.0.2.1}
      - {site: east, address: 192.0.2.2}
      - {site: east, address: 192.0.2.3}
      - {site: east, address: 192.0.2.4}
      - {site: east, address: 192.0.2.5}
      - {site: east, address: 2001:db8::1}
      - {site: east, address: 2001:db8::2}
      - {site: east, address: 2001:db8::3}
`), "example.net.", time.Unix(1700000000, 0), nil)
	require.NoError(t, err)
	var set atomic.Pointer[zones.Set]
	set.Store(zones.NewSet(z))
	var last zones.Decision
	h := NewHandler(&set, lastRouter{&route.Router{}, &last}, Config{}, nil)
	resolves := 0
	h.onResolve = func() { resolves++ }
	for _, qt := range []uint16{dns.TypeA, dns.TypeAAAA} {
		resolves = 0
		q := new(dns.Msg).SetQuestion("WWW.example.net.", qt)
		q.SetEdns0(1232, false)
		wire, err := q.Pack()
		require.NoError(t, err)
		seen := map[string]bool{}
		// The router turns each answer at random: 60 queries see fewer
		// than 3 of AAAA's 3 rotations once in 10^10 runs (12 did in 2 %).
		for range 60 {
			m := new(dns.Msg)
			require.NoError(t, m.Unpack(h.ServeWire(wire, testClient, false, nil)))
			require.Len(t, m.Answer, 2)
			var got []netip.Addr
			for _, rr := range m.Answer {
				require.Equal(t, "WWW.example.net.", rr.Header().Name, "the owner takes the question's case")
				switch rr := rr.(type) {
				case *dns.A:
					a, _ := netip.AddrFromSlice(rr.A.To4())
					got = append(got, a)
				case *dns.AAAA:
					a, _ := netip.AddrFromSlice(rr.AAAA)
					got = append(got, a)
				}
			}
			require.Equal(t, last.Addrs, got, "the addresses of this query's decision, in its order")
			seen[fmt.Sprint(got)] = true
		}
		require.Greater(t, len(seen), 2, "the router rotates the site's endpoints")
		require.Equal(t, 1, resolves, "one response kept for the site")
	}
}
