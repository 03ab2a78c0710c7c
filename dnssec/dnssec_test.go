package dnssec

import (
	"bytes"
	"context"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/geodns/geodns/internal/testclock"
	"github.com/miekg/dns"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/stretchr/testify/require"
)

func rr(t *testing.T, s string) dns.RR {
	t.Helper()
	r, err := dns.NewRR(s)
	require.NoError(t, err)
	return r
}

func newTestManager(t *testing.T, dir string, c *testclock.Clock, parent ParentDS, reg prometheus.Registerer) *Manager {
	return NewManager(Options{Store: Store{Dir: dir}, Now: c.Now, ParentDS: parent, Registerer: reg, CacheBytes: 1 << 20})
}

// verify checks that sigs hold a valid signature of rrset by one of the
// DNSKEYs of keys at time at.
func verify(t *testing.T, keys []dns.RR, sigs []dns.RR, rrset []dns.RR, at time.Time) {
	t.Helper()
	require.NotEmpty(t, sigs)
	for _, s := range sigs {
		sig := s.(*dns.RRSIG)
		var key *dns.DNSKEY
		for _, k := range keys {
			if k.(*dns.DNSKEY).KeyTag() == sig.KeyTag {
				key = k.(*dns.DNSKEY)
			}
		}
		require.NotNil(t, key, "signature by key %d, which the DNSKEY RRset lacks", sig.KeyTag)
		require.NoError(t, sig.Verify(key, rrset), "signature by %d over %v", sig.KeyTag, rrset)
		require.True(t, sig.ValidityPeriod(at), "valid at %v: %v", at, sig)
	}
}

func TestKeysStoredPrivateAndReloaded(t *testing.T) {
	for _, alg := range []string{"", "ED25519", "ecdsap256sha256"} {
		t.Run(alg, func(t *testing.T) {
			dir := t.TempDir()
			a, err := ParseAlgorithm(alg)
			require.NoError(t, err)
			c := testclock.New(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))
			m := newTestManager(t, dir, c, nil, nil)
			require.NoError(t, m.Sync([]ZoneConfig{{Origin: "example.com.", Policy: Policy{Algorithm: a}}}))
			fi, err := os.Stat(Store{Dir: dir}.path("example.com."))
			require.NoError(t, err)
			require.Equal(t, os.FileMode(0o600), fi.Mode().Perm(), "private keys are readable by their owner only")
			zk, err := Store{Dir: dir}.Load("example.com.")
			require.NoError(t, err)
			require.Len(t, zk.Keys, 1)
			require.Equal(t, CSK, zk.Keys[0].Role)
			require.Equal(t, a, zk.Keys[0].Algorithm)

			// A second manager on the same directory signs with the same key.
			m2 := newTestManager(t, dir, c, nil, nil)
			require.NoError(t, m2.Sync([]ZoneConfig{{Origin: "example.com.", Policy: Policy{Algorithm: a}}}))
			k1, _ := m.Apex("example.com.", dns.TypeDNSKEY)
			k2, _ := m2.Apex("example.com.", dns.TypeDNSKEY)
			require.Equal(t, k1[0].String(), k2[0].String())
		})
	}
	_, err := ParseAlgorithm("RSASHA1")
	require.ErrorContains(t, err, "unsupported")
}

func TestSignCachedAndValid(t *testing.T) {
	reg := prometheus.NewPedanticRegistry()
	c := testclock.New(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))
	m := newTestManager(t, t.TempDir(), c, nil, reg)
	require.NoError(t, m.Sync([]ZoneConfig{{Origin: "example.com.", Policy: Policy{Split: true}}}))
	keys, ksig := m.Apex("example.com.", dns.TypeDNSKEY)
	require.Len(t, keys, 2)
	verify(t, keys, ksig, keys, c.Now())
	// The DNSKEY RRset is signed by the KSK only.
	require.Len(t, ksig, 1)
	require.Equal(t, uint16(dns.SEP|dns.ZONE), keyByTag(keys, ksig[0].(*dns.RRSIG).KeyTag).Flags)

	set := []dns.RR{rr(t, "www.example.com. 30 IN A 192.0.2.10"), rr(t, "www.example.com. 30 IN A 192.0.2.11")}
	sigs := m.Sign("example.com.", set)
	require.Len(t, sigs, 1)
	verify(t, keys, sigs, set, c.Now())
	s := sigs[0].(*dns.RRSIG)
	require.Equal(t, uint16(256), keyByTag(keys, s.KeyTag).Flags, "data is signed by the ZSK")
	require.Equal(t, uint32(c.Now().Add(-time.Hour).Unix()), s.Inception, "backdated an hour")
	require.Equal(t, uint32(c.Now().Add(14*day).Unix()), s.Expiration)
	signed := testutil.ToFloat64(m.metrics.signatures.WithLabelValues("example.com."))

	// The same set again, owner in another case: from the cache.
	again := []dns.RR{rr(t, "WWW.Example.com. 30 IN A 192.0.2.10"), rr(t, "www.example.com. 30 IN A 192.0.2.11")}
	require.Equal(t, sigs, m.Sign("example.com.", again))
	require.Equal(t, signed, testutil.ToFloat64(m.metrics.signatures.WithLabelValues("example.com.")))
	require.Equal(t, 1.0, testutil.ToFloat64(m.metrics.hits))
	// Another TTL is another RRset to sign.
	other := []dns.RR{rr(t, "www.example.com. 5 IN A 192.0.2.10"), rr(t, "www.example.com. 5 IN A 192.0.2.11")}
	require.NotEqual(t, sigs, m.Sign("example.com.", other))
	require.Nil(t, m.Sign("other.com.", set), "not a signed zone")

	problems, err := testutilLint(reg)
	require.NoError(t, err)
	require.Empty(t, problems)
}

func keyByTag(keys []dns.RR, tag uint16) *dns.DNSKEY {
	for _, k := range keys {
		if k.(*dns.DNSKEY).KeyTag() == tag {
			return k.(*dns.DNSKEY)
		}
	}
	return nil
}

func TestSignatureCacheBounded(t *testing.T) {
	c := testclock.New(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))
	m := NewManager(Options{Store: Store{Dir: t.TempDir()}, Now: c.Now, CacheBytes: 64 << 10})
	require.NoError(t, m.Sync([]ZoneConfig{{Origin: "example.com."}}))
	for i := 0; i < 2000; i++ {
		set := []dns.RR{NXNameNSEC(strings.Repeat("x", i%50+1)+itoa(uint16(i))+".example.com.", 60)}
		require.NotEmpty(t, m.Sign("example.com.", set))
	}
	require.LessOrEqual(t, m.cache.bytes(), int64(64<<10), "the budget holds")
	require.Greater(t, m.cache.bytes(), int64(32<<10), "and is used")
}

func TestCompactDenial(t *testing.T) {
	nx := NXNameNSEC("nope.example.com.", 60)
	require.Equal(t, "nope.example.com.\t60\tIN\tNSEC\t\\000.nope.example.com. RRSIG NSEC NXNAME", nx.String())
	require.True(t, IsNXName(nx))
	nd := NoDataNSEC("www.example.com.", 60, []uint16{dns.TypeAAAA, dns.TypeA})
	require.Equal(t, "www.example.com.\t60\tIN\tNSEC\t\\000.www.example.com. A AAAA RRSIG NSEC", nd.String())
	require.False(t, IsNXName(nd))
	require.Equal(t, "ent.example.com.\t60\tIN\tNSEC\t\\000.ent.example.com. RRSIG NSEC", NoDataNSEC("ent.example.com.", 60, nil).String())

	// Packed, the next name is its owner with one more label, \000: the
	// immediate successor in canonical order, covering nothing else.
	buf := make([]byte, 512)
	n, err := dns.PackRR(nx, buf, 0, nil, false)
	require.NoError(t, err)
	back, _, err := dns.UnpackRR(buf[:n], 0)
	require.NoError(t, err)
	require.Equal(t, "\\000.nope.example.com.", back.(*dns.NSEC).NextDomain)

	c := testclock.New(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))
	m := newTestManager(t, t.TempDir(), c, nil, nil)
	require.NoError(t, m.Sync([]ZoneConfig{{Origin: "example.com."}}))
	keys, _ := m.Apex("example.com.", dns.TypeDNSKEY)
	d := m.Deny("example.com.", "nope.example.com.", 60, nil, true)
	require.Len(t, d, 1)
	verify(t, keys, m.Sign("example.com.", d), d, c.Now())
	// NODATA at the apex lists the signer's DNSKEY too.
	d = m.Deny("example.com.", "example.com.", 60, []uint16{dns.TypeSOA, dns.TypeNS}, false)
	require.Equal(t, []uint16{dns.TypeNS, dns.TypeSOA, dns.TypeRRSIG, dns.TypeNSEC, dns.TypeDNSKEY}, d[0].(*dns.NSEC).TypeBitMap)
}

// TestCSKRolloverWaitsForParent rolls a CSK in accelerated time: the new
// key signs from the start, its CDS goes up after the DNSKEY TTL, the old
// key stays until the parent's DS of the new key has been served for its
// TTL, and every answer in between validates with the DS the parent has.
func TestCSKRolloverWaitsForParent(t *testing.T) {
	dir := t.TempDir()
	c := testclock.New(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))
	var mu sync.Mutex
	var parentDS []*dns.DS
	parent := func(context.Context, string, []string) ([]*dns.DS, uint32, error) {
		mu.Lock()
		defer mu.Unlock()
		return parentDS, 60, nil
	}
	p := Policy{DNSKEYTTL: 60, Propagation: 10 * time.Second, CSKLifetime: 30 * day}
	m := newTestManager(t, dir, c, parent, nil)
	require.NoError(t, m.Sync([]ZoneConfig{{Origin: "example.com.", Policy: p}}))
	keys, _ := m.Apex("example.com.", dns.TypeDNSKEY)
	require.Len(t, keys, 1)
	old := keys[0].(*dns.DNSKEY)
	parentDS = []*dns.DS{old.ToDS(dns.SHA256)}
	zk, _, _ := m.Keys("example.com.")
	next, what := zk.NextEvent(p)
	require.Equal(t, c.Now().Add(30*day), next)
	require.Contains(t, what, "rolled")

	set := []dns.RR{rr(t, "www.example.com. 30 IN A 192.0.2.10")}
	// validates: the chain from the parent's DS holds for a fresh answer.
	validates := func() {
		t.Helper()
		mu.Lock()
		ds := parentDS
		mu.Unlock()
		keys, ksigs := m.Apex("example.com.", dns.TypeDNSKEY)
		ok := false
		for _, s := range ksigs {
			sig := s.(*dns.RRSIG)
			for _, d := range ds {
				if k := keyByTag(keys, sig.KeyTag); k != nil && d.KeyTag == sig.KeyTag && sig.Verify(k, keys) == nil {
					ok = true
				}
			}
		}
		require.True(t, ok, "the DNSKEY RRset is signed by a key the parent's DS names")
		verify(t, keys, m.Sign("example.com.", set), set, c.Now())
	}
	validates()
	gen := m.Generation()
	c.Add(30 * day)
	m.Tick(context.Background())
	require.Greater(t, m.Generation(), gen, "a key event moves the generation")
	keys, ksigs := m.Apex("example.com.", dns.TypeDNSKEY)
	require.Len(t, keys, 2, "the new key is published")
	require.Len(t, ksigs, 2, "double signature")
	require.Len(t, m.Sign("example.com.", set), 2)
	cds, _ := m.Apex("example.com.", dns.TypeCDS)
	require.Nil(t, cds, "no CDS before the DNSKEY TTL has passed")
	validates()

	c.Add(70 * time.Second)
	m.Tick(context.Background())
	cds, cdsSigs := m.Apex("example.com.", dns.TypeCDS)
	require.Len(t, cds, 1, "CDS up")
	cdnskey, _ := m.Apex("example.com.", dns.TypeCDNSKEY)
	require.Len(t, cdnskey, 1)
	keys, _ = m.Apex("example.com.", dns.TypeDNSKEY)
	verify(t, keys, cdsSigs, cds, c.Now())
	newTag := cds[0].(*dns.CDS).KeyTag
	require.NotEqual(t, old.KeyTag(), newTag)
	require.Contains(t, m.ApexTypes("example.com."), dns.TypeCDS)

	// The parent has not moved: however long we wait, the old key stays.
	for i := 0; i < 5; i++ {
		c.Add(time.Hour)
		m.Tick(context.Background())
		keys, _ = m.Apex("example.com.", dns.TypeDNSKEY)
		require.Len(t, keys, 2)
		validates()
	}
	// The registrar copies the CDS to the parent.
	mu.Lock()
	parentDS = []*dns.DS{&cds[0].(*dns.CDS).DS}
	mu.Unlock()
	m.Tick(context.Background())
	keys, _ = m.Apex("example.com.", dns.TypeDNSKEY)
	require.Len(t, keys, 2, "kept for the parent's DS TTL")
	validates()
	c.Add(69 * time.Second)
	m.Tick(context.Background())
	keys, _ = m.Apex("example.com.", dns.TypeDNSKEY)
	require.Len(t, keys, 2, "DS TTL 60 s + propagation 10 s not over")
	c.Add(2 * time.Second)
	m.Tick(context.Background())
	keys, _ = m.Apex("example.com.", dns.TypeDNSKEY)
	require.Len(t, keys, 1, "old key removed")
	require.Equal(t, newTag, keys[0].(*dns.DNSKEY).KeyTag())
	cds, _ = m.Apex("example.com.", dns.TypeCDS)
	require.Nil(t, cds, "CDS withdrawn")
	validates()

	// The file says so too, for the CLI and a restart.
	zk2, err := Store{Dir: dir}.Load("example.com.")
	require.NoError(t, err)
	require.Len(t, zk2.Keys, 1)
	require.Nil(t, zk2.Roll)
}

func TestZSKPrePublication(t *testing.T) {
	c := testclock.New(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))
	p := Policy{Split: true, DNSKEYTTL: 60, MaxZoneTTL: 300, Propagation: 10 * time.Second}
	m := newTestManager(t, t.TempDir(), c, nil, nil)
	require.NoError(t, m.Sync([]ZoneConfig{{Origin: "example.com.", Policy: p}}))
	set := []dns.RR{rr(t, "www.example.com. 30 IN A 192.0.2.10")}
	oldSig := m.Sign("example.com.", set)[0].(*dns.RRSIG).KeyTag
	require.NoError(t, m.Rollover("example.com.", ZSK))
	keys, _ := m.Apex("example.com.", dns.TypeDNSKEY)
	require.Len(t, keys, 3, "the new ZSK is published")
	sigs := m.Sign("example.com.", set)
	require.Len(t, sigs, 1, "but does not sign yet")
	require.Equal(t, oldSig, sigs[0].(*dns.RRSIG).KeyTag)
	c.Add(71 * time.Second)
	m.Tick(context.Background())
	sigs = m.Sign("example.com.", set)
	require.Len(t, sigs, 1)
	require.NotEqual(t, oldSig, sigs[0].(*dns.RRSIG).KeyTag, "the new ZSK signs")
	keys, _ = m.Apex("example.com.", dns.TypeDNSKEY)
	require.Len(t, keys, 3, "the old one stays for the zone's largest TTL")
	c.Add(311 * time.Second)
	m.Tick(context.Background())
	keys, _ = m.Apex("example.com.", dns.TypeDNSKEY)
	require.Len(t, keys, 2)
	require.Nil(t, keyByTag(keys, oldSig))
}

// TestRenewBeforeExpiry: signatures are remade in the background before
// they expire, and the cache holds the new ones before they are served.
func TestRenewBeforeExpiry(t *testing.T) {
	c := testclock.New(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))
	m := newTestManager(t, t.TempDir(), c, nil, nil)
	p := Policy{Validity: 10 * day, Refresh: 4 * day}
	require.NoError(t, m.Sync([]ZoneConfig{{Origin: "example.com.", Policy: p}}))
	set := []dns.RR{rr(t, "www.example.com. 30 IN A 192.0.2.10")}
	first := m.Sign("example.com.", set)[0].(*dns.RRSIG)
	gen := m.Generation()
	c.Add(5 * day)
	m.Tick(context.Background())
	require.Equal(t, gen, m.Generation(), "6 days left: not yet")
	c.Add(day + time.Minute)
	m.Tick(context.Background())
	require.Greater(t, m.Generation(), gen)
	misses := testutil.ToFloat64(m.metrics.misses)
	again := m.Sign("example.com.", set)[0].(*dns.RRSIG)
	require.Equal(t, misses, testutil.ToFloat64(m.metrics.misses), "re-signed ahead: a cache hit")
	require.Greater(t, again.Expiration, first.Expiration)
	keys, _ := m.Apex("example.com.", dns.TypeDNSKEY)
	verify(t, keys, []dns.RR{again}, set, c.Now().Add(9*day))
	require.InDelta(t, 10.0, testutil.ToFloat64(m.metrics.expiry.WithLabelValues("example.com."))/86400, 0.01, "days until expiry")
}

func TestKeyFileFollowed(t *testing.T) {
	dir := t.TempDir()
	c := testclock.New(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))
	m := newTestManager(t, dir, c, nil, nil)
	require.NoError(t, m.Sync([]ZoneConfig{{Origin: "example.com."}}))
	ro := NewManager(Options{Store: Store{Dir: dir}, ReadOnly: true, Now: c.Now})
	require.NoError(t, ro.Sync([]ZoneConfig{{Origin: "example.com."}}))
	// The CLI starts a roll in the file; the reader follows it.
	zk, err := Store{Dir: dir}.Load("example.com.")
	require.NoError(t, err)
	require.NoError(t, zk.StartRoll(Policy{}, CSK, c.Now()))
	time.Sleep(10 * time.Millisecond) // a distinct modification time
	require.NoError(t, Store{Dir: dir}.Save(zk))
	ro.Tick(context.Background())
	keys, _ := ro.Apex("example.com.", dns.TypeDNSKEY)
	require.Len(t, keys, 2)
}

// canonicalLess reports whether a sorts before b in canonical order
// (RFC 4034 6.1): labels compared from the root, lowercased, as octets.
func canonicalLess(t *testing.T, a, b string) bool {
	t.Helper()
	la, lb := wireLabels(t, a), wireLabels(t, b)
	for i := 1; i <= len(la) && i <= len(lb); i++ {
		x, y := bytes.ToLower(la[len(la)-i]), bytes.ToLower(lb[len(lb)-i])
		if c := bytes.Compare(x, y); c != 0 {
			return c < 0
		}
	}
	return len(la) < len(lb)
}

// wireLabels returns the labels of name as octets, packing it: an invalid
// or too long name fails the test.
func wireLabels(t *testing.T, name string) [][]byte {
	t.Helper()
	buf := make([]byte, 300)
	n, err := dns.PackDomainName(name, buf, 0, nil, false)
	require.NoError(t, err, "%q packs", name)
	require.LessOrEqual(t, n, 255)
	var out [][]byte
	for i := 0; buf[i] != 0; i += 1 + int(buf[i]) {
		out = append(out, buf[i+1:i+1+int(buf[i])])
	}
	return out
}

// longName is a name of wire length n under example.com. (13 octets),
// its first label first long.
func longName(first string, n int) string {
	name := first + ".example.com."
	buf := make([]byte, 255)
	size, _ := dns.PackDomainName(name, buf, 0, nil, false)
	left := n - size
	for left > 0 {
		l := min(left-1, 63)
		if left-(l+1) == 1 { // a remainder of one octet makes no label
			l--
		}
		name = strings.Replace(name, ".", "."+strings.Repeat("a", l)+".", 1)
		left -= l + 1
	}
	return name
}

func TestNextNameLong(t *testing.T) {
	ff := "\\255"
	for _, tc := range []struct {
		name, first string
		size        int
		want        string // the first label of the successor, "" for \000 in front
	}{
		{name: "253 octets", first: "x", size: 253},
		{name: "254 octets", first: "x", size: 254, want: "x\\000"},
		{name: "255 octets", first: "x", size: 255, want: "y"},
		{name: "255, 63-octet label", first: strings.Repeat("b", 63), size: 255, want: strings.Repeat("b", 62) + "c"},
		{name: "254, 63-octet label", first: strings.Repeat("b", 63), size: 254, want: strings.Repeat("b", 62) + "c"},
		{name: "253, 63-octet label", first: strings.Repeat("b", 63), size: 253},
		{name: "255, ends 0xff", first: "k" + ff, size: 255, want: "l"},
		{name: "255, ends 0xff 0xff", first: "k" + ff + ff, size: 255, want: "l"},
		{name: "255, skips uppercase", first: "k@", size: 255, want: "k["},
		{name: "255, uppercase counts as lowercase", first: "kQ", size: 255, want: "kr"},
		{name: "255, 0xff label carries to the parent", first: ff, size: 255},
	} {
		t.Run(tc.name, func(t *testing.T) {
			name := longName(tc.first, tc.size)
			size := 1
			for _, l := range wireLabels(t, name) {
				size += 1 + len(l)
			}
			require.Equal(t, tc.size, size, "the test's name has the size asked")

			next := nextName(name)
			wireLabels(t, next) // a valid name of at most 255 octets
			require.True(t, canonicalLess(t, name, next), "%s sorts after %s", next, name)
			_, rest, _ := strings.Cut(name, ".")
			switch {
			case tc.first == ff:
				_, parentRest, _ := strings.Cut(rest, ".")
				parent := strings.TrimSuffix(rest, "."+parentRest)
				require.Equal(t, parent[:len(parent)-1]+"b."+parentRest, next, "the parent's last octet incremented")
			case tc.want == "":
				require.Equal(t, "\\000."+name, next)
			default:
				require.Equal(t, tc.want+"."+rest, next)
			}

			// The compact denial of the name packs in a message.
			for _, nsec := range []dns.RR{NXNameNSEC(name, 60), NoDataNSEC(name, 60, []uint16{dns.TypeA})} {
				m := new(dns.Msg)
				m.SetQuestion(name, dns.TypeA)
				m.Ns = []dns.RR{nsec}
				b, err := m.Pack()
				require.NoError(t, err)
				back := new(dns.Msg)
				require.NoError(t, back.Unpack(b))
				require.Equal(t, next, back.Ns[0].(*dns.NSEC).NextDomain)
			}
		})
	}
}

// TestFollowerSignsOnceKeysAreMade: a follower (read-only) that loads a
// zone before the node that rolls has made its keys signs it at its next
// tick after they are made, not at the next change of the zone.
func TestFollowerSignsOnceKeysAreMade(t *testing.T) {
	dir := t.TempDir()
	c := testclock.New(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))
	ro := NewManager(Options{Store: Store{Dir: dir}, ReadOnly: true, Now: c.Now})
	cfg := []ZoneConfig{{Origin: "example.com."}}
	require.Error(t, ro.Sync(cfg))
	require.False(t, ro.Signs("example.com."))
	ro.Tick(context.Background())
	require.False(t, ro.Signs("example.com."), "still no keys")

	rw := newTestManager(t, dir, c, nil, nil)
	require.NoError(t, rw.Sync(cfg))
	ro.Tick(context.Background())
	require.True(t, ro.Signs("example.com."))
	want, _ := rw.Apex("example.com.", dns.TypeDNSKEY)
	got, _ := ro.Apex("example.com.", dns.TypeDNSKEY)
	require.Equal(t, want, got)

	// A zone no longer listed is not tried again.
	gone := NewManager(Options{Store: Store{Dir: t.TempDir()}, ReadOnly: true, Now: c.Now})
	require.Error(t, gone.Sync(cfg))
	require.NoError(t, gone.Sync(nil))
	require.NoError(t, newTestManager(t, gone.opts.Store.(Store).Dir, c, nil, nil).Sync(cfg))
	gone.Tick(context.Background())
	require.False(t, gone.Signs("example.com."))
}
