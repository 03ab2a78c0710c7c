package zones

import (
	"slices"
	"strings"
	"unsafe"

	"github.com/miekg/dns"
)

// Result classifies a lookup's outcome.
type Result uint8

const (
	Success    Result = iota // records answer the question
	NXDomain                 // the name does not exist
	NoData                   // the name exists, the type does not
	Delegation               // the name is at or below a zone cut: a referral
	YXDomain                 // a DNAME made a name too long (RFC 6672 2.2): the answer holds the DNAME
)

var resultNames = [...]string{"success", "nxdomain", "nodata", "delegation", "yxdomain"}

func (r Result) String() string { return resultNames[r] }

// Answer is the outcome of a lookup. Its slices may share the zone's
// records: callers must not mutate them.
type Answer struct {
	Result Result
	Answer []dns.RR
	Ns     []dns.RR
	Extra  []dns.RR
}

// ServiceFunc answers a service name (owner) for qtype A or AAAA, or with
// its CNAME (qtype CNAME) for CNAME services. It returns nil when the
// service has nothing for that type or client.
type ServiceFunc func(svc *Service, owner string, qtype uint16) []dns.RR

// maxChain bounds in-zone CNAME and DNAME chains; a longer one (or a loop)
// is answered as far as it got.
const maxChain = 12

// Lookup answers qname/qtype from the zone, following RFC 1034 4.3.2 with
// RFC 4592 wildcards and RFC 6672 DNAME substitution. qname must be
// canonical (see CanonicalName) and inside the zone. With minimalAny, ANY
// is answered with a single RRset (RFC 8482). svc answers service names;
// nil answers them NODATA.
func (z *Zone) Lookup(qname string, qtype uint16, minimalAny bool, svc ServiceFunc) Answer {
	return z.LookupAs(qname, qname, qtype, minimalAny, svc)
}

// LookupAs is Lookup for the name asked written as asked (the same name as
// qname, in the client's letter case): the records it synthesizes for that
// name — from a wildcard, or the CNAME a DNAME makes — are owned by asked,
// as the client wrote it.
func (z *Zone) LookupAs(qname, asked string, qtype uint16, minimalAny bool, svc ServiceFunc) Answer {
	var a Answer
	name, owner := qname, asked
	for hop := 0; ; hop, owner = hop+1, "" {
		if owner == "" {
			owner = name
		}
		n, stop, ce := z.find(name, qtype)
		if stop != nil && stop.dname {
			// RFC 6672 2.3: the DNAME, and a CNAME from the name asked to
			// the name substituted.
			dn := stop.get(dns.TypeDNAME)
			if slices.Contains(a.Answer, dn[0]) {
				return a // the chain came back below a DNAME it used: a loop (as NSD, which stops there)
			}
			a.Answer = appendRRs(a.Answer, dn, false, "")
			target, ok := substitute(name, stop.name, dn[0].(*dns.DNAME).Target)
			if !ok {
				a.Result = YXDomain // RFC 6672 2.2: the name would be too long
				return a
			}
			hdr := dn[0].Header()
			a.Answer = append(a.Answer, &dns.CNAME{
				Hdr:    dns.RR_Header{Name: owner, Rrtype: dns.TypeCNAME, Class: dns.ClassINET, Ttl: hdr.Ttl},
				Target: target,
			})
			if qtype == dns.TypeCNAME || hop+1 >= maxChain || !dns.IsSubDomain(z.Origin, target) || answered(a.Answer, target) {
				return a
			}
			name = target
			continue
		}
		if stop != nil {
			ns := stop.set(dns.TypeNS)
			a.Ns, a.Extra = ns.records(), ns.extra()
			if hop == 0 {
				a.Result = Delegation
			}
			return a
		}
		synth := n == nil
		if synth {
			if ce.wild == nil {
				a.Result, a.Ns = NXDomain, z.negSOA
				return a
			}
			n = ce.wild
		}
		cname := n.get(dns.TypeCNAME)
		if cname == nil && n.service != nil && n.service.CNAME && svc != nil {
			cname = svc(n.service, name, dns.TypeCNAME) // a CNAME service: the target depends on the client
		}
		// A pre-signed zone's NSEC and RRSIG records stand beside a CNAME
		// and answer for themselves (RFC 4035 2.5, 3.1.4 of RFC 4035).
		if cname != nil && qtype != dns.TypeCNAME && qtype != dns.TypeANY && n.set(qtype) == nil {
			a.Answer = appendRRs(a.Answer, cname, synth, owner)
			target := CanonicalName(cname[0].(*dns.CNAME).Target)
			if hop+1 >= maxChain || !dns.IsSubDomain(z.Origin, target) || answered(a.Answer, target) {
				return a // out of zone, too long, or a loop: the client takes it from here
			}
			name = target
			continue
		}
		chained := len(a.Answer)
		switch {
		case qtype == dns.TypeANY:
			a.Answer = z.any(a.Answer, n, owner, synth, minimalAny, svc)
		case n.service != nil && n.service.CNAME && qtype == dns.TypeCNAME:
			a.Answer = appendRRs(a.Answer, cname, false, name)
		case n.service != nil && !n.service.CNAME && (qtype == dns.TypeA || qtype == dns.TypeAAAA):
			if svc != nil {
				a.Answer = appendRRs(a.Answer, svc(n.service, name, qtype), false, name)
			}
		default:
			if set := n.set(qtype); set != nil {
				a.Answer = appendRRs(a.Answer, set.records(), synth, owner)
				a.Extra = set.extra()
			}
		}
		if len(a.Answer) == chained {
			a.Result, a.Ns = NoData, z.negSOA
		}
		return a
	}
}

// substitute replaces the suffix owner of name with target (RFC 6672 2.2):
// the name a DNAME at owner makes of name, canonical. ok is false when the
// result is longer than a name may be.
func substitute(name, owner, target string) (string, bool) {
	prefix := name[:len(name)-len(owner)] // labels and their dots: "x.y."
	target = CanonicalName(target)
	if target != "." {
		target = prefix + target
	} else {
		target = prefix
	}
	return target, nameWireLen(target) <= 255
}

// Absent reports whether name, canonical and in the zone, has no node of
// its own and no delegation or DNAME above it: its answer then depends
// only on its closest encloser (NXDOMAIN, or the records of the
// encloser's wildcard under the name asked), which Absent returns.
func (z *Zone) Absent(name string, qtype uint16) (enc string, ok bool) {
	n, stop, ce := z.find(name, qtype)
	if n != nil || stop != nil {
		return "", false
	}
	return ce.name, true
}

// find walks from the apex down to name. It returns the node for name if it
// exists, or else where the walk stopped: a delegation (stop.cut) or a
// DNAME strictly above name (stop.dname); and the closest encloser.
// A DS question at a cut is answered by this (the parent) side.
func (z *Zone) find(name string, qtype uint16) (n, stop, ce *node) {
	ce = z.apex
	below := len(name) - len(z.Origin) // labels starting before this are below the apex
	if below > 0 && ce.dname {
		return nil, ce, ce // a DNAME at the apex: every name below is substituted
	}
	var starts [128]int
	k := 0
	for off, end := 0, false; !end && off < below && k < len(starts); off, end = dns.NextLabel(name, off) {
		starts[k] = off
		k++
	}
	for i := k - 1; i >= 0; i-- {
		nd := z.nodes[name[starts[i]:]]
		if nd == nil {
			return nil, nil, ce
		}
		ce = nd
		if nd.cut && (i > 0 || qtype != dns.TypeDS) {
			return nil, nd, ce
		}
		if nd.dname && i > 0 {
			return nil, nd, ce
		}
	}
	return ce, nil, ce
}

func (z *Zone) any(out []dns.RR, n *node, owner string, synth, minimal bool, svc ServiceFunc) []dns.RR {
	if n.service != nil && n.service.CNAME && svc != nil {
		return appendRRs(out, svc(n.service, owner, dns.TypeCNAME), false, owner)
	}
	if n.service != nil && svc != nil {
		for _, t := range []uint16{dns.TypeA, dns.TypeAAAA} {
			out = appendRRs(out, svc(n.service, owner, t), false, owner)
			if minimal && len(out) > 0 {
				return out
			}
		}
	}
	for i := range n.sets {
		if n.sets[i].rtype == dns.TypeRRSIG {
			continue // a pre-signed zone's: they come with the sets they sign, for DO
		}
		out = appendRRs(out, n.sets[i].records(), synth, owner)
		if minimal {
			break
		}
	}
	return out
}

// answered reports whether name already owns a record of the answer: a
// CNAME or DNAME loop, stopped there so each record is sent once. Owners
// are canonical but for the letter case of the name asked.
func answered(rrs []dns.RR, name string) bool {
	for _, rr := range rrs {
		if strings.EqualFold(rr.Header().Name, name) {
			return true
		}
	}
	return false
}

// appendRRs appends a set; records synthesized from a wildcard are copied
// under the owner asked for. The first set may be returned as it is (the
// zone's own slice, no allocation); any append after it copies, so the
// zone's backing arrays are never written by a query.
func appendRRs(dst, rrs []dns.RR, synth bool, owner string) []dns.RR {
	if !synth {
		if dst == nil {
			return rrs
		}
		return append(dst[:len(dst):len(dst)], rrs...)
	}
	for _, rr := range rrs {
		c := dns.Copy(rr)
		c.Header().Name = owner
		dst = append(dst, c)
	}
	return dst
}

// Set is an immutable collection of zones, found by longest suffix match.
type Set struct {
	zones map[string]*Zone // by origin
	// wire is the zones by origin in lower-case wire form, where Find and
	// FindWire look names up; lens has bit n%256 set for every such origin
	// n octets long, so that only the suffixes of a name some origin could
	// be are looked up: a name below a zone's apex costs one map lookup,
	// not one per label.
	wire map[string]*Zone
	lens [4]uint64
}

// NewSet returns a set of the given zones.
func NewSet(zs ...*Zone) *Set {
	s := &Set{zones: make(map[string]*Zone, len(zs))}
	for _, z := range zs {
		s.zones[z.Origin] = z
	}
	s.index()
	return s
}

// index sets wire and lens from the zones.
func (s *Set) index() {
	s.lens = [4]uint64{}
	s.wire = make(map[string]*Zone, len(s.zones))
	for _, z := range s.zones {
		s.wire[z.originWire] = z
		n := len(z.originWire) % 256
		s.lens[n/64] |= 1 << (n % 64)
	}
}

// mayHold reports whether some origin is n octets long in wire form (or
// may be).
func (s *Set) mayHold(n int) bool {
	n %= 256
	return s.lens[n/64]&(1<<(n%64)) != 0
}

// With returns a copy of the set with z added or replaced.
func (s *Set) With(z *Zone) *Set { return s.Update([]*Zone{z}, nil) }

// Without returns a copy of the set without the zone named origin.
func (s *Set) Without(origin string) *Set { return s.Update(nil, []string{origin}) }

// Update returns a copy of the set with the zones in add added or
// replaced and those named in remove taken out: one copy however many
// zones change, so loading thousands of zones is not quadratic.
func (s *Set) Update(add []*Zone, remove []string) *Set {
	n := &Set{zones: make(map[string]*Zone, len(s.zones)+len(add))}
	for k, v := range s.zones {
		n.zones[k] = v
	}
	for _, z := range add {
		n.zones[z.Origin] = z
	}
	for _, o := range remove {
		delete(n.zones, o)
	}
	n.index()
	return n
}

// Zone returns the zone named origin, or nil.
func (s *Set) Zone(origin string) *Zone { return s.zones[origin] }

// Zones returns every zone in the set, in no particular order.
func (s *Set) Zones() []*Zone {
	out := make([]*Zone, 0, len(s.zones))
	for _, z := range s.zones {
		out = append(out, z)
	}
	return out
}

// Find returns the zone that answers qname (canonical): the closest
// enclosing one. A DS question at a zone's apex belongs to the parent zone
// when the parent is served too (RFC 4035 3.1.4.1). A qname that is not a
// name (see appendWire) has none.
func (s *Set) Find(qname string, qtype uint16) *Zone {
	var buf [256]byte
	return s.FindWire(appendWire(buf[:0], qname), qtype)
}

// FindWire is Find for the lower-case wire name name (uncompressed, ending
// with the root label), which a query holds: found without its text form.
func (s *Set) FindWire(name []byte, qtype uint16) *Zone {
	var best *Zone
	for off := 0; off < len(name); off += int(name[off]) + 1 {
		suffix := name[off:]
		if !s.mayHold(len(suffix)) {
			continue
		}
		if z := s.wire[unsafe.String(unsafe.SliceData(suffix), len(suffix))]; z != nil {
			if off == 0 && qtype == dns.TypeDS && len(name) > 1 {
				best = z // a DS at an apex: the parent's, when served
				continue
			}
			return z
		}
	}
	return best
}
