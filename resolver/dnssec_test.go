package resolver

import (
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/geodns/geodns/dnssec"
	"github.com/geodns/geodns/zones"
	"github.com/miekg/dns"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/stretchr/testify/require"
)

// newSignedHandler is the test handler with example.net. signed by a real
// signer.
func newSignedHandler(t *testing.T) (*Handler, *dnssec.Manager, *prometheus.Registry) {
	t.Helper()
	reg := prometheus.NewRegistry()
	m := dnssec.NewManager(dnssec.Options{Store: dnssec.Store{Dir: t.TempDir()}, Registerer: reg})
	require.NoError(t, m.Sync([]dnssec.ZoneConfig{{Origin: "example.net."}}))
	return newTestHandler(t, Config{Signer: NewSigner(m), CookieSecret: testSecret}), m, reg
}

func doQuery(name string, qtype uint16) *dns.Msg {
	q := new(dns.Msg).SetQuestion(name, qtype)
	q.SetEdns0(4096, true)
	return q
}

// validate checks every RRset of sections against its signatures with the
// zone's DNSKEY RRset; glue (the additional section of a referral) and the
// child's NS set are not signed.
func validate(t *testing.T, keys []dns.RR, m *dns.Msg) {
	t.Helper()
	sections := [][]dns.RR{m.Answer, m.Ns}
	if m.Authoritative {
		sections = append(sections, m.Extra)
	}
	for _, sec := range sections {
		sets := map[string][]dns.RR{}
		sigs := map[string][]*dns.RRSIG{}
		for _, rr := range sec {
			h := rr.Header()
			switch x := rr.(type) {
			case *dns.OPT:
			case *dns.RRSIG:
				k := strings.ToLower(h.Name) + "/" + dns.TypeToString[x.TypeCovered]
				sigs[k] = append(sigs[k], x)
			default:
				k := strings.ToLower(h.Name) + "/" + dns.TypeToString[h.Rrtype]
				sets[k] = append(sets[k], rr)
			}
		}
		for k, set := range sets {
			if !m.Authoritative && set[0].Header().Rrtype == dns.TypeNS {
				continue // a referral's NS set is the child's
			}
			require.NotEmpty(t, sigs[k], "%s unsigned in\n%v", k, m)
			for _, s := range sigs[k] {
				var key *dns.DNSKEY
				for _, kr := range keys {
					if kr.(*dns.DNSKEY).KeyTag() == s.KeyTag {
						key = kr.(*dns.DNSKEY)
					}
				}
				require.NotNil(t, key)
				require.NoError(t, s.Verify(key, set), "%s in\n%v", k, m)
				require.True(t, s.ValidityPeriod(time.Now()))
				require.Equal(t, set[0].Header().Ttl, s.OrigTtl)
			}
		}
	}
}

func nsecOf(m *dns.Msg) *dns.NSEC {
	for _, rr := range m.Ns {
		if n, ok := rr.(*dns.NSEC); ok {
			return n
		}
	}
	return nil
}

// askTCP sends q to h as over TCP and returns the answer.
func askTCP(t *testing.T, h *Handler, q *dns.Msg) *dns.Msg {
	t.Helper()
	wire, err := q.Pack()
	require.NoError(t, err)
	m := new(dns.Msg)
	require.NoError(t, m.Unpack(h.ServeWire(wire, testClient, true, nil)))
	return m
}

func TestSignedAnswers(t *testing.T) {
	h, signer, _ := newSignedHandler(t)
	keys, _ := signer.Apex("example.net.", dns.TypeDNSKEY)
	ask := func(q *dns.Msg) *dns.Msg { t.Helper(); return askTCP(t, h, q) }
	// Every kind of answer validates.
	for _, name := range []string{"www.example.net.", "WwW.ExAmple.NET.", "example.net.", "mail.example.net.",
		"nothere.example.net.", "a.b.c.example.net.", "b.c.example.net.", "alias.example.net.", "chain.example.net.",
		"foo.wild.example.net.", "sub.example.net.", "deep.sub.example.net.", "svc.example.net.", "svcalias.example.net."} {
		for _, qt := range []uint16{dns.TypeA, dns.TypeAAAA, dns.TypeMX, dns.TypeTXT, dns.TypeNS, dns.TypeSOA, dns.TypeDS, dns.TypeDNSKEY,
			dns.TypeNSEC, dns.TypeRRSIG} {
			m := ask(doQuery(name, qt))
			validate(t, keys, m)
			require.NotEqual(t, dns.RcodeNameError, m.Rcode, "compact denial answers NOERROR")
			if len(m.Answer) == 0 && m.Authoritative {
				n := nsecOf(m)
				require.NotNil(t, n, "denial without NSEC: %v", m)
				require.NotContains(t, n.TypeBitMap, qt, "the NSEC denies the type asked")
				require.Equal(t, `\000.`+strings.ToLower(n.Hdr.Name), n.NextDomain)
			}
		}
	}
	// NXDOMAIN: NOERROR, an NSEC with NXNAME at the name; CO restores the rcode.
	m := ask(doQuery("NotHere.example.net.", dns.TypeA))
	require.Equal(t, dns.RcodeSuccess, m.Rcode)
	require.True(t, strings.EqualFold("nothere.example.net.", nsecOf(m).Hdr.Name))
	require.True(t, dnssec.IsNXName(nsecOf(m)))
	q := doQuery("nothere.example.net.", dns.TypeA)
	q.IsEdns0().SetCo()
	m = ask(q)
	require.Equal(t, dns.RcodeNameError, m.Rcode, "CO set: NXDOMAIN")
	require.True(t, m.IsEdns0().Co(), "and CO echoed")
	validate(t, keys, m)
	// NODATA at a name that exists: its types, without NXNAME.
	n := nsecOf(ask(doQuery("www.example.net.", dns.TypeMX)))
	require.False(t, dnssec.IsNXName(n))
	require.Contains(t, n.TypeBitMap, dns.TypeA)
	// A secure delegation carries its signed DS.
	m = ask(doQuery("deep.sub.example.net.", dns.TypeA))
	require.False(t, m.Authoritative)
	require.Nil(t, nsecOf(m))
	require.Len(t, sigs(m.Ns), 1)
	require.Equal(t, dns.TypeDS, sigs(m.Ns)[0].(*dns.RRSIG).TypeCovered)
	// An insecure one is proven: NS, RRSIG, NSEC and no DS.
	z, err := zones.Compile("example.net.yaml", []byte(strings.Replace(testZone, `, DS: ["12345 13 2 8C5A6F3F0E5C4A8B2E2B0F4B8C41A1A2F3E6B7C8D9E0F1A2B3C4D5E6F7A8B9C0"]`, "", 1)),
		"example.net.", time.Unix(1700000000, 0), nil)
	require.NoError(t, err)
	h.zones.Store(zones.NewSet(z))
	m = ask(doQuery("deep.sub.example.net.", dns.TypeA))
	require.False(t, m.Authoritative)
	validate(t, keys, m)
	require.Equal(t, []uint16{dns.TypeNS, dns.TypeRRSIG, dns.TypeNSEC}, nsecOf(m).TypeBitMap)
	// The NXNAME meta type is not a question (RFC 9824 3.5).
	require.Equal(t, dns.RcodeFormatError, ask(doQuery("www.example.net.", dns.TypeNXNAME)).Rcode)
	// DNSKEY without DO: the keys, no signatures.
	m = ask(new(dns.Msg).SetQuestion("example.net.", dns.TypeDNSKEY))
	require.Len(t, m.Answer, 1)
	require.IsType(t, &dns.DNSKEY{}, m.Answer[0])
}

// TestSignedNSECAndRRSIGQueries: a question for the NSEC or RRSIG records
// of a name is answered with them. It used to get NODATA whose NSEC
// listed the very type it denied, which validators reject as bogus.
func TestSignedNSECAndRRSIGQueries(t *testing.T) {
	h, signer, _ := newSignedHandler(t)
	keys, _ := signer.Apex("example.net.", dns.TypeDNSKEY)
	ask := func(q *dns.Msg) *dns.Msg { t.Helper(); return askTCP(t, h, q) }
	owned := func(m *dns.Msg, name string, qtype uint16) []dns.RR {
		var set []dns.RR
		for _, rr := range m.Answer {
			if rr.Header().Rrtype == qtype && strings.EqualFold(rr.Header().Name, name) {
				set = append(set, rr)
			}
		}
		return set
	}
	for _, name := range []string{"www.example.net.", "example.net.", "mail.example.net.", "b.c.example.net.",
		"alias.example.net.", "foo.wild.example.net.", "svc.example.net.", "nothere.example.net."} {
		t.Run(name, func(t *testing.T) {
			// The NSEC: the one the name's denials carry (for a type no
			// name has), now in the answer, signed.
			m := ask(doQuery(name, dns.TypeNSEC))
			require.Equal(t, dns.RcodeSuccess, m.Rcode)
			validate(t, keys, m)
			nsecs := owned(m, name, dns.TypeNSEC)
			require.Len(t, nsecs, 1, "%v", m)
			require.Len(t, m.Answer, 2, "the NSEC and its signature, no CNAME followed: %v", m)
			require.Nil(t, nsecOf(m), "no denial")
			if name == "alias.example.net." { // every other question follows the CNAME
				require.Equal(t, []uint16{dns.TypeCNAME, dns.TypeRRSIG, dns.TypeNSEC}, nsecs[0].(*dns.NSEC).TypeBitMap)
			} else {
				proof := nsecOf(ask(doQuery(name, dns.TypeNULL)))
				require.NotNil(t, proof)
				require.Equal(t, proof.String(), nsecs[0].String())
			}

			// RRSIG: signatures over the name's RRsets, each as served.
			m = ask(doQuery(name, dns.TypeRRSIG))
			require.Equal(t, dns.RcodeSuccess, m.Rcode)
			require.NotEmpty(t, m.Answer)
			covered := map[uint16]bool{}
			for _, rr := range m.Answer {
				sig, ok := rr.(*dns.RRSIG)
				require.True(t, ok, "only signatures: %v", m)
				require.True(t, strings.EqualFold(name, sig.Hdr.Name))
				covered[sig.TypeCovered] = true
				set := owned(ask(doQuery(name, sig.TypeCovered)), name, sig.TypeCovered)
				require.NotEmpty(t, set, "%s %s", name, dns.TypeToString[sig.TypeCovered])
				var key *dns.DNSKEY
				for _, k := range keys {
					if k.(*dns.DNSKEY).KeyTag() == sig.KeyTag {
						key = k.(*dns.DNSKEY)
					}
				}
				require.NotNil(t, key)
				require.NoError(t, sig.Verify(key, set), "%v", sig)
			}
			require.True(t, covered[dns.TypeNSEC])
		})
	}

	// A name that does not exist, asked with CO: NXDOMAIN and its proof.
	q := doQuery("nothere.example.net.", dns.TypeNSEC)
	q.IsEdns0().SetCo()
	m := ask(q)
	require.Equal(t, dns.RcodeNameError, m.Rcode)
	require.True(t, dnssec.IsNXName(nsecOf(m)))
	// Without DO nothing changes: NODATA, no records.
	m = ask(new(dns.Msg).SetQuestion("www.example.net.", dns.TypeNSEC))
	require.Empty(t, m.Answer)
	// A referral stays a referral.
	require.False(t, ask(doQuery("deep.sub.example.net.", dns.TypeNSEC)).Authoritative)
}

// TestUnsignedUnchanged: without DO, or for a zone that is not signed,
// answers are byte for byte those of a handler without a signer.
func TestUnsignedUnchanged(t *testing.T) {
	signedH, _, _ := newSignedHandler(t)
	plain := newTestHandler(t, Config{CookieSecret: testSecret})
	unsigned := dnssec.NewManager(dnssec.Options{Store: dnssec.Store{Dir: t.TempDir()}})
	require.NoError(t, unsigned.Sync([]dnssec.ZoneConfig{{Origin: "other.example."}}))
	withSigner := newTestHandler(t, Config{Signer: NewSigner(unsigned), CookieSecret: testSecret})
	for _, h := range []*Handler{signedH, plain, withSigner} {
		h.now = fixedNow
	}
	for _, q := range fastQueries() {
		wire, err := q.Pack()
		require.NoError(t, err)
		opt := q.IsEdns0()
		want := normalized(t, plain.ServeWire(wire, testClient, false, nil))
		require.Equal(t, want, normalized(t, withSigner.ServeWire(wire, testClient, false, nil)), "%v", q)
		if (opt == nil || !opt.Do()) && q.Question[0].Qtype != dns.TypeDNSKEY {
			require.Equal(t, want, normalized(t, signedH.ServeWire(wire, testClient, false, nil)), "%v", q)
		}
	}
}

// TestSignedFastPath: signed answers are kept packed in the answer cache:
// asked again they come from it, the same, and no signature is made; a key
// event (a new generation) has them written and signed again.
func TestSignedFastPath(t *testing.T) {
	h, signer, reg := newSignedHandler(t)
	h.now = fixedNow
	var qs [][]byte
	for _, q := range fastQueries() {
		if o := q.IsEdns0(); o == nil || !o.Do() {
			continue
		}
		wire, err := q.Pack()
		require.NoError(t, err)
		qs = append(qs, wire)
	}
	require.NotEmpty(t, qs)
	first := make([]string, len(qs))
	for i, wire := range qs {
		first[i] = normalized(t, h.ServeWire(wire, testClient, false, nil))
	}
	made := testutil.ToFloat64(counter(t, reg, "geodns_dnssec_signatures_total"))
	resolves := 0
	h.onResolve = func() { resolves++ }
	for i, wire := range qs {
		require.Equal(t, first[i], normalized(t, h.ServeWire(wire, testClient, false, nil)))
	}
	t.Logf("%d of %d signed queries answered from the cache", len(qs)-resolves, len(qs))
	require.Less(t, resolves, len(qs)/4, "most signed answers come from the cache")
	require.Equal(t, made, testutil.ToFloat64(counter(t, reg, "geodns_dnssec_signatures_total")), "no signature is made again")

	q, _ := doQuery("www.example.net.", dns.TypeA).Pack()
	m := new(dns.Msg)
	require.NoError(t, m.Unpack(h.ServeWire(q, testClient, false, nil)))
	require.Len(t, sigs(m.Answer), 1)
	require.NoError(t, signer.Rollover("example.net.", dnssec.CSK))
	require.NoError(t, m.Unpack(h.ServeWire(q, testClient, false, nil)))
	require.Len(t, sigs(m.Answer), 2, "the new key signs too: the packed answer was remade")
}

func sigs(rrs []dns.RR) []dns.RR {
	return slices.DeleteFunc(slices.Clone(rrs), func(rr dns.RR) bool { return rr.Header().Rrtype != dns.TypeRRSIG })
}

// counter sums a counter family gathered from reg.
func counter(t *testing.T, reg *prometheus.Registry, name string) prometheus.Collector {
	t.Helper()
	return collectorFunc{reg: reg, name: name}
}

type collectorFunc struct {
	reg  *prometheus.Registry
	name string
}

func (c collectorFunc) Describe(ch chan<- *prometheus.Desc) {}
func (c collectorFunc) Collect(ch chan<- prometheus.Metric) {
	mfs, _ := c.reg.Gather()
	var sum float64
	for _, mf := range mfs {
		if mf.GetName() == c.name {
			for _, m := range mf.GetMetric() {
				sum += m.GetCounter().GetValue()
			}
		}
	}
	ch <- prometheus.MustNewConstMetric(prometheus.NewDesc(c.name, "sum", nil, nil), prometheus.CounterValue, sum)
}

var _ = netip.Addr{}

var testSecret = []byte("0123456789abcdef")
