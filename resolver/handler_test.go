package resolver

import (
	"net"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/geodns/geodns/resolver/dnstest"
	"github.com/geodns/geodns/route"
	"github.com/geodns/geodns/zones"
	"github.com/miekg/dns"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/stretchr/testify/require"
)

// bigTXT is six distinct 200-byte strings: too much for 512 or 1232 bytes.
var bigTXT = func() []string {
	var out []string
	for _, c := range "abcdef" {
		out = append(out, strings.Repeat(string(c), 200))
	}
	return out
}()

var testZone = `
ttl: 300
soa: {ns: ns1.example.net., mbox: hostmaster.example.net., serial: 42, minttl: 60}
records:
  "@": {NS: [ns1.example.net., ns.other.org.], MX: ["10 mail"]}
  ns1: {A: [192.0.2.1]}
  mail: {A: [192.0.2.25], AAAA: ["2001:db8::25"]}
  www: {A: [192.0.2.80, 192.0.2.81], AAAA: ["2001:db8::80"], ttl: 120}
  a.b.c: {TXT: [deep]}
  alias: {CNAME: www}
  chain: {CNAME: alias}
  dangling: {CNAME: nothere}
  away: {CNAME: www.example.org.}
  "*.wild": {A: [192.0.2.100], MX: ["10 mail"]}
  x.wild: {TXT: [not from the wildcard]}
  y.z.wild: {TXT: [y]}
  "*.cn": {CNAME: www}
  sub: {NS: [ns.sub, ns.other.org.], DS: ["12345 13 2 8C5A6F3F0E5C4A8B2E2B0F4B8C41A1A2F3E6B7C8D9E0F1A2B3C4D5E6F7A8B9C0"]}
  ns.sub: {A: [192.0.2.53]}
  big: {TXT: [` + strings.Join(bigTXT, ", ") + `]}
  svc: {service: web}
  svcalias: {CNAME: svc}
  d: {DNAME: c}
  long: {DNAME: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa.aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa.aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa}
  '\#esc': {TXT: [hash]}
  'e\.x': {A: [192.0.2.7]}
  '*.\#w': {TXT: [below an escaped label]}
  esccname: {CNAME: '\035esc'}
sites:
  east: {lat: 39, lon: -77}
  west: {lat: 37, lon: -122}
services:
  web:
    ttl: 20
    endpoints:
      - {site: east, address: 192.0.2.10}
      - {site: east, address: 192.0.2.11}
      - {site: west, address: 198.51.100.10}
      - {site: west, address: "2001:db8::10"}
`

// testClient is the source address of queries in these tests.
var testClient = netip.MustParseAddr("127.0.0.1")

func newTestHandler(t testing.TB, cfg Config) *Handler {
	t.Helper()
	z, err := zones.Compile("example.net.yaml", []byte(testZone), "example.net.", time.Unix(1700000000, 0), nil)
	require.NoError(t, err)
	var set atomic.Pointer[zones.Set]
	set.Store(zones.NewSet(z))
	return NewHandler(&set, &route.Router{}, cfg, nil)
}

var (
	soaNeg = "example.net. 60 IN SOA ns1.example.net. hostmaster.example.net. 42 3600 600 1209600 60"
	sub    = dnstest.RRs("sub.example.net. 300 IN NS ns.sub.example.net.", "sub.example.net. 300 IN NS ns.other.org.")
	glue   = dnstest.RRs("ns.sub.example.net. 300 IN A 192.0.2.53")
)

func TestAnswer(t *testing.T) {
	h := newTestHandler(t, Config{ServerID: "ns-test-1"})
	rr, rrs := dnstest.RR, dnstest.RRs
	cases := []dnstest.Case{
		{Name: "positive", Qname: "www.example.net.", Qtype: dns.TypeA, AA: true,
			Answer: rrs("www.example.net. 120 IN A 192.0.2.80", "www.example.net. 120 IN A 192.0.2.81")},
		{Name: "case-insensitive, question echoed", Qname: "WwW.ExAmple.NET.", Qtype: dns.TypeAAAA, AA: true,
			Answer: rrs("www.example.net. 120 IN AAAA 2001:db8::80")},
		{Name: "MX with additional addresses", Qname: "example.net.", Qtype: dns.TypeMX, AA: true,
			Answer: rrs("example.net. 300 IN MX 10 mail.example.net."),
			Extra:  rrs("mail.example.net. 300 IN A 192.0.2.25", "mail.example.net. 300 IN AAAA 2001:db8::25")},
		{Name: "NXDOMAIN with negative TTL SOA", Qname: "nope.example.net.", Qtype: dns.TypeA, AA: true,
			Rcode: dns.RcodeNameError, Ns: rrs(soaNeg)},
		{Name: "NODATA", Qname: "www.example.net.", Qtype: dns.TypeTXT, AA: true, Ns: rrs(soaNeg)},
		{Name: "empty non-terminal is NODATA", Qname: "b.c.example.net.", Qtype: dns.TypeA, AA: true, Ns: rrs(soaNeg)},
		{Name: "below a leaf is NXDOMAIN", Qname: "x.www.example.net.", Qtype: dns.TypeA, AA: true,
			Rcode: dns.RcodeNameError, Ns: rrs(soaNeg)},
		{Name: "CNAME chain followed", Qname: "chain.example.net.", Qtype: dns.TypeA, AA: true,
			Answer: rrs("chain.example.net. 300 IN CNAME alias.example.net.", "alias.example.net. 300 IN CNAME www.example.net.",
				"www.example.net. 120 IN A 192.0.2.80", "www.example.net. 120 IN A 192.0.2.81")},
		{Name: "CNAME asked for", Qname: "alias.example.net.", Qtype: dns.TypeCNAME, AA: true,
			Answer: rrs("alias.example.net. 300 IN CNAME www.example.net.")},
		{Name: "CNAME to NODATA", Qname: "alias.example.net.", Qtype: dns.TypeMX, AA: true,
			Answer: rrs("alias.example.net. 300 IN CNAME www.example.net."), Ns: rrs(soaNeg)},
		{Name: "dangling CNAME is NXDOMAIN (RFC 6604)", Qname: "dangling.example.net.", Qtype: dns.TypeA, AA: true,
			Rcode: dns.RcodeNameError, Answer: rrs("dangling.example.net. 300 IN CNAME nothere.example.net."), Ns: rrs(soaNeg)},
		{Name: "CNAME out of zone stops", Qname: "away.example.net.", Qtype: dns.TypeA, AA: true,
			Answer: rrs("away.example.net. 300 IN CNAME www.example.org.")},
		{Name: "wildcard synthesis", Qname: "foo.wild.example.net.", Qtype: dns.TypeA, AA: true,
			Answer: rrs("foo.wild.example.net. 300 IN A 192.0.2.100")},
		{Name: "wildcard two labels deep", Qname: "a.b.wild.example.net.", Qtype: dns.TypeMX, AA: true,
			Answer: rrs("a.b.wild.example.net. 300 IN MX 10 mail.example.net."),
			Extra:  rrs("mail.example.net. 300 IN A 192.0.2.25", "mail.example.net. 300 IN AAAA 2001:db8::25")},
		{Name: "wildcard NODATA", Qname: "foo.wild.example.net.", Qtype: dns.TypeAAAA, AA: true, Ns: rrs(soaNeg)},
		{Name: "existing name blocks the wildcard", Qname: "x.wild.example.net.", Qtype: dns.TypeA, AA: true, Ns: rrs(soaNeg)},
		{Name: "empty non-terminal blocks the wildcard", Qname: "z.wild.example.net.", Qtype: dns.TypeA, AA: true, Ns: rrs(soaNeg)},
		{Name: "below an ENT the wildcard does not apply", Qname: "q.z.wild.example.net.", Qtype: dns.TypeA, AA: true,
			Rcode: dns.RcodeNameError, Ns: rrs(soaNeg)},
		{Name: "wildcard CNAME followed", Qname: "any.cn.example.net.", Qtype: dns.TypeAAAA, AA: true,
			Answer: rrs("any.cn.example.net. 300 IN CNAME www.example.net.", "www.example.net. 120 IN AAAA 2001:db8::80")},
		{Name: "referral with glue", Qname: "host.sub.example.net.", Qtype: dns.TypeA, Ns: sub, Extra: glue},
		{Name: "referral at the cut", Qname: "sub.example.net.", Qtype: dns.TypeA, Ns: sub, Extra: glue},
		{Name: "NS at the cut is a referral", Qname: "sub.example.net.", Qtype: dns.TypeNS, Ns: sub, Extra: glue},
		{Name: "DS at the cut from the parent", Qname: "sub.example.net.", Qtype: dns.TypeDS, AA: true,
			Answer: rrs("sub.example.net. 300 IN DS 12345 13 2 8C5A6F3F0E5C4A8B2E2B0F4B8C41A1A2F3E6B7C8D9E0F1A2B3C4D5E6F7A8B9C0")},
		{Name: "glue is not answered authoritatively", Qname: "ns.sub.example.net.", Qtype: dns.TypeA, Ns: sub, Extra: glue},
		{Name: "service name", Qname: "svc.example.net.", Qtype: dns.TypeA, AA: true,
			Answer: rrs("svc.example.net. 20 IN A 192.0.2.10", "svc.example.net. 20 IN A 192.0.2.11")},
		{Name: "service name, IPv6 from the first site that has it", Qname: "svc.example.net.", Qtype: dns.TypeAAAA, AA: true,
			Answer: rrs("svc.example.net. 20 IN AAAA 2001:db8::10")},
		{Name: "service name NODATA for other types", Qname: "svc.example.net.", Qtype: dns.TypeTXT, AA: true, Ns: rrs(soaNeg)},
		{Name: "CNAME to a service", Qname: "svcalias.example.net.", Qtype: dns.TypeA, AA: true,
			Answer: rrs("svcalias.example.net. 300 IN CNAME svc.example.net.", "svc.example.net. 20 IN A 192.0.2.10", "svc.example.net. 20 IN A 192.0.2.11")},
		{Name: "ANY over UDP: one RRset (RFC 8482)", Qname: "www.example.net.", Qtype: dns.TypeANY, AA: true,
			Answer: rrs("www.example.net. 120 IN A 192.0.2.80", "www.example.net. 120 IN A 192.0.2.81")},
		{Name: "ANY over TCP: all", Qname: "www.example.net.", Qtype: dns.TypeANY, TCP: true, AA: true,
			Answer: rrs("www.example.net. 120 IN A 192.0.2.80", "www.example.net. 120 IN A 192.0.2.81", "www.example.net. 120 IN AAAA 2001:db8::80")},
		{Name: "outside our zones: REFUSED", Qname: "www.example.org.", Qtype: dns.TypeA, Rcode: dns.RcodeRefused},
		{Name: "parent of our zone: REFUSED", Qname: "net.", Qtype: dns.TypeNS, Rcode: dns.RcodeRefused},
		{Name: "AXFR refused", Qname: "example.net.", Qtype: dns.TypeAXFR, TCP: true, Rcode: dns.RcodeRefused},
		{Name: "EDNS echoed", Qname: "www.example.net.", Qtype: dns.TypeAAAA, EDNS: 4096, DO: true, AA: true,
			Answer: rrs("www.example.net. 120 IN AAAA 2001:db8::80")},
		{Name: "EDNS version 1: BADVERS", Qname: "www.example.net.", Qtype: dns.TypeA, EDNS: 1232, Ver: 1, Rcode: dns.RcodeBadVers},
		{Name: "too big for 512: TC", Qname: "big.example.net.", Qtype: dns.TypeTXT, AA: true, TC: true},
		{Name: "too big for 1232: TC", Qname: "big.example.net.", Qtype: dns.TypeTXT, EDNS: 4096, AA: true, TC: true},
		{Name: "fits over TCP", Qname: "big.example.net.", Qtype: dns.TypeTXT, TCP: true, AA: true, Answer: bigAnswer()},
		{Name: "CHAOS id.server", Qname: "id.server.", Qtype: dns.TypeTXT, Class: dns.ClassCHAOS, AA: true,
			Answer: []dns.RR{rr(`id.server. 0 CH TXT "ns-test-1"`)}},
		{Name: "CHAOS version.bind off by default", Qname: "version.bind.", Qtype: dns.TypeTXT, Class: dns.ClassCHAOS, Rcode: dns.RcodeRefused},
		{Name: "class HS refused", Qname: "www.example.net.", Qtype: dns.TypeA, Class: dns.ClassHESIOD, Rcode: dns.RcodeRefused},
	}
	for _, c := range cases {
		t.Run(c.Name, func(t *testing.T) {
			resp := h.Answer(c.Msg(), testClient, c.TCP)
			// Every response must survive packing at its size limit.
			_, err := resp.Pack()
			require.NoError(t, err)
			dnstest.Check(t, c, resp)
			require.Equal(t, c.EDNS > 0, resp.IsEdns0() != nil, "OPT in the response iff in the query")
		})
	}
}

func bigAnswer() []dns.RR {
	var out []dns.RR
	for _, s := range bigTXT {
		out = append(out, dnstest.RR(`big.example.net. 300 IN TXT "`+s+`"`))
	}
	return out
}

func TestAnswerMalformed(t *testing.T) {
	h := newTestHandler(t, Config{})
	t.Run("no question: FORMERR", func(t *testing.T) {
		m := new(dns.Msg)
		m.Id = 7
		require.Equal(t, dns.RcodeFormatError, h.Answer(m, testClient, false).Rcode)
	})
	t.Run("two questions: FORMERR", func(t *testing.T) {
		m := new(dns.Msg).SetQuestion("www.example.net.", dns.TypeA)
		m.Question = append(m.Question, m.Question[0])
		require.Equal(t, dns.RcodeFormatError, h.Answer(m, testClient, false).Rcode)
	})
	t.Run("two OPT records: FORMERR", func(t *testing.T) {
		m := new(dns.Msg).SetQuestion("www.example.net.", dns.TypeA)
		m.SetEdns0(1232, false)
		m.SetEdns0(1232, false)
		m.Extra = append(m.Extra, &dns.OPT{Hdr: dns.RR_Header{Name: ".", Rrtype: dns.TypeOPT}})
		require.Equal(t, dns.RcodeFormatError, h.Answer(m, testClient, false).Rcode)
	})
	t.Run("NOTIFY: NOTIMP", func(t *testing.T) {
		m := new(dns.Msg).SetNotify("example.net.")
		resp := h.Answer(m, testClient, false)
		require.Equal(t, dns.RcodeNotImplemented, resp.Rcode)
		require.Equal(t, dns.OpcodeNotify, resp.Opcode)
	})
	t.Run("no recursion offered", func(t *testing.T) {
		m := new(dns.Msg).SetQuestion("www.example.net.", dns.TypeA)
		m.RecursionDesired = true
		resp := h.Answer(m, testClient, false)
		require.False(t, resp.RecursionAvailable)
		require.True(t, resp.RecursionDesired, "RD is copied (RFC 1035 4.1.1)")
	})
}

func TestNSID(t *testing.T) {
	for _, id := range []string{"", "ns1.fra"} {
		h := newTestHandler(t, Config{ServerID: id})
		m := new(dns.Msg).SetQuestion("www.example.net.", dns.TypeA)
		m.SetEdns0(1232, false)
		m.IsEdns0().Option = append(m.IsEdns0().Option, &dns.EDNS0_NSID{Code: dns.EDNS0NSID})
		opt := h.Answer(m, testClient, false).IsEdns0()
		require.NotNil(t, opt)
		var got string
		for _, o := range opt.Option {
			if n, ok := o.(*dns.EDNS0_NSID); ok {
				got = n.Nsid
			}
		}
		require.Equal(t, hexString(id), got, "NSID is the server id, hex-encoded on the wire")
	}
}

func TestServeDNSRecoversPanics(t *testing.T) {
	h := NewHandler(nil, nil, Config{}, nil) // no zone source: the lookup panics
	rec := &dnstest.Recorder{}
	h.ServeDNS(rec, new(dns.Msg).SetQuestion("www.example.net.", dns.TypeA))
	require.Equal(t, 1, rec.Writes)
	require.Equal(t, dns.RcodeServerFailure, rec.Msg.Rcode)
	require.Equal(t, uint64(1), h.Panics())
}

func TestServeDNSWritesOnce(t *testing.T) {
	h := newTestHandler(t, Config{})
	rec := &dnstest.Recorder{Remote: &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 4000}}
	h.ServeDNS(rec, new(dns.Msg).SetQuestion("www.example.net.", dns.TypeANY))
	require.Equal(t, 1, rec.Writes)
	require.Len(t, rec.Msg.Answer, 3, "TCP client gets the full ANY answer")
}

// TestConcurrentAnswersShareNothing runs the answers that start from the
// zone's own record slices (CNAME into a service, ANY, MX with additional
// data) concurrently: under -race, any write into shared zone data fails.
func TestConcurrentAnswersShareNothing(t *testing.T) {
	h := newTestHandler(t, Config{})
	qs := []*dns.Msg{
		new(dns.Msg).SetQuestion("svcalias.example.net.", dns.TypeA),
		new(dns.Msg).SetQuestion("chain.example.net.", dns.TypeA),
		new(dns.Msg).SetQuestion("www.example.net.", dns.TypeANY),
		new(dns.Msg).SetQuestion("example.net.", dns.TypeMX),
		new(dns.Msg).SetQuestion("x.wild.example.net.", dns.TypeA),
	}
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 500 {
				q := qs[(i+w)%len(qs)]
				m := h.Answer(q, testClient, w%2 == 0)
				if _, err := m.Pack(); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	a := h.Answer(new(dns.Msg).SetQuestion("svcalias.example.net.", dns.TypeA), testClient, false)
	require.Len(t, a.Answer, 3, "the CNAME and the service's two addresses, unchanged by the load")
}

// TestMetricsCountEveryOutcome: malformed and BADVERS queries are counted
// too, not only the ones that reach a zone.
func TestMetricsCountEveryOutcome(t *testing.T) {
	reg := prometheus.NewRegistry()
	h := newTestHandler(t, Config{Metrics: NewMetrics(reg)})
	h.Answer(new(dns.Msg).SetQuestion("www.example.net.", dns.TypeA), testClient, false)
	two := new(dns.Msg).SetQuestion("www.example.net.", dns.TypeA)
	two.Question = append(two.Question, two.Question[0])
	h.Answer(two, testClient, false)
	v1 := new(dns.Msg).SetQuestion("www.example.net.", dns.TypeA)
	v1.SetEdns0(1232, false)
	v1.IsEdns0().SetVersion(1)
	h.Answer(v1, testClient, false)
	m := h.cfg.Metrics
	require.Equal(t, 1.0, testutil.ToFloat64(m.queries.WithLabelValues("example.net.", "A", "NOERROR")))
	require.Equal(t, 1.0, testutil.ToFloat64(m.queries.WithLabelValues("-", "A", "FORMERR")))
	require.Equal(t, 1.0, testutil.ToFloat64(m.queries.WithLabelValues("-", "A", "BADVERS")))
}
