package dnssec

import (
	"crypto"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash/fnv"
	"io"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/geodns/geodns/zones"
	"github.com/miekg/dns"
)

// A zone transferred to a stock secondary (NSD, Knot, BIND) must arrive
// signed: the secondary serves it as it got it, and a validator rejects
// unsigned answers from a zone whose parent has a DS. What the server
// answers itself is signed online with compact denial; a secondary needs
// what a signer of master files makes instead: the DNSKEY RRset, an RRSIG
// over every authoritative RRset, and an NSEC chain over the names.
//
// Every node of a set and every rebuild must make the same bytes for the
// same content, or IXFR would delete signatures the secondary does not
// hold and the exported serial would move with no change (the set numbers
// exported versions by their digest). So the signatures are deterministic
// (RFC 6979 for ECDSA; Ed25519 is by nature) and their window is fixed by
// the clock and the zone's name alone: it opens every Validity-Refresh,
// at an offset from the epoch derived from the name, so what is
// transferred always has at least Refresh left. A
// secondary cut off from its primaries serves the zone until the SOA's
// expire, so the window lasts long enough for that too: what is
// transferred always has more than the SOA's expire (capped at
// MaxExpireTerm) left.

// exportCache keeps a zone's export signatures of the last Export, by
// RRset and window: a rebuild signs only what changed.
type exportCache struct {
	mu    sync.Mutex
	zones map[string]map[string][]dns.RR
}

// ExportStamp identifies what a zone's transfer is signed with (its keys
// and the export window now): while it stays the same, so do the
// signatures Export makes for the same records. ok is false when the zone
// is not signed.
func (m *Manager) ExportStamp(origin string) (stamp string, ok bool) {
	st := m.state(origin)
	if st == nil {
		return "", false
	}
	inc, _ := st.exportWindow(m.opts.Now(), 0)
	return fmt.Sprintf("%d-%s", inc, st.exportKeys()), true
}

// exportKeys identifies what signs a zone's transfer: the keys that sign
// and the apex RRsets the signer adds. Not the state's id, which a
// renewal of the answers' signatures moves with nothing else changed.
func (st *state) exportKeys() string {
	st.exportOnce.Do(func() {
		h := sha256.New()
		for _, ks := range [][]*Key{st.zsks, st.ksks} {
			for _, k := range ks {
				fmt.Fprintf(h, "%d/%d ", k.Tag, k.Algorithm)
			}
			h.Write([]byte{'|'})
		}
		for _, t := range st.types {
			for _, rr := range st.apex[t][0] {
				h.Write([]byte(rr.String()))
			}
		}
		st.exportID = hex.EncodeToString(h.Sum(nil)[:12])
	})
	return st.exportID
}

// MaxExpireTerm bounds the SOA expire a transfer's signing window makes
// room for: 24 weeks, BIND's own cap on a secondary's expire
// (DNS_MAX_EXPIRE).
const MaxExpireTerm = 24 * 7 * 24 * time.Hour

// exportWindow is the signing window of transfers at now for a zone whose
// SOA's expire is expire (see above). The windows of a zone start at an
// offset of their own (from its name, the same on every node), so that the
// zones of a server are not all signed again at the same moment.
func (st *state) exportWindow(now time.Time, expire time.Duration) (inception, expiration uint32) {
	period := int64(max(st.policy.Validity-st.policy.Refresh, time.Minute) / time.Second)
	f := fnv.New64a()
	f.Write([]byte(st.origin))
	off := int64(f.Sum64() % uint64(period))
	start := time.Unix((now.Unix()-off)/period*period+off, 0)
	// A secondary keeps serving until expire at most; BIND clamps it to
	// 24 weeks anyway. Capped, a zone's expire (any 32-bit number) cannot
	// stretch the window past 2^31 s, where signature times wrap.
	life := max(st.policy.Validity, time.Duration(period)*time.Second+min(expire, MaxExpireTerm)+time.Hour)
	return uint32(start.Add(-st.policy.Backdate).Unix()), uint32(start.Add(life).Unix())
}

// Export signs the records of zone origin for transfer. rrs are its
// records but the SOA (soa gives the negative TTL). It returns them with
// the signer's apex RRsets (DNSKEY, and CDS and CDNSKEY during a
// rollover), an NSEC chain over the authoritative names and the RRSIGs of
// every authoritative RRset; NS records at a delegation and the records
// below one (glue) stay unsigned and out of the chain. signSOA signs the
// SOA in the same window, once its serial is known. The returned records
// share the given ones; none may be mutated.
func (m *Manager) Export(origin string, soa *dns.SOA, rrs []dns.RR) (out []dns.RR, signSOA func(*dns.SOA) []dns.RR, err error) {
	st := m.state(origin)
	if st == nil {
		return nil, nil, errors.New("dnssec: zone " + origin + " is not signed")
	}
	inc, exp := st.exportWindow(m.opts.Now(), time.Duration(soa.Expire)*time.Second)
	m.exports.mu.Lock()
	defer m.exports.mu.Unlock()
	if m.exports.zones == nil {
		m.exports.zones = map[string]map[string][]dns.RR{}
	}
	old := m.exports.zones[origin]
	cache := map[string][]dns.RR{}
	// Signatures found in the cache go into out at once; the others get
	// placeholders, filled once every missing one is made, on every core
	// (a new window signs a whole zone: 100,000 RRsets took 10.8 s on one).
	type job struct {
		key   string
		rrset []dns.RR
		at, n int // out[at:at+n]
	}
	var jobs []job
	sign := func(rrset []dns.RR) {
		var b strings.Builder
		fmt.Fprintf(&b, "%d %d", inc, exp)
		keys := st.keysFor(rrset[0].Header().Rrtype)
		for _, k := range keys {
			fmt.Fprintf(&b, " %d/%d", k.Tag, k.Algorithm)
		}
		for _, rr := range rrset {
			b.WriteByte('\n')
			b.WriteString(rr.String())
		}
		key := b.String()
		sigs, ok := cache[key]
		if !ok {
			sigs, ok = old[key]
		}
		if ok {
			cache[key] = sigs
			out = append(out, sigs...)
			return
		}
		jobs = append(jobs, job{key, rrset, len(out), len(keys)})
		for range keys {
			out = append(out, nil)
		}
	}

	// RRsets by owner, the owners in canonical order.
	type owner struct {
		name, shown string // canonical; as the records have it
		key         string // zones.CanonicalKey: its canonical order
		sets        map[uint16][]dns.RR
		cut         bool // a delegation
	}
	byName := map[string]*owner{}
	var names []*owner
	add := func(rr dns.RR) {
		n := dns.CanonicalName(rr.Header().Name)
		o := byName[n]
		if o == nil {
			o = &owner{name: n, shown: rr.Header().Name, key: string(zones.CanonicalKey(nil, n)), sets: map[uint16][]dns.RR{}}
			byName[n] = o
			names = append(names, o)
		}
		t := rr.Header().Rrtype
		o.sets[t] = append(o.sets[t], rr)
	}
	for _, rr := range rrs {
		add(rr)
	}
	for _, t := range st.types {
		for _, rr := range st.apex[t][0] {
			add(rr)
		}
	}
	if byName[origin] == nil {
		add(&dns.SOA{Hdr: dns.RR_Header{Name: origin, Rrtype: dns.TypeSOA, Class: dns.ClassINET}})
		delete(byName[origin].sets, dns.TypeSOA)
	}
	slices.SortFunc(names, func(a, b *owner) int { return strings.Compare(a.key, b.key) })

	ttl := min(soa.Hdr.Ttl, soa.Minttl)
	var chain []*owner // the authoritative names, in order
	// The names below a cut follow it in canonical order, none between
	// but below it: the last cut is the only one a name can be below.
	cut := ""
	out = make([]dns.RR, 0, len(rrs)*2+len(names)*2)
	for _, o := range names {
		if cut != "" && dns.IsSubDomain(cut, o.name) {
			// Glue, or data under a cut: served as given, unsigned.
			for _, t := range sortedTypes(o.sets) {
				out = append(out, o.sets[t]...)
			}
			continue
		}
		o.cut = o.name != origin && o.sets[dns.TypeNS] != nil
		if o.cut {
			cut = o.name
		}
		for _, t := range sortedTypes(o.sets) {
			out = append(out, o.sets[t]...)
			if o.cut && t != dns.TypeDS {
				continue // the child's NS: not ours to sign
			}
			sign(o.sets[t])
		}
		chain = append(chain, o)
	}
	for i, o := range chain {
		next := chain[(i+1)%len(chain)].shown
		types := []uint16{dns.TypeRRSIG, dns.TypeNSEC}
		if o.name == origin {
			types = append(types, dns.TypeSOA)
		}
		for t := range o.sets {
			if !o.cut || t == dns.TypeNS || t == dns.TypeDS {
				types = append(types, t)
			}
		}
		slices.Sort(types)
		nsec := &dns.NSEC{Hdr: dns.RR_Header{Name: o.shown, Rrtype: dns.TypeNSEC, Class: dns.ClassINET, Ttl: ttl},
			NextDomain: next, TypeBitMap: slices.Compact(types)}
		out = append(out, nsec)
		sign([]dns.RR{nsec})
	}
	made := make([][]dns.RR, len(jobs))
	errs := make([]error, len(jobs))
	var next atomic.Int64
	var wg sync.WaitGroup
	for range min(runtime.GOMAXPROCS(0), len(jobs)) {
		wg.Go(func() {
			for i := int(next.Add(1) - 1); i < len(jobs); i = int(next.Add(1) - 1) {
				made[i], errs[i] = st.signIn(jobs[i].rrset, inc, exp, true)
			}
		})
	}
	wg.Wait()
	for i, j := range jobs {
		if errs[i] != nil {
			return nil, nil, errs[i]
		}
		if len(made[i]) != j.n {
			return nil, nil, fmt.Errorf("dnssec: %d signatures made for %d keys", len(made[i]), j.n)
		}
		copy(out[j.at:j.at+j.n], made[i])
		cache[j.key] = made[i]
	}
	m.exports.zones[origin] = cache
	signSOA = func(s *dns.SOA) []dns.RR {
		sigs, err := st.signIn([]dns.RR{s}, inc, exp, true)
		if err != nil {
			return nil
		}
		return sigs
	}
	return out, signSOA, nil
}

// forgetExport drops the export signatures of zones no longer signed.
func (m *Manager) forgetExport(keep func(string) bool) {
	m.exports.mu.Lock()
	defer m.exports.mu.Unlock()
	for z := range m.exports.zones {
		if !keep(z) {
			delete(m.exports.zones, z)
		}
	}
}

func sortedTypes(sets map[uint16][]dns.RR) []uint16 {
	ts := make([]uint16, 0, len(sets))
	for t := range sets {
		ts = append(ts, t)
	}
	slices.Sort(ts)
	return ts
}

// deterministic signs with RFC 6979 nonces (ECDSA with no random source;
// Ed25519 takes none), so one RRset in one window gets one signature on
// every node and at every rebuild.
type deterministic struct{ crypto.Signer }

func (d deterministic) Sign(_ io.Reader, digest []byte, opts crypto.SignerOpts) ([]byte, error) {
	return d.Signer.Sign(nil, digest, opts)
}
