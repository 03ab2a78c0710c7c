package zones

import (
	"strings"
	"time"

	"github.com/miekg/dns"
)

// validate checks what only the whole zone can tell.
func (c *compiler) validate(recs []placed) {
	z := c.z
	// at reports a problem with the records of name, warn one that does
	// not stop the load (warnings.go: reporter).
	at, warn := c.reporters(recs)
	apex := z.apex
	if apex == nil || apex.get(dns.TypeNS) == nil {
		// NSD and Knot load such a zone (a new zone, or one served only to
		// secondaries by transfer): a warning, as theirs.
		warn(z.Origin, "no NS records at the apex: no resolver can be delegated to this zone")
	}
	c.shares(func(nodes []*node) [2]uint64 {
		for _, n := range nodes {
			c.validateNode(n, at, warn)
		}
		return [2]uint64{}
	})
	c.checkTargets()
	for _, b := range c.bigTTLs {
		c.warnRR(b.rr, b.rr.Header().Name, "TTL %d is above 2147483647 (RFC 2181 8: a receiver reads it as 0): served as 0", b.ttl)
	}
	for _, rr := range c.signerOwned {
		c.warnRR(rr, rr.Header().Name, "%s record in a zone geodns signs (dnssec:): dropped, the signer makes its own", dns.TypeToString[rr.Header().Rrtype])
	}
	if at, set, ok := z.SignaturesExpire(); ok && at.Before(time.Now()) {
		c.warnRR(nil, z.Origin, "the signatures of %s expired at %s (the first RRset without a valid one): "+
			"validators reject the zone's answers until its file is signed again", set, at.UTC().Format(time.RFC3339))
	}
	if p := z.pre; p != nil && len(p.nsec) == 0 && len(p.nsec3) == 0 {
		what := "no NSEC records and no NSEC3 records"
		if ps := z.apex.get(dns.TypeNSEC3PARAM); len(ps) > 0 {
			what = "no NSEC records, and no NSEC3 chain of its NSEC3PARAM's parameters (" + rdata(ps[0]) + ")"
		}
		c.warnRR(nil, z.Origin, "a pre-signed zone with %s: names and types that do not exist are answered without proof, "+
			"which validators reject", what)
	}
	if p := z.pre; p != nil && len(p.nsec3) > 0 && p.iterations > maxNSEC3Iterations {
		rr := p.nsec3[0].rr
		c.warnRR(rr, rr.Hdr.Name, "NSEC3 with %d extra iterations: validators treat more than %d as insecure (RFC 9276 3.2), "+
			"and each denial costs this server %d hashes; RFC 9276 says 0", p.iterations, maxNSEC3Iterations, 3*(int(p.iterations)+1))
	}
}

// maxNSEC3Iterations is the most NSEC3 iterations validators still take
// as secure (Unbound's and BIND's limit, RFC 9276 3.2).
const maxNSEC3Iterations = 150

// validateNode checks one name against the rest of the zone; at reports,
// warn warns.
func (c *compiler) validateNode(n *node, at, warn func(name, format string, args ...any)) {
	z, name := c.z, n.name
	if n.get(dns.TypeSOA) != nil && name != z.Origin {
		at(name, "SOA record below the apex")
	}
	if cn := n.get(dns.TypeCNAME); cn != nil {
		if len(cn) > 1 {
			at(name, "more than one CNAME")
		}
		for _, s := range n.sets {
			// RRSIG and NSEC stand beside a CNAME (RFC 4035 2.5, 2.3).
			if s.rtype != dns.TypeCNAME && s.rtype != dns.TypeRRSIG && s.rtype != dns.TypeNSEC {
				at(name, "CNAME beside other data (%s)", dns.TypeToString[s.rtype])
				break
			}
		}
		if n.service != nil {
			at(name, "CNAME beside a service")
		}
	}
	if dn := n.get(dns.TypeDNAME); len(dn) > 1 {
		at(name, "more than one DNAME (RFC 6672 2.4: one substitution per name)")
	}
	if c.dnames > 0 && (len(n.sets) > 0 || n.service != nil) {
		if d := c.dnameAbove(name); d != "" {
			at(name, "data below the DNAME at %s (RFC 6672 2.4: a DNAME's owner has no descendants; NSD and Knot refuse it too)", c.rel(d))
		}
	}
	if n.service != nil && c.presigned {
		at(name, "service %q in a pre-signed zone (its file holds RRSIG, NSEC or NSEC3 records): "+
			"a per-client answer has no signature a file can hold; let geodns sign the zone (dnssec:) instead", n.service.Name)
	}
	if n.service != nil && (n.get(dns.TypeA) != nil || n.get(dns.TypeAAAA) != nil) {
		at(name, "A/AAAA records beside a service (the service answers those)")
	}
	if n.service != nil && n.service.CNAME && len(n.sets) > 0 {
		at(name, "service %q answers with a CNAME, which cannot stand beside other data (%s)",
			n.service.Name, dns.TypeToString[n.sets[0].rtype])
	}
	if n.get(dns.TypeDS) != nil && !n.cut {
		// NSD and Knot serve it as data: a warning, as theirs.
		warn(name, "DS record without a delegation (NS) at the same name: resolvers ask the parent zone for a DS, never this one")
	}
	if n.cut {
		if strings.HasPrefix(name, "*.") {
			// RFC 4592 4.2 leaves a wildcard NS undefined; NSD and Knot
			// load it and differ. geodns answers as NSD: a delegation of
			// the literal name, the names it matches get its other
			// records (NODATA but for NS). Unsigned only: what a signer
			// should prove there is no better defined.
			if c.spec.dnssec != nil {
				at(name, "wildcard delegation (NS at a wildcard) in a zone geodns signs: not supported")
			} else {
				warn(name, "wildcard delegation (NS at a wildcard; RFC 4592 4.2 leaves it undefined): served as NSD does, "+
					"a referral for the literal name, and names the wildcard matches get NODATA but for NS")
			}
		}
		if n.service != nil {
			at(name, "a service at a delegation point")
		}
		for _, s := range n.sets {
			switch s.rtype {
			case dns.TypeNS, dns.TypeDS, dns.TypeA, dns.TypeAAAA:
			case dns.TypeNSEC, dns.TypeRRSIG:
				// A pre-signed file's: the parent side's proof and signatures
				// (RFC 4035 2.3, 2.4), served with a referral.
			default:
				// Occluded (RFC 2181 6): loaded, never served, as NSD,
				// Knot and BIND do.
				c.warnRR(s.all[0], name, "%s record at a delegation point is occluded: never served (only NS, DS and glue belong there)", dns.TypeToString[s.rtype])
			}
		}
	}
	c.checkBelow(n, at, warn)
}

// dnameAbove returns the owner of a DNAME strictly above name, if any.
func (c *compiler) dnameAbove(name string) string {
	for p := name; p != c.z.Origin; {
		off, end := dns.NextLabel(p, 0)
		if end {
			break
		}
		p = p[off:]
		if n := c.z.nodes[p]; n != nil && n.get(dns.TypeDNAME) != nil {
			return p
		}
	}
	return ""
}
