package resolver

import (
	"fmt"
	"net/netip"
	"os"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/geodns/geodns/route"
	"github.com/geodns/geodns/zones"
	"github.com/miekg/dns"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/stretchr/testify/require"
)

// Tests of the query path's hardening (issue 16, items 12-16): panics,
// the answer cache's budget, refusals, RRL's table, and OPT placement.

// panicRouter panics on every service name.
type panicRouter struct{ noRouter }

func (panicRouter) Route(string, *zones.Service, netip.Prefix, bool) route.Decision {
	panic("router bug")
}

// TestServeWirePanicIsServfail: a panic in the engine (the router of a
// service name, in a UDP reader) is recovered at the entry, counted and
// answered SERVFAIL, over UDP and TCP; the server keeps serving. Before,
// the only recover sat on the full path and the panic killed the process.
func TestServeWirePanicIsServfail(t *testing.T) {
	z, err := zones.Compile("example.net.yaml", []byte(testZone), "example.net.", time.Unix(1700000000, 0), nil)
	require.NoError(t, err)
	var set atomic.Pointer[zones.Set]
	set.Store(zones.NewSet(z))
	h := NewHandler(&set, panicRouter{}, Config{Metrics: NewMetrics(nil)}, nil)
	addr := serveHandler(t, h, ServeOptions{})
	for i, proto := range []string{"udp", "tcp"} {
		c := &dns.Client{Net: proto, Timeout: 2 * time.Second}
		q := new(dns.Msg).SetQuestion("SVC.example.net.", dns.TypeA)
		q.SetEdns0(1232, false)
		r, _, err := c.Exchange(q, addr)
		require.NoError(t, err, proto)
		require.Equal(t, dns.RcodeServerFailure, r.Rcode, proto)
		require.Equal(t, q.Question, r.Question, proto)
		require.NotNil(t, r.IsEdns0(), "an EDNS query gets an OPT record back")
		require.Equal(t, uint64(i+1), h.Panics())
		r, _, err = c.Exchange(new(dns.Msg).SetQuestion("www.example.net.", dns.TypeA), addr)
		require.NoError(t, err, "still serving after the panic")
		require.Len(t, r.Answer, 2)
	}
	require.Equal(t, 2.0, testutil.ToFloat64(h.cfg.Metrics.panics), "counted in geodns_panics_total")
}

// heapInUse returns the live heap after a collection, and the process's
// resident set, in bytes.
func heapInUse() (heap, rss uint64) {
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	if b, err := os.ReadFile("/proc/self/statm"); err == nil {
		var size, res uint64
		fmt.Sscan(string(b), &size, &res)
		rss = res * uint64(os.Getpagesize())
	}
	return ms.HeapAlloc, rss
}

// bigWildZone is the test zone with a wildcard answering a TXT of about
// 40 KB: every name under it is a distinct large answer (over TCP).
func bigWildZone(t testing.TB) *atomic.Pointer[zones.Set] {
	var strs []string
	for i := range 160 {
		strs = append(strs, fmt.Sprintf("%03d%s", i, strings.Repeat("x", 250)))
	}
	src := strings.Replace(testZone, "records:\n", "records:\n  \"*.huge\": {TXT: ["+strings.Join(strs, ", ")+"]}\n", 1)
	z, err := zones.Compile("example.net.yaml", []byte(src), "example.net.", time.Unix(1700000000, 0), nil)
	require.NoError(t, err)
	var set atomic.Pointer[zones.Set]
	set.Store(zones.NewSet(z))
	return &set
}

// TestAnswerCacheBoundedInBytes: distinct names under a wildcard with a
// large TXT, over TCP, fill the cache only up to its budget (the default,
// 64 MiB). Before, every name was kept until the next reload: 2,500 names
// of 40 KB held about 100 MB.
func TestAnswerCacheBoundedInBytes(t *testing.T) {
	set := bigWildZone(t)
	h := NewHandler(set, &route.Router{}, Config{}, nil)
	heap0, rss0 := heapInUse()
	buf := make([]byte, 0, 65535)
	const names = 2500
	for i := range names {
		q := new(dns.Msg).SetQuestion(fmt.Sprintf("n%d.huge.example.net.", i), dns.TypeTXT)
		wire, err := q.Pack()
		require.NoError(t, err)
		resp := h.ServeWire(wire, testClient, true, buf)
		require.Greater(t, len(resp), 40000)
	}
	heap1, rss1 := heapInUse()
	grew := int64(heap1) - int64(heap0)
	t.Logf("%d names of about 40 KB over TCP: heap %d -> %d MiB (+%d MiB), RSS %d -> %d MiB",
		names, heap0>>20, heap1>>20, grew>>20, rss0>>20, rss1>>20)
	require.Less(t, grew, int64(64<<20+8<<20), "the cache keeps to its budget (64 MiB by default)")
	runtime.KeepAlive(h)
}

// TestAnswerCacheMillionNames: a million distinct names (a random-subdomain
// flood: NXDOMAIN each) keep the cache within its budget, and the heap
// flat once the budget is reached.
func TestAnswerCacheMillionNames(t *testing.T) {
	const budget = 8 << 20
	h := newTestHandler(t, Config{CacheBytes: budget})
	q := new(dns.Msg).SetQuestion("r0000000000.example.net.", dns.TypeA)
	q.SetEdns0(1232, false)
	wire, err := q.Pack()
	require.NoError(t, err)
	digits := wire[14:24]
	buf := make([]byte, 0, 4096)
	var heaps []uint64
	for n := range 1_000_000 {
		x := n
		for i := len(digits) - 1; i >= 0; i-- {
			digits[i] = byte('0' + x%10)
			x /= 10
		}
		resp := h.ServeWire(wire, testClient, false, buf)
		if resp[3]&0xF != dns.RcodeNameError {
			t.Fatalf("name %d: rcode %d", n, resp[3]&0xF)
		}
		if (n+1)%100_000 == 0 {
			heap, rss := heapInUse()
			c := h.fast.Load()
			t.Logf("%7d names: cache %5.2f MiB (budget %d MiB), heap %6.2f MiB, RSS %6.1f MiB",
				n+1, float64(c.bytes())/(1<<20), budget>>20, float64(heap)/(1<<20), float64(rss)/(1<<20))
			require.LessOrEqual(t, c.bytes(), int64(budget))
			heaps = append(heaps, heap)
		}
	}
	// From 300,000 names on the cache is full: the heap no longer grows.
	lo, hi := heaps[2], heaps[2]
	for _, v := range heaps[2:] {
		lo, hi = min(lo, v), max(hi, v)
	}
	require.Less(t, hi-lo, uint64(4<<20), "heap flat once the cache is full: %d..%d", lo, hi)
}

// TestRefusedNameAnsweredOnce: a name the cache does not keep (a CNAME
// into a service, an answer that is truncated) is answered by the engine
// once: no more work (allocations) than the old full path (the oracle).
// Before, every such query tried the fast path first, re-running the full
// answer to fill it.
func TestRefusedNameAnsweredOnce(t *testing.T) {
	h := newTestHandler(t, Config{})
	for _, c := range []struct {
		name  string
		qtype uint16
		edns  bool
	}{{"svcalias.example.net.", dns.TypeA, true}, {"big.example.net.", dns.TypeTXT, false}, {"big.example.net.", dns.TypeTXT, true}} {
		q := new(dns.Msg).SetQuestion(c.name, c.qtype)
		if c.edns {
			q.SetEdns0(1232, false)
		}
		wire, err := q.Pack()
		require.NoError(t, err)
		buf := make([]byte, 0, 4096)
		h.ServeWire(wire, testClient, false, buf) // the cache learns
		full := testing.AllocsPerRun(200, func() { oracleWire(h, wire, testClient, false) })
		got := testing.AllocsPerRun(200, func() { h.ServeWire(wire, testClient, false, buf) })
		t.Logf("%s %s edns=%v: %.0f allocations, full path %.0f", c.name, dns.TypeToString[c.qtype], c.edns, got, full)
		require.LessOrEqual(t, got, full, "%s: answered once, by the full path", c.name)
	}
}

// TestRRLTableFixedSize: clients from 20,000 networks asking one name
// leave the table at its configured size. Before, every account was kept
// (only expired ones were evicted, then the insert happened anyway), in
// the one shard the name picked, and each check scanned them.
func TestRRLTableFixedSize(t *testing.T) {
	h := newTestHandler(t, Config{RRL: RRLConfig{ResponsesPerSecond: 100, TableSize: 1024}})
	q := new(dns.Msg).SetQuestion("www.example.net.", dns.TypeA)
	wire, err := q.Pack()
	require.NoError(t, err)
	buf := make([]byte, 0, 4096)
	h.ServeWire(wire, testClient, false, buf)
	heap0, _ := heapInUse()
	for i := range 20_000 {
		client := netip.AddrFrom4([4]byte{100, byte(i >> 8), byte(i), 1})
		require.NotNil(t, h.ServeWire(wire, client, false, buf))
	}
	heap1, _ := heapInUse()
	t.Logf("20,000 client networks: heap %d -> %d KiB", heap0>>10, heap1>>10)
	require.Less(t, int64(heap1)-int64(heap0), int64(512<<10), "the table does not grow")
	runtime.KeepAlive(h)
}

// TestRRLKeepsCache: with RRL on, a UDP query is still answered from
// the cache (no allocation), and limited there. Before, RRL sent every UDP
// query down the full path.
func TestRRLKeepsCache(t *testing.T) {
	h := newTestHandler(t, Config{RRL: RRLConfig{ResponsesPerSecond: 1 << 20}})
	q := new(dns.Msg).SetQuestion("www.example.net.", dns.TypeA)
	q.SetEdns0(1232, false)
	wire, err := q.Pack()
	require.NoError(t, err)
	buf := make([]byte, 0, 4096)
	h.ServeWire(wire, testClient, false, buf)
	allocs := testing.AllocsPerRun(1000, func() { h.ServeWire(wire, testClient, false, buf) })
	require.Zero(t, allocs)
}

// TestRRLMatchesOracle: the engine limits as the old full path did:
// the same responses sent, slipped (truncated, OPT kept) and dropped, for
// answers, NXDOMAIN, NODATA, referrals and errors, with cookies and ECS.
func TestRRLMatchesOracle(t *testing.T) {
	cfg := Config{RRL: RRLConfig{ResponsesPerSecond: 3, Slip: 2}, CookieSecret: []byte("0123456789abcdef")}
	fast, full := newTestHandler(t, cfg), newTestHandler(t, cfg)
	fast.now, full.now = fixedNow, fixedNow
	var qs []*dns.Msg
	for _, n := range []string{"www.example.net.", "nope.example.net.", "other.example.net.", "sub.example.net.", "example.org."} {
		qs = append(qs, new(dns.Msg).SetQuestion(n, dns.TypeA))
		q := ecsQuery(n, dns.TypeTXT, subnet("198.51.100.0/24"))
		q.IsEdns0().Option = append([]dns.EDNS0{&dns.EDNS0_COOKIE{Code: dns.EDNS0COOKIE, Cookie: "0102030405060708"}}, q.IsEdns0().Option...)
		qs = append(qs, q)
	}
	sent, slipped, dropped := 0, 0, 0
	for i := range 10 {
		for _, q := range qs {
			q.Id = uint16(i)
			wire, err := q.Pack()
			require.NoError(t, err)
			want := oracleWire(full, wire, testClient, false)
			got := fast.ServeWire(wire, testClient, false, make([]byte, 0, 512))
			if want == nil {
				require.Nil(t, got, "%v #%d: dropped", q.Question[0], i)
				dropped++
				continue
			}
			require.NotNil(t, got, "%v #%d", q.Question[0], i)
			require.Equal(t, normalized(t, want), normalized(t, got), "%v #%d", q.Question[0], i)
			if got[2]&0x02 != 0 {
				slipped++
			} else {
				sent++
			}
		}
	}
	t.Logf("sent %d, slipped %d, dropped %d", sent, slipped, dropped)
	require.Positive(t, slipped)
	require.Positive(t, dropped)
}

// TestOPTOutsideAdditionalIsFormErr: an OPT record in the answer or
// authority section, or two in the additional section, is FORMERR (RFC
// 6891 6.1.1), as NSD and Knot answer; through the engine and the oracle
// alike. Before, an OPT in answer or authority was
// ignored (NOERROR).
func TestOPTOutsideAdditionalIsFormErr(t *testing.T) {
	h := newTestHandler(t, Config{})
	opt := func() *dns.OPT {
		o := &dns.OPT{Hdr: dns.RR_Header{Name: ".", Rrtype: dns.TypeOPT}}
		o.SetUDPSize(1232)
		return o
	}
	for name, f := range map[string]func(*dns.Msg){
		"in answer":    func(q *dns.Msg) { q.Answer = append(q.Answer, opt()) },
		"in authority": func(q *dns.Msg) { q.Ns = append(q.Ns, opt()) },
		"in answer, with one in additional": func(q *dns.Msg) {
			q.Answer = append(q.Answer, opt())
			q.Extra = append(q.Extra, opt())
		},
		"two in additional": func(q *dns.Msg) { q.Extra = append(q.Extra, opt(), opt()) },
	} {
		q := new(dns.Msg).SetQuestion("www.example.net.", dns.TypeA)
		f(q)
		wire, err := q.Pack()
		require.NoError(t, err, name)
		for _, tcp := range []bool{false, true} {
			for _, resp := range [][]byte{h.ServeWire(wire, testClient, tcp, nil), oracleWire(h, wire, testClient, tcp)} {
				m := new(dns.Msg)
				require.NoError(t, m.Unpack(resp), name)
				require.Equal(t, dns.RcodeFormatError, m.Rcode, name)
			}
		}
	}
}

// TestFullCacheAdmitsOnSecondAsk: once the cache is full, a flood of
// questions each asked once (here: one existing name, 50,000 types) is
// answered by the full path without entering the cache, so it neither
// costs an insertion and an eviction per query nor pushes out the answers
// clients do ask for again; a question asked a second time is admitted.
func TestFullCacheAdmitsOnSecondAsk(t *testing.T) {
	const budget = 1 << 20
	h := newTestHandler(t, Config{CacheBytes: budget})
	buf := make([]byte, 0, 4096)
	ask := func(name string, qtype uint16) {
		q := new(dns.Msg).SetQuestion(name, qtype)
		wire, err := q.Pack()
		require.NoError(t, err)
		require.NotNil(t, h.ServeWire(wire, testClient, false, buf))
	}
	cached := func(name string, qtype uint16) *entry { return h.fast.Load().get(keyOfType(t, name, qtype)) }
	ask("www.example.net.", dns.TypeA)
	hot := cached("www.example.net.", dns.TypeA)
	require.NotNil(t, hot, "an empty cache admits at first sight")
	for i := range 50_000 { // far more than the budget holds
		ask("www.example.net.", uint16(1000+i))
	}
	require.LessOrEqual(t, h.fast.Load().bytes(), int64(budget))
	require.Nil(t, cached("www.example.net.", 1000+49_999), "a full cache admits no question asked once")
	require.Same(t, hot, cached("www.example.net.", dns.TypeA), "the flood did not evict the name asked for")
	ask("www.example.net.", 60_000)
	require.Nil(t, cached("www.example.net.", 60_000), "asked once while full: answered by the full path")
	ask("www.example.net.", 60_000)
	require.NotNil(t, cached("www.example.net.", 60_000), "asked again: admitted")
}

// TestAbsentNamesStayOutOfTheCache: a random-name flood (names that do not
// exist, below the apex and below a wildcard) is answered from one
// template per encloser: the cache holds a handful of entries after
// 50,000 names, not one per name.
func TestAbsentNamesStayOutOfTheCache(t *testing.T) {
	h := newTestHandler(t, Config{})
	buf := make([]byte, 0, 4096)
	for i := range 50_000 {
		name := fmt.Sprintf("flood%d.example.net.", i)
		if i%2 == 1 {
			name = fmt.Sprintf("flood%d.wild.example.net.", i)
		}
		q := new(dns.Msg).SetQuestion(name, dns.TypeA)
		wire, err := q.Pack()
		require.NoError(t, err)
		require.NotNil(t, h.ServeWire(wire, testClient, false, buf))
	}
	c := h.fast.Load()
	n := 0
	for i := range c.shards {
		c.shards[i].mu.Lock()
		n += c.shards[i].tab.Load().live
		c.shards[i].mu.Unlock()
	}
	require.LessOrEqual(t, n, 4, "entries after 50,000 absent names")
	require.Less(t, c.bytes(), int64(8<<10))
	// Each template is where the cache's hash of its key finds it
	// (serveAbsent makes that hash from the one the zone walk made).
	for _, enc := range []string{"example.net.", "wild.example.net."} {
		k := keyOf(t, "x."+enc)
		var kb [absentKeyMax]byte
		e := c.get(absentKey(&kb, k, len(k)-3, len(k)-3-2))
		require.NotNil(t, e, enc)
		require.NotNil(t, e.absent, enc)
	}
}

// keyOf is the cache key of an A question for name over UDP.
func keyOf(t *testing.T, name string) []byte { return keyOfType(t, name, dns.TypeA) }

// keyOfType is the cache key of a question for name over UDP.
func keyOfType(t *testing.T, name string, qtype uint16) []byte {
	q := new(dns.Msg).SetQuestion(name, qtype)
	wire, err := q.Pack()
	require.NoError(t, err)
	var fq query
	require.Equal(t, parsedOK, parseQuery(wire, &fq))
	return append([]byte(nil), fq.key(false)...)
}

// TestAbsentNameAskedAgainIsCached: an absent name asked a second time
// (the template's doorkeeper) gets an entry of its own, answered as the
// template answered it; one asked once does not.
func TestAbsentNameAskedAgainIsCached(t *testing.T) {
	h := newTestHandler(t, Config{})
	buf := make([]byte, 0, 4096)
	ask := func(name string) []byte {
		q := new(dns.Msg).SetQuestion(name, dns.TypeA)
		q.Id = 7
		wire, err := q.Pack()
		require.NoError(t, err)
		resp := h.ServeWire(wire, testClient, false, buf)
		require.NotNil(t, resp)
		return append([]byte(nil), resp...)
	}
	cached := func(name string) *entry { return h.fast.Load().get(keyOf(t, name)) }
	for _, name := range []string{"typo.example.net.", "typo.wild.example.net."} {
		first := ask(name)
		require.Nil(t, cached(name), "%s asked once", name)
		require.Equal(t, first, ask(name))
		require.NotNil(t, cached(name), "%s asked again", name)
		require.Equal(t, first, ask(name), "%s from its own entry", name)
	}
}

// TestClassANYAnswersIN: a question of class * (ANY) is answered from the
// IN data, the only class served, with the question echoed, as NSD and
// Knot do (RFC 1035 3.2.5). Before, it was REFUSED.
func TestClassANYAnswersIN(t *testing.T) {
	h := newTestHandler(t, Config{})
	for _, name := range []string{"mail.example.net.", "nothere.example.net."} {
		q := new(dns.Msg).SetQuestion(name, dns.TypeA)
		q.Question[0].Qclass = dns.ClassANY
		wire, err := q.Pack()
		require.NoError(t, err)
		r := new(dns.Msg)
		require.NoError(t, r.Unpack(h.ServeWire(wire, testClient, false, nil)))
		require.Equal(t, q.Question, r.Question, "echoed")
		require.True(t, r.Authoritative)
		if name == "nothere.example.net." {
			require.Equal(t, dns.RcodeNameError, r.Rcode)
			continue
		}
		require.Equal(t, dns.RcodeSuccess, r.Rcode)
		require.Len(t, r.Answer, 1)
		require.Equal(t, "192.0.2.25", r.Answer[0].(*dns.A).A.String())
		require.Equal(t, uint16(dns.ClassINET), r.Answer[0].Header().Class)
	}
}

// TestAdditionalKeptAsFarAsItFits: an answer whose additional data does
// not all fit keeps the address RRsets that do, whole, without TC (RFC
// 2181 9), as NSD and Knot send. Before, every additional record went.
func TestAdditionalKeptAsFarAsItFits(t *testing.T) {
	var b strings.Builder
	b.WriteString("soa: {ns: ns1.m.example., mbox: h.m.example.}\nrecords:\n  \"@\": {NS: [ns1.m.example.], MX: [")
	for i := range 12 {
		if i > 0 {
			b.WriteString(", ")
		}
		fmt.Fprintf(&b, "'10 mail-server-number-%02d.m.example.'", i)
	}
	b.WriteString("]}\n  ns1: {A: [192.0.2.1]}\n")
	for i := range 12 {
		fmt.Fprintf(&b, "  mail-server-number-%02d: {A: [192.0.2.%d], AAAA: ['2001:db8::%d']}\n", i, 10+i, 10+i)
	}
	z, err := zones.Compile("m.example.yaml", []byte(b.String()), "m.example.", time.Unix(1700000000, 0), nil)
	require.NoError(t, err)
	var set atomic.Pointer[zones.Set]
	set.Store(zones.NewSet(z))
	h := NewHandler(&set, &route.Router{}, Config{}, nil)
	q := new(dns.Msg).SetQuestion("m.example.", dns.TypeMX)
	q.SetEdns0(1232, false)
	for _, size := range []uint16{700, 1232} {
		q.IsEdns0().SetUDPSize(size)
		wire, err := q.Pack()
		require.NoError(t, err)
		r := new(dns.Msg)
		out := h.ServeWire(wire, testClient, false, nil)
		require.NoError(t, r.Unpack(out))
		require.LessOrEqual(t, len(out), int(size))
		require.False(t, r.Truncated, "size %d", size)
		require.Len(t, r.Answer, 12)
		addrs := len(r.Extra) - 1 // the OPT
		t.Logf("buffer %d: %d of 24 addresses in %d bytes", size, addrs, len(out))
		if size == 1232 {
			require.Equal(t, 24, addrs)
			continue
		}
		require.Greater(t, addrs, 0, "as many as fit")
		require.Less(t, addrs, 24)
		for i := 0; i+1 < len(r.Extra)-1; i += 2 { // whole RRsets: A then AAAA per name
			require.Equal(t, r.Extra[i].Header().Name, r.Extra[i+1].Header().Name)
		}
	}
}
