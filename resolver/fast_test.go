package resolver

import (
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

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

// fastQueries are queries the fast path takes: every kind of answer in the
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
		`e\.x.example.net.`, `E\.X.example.net.`, `z.\#w.example.net.`, "esccname.example.net."}
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

// TestFastPathMatchesFullPath: every query answered from the cache gets
// what the full path answers it, the first time (filling) and after.
func TestFastPathMatchesFullPath(t *testing.T) {
	for _, h := range []*Handler{newTestHandler(t, Config{}), newGeoHandler(t)} {
		h.now = fixedNow // both paths date the same cookies
		fast := 0
		for _, q := range fastQueries() {
			wire, err := q.Pack()
			require.NoError(t, err)
			for _, client := range []netip.Addr{testClient, netip.MustParseAddr("198.51.100.7")} {
				for _, tcp := range []bool{false, true} {
					want := normalized(t, h.slowWire(wire, client, tcp, nil))
					for range 2 {
						got := h.ServeWire(wire, client, tcp, make([]byte, 0, 512))
						require.Equal(t, want, normalized(t, got), "%v from %v tcp=%v", q.Question[0], client, tcp)
					}
					var fq query
					if parseQuery(wire, &fq) {
						if _, ok := h.fastAnswer(&fq, client, tcp, nil); ok {
							fast++
						}
					}
				}
			}
		}
		t.Logf("%d of %d queries answered by the fast path", fast, 4*len(fastQueries()))
		require.Greater(t, fast, 2*len(fastQueries()), "most of these queries take the fast path")
	}
}

// TestFastPathFollowsReloads: a new zone set is a new cache.
func TestFastPathFollowsReloads(t *testing.T) {
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

// TestParseQueryRejects: what the fast path must leave to the full path.
func TestParseQueryRejects(t *testing.T) {
	mk := func(f func(*dns.Msg)) []byte {
		q := new(dns.Msg).SetQuestion("www.example.net.", dns.TypeA)
		f(q)
		w, err := q.Pack()
		require.NoError(t, err)
		return w
	}
	var fq query
	require.True(t, parseQuery(mk(func(*dns.Msg) {}), &fq))
	for name, w := range map[string][]byte{
		"response": mk(func(q *dns.Msg) { q.Response = true }),
		"notify":   mk(func(q *dns.Msg) { q.Opcode = dns.OpcodeNotify }),
		"chaos":    mk(func(q *dns.Msg) { q.Question[0].Qclass = dns.ClassCHAOS }),
		"axfr":     mk(func(q *dns.Msg) { q.Question[0].Qtype = dns.TypeAXFR }),
		"two qs":   mk(func(q *dns.Msg) { q.Question = append(q.Question, q.Question[0]) }),
		"edns1":    mk(func(q *dns.Msg) { q.SetEdns0(1232, false); q.IsEdns0().SetVersion(1) }),
		"nsid": mk(func(q *dns.Msg) {
			q.SetEdns0(1232, false)
			q.IsEdns0().Option = []dns.EDNS0{&dns.EDNS0_NSID{Code: dns.EDNS0NSID}}
		}),
		"cookie of 12 bytes": mk(func(q *dns.Msg) { // FORMERR: the full path's
			q.SetEdns0(1232, false)
			q.IsEdns0().Option = []dns.EDNS0{&dns.EDNS0_COOKIE{Code: dns.EDNS0COOKIE, Cookie: "010203040506070809101112"}}
		}),
		"two cookies": mk(func(q *dns.Msg) {
			q.SetEdns0(1232, false)
			co := &dns.EDNS0_COOKIE{Code: dns.EDNS0COOKIE, Cookie: "0102030405060708"}
			q.IsEdns0().Option = []dns.EDNS0{co, co}
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
		"trailing": append(mk(func(*dns.Msg) {}), 0),
		"short":    mk(func(*dns.Msg) {})[:14],
	} {
		require.False(t, parseQuery(w, new(query)), name)
	}
}

// FuzzFastPath: for any query the fast path takes, it answers what the
// full path answers.
func FuzzFastPath(f *testing.F) {
	for i, q := range fastQueries() {
		if i%7 == 0 {
			w, _ := q.Pack()
			f.Add(w, false)
		}
	}
	// DNAME and escaped names, each seeded (issue 17).
	for _, n := range []string{"www.x.d.example.net.", strings.Repeat("y", 63) + ".long.example.net.",
		`\#esc.example.net.`, `e\.x.example.net.`, `q.\#w.example.net.`, "esccname.example.net.", "nope.example.org."} {
		q := new(dns.Msg).SetQuestion(n, dns.TypeA)
		q.SetEdns0(1232, false)
		w, _ := q.Pack()
		f.Add(w, false)
	}
	h := newTestHandler(f, Config{})
	h.now = fixedNow
	f.Fuzz(func(t *testing.T, wire []byte, tcp bool) {
		var fq query
		if !parseQuery(wire, &fq) {
			return
		}
		slow := h.slowWire(wire, testClient, tcp, nil)
		for range 2 {
			got, ok := h.fastAnswer(&fq, testClient, tcp, nil)
			if !ok {
				return
			}
			require.Equal(t, normalized(t, slow), normalized(t, got))
		}
	})
}

// fixedNow is the clock of handlers whose fast and full answers are
// compared: the cookies they make carry the time.
func fixedNow() time.Time { return time.Unix(1_800_000_000, 0) }

// TestFastPathCookies: the fast path answers a query with a DNS cookie as
// the full path does: a fresh server cookie of ours is echoed, an old,
// foreign or missing one is replaced by one made now; and it takes such
// queries (BIND's resolvers send a cookie with every query).
func TestFastPathCookies(t *testing.T) {
	h := newTestHandler(t, Config{CookieSecret: []byte("0123456789abcdef")})
	now := fixedNow()
	h.now = func() time.Time { return now }
	ask := func(cookie string, client netip.Addr) string {
		t.Helper()
		q := ecsQuery("www.example.net.", dns.TypeA, nil)
		q.IsEdns0().Option = []dns.EDNS0{&dns.EDNS0_COOKIE{Code: dns.EDNS0COOKIE, Cookie: cookie}}
		wire, err := q.Pack()
		require.NoError(t, err)
		var fq query
		require.True(t, parseQuery(wire, &fq))
		got, ok := h.fastAnswer(&fq, client, false, nil)
		require.True(t, ok, "the fast path answers it")
		require.Equal(t, normalized(t, h.slowWire(wire, client, false, nil)), normalized(t, got))
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
