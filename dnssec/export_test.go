package dnssec

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/geodns/geodns/internal/testclock"
	"github.com/miekg/dns"
	"github.com/stretchr/testify/require"
)

// exportZone is a zone's records but the SOA, as the transfer server
// gives them: apex data, a wildcard, a CNAME, a delegation with DS and
// glue, one without DS, and an escaped label that sorts by its octets.
func exportZone(t *testing.T) []dns.RR {
	var out []dns.RR
	for _, s := range []string{
		"ex.test. 300 IN NS ns1.ex.test.",
		"ex.test. 300 IN MX 10 mail.ex.test.",
		"ns1.ex.test. 300 IN A 192.0.2.53",
		"mail.ex.test. 300 IN A 192.0.2.25",
		"www.ex.test. 60 IN A 192.0.2.1",
		"www.ex.test. 60 IN A 192.0.2.2",
		"www.ex.test. 60 IN AAAA 2001:db8::1",
		"*.wild.ex.test. 300 IN TXT \"wild\"",
		"alias.ex.test. 300 IN CNAME www.ex.test.",
		"sub.ex.test. 300 IN NS ns.sub.ex.test.",
		"sub.ex.test. 300 IN DS 12345 13 2 0123456789ABCDEF0123456789ABCDEF0123456789ABCDEF0123456789ABCDEF",
		"ns.sub.ex.test. 300 IN A 192.0.2.54",
		"deep.ns.sub.ex.test. 300 IN A 192.0.2.55",
		"insec.ex.test. 300 IN NS ns.insec.ex.test.",
		"ns.insec.ex.test. 300 IN A 192.0.2.56",
		"a\\.b.ex.test. 300 IN TXT \"escaped dot\"",
		"Z.ex.test. 300 IN TXT \"upper\"",
	} {
		out = append(out, rr(t, s))
	}
	return out
}

func exportSOA(t *testing.T, serial uint32) *dns.SOA {
	s := rr(t, "ex.test. 3600 IN SOA ns1.ex.test. h.ex.test. 1 3600 600 86400 300").(*dns.SOA)
	s.Serial = serial
	return s
}

// TestExportSigned: a zone signed for transfer has its DNSKEY RRset, an
// NSEC chain in canonical order over the authoritative names (the glue
// out of it), and a valid signature over every authoritative RRset; the
// delegation's NS and the glue are unsigned.
func TestExportSigned(t *testing.T) {
	for _, alg := range []string{"ECDSAP256SHA256", "ED25519"} {
		t.Run(alg, func(t *testing.T) {
			c := testclock.New(time.Date(2026, 12, 3, 12, 0, 0, 0, time.UTC))
			m := newTestManager(t, t.TempDir(), c, nil, nil)
			a, err := ParseAlgorithm(alg)
			require.NoError(t, err)
			require.NoError(t, m.Sync([]ZoneConfig{{Origin: "ex.test.", Policy: Policy{Algorithm: a, Split: alg == "ED25519"}}}))
			soa := exportSOA(t, 7)
			out, signSOA, err := m.Export("ex.test.", soa, exportZone(t))
			require.NoError(t, err)

			sets := map[string][]dns.RR{} // owner/type -> RRset
			sigs := map[string][]dns.RR{} // owner/covered -> RRSIGs
			var keys []dns.RR
			var nsecs []*dns.NSEC
			for _, rr := range out {
				h := rr.Header()
				switch x := rr.(type) {
				case *dns.RRSIG:
					k := strings.ToLower(h.Name) + "/" + dns.TypeToString[x.TypeCovered]
					sigs[k] = append(sigs[k], rr)
					continue
				case *dns.DNSKEY:
					keys = append(keys, rr)
				case *dns.NSEC:
					nsecs = append(nsecs, x)
				}
				k := strings.ToLower(h.Name) + "/" + dns.TypeToString[h.Rrtype]
				sets[k] = append(sets[k], rr)
			}
			require.Len(t, keys, map[bool]int{false: 1, true: 2}[alg == "ED25519"])
			for k, set := range sets {
				switch k {
				case "sub.ex.test./NS", "insec.ex.test./NS", "ns.sub.ex.test./A", "deep.ns.sub.ex.test./A", "ns.insec.ex.test./A":
					require.Empty(t, sigs[k], "%s is not the zone's to sign", k)
					continue
				}
				verify(t, keys, sigs[k], set, c.Now())
				delete(sigs, k)
			}
			for k := range sigs {
				require.Contains(t, []string{"sub.ex.test./NS", "insec.ex.test./NS"}, k, "a signature over nothing")
			}
			for _, s := range signSOA(soa) {
				require.NoError(t, s.(*dns.RRSIG).Verify(keyOf(keys, s.(*dns.RRSIG).KeyTag), []dns.RR{soa}))
			}

			// The chain: apex first, canonical order, back to the apex.
			var chain []string
			for _, n := range nsecs {
				chain = append(chain, n.Hdr.Name+" -> "+n.NextDomain+" "+strings.Join(typeNames(n.TypeBitMap), ","))
				require.Equal(t, uint32(300), n.Hdr.Ttl, "min(SOA TTL, minimum)")
			}
			require.Equal(t, []string{
				"ex.test. -> a\\.b.ex.test. NS,SOA,MX,RRSIG,NSEC,DNSKEY",
				"a\\.b.ex.test. -> alias.ex.test. TXT,RRSIG,NSEC",
				"alias.ex.test. -> insec.ex.test. CNAME,RRSIG,NSEC",
				"insec.ex.test. -> mail.ex.test. NS,RRSIG,NSEC",
				"mail.ex.test. -> ns1.ex.test. A,RRSIG,NSEC",
				"ns1.ex.test. -> sub.ex.test. A,RRSIG,NSEC",
				"sub.ex.test. -> *.wild.ex.test. NS,DS,RRSIG,NSEC",
				"*.wild.ex.test. -> www.ex.test. TXT,RRSIG,NSEC",
				"www.ex.test. -> Z.ex.test. A,AAAA,RRSIG,NSEC",
				"Z.ex.test. -> ex.test. TXT,RRSIG,NSEC",
			}, chain)
		})
	}
}

func keyOf(keys []dns.RR, tag uint16) *dns.DNSKEY {
	for _, k := range keys {
		if k.(*dns.DNSKEY).KeyTag() == tag {
			return k.(*dns.DNSKEY)
		}
	}
	return nil
}

func typeNames(ts []uint16) []string {
	var out []string
	for _, t := range ts {
		out = append(out, dns.TypeToString[t])
	}
	return out
}

// TestExportDeterministic: two nodes sharing the key directory, and one
// node asked twice, sign the same records to the same bytes within a
// window; the next window (Validity - Refresh later) signs anew, with at
// least Refresh left.
func TestExportDeterministic(t *testing.T) {
	dir := t.TempDir()
	c := testclock.New(time.Date(2026, 12, 3, 12, 0, 0, 0, time.UTC))
	cfg := []ZoneConfig{{Origin: "ex.test."}}
	a := newTestManager(t, dir, c, nil, nil)
	require.NoError(t, a.Sync(cfg))
	b := NewManager(Options{Store: Store{Dir: dir}, Now: c.Now, ReadOnly: true})
	require.NoError(t, b.Sync(cfg))

	text := func(m *Manager) []string {
		soa := exportSOA(t, 7)
		out, signSOA, err := m.Export("ex.test.", soa, exportZone(t))
		require.NoError(t, err)
		var s []string
		for _, rr := range append(out, signSOA(soa)...) {
			s = append(s, rr.String())
		}
		return s
	}
	first := text(a)
	require.Equal(t, first, text(b), "two nodes")
	c.Add(time.Hour)
	require.Equal(t, first, text(a), "an hour later, the same window")
	stamp, ok := a.ExportStamp("ex.test.")
	require.True(t, ok)

	c.Add(7 * 24 * time.Hour)
	next := text(a)
	require.NotEqual(t, first, next)
	stamp2, _ := a.ExportStamp("ex.test.")
	require.NotEqual(t, stamp, stamp2)
	require.Equal(t, next, text(b))
	for _, s := range next {
		if rr, err := dns.NewRR(s); err == nil {
			if sig, ok := rr.(*dns.RRSIG); ok {
				left := time.Unix(int64(sig.Expiration), 0).Sub(c.Now())
				require.GreaterOrEqual(t, left, 7*24*time.Hour, "what is transferred has at least Refresh left")
				require.True(t, sig.ValidityPeriod(c.Now()))
			}
		}
	}
}

// TestExportOutlivesExpire: a secondary cut off from its primaries serves
// the zone until the SOA's expire; what it was given last still validates
// then. With the defaults (validity 14 days, refresh 7, expire 14) the
// signatures last 21 days and an hour from the window's start.
func TestExportOutlivesExpire(t *testing.T) {
	c := testclock.New(time.Date(2026, 12, 3, 12, 0, 0, 0, time.UTC))
	m := newTestManager(t, t.TempDir(), c, nil, nil)
	require.NoError(t, m.Sync([]ZoneConfig{{Origin: "ex.test."}}))
	soa := exportSOA(t, 7)
	soa.Expire = 14 * 86400
	for range 8 {
		// Just before the window moves is when the least is left.
		c.Add(24*time.Hour - time.Second)
		out, signSOA, err := m.Export("ex.test.", soa, exportZone(t))
		require.NoError(t, err)
		for _, rr := range append(out, signSOA(soa)...) {
			if sig, ok := rr.(*dns.RRSIG); ok {
				left := time.Unix(int64(sig.Expiration), 0).Sub(c.Now())
				require.Greater(t, left, 14*24*time.Hour, "%v", sig)
			}
		}
	}
}

// countingStore counts the reads of a KeyStore.
type countingStore struct {
	Store
	loads int
}

func (c *countingStore) LoadKeys(origin string) (*ZoneKeys, string, error) {
	c.loads++
	return c.Store.LoadKeys(origin)
}

// TestSyncPolicyChangeKeepsKeys: a zone whose policy changes (a TTL edit
// moves its largest TTL) is signed again with the keys loaded, not read
// from the store again, which in an NS set means etcd, on the zone
// watcher's path.
func TestSyncPolicyChangeKeepsKeys(t *testing.T) {
	store := &countingStore{Store: Store{Dir: t.TempDir()}}
	m := NewManager(Options{Store: store})
	require.NoError(t, m.Sync([]ZoneConfig{{Origin: "ex.test.", Policy: Policy{MaxZoneTTL: 300}}}))
	before, _ := m.Apex("ex.test.", dns.TypeDNSKEY)
	require.NoError(t, m.Sync([]ZoneConfig{{Origin: "ex.test.", Policy: Policy{MaxZoneTTL: 600}}}))
	after, _ := m.Apex("ex.test.", dns.TypeDNSKEY)
	require.Equal(t, 1, store.loads)
	require.Equal(t, before[0].String(), after[0].String())
}

// TestExportStampIgnoresRenewal: renewing the answers' signatures (a new
// signing state, nothing else changed) leaves the transfer's stamp as it
// is; it used to carry the state's id, and a renewal re-exported every
// signed zone.
func TestExportStampIgnoresRenewal(t *testing.T) {
	c := testclock.New(time.Date(2026, 12, 3, 12, 0, 0, 0, time.UTC))
	m := newTestManager(t, t.TempDir(), c, nil, nil)
	require.NoError(t, m.Sync([]ZoneConfig{{Origin: "ex.test."}}))
	before, _ := m.ExportStamp("ex.test.")
	id := m.state("ex.test.").id
	m.mu.Lock()
	require.NoError(t, m.renew(m.zones["ex.test."], c.Now()))
	m.mu.Unlock()
	require.NotEqual(t, id, m.state("ex.test.").id, "renewed")
	after, _ := m.ExportStamp("ex.test.")
	require.Equal(t, before, after)
	// A key event does change it.
	require.NoError(t, m.Rollover("ex.test.", CSK))
	rolled, _ := m.ExportStamp("ex.test.")
	require.NotEqual(t, before, rolled)
}

// TestExportWindowsStaggered: zones move to a new window at moments of
// their own (an offset from the name), not all at once: a server's
// zones were all signed again in the same instant, one after the other
// in the transfer loop.
func TestExportWindowsStaggered(t *testing.T) {
	now := time.Date(2026, 12, 3, 12, 0, 0, 0, time.UTC)
	starts := map[uint32]bool{}
	for i := range 20 {
		st := &state{origin: fmt.Sprintf("z%d.test.", i), policy: Policy{}.withDefaults()}
		inc, exp := st.exportWindow(now, 14*24*time.Hour)
		starts[inc] = true
		require.LessOrEqual(t, int64(inc), now.Unix(), "opened already")
		require.Greater(t, time.Unix(int64(exp), 0).Sub(now), 14*24*time.Hour)
	}
	require.Greater(t, len(starts), 15, "20 zones, as many windows")
}
