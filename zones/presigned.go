package zones

import (
	"bytes"
	"crypto/sha1"
	"encoding/base32"
	"encoding/hex"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/miekg/dns"
)

// A pre-signed zone is a master file signed by another signer (an
// operator's signer, a hidden primary's): its RRSIG, NSEC or NSEC3
// records come with it, in a zone geodns does not sign itself. It is
// served as NSD and Knot serve one: its records as they are, each RRset's
// signatures beside it for a query with DO, and the file's own NSEC or
// NSEC3 records as the proofs of what does not exist (RFC 4035 3.1.3,
// RFC 5155 7.2). Nothing is signed here: a service (a per-client answer)
// has no signature a file could hold, so a pre-signed zone has none.
//
// NSEC3 records are kept out of the name tree: their owners (hashes) are
// not names of the zone, and a query for one is answered as for any
// absent name, as NSD and Knot answer it.

// presigned is what proving absence in a pre-signed zone needs.
type presigned struct {
	nsec  []*node       // the owners of NSEC records, in canonical order
	nsec3 []nsec3Record // the NSEC3 chain of the zone's parameters, by hash
	// The chain's hash parameters (RFC 5155 3), from the first
	// NSEC3PARAM at the apex whose chain the file holds (else the first
	// NSEC3PARAM), or else the first NSEC3; nsec3 is empty without them.
	alg        uint8
	iterations uint16
	salt       string // as NSEC3 records write it (hex, "" for none)
	saltRaw    []byte

	// nsecKeys holds the CanonicalKey of every NSEC owner, in p.nsec's
	// order, the i-th ending at nsecEnd[i]: a covering NSEC is found by
	// comparing keys, not by making one for each name the search visits.
	nsecKeys []byte
	nsecEnd  []uint32
	all      []dns.RR // the NSEC3 records and their RRSIGs, every one: for transfers

	// When the first RRset's signatures have all expired, and which set:
	// the zone turns bogus then unless its file is signed again.
	expires    time.Time
	expiresSet string
}

// nsec3Record is an NSEC3 record of the chain and its signatures.
type nsec3Record struct {
	hash string // the owner's first label, lower case: base32hex sorts as the hash
	rr   *dns.NSEC3
	sigs []dns.RR
}

// Presigned reports whether the zone is served signed as its file is.
func (z *Zone) Presigned() bool { return z.pre != nil }

// SignaturesExpire returns, for a pre-signed zone, when the first of its
// RRsets has no signature left that has not expired, and that set ("www
// A"); ok is false for other zones (and a pre-signed file without RRSIGs).
func (z *Zone) SignaturesExpire() (at time.Time, rrset string, ok bool) {
	if z.pre == nil || z.pre.expiresSet == "" {
		return time.Time{}, "", false
	}
	return z.pre.expires, z.pre.expiresSet, true
}

// rrsigTime is an RRSIG's inception or expiration as a time: of the times
// the 32 bits can mean, the nearest to now (RFC 4034 3.1.5: serial number
// arithmetic).
func rrsigTime(t uint32, now time.Time) time.Time {
	n := now.Unix()
	return time.Unix(n+int64(int32(t-uint32(n))), 0)
}

// signaturesExpire finds when the first RRset of the zone runs out of
// valid signatures: each set lasts as long as its latest signature (one
// of a key on its way out may expire earlier, harmlessly). The RRSIGs of
// one owner are looked at together, the NSEC3 ones by owner too (nsec3Sigs),
// so a zone of a million names needs no map of every set at load.
func (p *presigned) signaturesExpire(c *compiler, nsec3Sigs map[string][]dns.RR, now time.Time) {
	var last []time.Time // by the index of the covered type in types
	var types []uint16
	owner := func(sigs []dns.RR) {
		last, types = last[:0], types[:0]
		for _, rr := range sigs {
			sig, ok := rr.(*dns.RRSIG)
			if !ok {
				continue
			}
			e := rrsigTime(sig.Expiration, now)
			if i := slices.Index(types, sig.TypeCovered); i >= 0 {
				if e.After(last[i]) {
					last[i] = e
				}
				continue
			}
			types, last = append(types, sig.TypeCovered), append(last, e)
		}
		for i, e := range last {
			name := sigs[0].Header().Name
			if p.expiresSet == "" || e.Before(p.expires) || e.Equal(p.expires) && name < p.expiresSet {
				p.expires, p.expiresSet = e, name+" "+dns.TypeToString[types[i]]
			}
		}
	}
	for _, n := range c.all {
		if sigs := n.get(dns.TypeRRSIG); len(sigs) > 0 {
			owner(sigs)
		}
	}
	for _, sigs := range nsec3Sigs {
		owner(sigs)
	}
}

// Signatures returns the file's RRSIG records over rrset (one RRset, as
// an answer holds it) in a pre-signed zone: those of its owner covering
// its type, or for records a wildcard synthesized those of the wildcard,
// owned by the name asked (their labels field tells a validator). Each is
// given the TTL of the RRset as served. Nil otherwise.
func (z *Zone) Signatures(rrset []dns.RR) []dns.RR {
	if z.pre == nil || len(rrset) == 0 {
		return nil
	}
	h := rrset[0].Header()
	if h.Rrtype == dns.TypeRRSIG {
		return nil
	}
	name := CanonicalName(h.Name)
	var from []dns.RR
	switch {
	case h.Rrtype == dns.TypeNSEC3:
		if r := z.pre.nsec3At(name, z.Origin); r != nil {
			from = r.sigs
		}
	case z.nodes[name] != nil:
		from = z.nodes[name].get(dns.TypeRRSIG)
	default:
		if n, stop, ce := z.find(name, h.Rrtype); n == nil && stop == nil && ce.wild != nil {
			from = ce.wild.get(dns.TypeRRSIG)
		}
	}
	var out []dns.RR
	for _, rr := range from {
		sig, ok := rr.(*dns.RRSIG)
		if !ok || sig.TypeCovered != h.Rrtype {
			continue
		}
		if sig.Hdr.Name != h.Name || sig.Hdr.Ttl != h.Ttl {
			sig = dns.Copy(sig).(*dns.RRSIG)
			sig.Hdr.Name, sig.Hdr.Ttl = h.Name, h.Ttl
		}
		out = append(out, sig)
	}
	return out
}

// Proofs returns what a pre-signed zone adds to the authority section of
// answer a to qname/qtype for a query with DO, unsigned (the writer adds
// the signatures): at a referral (also one a CNAME or DNAME chain led to)
// the DS set, or the proof there is none;
// for a name or type that does not exist the NSEC or NSEC3 records that
// deny it; for records synthesized from a wildcard the proof that the
// name asked does not exist (RFC 4035 3.1.3, RFC 5155 7.2). Nil for a
// zone that is not pre-signed.
func (z *Zone) Proofs(qname string, qtype uint16, a Answer) []dns.RR {
	p := z.pre
	if p == nil {
		return nil
	}
	var out []dns.RR
	add := func(rrs ...dns.RR) {
		for _, rr := range rrs {
			if !slices.Contains(out, rr) {
				out = append(out, rr)
			}
		}
	}
	switch a.Result {
	case Delegation:
		return p.referral(z, a.Ns)
	case YXDomain:
		return nil
	}
	// Each RRset a wildcard synthesized: its owner does not exist.
	name := qname
	for i, rr := range a.Answer {
		owner := CanonicalName(rr.Header().Name)
		if i > 0 && owner == CanonicalName(a.Answer[i-1].Header().Name) {
			continue
		}
		if n, stop, ce := z.find(owner, qtype); n == nil && stop == nil && ce.wild != nil {
			add(p.noName(z, owner, ce, wildAnswer)...)
		}
		if c, ok := rr.(*dns.CNAME); ok {
			name = CanonicalName(c.Target) // where the chain went on
		}
	}
	if len(a.Ns) > 0 && a.Ns[0].Header().Rrtype == dns.TypeNS {
		// The chain went on into a delegation: its referral, proven as
		// one (the DS set, or the proof there is none), as NSD and Knot.
		add(p.referral(z, a.Ns)...)
		return out
	}
	if a.Result == Success || !dns.IsSubDomain(z.Origin, name) {
		return out
	}
	n, stop, ce := z.find(name, qtype)
	switch {
	case stop != nil:
	case n != nil:
		add(p.nodata(z, n, name)...)
	case ce.wild != nil:
		// The wildcard exists and lacks the type: the name does not exist
		// (closest encloser proof) and the wildcard holds no such type.
		add(p.noName(z, name, ce, wildNoData)...)
		add(p.nodata(z, ce.wild, ce.wild.name)...)
	default:
		add(p.noName(z, name, ce, nxName)...)
	}
	return out
}

// referral proves a referral to the cut owning the NS set ns: the cut's
// DS set, or the proof that it has none.
func (p *presigned) referral(z *Zone, ns []dns.RR) []dns.RR {
	cut := CanonicalName(ns[0].Header().Name)
	n := z.nodes[cut]
	if ds := n.get(dns.TypeDS); ds != nil {
		return ds
	}
	return p.nodata(z, n, cut)
}

// nodata proves that name (its node n, nil if it has none) has no record
// of the type asked: its NSEC, or its NSEC3; an empty non-terminal has
// none in an NSEC zone, where the NSEC before it covers it; without an
// NSEC3 of its own (opt-out) the closest provable encloser's proof.
func (p *presigned) nodata(z *Zone, n *node, name string) []dns.RR {
	if len(p.nsec3) > 0 {
		if r := p.nsec3At(p.hash(name)+"."+z.Origin, z.Origin); r != nil {
			return []dns.RR{r.rr}
		}
		return p.closestProvable(z, name)
	}
	if n != nil {
		if nsec := n.get(dns.TypeNSEC); nsec != nil {
			return nsec
		}
	}
	return p.nsecCovering(nil, name)
}

// absence is what a proof that a name does not exist is for.
type absence uint8

const (
	nxName     absence = iota // NXDOMAIN: no name, and no wildcard to answer it
	wildNoData                // a wildcard matched the name, and lacks the type
	wildAnswer                // a wildcard answered the name
)

// noName proves that name, whose closest encloser is ce, does not exist,
// as what (RFC 4035 3.1.3, RFC 5155 7.2.2, 7.2.5, 7.2.6): the NSEC
// covering it (and for NXDOMAIN the one covering the wildcard); in an
// NSEC3 zone the closest encloser's NSEC3 (but for a wildcard answer),
// the one covering the next closer name, and for NXDOMAIN the one
// covering the wildcard.
func (p *presigned) noName(z *Zone, name string, ce *node, what absence) []dns.RR {
	wild := "*." + ce.name
	if ce.name == "." {
		wild = "*."
	}
	if len(p.nsec3) == 0 {
		out := p.nsecCovering(nil, name)
		if what == nxName {
			out = p.nsecCovering(out, wild)
		}
		return out
	}
	var out []dns.RR
	if what != wildAnswer {
		if r := p.nsec3At(p.hash(ce.name)+"."+z.Origin, z.Origin); r != nil {
			out = append(out, r.rr)
		}
	}
	out = append(out, p.nsec3Covering(p.hash(nextCloser(name, ce.name))).rr)
	if what == nxName {
		out = append(out, p.nsec3Covering(p.hash(wild)).rr)
	}
	return out
}

// closestProvable proves where name's proof starts when name has no NSEC3
// of its own (RFC 5155 7.2.4, 7.2.7): the NSEC3 of its closest ancestor
// that has one, and the (opt-out) NSEC3 covering the next closer name.
func (p *presigned) closestProvable(z *Zone, name string) []dns.RR {
	for child, up := name, name; up != z.Origin; {
		off, end := dns.NextLabel(up, 0)
		if end {
			break
		}
		child, up = up, up[off:]
		if r := p.nsec3At(p.hash(up)+"."+z.Origin, z.Origin); r != nil {
			return []dns.RR{r.rr, p.nsec3Covering(p.hash(child)).rr}
		}
	}
	return nil
}

// nextCloser is the name one label longer than its closest encloser ce
// on the way to name (RFC 5155 1.3).
func nextCloser(name, ce string) string {
	for up := name; ; {
		off, end := dns.NextLabel(up, 0)
		if end || up[off:] == ce || off == len(up) {
			return up
		}
		up = up[off:]
	}
}

// hash is name's NSEC3 hash (RFC 5155 5), written as the first label of
// an NSEC3 owner is kept: base32hex, lower case. Made here rather than by
// dns.HashName, which decodes the salt and allocates at every call: this
// is a DO query's path (1.4-1.6 us of an 8-10 us denial, measured).
func (p *presigned) hash(name string) string {
	var w [256]byte
	n, err := dns.PackDomainName(dns.Fqdn(name), w[:], 0, nil, false)
	if err != nil {
		return ""
	}
	for i, c := range w[:n] {
		if 'A' <= c && c <= 'Z' {
			w[i] = c + 'a' - 'A'
		}
	}
	h := sha1.New()
	h.Write(w[:n])
	h.Write(p.saltRaw)
	var sum [sha1.Size]byte
	h.Sum(sum[:0])
	for range p.iterations {
		h.Reset()
		h.Write(sum[:])
		h.Write(p.saltRaw)
		h.Sum(sum[:0])
	}
	var out [32]byte
	base32HexLower.Encode(out[:], sum[:])
	return string(out[:])
}

var base32HexLower = base32.NewEncoding("0123456789abcdefghijklmnopqrstuv").WithPadding(base32.NoPadding)

// nsec3At returns the chain's NSEC3 record owned by name, nil if none.
func (p *presigned) nsec3At(name, origin string) *nsec3Record {
	off, end := dns.NextLabel(name, 0)
	if end || name[off:] != origin {
		return nil
	}
	h := name[:off-1]
	i, found := sort.Find(len(p.nsec3), func(i int) int { return strings.Compare(h, p.nsec3[i].hash) })
	if !found {
		return nil
	}
	return &p.nsec3[i]
}

// nsec3Covering returns the chain's NSEC3 record whose interval holds
// hash h: the last one before it, or the last of all (the chain wraps).
func (p *presigned) nsec3Covering(h string) *nsec3Record {
	i := sort.Search(len(p.nsec3), func(i int) bool { return p.nsec3[i].hash >= h })
	if i == 0 {
		i = len(p.nsec3)
	}
	return &p.nsec3[i-1]
}

// nsecCovering appends to out the NSEC record of the last owner before
// name in canonical order (RFC 4034 6.1): its interval holds name. The
// apex comes first, so there is one for every name below it, in a zone
// with NSEC records at all.
func (p *presigned) nsecCovering(out []dns.RR, name string) []dns.RR {
	var kb [2 * 256]byte
	i, ok := p.nsecIndex(CanonicalKey(kb[:0], name))
	if !ok {
		return out
	}
	return append(out, p.nsec[i].get(dns.TypeNSEC)[0])
}

// nsecIndex returns the index in p.nsec of the last owner whose key is
// before key (the chain wraps: the last of all before the first).
func (p *presigned) nsecIndex(key []byte) (int, bool) {
	if len(p.nsec) == 0 {
		return 0, false
	}
	i := sort.Search(len(p.nsec), func(i int) bool { return bytes.Compare(p.nsecKey(i), key) >= 0 })
	if i == 0 {
		i = len(p.nsec)
	}
	return i - 1, true
}

// nsecKey is the CanonicalKey of p.nsec[i].
func (p *presigned) nsecKey(i int) []byte {
	start := uint32(0)
	if i > 0 {
		start = p.nsecEnd[i-1]
	}
	return p.nsecKeys[start:p.nsecEnd[i]]
}

// CanonicalKey appends to dst a key of name whose byte order is the
// canonical order of names (RFC 4034 6.1): its labels from the root, each
// lowercased and ended by 0x00, its octets 0x00 and 0x01 written 0x01
// 0x01 and 0x01 0x02, so that a label sorts before every longer one it
// begins, and a name before the names below it.
func CanonicalKey(dst []byte, name string) []byte {
	var w [256]byte
	n, err := dns.PackDomainName(dns.Fqdn(name), w[:], 0, nil, false)
	if err != nil {
		return dst
	}
	var starts [128]int
	k := 0
	for i := 0; i < n && w[i] != 0; i += 1 + int(w[i]) {
		starts[k] = i
		k++
	}
	for j := k - 1; j >= 0; j-- {
		i := starts[j]
		for _, c := range w[i+1 : i+1+int(w[i])] {
			switch {
			case c <= 1:
				dst = append(dst, 1, c+1)
			case 'A' <= c && c <= 'Z': // ASCII only: DNS folds no other case
				dst = append(dst, c+'a'-'A')
			default:
				dst = append(dst, c)
			}
		}
		dst = append(dst, 0)
	}
	return dst
}

// presign builds the zone's proofs from the records a pre-signed file
// brought: the NSEC owners in canonical order, the NSEC3 chain of the
// zone's parameters (records of other parameters, a chain being replaced,
// are served in transfers but prove nothing).
func (c *compiler) presign() {
	z := c.z
	p := &presigned{}
	type keyed struct {
		key string
		n   *node
	}
	var owners []keyed
	for _, n := range c.all {
		if n.get(dns.TypeNSEC) != nil {
			owners = append(owners, keyed{string(CanonicalKey(nil, n.name)), n})
		}
	}
	slices.SortFunc(owners, func(a, b keyed) int { return strings.Compare(a.key, b.key) })
	p.nsec = make([]*node, len(owners))
	p.nsecEnd = make([]uint32, len(owners))
	for i, o := range owners {
		p.nsec[i] = o.n
		p.nsecKeys = append(p.nsecKeys, o.key...)
		p.nsecEnd[i] = uint32(len(p.nsecKeys))
	}
	// The chain is that of the first NSEC3PARAM whose chain has the
	// apex's NSEC3 (as NSD chooses): a file may list a chain it does not
	// hold (RFC 5155 4 allows several NSEC3PARAMs), and proofs from no
	// chain at all left every denial bogus.
	var param *dns.NSEC3PARAM
	if ps := z.apex.get(dns.TypeNSEC3PARAM); len(ps) > 0 {
		param = ps[0].(*dns.NSEC3PARAM)
		for _, rr := range ps {
			if x := rr.(*dns.NSEC3PARAM); hasApex(c.nsec3, z.Origin, x) {
				param = x
				break
			}
		}
	}
	if param != nil {
		p.alg, p.iterations, p.salt = param.Hash, param.Iterations, param.Salt
	}
	sigs := map[string][]dns.RR{}
	for _, rr := range c.nsec3 {
		if s, ok := rr.(*dns.RRSIG); ok {
			sigs[s.Hdr.Name] = append(sigs[s.Hdr.Name], s)
		}
	}
	for _, rr := range c.nsec3 {
		n3, ok := rr.(*dns.NSEC3)
		if !ok {
			continue
		}
		if param == nil && len(p.nsec3) == 0 {
			p.alg, p.iterations, p.salt = n3.Hash, n3.Iterations, n3.Salt
		}
		if n3.Hash != p.alg || n3.Iterations != p.iterations || !strings.EqualFold(n3.Salt, p.salt) {
			continue
		}
		off, _ := dns.NextLabel(n3.Hdr.Name, 0)
		p.nsec3 = append(p.nsec3, nsec3Record{hash: n3.Hdr.Name[:off-1], rr: n3, sigs: sigs[n3.Hdr.Name]})
	}
	if raw, err := hex.DecodeString(p.salt); err == nil {
		p.saltRaw = raw // the parser read it as hex: it decodes
	}
	slices.SortFunc(p.nsec3, func(a, b nsec3Record) int { return strings.Compare(a.hash, b.hash) })
	p.nsec3 = slices.CompactFunc(p.nsec3, func(a, b nsec3Record) bool { return a.hash == b.hash })
	if len(p.nsec3) > 0 && p.alg != dns.SHA1 {
		c.errAt(c.spec.importNode, "import %s: NSEC3 hash algorithm %d: only SHA-1 (1) is defined", c.spec.importFile, p.alg)
	}
	p.all = c.nsec3
	p.signaturesExpire(c, sigs, time.Now())
	c.sigTTLs(p)
	z.count += len(c.nsec3)
	z.pre = p
}

// sigTTLs gives each RRSIG the TTL of the set it covers (RFC 4034 3): a
// YAML zone (geodns import of a signed file) holds one TTL for all the
// RRSIGs at a name, which cover sets of different TTLs.
func (c *compiler) sigTTLs(p *presigned) {
	fix := func(sigs []dns.RR, covered func(t uint16) []dns.RR) {
		for _, rr := range sigs {
			sig, ok := rr.(*dns.RRSIG)
			if !ok {
				continue
			}
			if set := covered(sig.TypeCovered); len(set) > 0 {
				sig.Hdr.Ttl = set[0].Header().Ttl
			}
		}
	}
	for _, n := range c.all {
		fix(n.get(dns.TypeRRSIG), n.get)
	}
	for _, r := range p.nsec3 {
		fix(r.sigs, func(uint16) []dns.RR { return []dns.RR{r.rr} })
	}
}

// hasApex reports whether the NSEC3 records nsec3 hold the apex's NSEC3
// of the chain of param's parameters.
func hasApex(nsec3 []dns.RR, origin string, param *dns.NSEC3PARAM) bool {
	h := strings.ToLower(dns.HashName(origin, param.Hash, param.Iterations, param.Salt))
	for _, rr := range nsec3 {
		n3, ok := rr.(*dns.NSEC3)
		if ok && n3.Hash == param.Hash && n3.Iterations == param.Iterations && strings.EqualFold(n3.Salt, param.Salt) &&
			strings.HasPrefix(n3.Hdr.Name, h+".") {
			return true
		}
	}
	return false
}
