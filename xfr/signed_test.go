package xfr

import (
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/geodns/geodns/dnssec"
	"github.com/geodns/geodns/internal/testclock"
	"github.com/geodns/geodns/resolver"
	"github.com/miekg/dns"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"
)

// signedHarness serves zoneSrc signed (dnssec:), online and in transfers,
// with keys in keyDir and the signer's clock c.
func signedHarness(t *testing.T, stateDir, keyDir string, c *testclock.Clock) *harness {
	m := dnssec.NewManager(dnssec.Options{Store: dnssec.Store{Dir: keyDir}, Now: c.Now})
	return newHarnessSrc(t, stateDir, zoneSrc+"dnssec: {algorithm: ECDSAP256SHA256}\n", func(o *Options, cfg *resolver.Config) {
		require.NoError(t, m.Sync([]dnssec.ZoneConfig{{Origin: "t.test."}}))
		o.Signer = m
		cfg.Signer = resolver.NewSigner(m)
	})
}

// checkSigned checks that an AXFR's records are a signed zone: a DNSKEY
// RRset, and every RRset (the SOA's included) with a signature that
// verifies at time at; it returns the records but the SOAs.
func checkSigned(t *testing.T, axfr []dns.RR, at time.Time) []dns.RR {
	t.Helper()
	require.GreaterOrEqual(t, len(axfr), 2)
	body := axfr[1 : len(axfr)-1]
	sets := map[string][]dns.RR{}
	sigs := map[string][]*dns.RRSIG{}
	var keys []*dns.DNSKEY
	for _, rr := range append([]dns.RR{axfr[0]}, body...) {
		h := rr.Header()
		if sig, ok := rr.(*dns.RRSIG); ok {
			k := strings.ToLower(h.Name) + "/" + dns.TypeToString[sig.TypeCovered]
			sigs[k] = append(sigs[k], sig)
			continue
		}
		if k, ok := rr.(*dns.DNSKEY); ok {
			keys = append(keys, k)
		}
		k := strings.ToLower(h.Name) + "/" + dns.TypeToString[h.Rrtype]
		sets[k] = append(sets[k], rr)
	}
	require.NotEmpty(t, keys, "no DNSKEY in the transfer")
	require.Contains(t, sets, "t.test./NSEC")
	for k, set := range sets {
		require.NotEmpty(t, sigs[k], "%s is not signed", k)
		for _, sig := range sigs[k] {
			i := slices.IndexFunc(keys, func(d *dns.DNSKEY) bool { return d.KeyTag() == sig.KeyTag })
			require.GreaterOrEqual(t, i, 0)
			require.NoError(t, sig.Verify(keys[i], set), "%s", k)
			require.True(t, sig.ValidityPeriod(at), "%s", k)
		}
	}
	return body
}

// TestSignedZoneTransfer: a signed zone transfers signed. When the export
// window moves (Validity - Refresh later) the exported serial moves by
// one, SOA answers say it with a signature that verifies, and the IXFR
// turns the old signed zone into the new one, the SOA's signatures too.
// A restart with the same keys and clock exports the same bytes under the
// same serial.
func TestSignedZoneTransfer(t *testing.T) {
	stateDir, keyDir := t.TempDir(), t.TempDir()
	c := testclock.New(time.Now())
	h := signedHarness(t, stateDir, keyDir, c)
	axfr := func() []dns.RR {
		rrs, err := h.xfr("t.test.", dns.TypeAXFR, 0, keyName, dns.HmacSHA256, keySecret)
		require.NoError(t, err)
		return rrs
	}
	soaAnswer := func() (*dns.SOA, []dns.RR) {
		q := new(dns.Msg).SetQuestion("t.test.", dns.TypeSOA)
		q.SetEdns0(1232, true)
		r, err := dns.Exchange(q, h.addr)
		require.NoError(t, err)
		var soa *dns.SOA
		var sigs []dns.RR
		for _, rr := range r.Answer {
			switch x := rr.(type) {
			case *dns.SOA:
				soa = x
			case *dns.RRSIG:
				sigs = append(sigs, x)
			}
		}
		require.NotNil(t, soa, "%v", r)
		return soa, sigs
	}
	first := axfr()
	require.Equal(t, uint32(100), first[0].(*dns.SOA).Serial)
	old := checkSigned(t, first, c.Now())
	t.Logf("AXFR: %d records, the first and last the SOA", len(first))

	// A week on: the signatures are made again, the serial moves.
	c.Add(7 * 24 * time.Hour)
	h.srv.Changed(nil)
	require.Eventually(t, func() bool { s, _ := h.srv.Serial("t.test."); return s == 101 }, 5*time.Second, 10*time.Millisecond)
	second := axfr()
	require.Equal(t, uint32(101), second[0].(*dns.SOA).Serial)
	cur := checkSigned(t, second, c.Now())

	soa, sigs := soaAnswer()
	require.Equal(t, uint32(101), soa.Serial, "SOA answers say the exported serial")
	require.Len(t, sigs, 1, "the zone's own SOA signature is replaced, not kept beside")
	keys := map[uint16]*dns.DNSKEY{}
	for _, rr := range second {
		if k, ok := rr.(*dns.DNSKEY); ok {
			keys[k.KeyTag()] = k
		}
	}
	sig := sigs[0].(*dns.RRSIG)
	require.NoError(t, sig.Verify(keys[sig.KeyTag], []dns.RR{soa}), "the patched SOA's signature")

	// IXFR from 100 applied to the first transfer gives the second.
	ixfr, err := h.xfr("t.test.", dns.TypeIXFR, 100, keyName, dns.HmacSHA256, keySecret)
	require.NoError(t, err)
	have := map[string]bool{}
	for _, rr := range old {
		have[rr.String()] = true
	}
	// ixfr: SOA 101, (SOA from, deleted..., SOA to, added...)..., SOA 101
	adding := true // the next SOA (the first, a version's old one) starts a deletion
	delSOASig := false
	for _, rr := range ixfr[1 : len(ixfr)-1] {
		if _, ok := rr.(*dns.SOA); ok {
			adding = !adding
			continue
		}
		if adding {
			have[rr.String()] = true
			continue
		}
		require.True(t, have[rr.String()], "IXFR deletes what the secondary does not hold: %v", rr)
		if s, ok := rr.(*dns.RRSIG); ok && s.TypeCovered == dns.TypeSOA {
			delSOASig = true
		}
		delete(have, rr.String())
	}
	require.True(t, delSOASig, "the old SOA's signature is deleted")
	var want []string
	for _, rr := range cur {
		want = append(want, rr.String())
	}
	var got []string
	for k := range have {
		got = append(got, k)
	}
	slices.Sort(want)
	slices.Sort(got)
	require.Equal(t, want, got)

	// The same keys, clock and state after a restart: the same bytes.
	h2 := signedHarness(t, stateDir, keyDir, c)
	again, err := h2.xfr("t.test.", dns.TypeAXFR, 0, keyName, dns.HmacSHA256, keySecret)
	require.NoError(t, err)
	require.Equal(t, texts(second), texts(again))
}

// TestSignedReloadReusesExport: a signed zone reloaded with the same
// content (a SIGHUP) keeps its signed records, built, sorted and signed
// once; a 100k-record zone took 6.8 s of the transfer loop per SIGHUP.
func TestSignedReloadReusesExport(t *testing.T) {
	c := testclock.New(time.Now())
	h := signedHarness(t, t.TempDir(), t.TempDir(), c)
	before := (*h.srv.views.Load())["t.test."]
	require.NotEmpty(t, before.soaSigs)
	h.load(strings.Replace(zoneSrc, "NOTIFY", `"`+h.set.Load().Zone("t.test.").Transfer.Notify[0].String()+`"`, 1) +
		"dnssec: {algorithm: ECDSAP256SHA256}\n")
	require.Eventually(t, func() bool { return h.srv.Built() == h.set.Load() }, 5*time.Second, 10*time.Millisecond)
	after := (*h.srv.views.Load())["t.test."]
	require.NotSame(t, before.src, after.src, "a new version of the zone")
	require.Same(t, &before.rrs[0], &after.rrs[0], "the signed records built again")
	require.Equal(t, before.soa.Serial, after.soa.Serial)
	require.Equal(t, texts(before.soaSigs), texts(after.soaSigs))
}

// TestTransferSignatureExpiryMetric: geodns_transfer_signature_expiry_seconds
// says how long the last transfer's signatures have left: more than the
// SOA's expire (14 days here) plus an hour.
func TestTransferSignatureExpiryMetric(t *testing.T) {
	reg := prometheus.NewRegistry()
	c := testclock.New(time.Now())
	m := dnssec.NewManager(dnssec.Options{Store: dnssec.Store{Dir: t.TempDir()}, Now: c.Now})
	newHarnessSrc(t, t.TempDir(), zoneSrc+"dnssec: {algorithm: ECDSAP256SHA256}\n", func(o *Options, cfg *resolver.Config) {
		require.NoError(t, m.Sync([]dnssec.ZoneConfig{{Origin: "t.test."}}))
		o.Signer, o.Registerer = m, reg
		cfg.Signer = resolver.NewSigner(m)
	})
	mfs, err := reg.Gather()
	require.NoError(t, err)
	require.Len(t, mfs, 1)
	require.Equal(t, "geodns_transfer_signature_expiry_seconds", mfs[0].GetName())
	require.Len(t, mfs[0].Metric, 1, "the signed zone only, not the catalog")
	left := time.Duration(mfs[0].Metric[0].GetGauge().GetValue()) * time.Second
	require.Greater(t, left, 14*24*time.Hour+time.Hour)
	t.Logf("t.test.'s transferred signatures have %v left", left.Round(time.Minute))
}

// TestLongSOAExpireWindow: a signed zone whose SOA expire is as long as
// the zone file allows (2^31-1 s here) still transfers signatures whose
// expiration comes after their inception in serial arithmetic (RFC 4034
// 3.1.5), which a validator requires: the window's expire term is capped
// at 24 weeks, and the expiry metric says what is left of the window.
func TestLongSOAExpireWindow(t *testing.T) {
	reg := prometheus.NewRegistry()
	c := testclock.New(time.Now())
	m := dnssec.NewManager(dnssec.Options{Store: dnssec.Store{Dir: t.TempDir()}, Now: c.Now})
	src := strings.Replace(zoneSrc, "serial: 100}", "serial: 100, expire: 2147483647}", 1)
	h := newHarnessSrc(t, t.TempDir(), src+"dnssec: {algorithm: ECDSAP256SHA256}\n", func(o *Options, cfg *resolver.Config) {
		require.NoError(t, m.Sync([]dnssec.ZoneConfig{{Origin: "t.test."}}))
		o.Signer, o.Registerer = m, reg
		cfg.Signer = resolver.NewSigner(m)
	})
	axfr, err := h.xfr("t.test.", dns.TypeAXFR, 0, keyName, dns.HmacSHA256, keySecret)
	require.NoError(t, err)
	require.Equal(t, uint32(2147483647), axfr[0].(*dns.SOA).Expire)
	n := 0
	for _, rr := range axfr {
		sig, ok := rr.(*dns.RRSIG)
		if !ok {
			continue
		}
		n++
		require.True(t, serialAfter(sig.Expiration, sig.Inception),
			"%s/%s: expiration %d is not after inception %d (RFC 1982: %d s apart)",
			sig.Hdr.Name, dns.TypeToString[sig.TypeCovered], sig.Expiration, sig.Inception, sig.Expiration-sig.Inception)
	}
	require.NotZero(t, n)
	checkSigned(t, axfr, c.Now())

	mfs, err := reg.Gather()
	require.NoError(t, err)
	require.Len(t, mfs, 1)
	left := time.Duration(mfs[0].Metric[0].GetGauge().GetValue()) * time.Second
	t.Logf("signatures: %d; the transfer's have %v left", n, left.Round(time.Minute))
	require.Greater(t, left, 24*7*24*time.Hour, "more than the capped expire term left")
	require.Less(t, left, (7+24*7)*24*time.Hour+2*time.Hour, "the window's period, the capped expire term and an hour at most")
}
