package resolver

import (
	"encoding/binary"
	"net/netip"

	"github.com/geodns/geodns/zones"
	"github.com/miekg/dns"
)

// Names that do not exist in a zone — what a random-subdomain flood asks —
// are answered from their closest encloser alone: NXDOMAIN with the zone's
// SOA, or the records of the encloser's wildcard under the name asked. Two
// such responses below one encloser differ only in the question and in the
// compression pointers after it, which move with the question's length. So
// the engine writes the response once per (zone set, encloser, type, EDNS,
// DO, TCP), for a name of its own below the encloser, and answers every
// absent name from that template: a copy with the question replaced and the
// moving pointers moved. A flood then costs no resolve, no pack and no
// cache entry per name: the cache holds one template per encloser, so its
// memory stays flat however many names are asked, where caching each name
// paid a whole answer per query and filled the cache with names nobody
// asks again.
//
// The pointers that move are found, not assumed: the template is written
// twice, for two made-up names one byte apart in length, and every byte
// that differs past the question must belong to a pointer that moved by
// one. An answer that depends on the name in any other way (a service at
// the wildcard, denial that names the question, a signature that differs)
// fails that check, and the encloser is marked to be resolved per query.

// absentNames are the made-up names below an encloser templates are
// written for: the first two one byte apart in length, to find the
// pointers that move; the third, of two labels, to check the template
// answers it byte for byte as the engine does. A zone could hold such a
// name: the encloser must be the same for them as for the name asked, or
// no template is made.
var absentNames = [3]string{"geodns-absent-3c9f1e", "geodns-absent-3c9f1e7", "x.geodns-absent-3c9f1e"}

// template is the response to any absent name below one encloser.
type template struct {
	p *packed // written for absentNames[0] below the encloser; nil: resolve each name
	// ptrs are where, in p.wire, the compression pointers past the
	// question are that point past its first label: each moves by the
	// length of the name asked less the template name's.
	ptrs    []int
	nameLen int // wire length of the template's name
	// door is the doorkeeper of the absent names below the encloser
	// (see serveAbsent): the template's own, small, so that it stays in
	// the processor's cache while a flood asks below the encloser, where
	// a slot of the cache's 256 KiB doorkeeper was a cache miss per name
	// (a third of a flood query's time in the server).
	door [absentDoorSlots]uint32 // see knock
}

// absentDoorSlots is the size of a template's doorkeeper: 1 KiB. A name
// below the encloser asked again before as many other absent names there
// took its slot gets an entry of its own; under a flood, which takes a
// slot every few milliseconds, a name rarely does, and is answered from
// the template (the same bytes) instead.
const absentDoorSlots = 256

// absentKey writes into b the cache key of the template for the question
// of key k (fq.key) below an encloser whose wire form is the last encWire
// bytes of its name: 0xC0 (never the first byte of a question's key, which
// is a label length of at most 63 or the root's 0), the encloser, then the
// type and flags as in a question's key.
func absentKey(b *[absentKeyMax]byte, k []byte, nameLen, encWire int) []byte {
	b[0] = 0xC0
	return b[:1+copy(b[1:], k[nameLen-encWire:])]
}

// absentKeyMax is the longest template key: 0xC0, a name, the type and
// flags.
const absentKeyMax = 1 + 255 + 3

// serveAbsent answers fq from its closest encloser's template when its
// name does not exist in the set's zone for it. ok is false when the name
// exists, the answer differs between absent names, or the response would
// not fit the client's limit: the caller resolves the query.
//
// A name asked a second time (the doorkeeper's rule, with the template's
// doorkeeper; kh is key's hash, nh its name's) gets an entry of its own,
// so an absent name clients do ask for (a typo in a popular link, a
// resolver's probe) is a plain cache hit from then on.
func (h *Handler) serveAbsent(c *fastCache, set *zones.Set, key []byte, kh, nh uint64, fq *query, remote netip.Addr, tcp bool, out []byte, limit int, md mode) ([]byte, bool) {
	if !fq.question {
		return nil, false
	}
	// Decided on the wire name, as asked: its text form is needed only to
	// write a template.
	lname := fq.lowerName()
	z := set.FindWire(lname, fq.qtype)
	if z == nil || fq.do && (h.signsOnline(z) || z.Presigned()) {
		// Signed denial names the question (compact denial's NSEC), so a
		// signed answer is never the same for two names: not tried. A
		// pre-signed zone's proofs depend on where the name falls between
		// its NSEC or NSEC3 records: resolved per name (templates per
		// interval were tried and left out: benchmarks/RESULTS.md).
		return nil, false
	}
	encWire, encHash, ok := z.AbsentWire(lname, nh)
	n := len(fq.name)
	if !ok || encWire >= n {
		return nil, false
	}
	var kb [absentKeyMax]byte
	tkey := absentKey(&kb, key, n, encWire)
	tkh := keyHash(encHash, key[n:], true) // tkey's, from the hash the walk made
	var t *template
	if e := c.getH(tkey, tkh); e != nil {
		t = e.absent
	}
	if t == nil {
		t = h.template(set, z, zones.NameFromWire(lname[n-encWire:]), fq, remote, tcp)
		c.putH(tkey, tkh, &entry{absent: t})
	}
	if t.p == nil {
		return nil, false
	}
	delta := n - t.nameLen
	if len(t.p.wire)+delta+reserve(fq, t.p.echoCookie, t.p.echoECS) > limit {
		return nil, false // the resolve path truncates it
	}
	resp, ok := t.render(out[:0], fq.lowerName())
	if !ok {
		return nil, false
	}
	p := *t.p
	p.wire, p.qend = resp, t.p.qend+delta
	if p.opt >= 0 {
		p.opt += delta
	}
	if knock(t.door[:], kh) {
		kept := p
		kept.wire = append([]byte(nil), resp...) // deliver patches resp in place
		c.putH(key, kh, &entry{static: &kept})
	}
	return h.deliver(&p, fq, remote, tcp, out, 0, nil, false, md), true
}

// signsOnline reports whether the signer signs z's answers as they are
// made: geodns's own signer for the zones it signs, and any other Signer
// (which may sign every zone). Not an unsigned zone's: before, every DO
// query for an absent name was resolved when the server had a signer at
// all, which it always has (most resolvers set DO).
func (h *Handler) signsOnline(z *zones.Zone) bool {
	switch s := h.cfg.Signer.(type) {
	case nil:
		return false
	case *zoneSigner:
		return s.s.Signs(z.Origin)
	}
	return true
}

// template writes the response to absent names below enc in zone z, as
// asked in fq (its type, EDNS part, TCP or not): the response for
// absentNames[0] below enc, with the pointers that move with the name
// asked. Its p is nil when the response is not the same for every such
// name.
func (h *Handler) template(set *zones.Set, z *zones.Zone, enc string, fq *query, remote netip.Addr, tcp bool) *template {
	t := &template{}
	var ps [len(absentNames)]*packed
	var names [len(absentNames)][]byte
	for i, label := range absentNames {
		name := label + "." + enc
		if enc == "." {
			name = label + "."
		}
		if e, ok := z.Absent(name, fq.qtype); !ok || e != enc {
			return t // a zone of the made-up names: not ours to guess
		}
		wire := make([]byte, 255)
		l, err := dns.PackDomainName(name, wire, 0, nil, false)
		if err != nil {
			return t // the encloser's name is too long for more labels
		}
		sq := *fq
		sq.name = wire[:l]
		copy(sq.lower[:], sq.name)
		// Resolved as an explain is (no side effects: nothing counted),
		// written as traffic is (counted and rate limited when delivered).
		o := h.resolve(set, &sq, remote, tcp, nil, explain, nil, nil)
		if !o.in || o.z != z || o.services > 0 || o.rcode != dns.RcodeSuccess && o.rcode != dns.RcodeNameError {
			return t
		}
		p := h.write(&sq, &o, 65535, nil, true, traffic)
		if p.trimmed {
			return t
		}
		ps[i], names[i] = p, sq.name
	}
	ptrs, ok := movedPointers(ps[0].wire, ps[1].wire, ps[0].qend)
	if !ok {
		return t
	}
	c := template{p: ps[0], ptrs: ptrs, nameLen: len(names[0])}
	if got, ok := c.render(nil, names[2]); !ok || string(got) != string(ps[2].wire) {
		return t // the pointers found do not make the engine's own answer
	}
	p := ps[0]
	if h.rrl != nil {
		// Rate limited as BIND does: a wildcard's answers (and its NODATA)
		// are one class, the wildcard's, not one per name asked; NXDOMAIN
		// is the zone's already.
		switch p.rrl.kind {
		case kindAnswer:
			p.rrl = h.rrl.classOf(kindAnswer, fq.qtype, "*."+enc)
		case kindNodata:
			p.rrl = h.rrl.classOf(kindNodata, 0, "*."+enc)
		}
	}
	t.p, t.ptrs, t.nameLen = p, ptrs, len(names[0])
	return t
}

// render appends t's response for the lower-case wire name name to dst:
// the template's header, the name's question, and the rest with its
// moving pointers moved. ok is false when one would point past what a
// pointer can reach.
func (t *template) render(dst, name []byte) ([]byte, bool) {
	delta := len(name) - t.nameLen
	tq := 12 + t.nameLen // where the template's name ends
	base := len(dst)
	dst = append(dst, t.p.wire[:12]...)
	dst = append(dst, name...)
	dst = append(dst, t.p.wire[tq:]...)
	for _, off := range t.ptrs {
		at := dst[base+off+delta:]
		to := int(binary.BigEndian.Uint16(at)&0x3FFF) + delta
		if to > 0x3FFF {
			return nil, false
		}
		binary.BigEndian.PutUint16(at, 0xC000|uint16(to))
	}
	return dst, true
}

// movedPointers compares a and b, one response written for two question
// names one byte apart in length, a's question ending at qa: it returns
// where in a the compression pointers past the question are that moved by
// one, and ok false when anything else differs.
func movedPointers(a, b []byte, qa int) (ptrs []int, ok bool) {
	if len(b) != len(a)+1 || qa < 16 || qa > len(a) {
		return nil, false
	}
	if string(a[:12]) != string(b[:12]) || string(a[qa-4:qa]) != string(b[qa-3:qa+1]) {
		return nil, false
	}
	ra, rb := a[qa:], b[qa+1:]
	for i := 0; i < len(ra); i++ {
		if ra[i] == rb[i] {
			continue
		}
		// A moved pointer's low byte always differs; its high byte too
		// when the low one carried. So a differing byte starts a pointer
		// if the next differs too and the pair moved by one; else it is
		// the low byte of a pointer that starts one before.
		start := i - 1
		if i+1 < len(ra) && binary.BigEndian.Uint16(ra[i:])+1 == binary.BigEndian.Uint16(rb[i:]) && ra[i+1] != rb[i+1] {
			start = i
		}
		if start < 0 || start+2 > len(ra) {
			return nil, false
		}
		pa, pb := binary.BigEndian.Uint16(ra[start:]), binary.BigEndian.Uint16(rb[start:])
		if pa&0xC000 != 0xC000 || pa+1 != pb || int(pa&0x3FFF) <= 12 {
			return nil, false
		}
		ptrs = append(ptrs, qa+start)
		i = start + 1
	}
	return ptrs, true
}
