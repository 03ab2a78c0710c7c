package resolver

import (
	"slices"
	"strings"

	"github.com/geodns/geodns/zones"
	"github.com/miekg/dns"
)

// DNSSEC signs zones: keys, RRset signatures, compact denial;
// *dnssec.Manager is one. It is safe for concurrent use; the records it
// returns are shared and must not be mutated.
type DNSSEC interface {
	// Signs reports whether zone origin is signed.
	Signs(origin string) bool
	// Sign returns the RRSIG records of rrset, cached or made now.
	Sign(origin string, rrset []dns.RR) []dns.RR
	// Deny returns the compact denial (RFC 9824) of name, canonical: an
	// NSEC record (unsigned; the writer signs it); nx for a name that does
	// not exist, else types are what name has.
	Deny(origin, name string, ttl uint32, types []uint16, nx bool) []dns.RR
	// Apex returns the DNSKEY, CDS or CDNSKEY RRset of the zone and its
	// signatures; nil if the zone has none.
	Apex(origin string, qtype uint16) (rrset, sigs []dns.RR)
	// Generation changes whenever signatures change (new keys, a new
	// signing window): packed answers made before are dropped.
	Generation() uint64
}

// NewSigner returns the writer's Signer for the zones s signs. Besides
// signing each RRset of an answer (the writer's seam), the engine asks it,
// for a signed zone, for what the zone does not hold: the DNSKEY, CDS and
// CDNSKEY RRsets at the apex, the compact denial of a name or type that
// does not exist, the DS (or its absence) at a referral; and drops its
// packed answers when the signatures change.
func NewSigner(s DNSSEC) Signer { return &zoneSigner{s: s} }

type zoneSigner struct{ s DNSSEC }

// Sign implements Signer: the signatures of rrs, if z is signed. A child's
// NS set at a delegation is the child's and is not signed (RFC 4035 2.2).
func (zs *zoneSigner) Sign(z *zones.Zone, rrs []dns.RR) []dns.RR {
	h := rrs[0].Header()
	switch h.Rrtype {
	case dns.TypeRRSIG:
		return nil
	case dns.TypeNS:
		if !strings.EqualFold(h.Name, z.Origin) {
			return nil
		}
	case dns.TypeDNSKEY, dns.TypeCDS, dns.TypeCDNSKEY:
		if _, sigs := zs.s.Apex(z.Origin, h.Rrtype); sigs != nil {
			return sigs // made with the key RRsets, by the KSK
		}
	}
	return zs.s.Sign(z.Origin, rrs)
}

// dnssec returns the zone signer, nil without one.
func (h *Handler) dnssec() *zoneSigner {
	zs, _ := h.cfg.Signer.(*zoneSigner)
	return zs
}

// generation is the zone signer's generation, 0 without one.
func (h *Handler) generation() uint64 {
	if zs := h.dnssec(); zs != nil {
		return zs.s.Generation()
	}
	return 0
}

// signedAnswer turns the lookup a of signed zone z into its DNSSEC
// answer: the key RRsets at the apex (for every client), and for a client
// that set DO the compact denial of a name or type that does not exist —
// NOERROR with an NSEC that lists NXNAME, unless the client set CO (RFC
// 9824 3.4), which gets NXDOMAIN — and the DS, or the proof there is none,
// of a referral. The writer signs the answer and authority sections; the
// additional section's authoritative RRsets are signed here. nx says
// whether the rcode is NXDOMAIN.
func (zs *zoneSigner) signedAnswer(z *zones.Zone, qname string, qtype uint16, a zones.Answer, do, co bool) (zones.Answer, bool) {
	s := zs.s
	if qname == z.Origin && (qtype == dns.TypeDNSKEY || qtype == dns.TypeCDS || qtype == dns.TypeCDNSKEY) {
		if rrs, _ := s.Apex(z.Origin, qtype); rrs != nil {
			return zones.Answer{Result: zones.Success, Answer: rrs}, false
		}
	}
	if !do {
		return a, a.Result == zones.NXDomain
	}
	if qtype == dns.TypeNSEC || qtype == dns.TypeRRSIG {
		if own, ok := zs.ownRecords(z, qname, qtype, co); ok {
			return own, false
		}
	}
	out := zones.Answer{Result: a.Result, Answer: a.Answer, Ns: a.Ns, Extra: a.Extra}
	switch a.Result {
	case zones.Delegation:
		// Its DS (the writer signs it), or an NSEC proving there is none:
		// an insecure delegation.
		cut := dns.CanonicalName(a.Ns[0].Header().Name)
		out.Ns = a.Ns[:len(a.Ns):len(a.Ns)]
		if ds := z.Lookup(cut, dns.TypeDS, true, nil); ds.Result == zones.Success {
			out.Ns = append(out.Ns, ds.Answer...)
		} else {
			out.Ns = append(out.Ns, s.Deny(z.Origin, cut, z.NegativeTTL(), z.NameTypes(cut), false)...)
		}
		return out, false
	case zones.NXDomain, zones.NoData:
		name := qname
		if n := len(a.Answer); n > 0 {
			if c, ok := a.Answer[n-1].(*dns.CNAME); ok {
				name = dns.CanonicalName(c.Target) // the chain ended at a name that lacks the type
			}
		}
		out.Ns = a.Ns[:len(a.Ns):len(a.Ns)] // the SOA
		if a.Result == zones.NXDomain {
			out.Ns = append(out.Ns, s.Deny(z.Origin, name, z.NegativeTTL(), nil, true)...)
			out.Result = zones.NoData // answered NOERROR, unless the client asked for the rcode
			return out, co
		}
		types := slices.DeleteFunc(slices.Clone(z.NameTypes(name)), func(t uint16) bool { return t == qtype })
		out.Ns = append(out.Ns, s.Deny(z.Origin, name, z.NegativeTTL(), types, false)...)
		return out, false
	}
	out.Extra = sign(zs, z, a.Extra)
	return out, false
}

// ownRecords answers a question for the NSEC or RRSIG records of qname
// itself; ok is false where the usual answer stands (a referral, a name
// below a DNAME, a name that does not exist asked with CO). Under compact
// denial every name has an NSEC — the one its denials carry, listing NSEC
// and RRSIG — so a NODATA for either type would deny what its own proof
// lists (RFC 4035 5.4), and validators call it bogus. The NSEC is the
// answer instead, as if stored (a name that does not exist gets its
// NXNAME NSEC, like any other type's denial); a CNAME is not followed, as
// NSEC and RRSIG live beside one (RFC 4034 4, RFC 2181 10.1). RRSIG is
// answered with the signatures of the name's RRsets and of its NSEC, as a
// server holding a signed zone would: a validator takes them as they are
// (Unbound does not validate a positive RRSIG answer; there are no
// signatures over signatures). A service's A and AAAA signatures are left
// out: they are made per answer, for the client's site.
func (zs *zoneSigner) ownRecords(z *zones.Zone, qname string, qtype uint16, co bool) (zones.Answer, bool) {
	s := zs.s
	own := z.Lookup(qname, dns.TypeCNAME, true, nil) // CNAME: the name itself, no chain followed
	nx := own.Result == zones.NXDomain
	switch {
	case own.Result == zones.Delegation, own.Result == zones.YXDomain, nx && co:
		return zones.Answer{}, false
	}
	for _, rr := range own.Answer {
		if rr.Header().Rrtype == dns.TypeDNAME {
			return zones.Answer{}, false // the name is the DNAME target's: the usual substitution answers
		}
	}
	var types []uint16
	if !nx {
		types = z.NameTypes(qname)
	}
	nsec := s.Deny(z.Origin, qname, z.NegativeTTL(), types, nx)
	if qtype == dns.TypeNSEC {
		return zones.Answer{Result: zones.Success, Answer: nsec}, true
	}
	var sigs []dns.RR
	for _, t := range types {
		a := z.Lookup(qname, t, true, nil)
		if a.Result != zones.Success {
			continue // a service's addresses (no client here)
		}
		set := slices.DeleteFunc(slices.Clone(a.Answer), func(rr dns.RR) bool {
			return rr.Header().Rrtype != t || !strings.EqualFold(rr.Header().Name, qname)
		})
		if len(set) > 0 {
			sigs = append(sigs, zs.Sign(z, set)...)
		}
	}
	if qname == z.Origin {
		for _, t := range []uint16{dns.TypeDNSKEY, dns.TypeCDS, dns.TypeCDNSKEY} {
			_, ks := s.Apex(z.Origin, t)
			sigs = append(sigs, ks...)
		}
	}
	sigs = append(sigs, zs.Sign(z, nsec)...)
	return zones.Answer{Result: zones.Success, Answer: sigs}, true
}
