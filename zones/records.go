package zones

import (
	"fmt"
	"net"
	"slices"
	"strings"

	"github.com/miekg/dns"
)

// nameTarget returns the domain name in the data of a record that names
// another host or name (NS, MX, SRV, CNAME, DNAME, PTR); "" for others.
func nameTarget(rr dns.RR) string {
	switch x := rr.(type) {
	case *dns.NS:
		return x.Ns
	case *dns.MX:
		return x.Mx
	case *dns.SRV:
		return x.Target
	case *dns.CNAME:
		return x.Target
	case *dns.DNAME:
		return x.Target
	case *dns.PTR:
		return x.Ptr
	}
	return ""
}

// parseRecord turns one YAML value into a record. Addresses, the bulk of big
// zones, skip the master-file parser.
func (c *compiler) parseRecord(r recSpec) dns.RR {
	hdr := dns.RR_Header{Name: r.owner, Class: dns.ClassINET, Ttl: r.ttl}
	switch r.rtype {
	case "A":
		ip := net.ParseIP(r.value).To4()
		if ip == nil || strings.Contains(r.value, ":") {
			c.errAt(r.node, "name %q A: %q is not an IPv4 address", c.rel(r.owner), r.value)
			return nil
		}
		hdr.Rrtype = dns.TypeA
		return &dns.A{Hdr: hdr, A: ip}
	case "AAAA":
		ip := net.ParseIP(r.value)
		if ip == nil || !strings.Contains(r.value, ":") {
			c.errAt(r.node, "name %q AAAA: %q is not an IPv6 address", c.rel(r.owner), r.value)
			return nil
		}
		hdr.Rrtype = dns.TypeAAAA
		return &dns.AAAA{Hdr: hdr, AAAA: ip}
	}
	value := r.value
	if (r.rtype == "TXT" || r.rtype == "SPF") && !strings.HasPrefix(value, `"`) {
		value = quoteTXT(value)
	}
	line := fmt.Sprintf("%s %d IN %s %s\n", r.owner, r.ttl, r.rtype, value)
	zp := dns.NewZoneParser(strings.NewReader(line), c.spec.origin, "")
	rr, ok := zp.Next()
	if err := zp.Err(); err != nil || !ok {
		msg := "empty value"
		if err != nil {
			msg = err.Error()
			if m := parseErrRE.FindStringSubmatch(msg); m != nil {
				msg = m[2]
			}
		}
		c.errAt(r.node, "name %q %s: bad value %q: %s", c.rel(r.owner), r.rtype, r.value, msg)
		return nil
	}
	if _, extra := zp.Next(); extra {
		c.errAt(r.node, "name %q %s: value %q holds more than one record", c.rel(r.owner), r.rtype, r.value)
		return nil
	}
	return rr
}

// quoteTXT turns plain text into TXT presentation format: one string, split
// into the 255-byte pieces the wire format allows.
func quoteTXT(s string) string {
	var b strings.Builder
	for len(s) > 0 || b.Len() == 0 {
		n := min(len(s), 255)
		if b.Len() > 0 {
			b.WriteByte(' ')
		}
		b.WriteByte('"')
		for _, ch := range []byte(s[:n]) {
			if ch == '"' || ch == '\\' {
				b.WriteByte('\\')
			}
			if ch < ' ' || ch > '~' {
				fmt.Fprintf(&b, "\\%03d", ch)
				continue
			}
			b.WriteByte(ch)
		}
		b.WriteByte('"')
		s = s[n:]
	}
	return b.String()
}

// rel shows a name relative to the origin, as the operator wrote it.
func (c *compiler) rel(name string) string { return relName(name, c.spec.origin) }

// relName writes name relative to origin: "@" for the origin itself, the
// absolute name if it is outside.
func relName(name, origin string) string {
	if name == origin {
		return "@"
	}
	if k := len(name) - len(origin); k > 1 && name[k-1] == '.' && name[k:] == origin {
		return name[:k-1]
	}
	return name
}

// addRecords puts records into the zone's nodes, in the order given.
func (c *compiler) addRecords(recs []placed) {
	z := c.z
	for _, p := range recs {
		rr := p.rr
		h := rr.Header()
		h.Name = CanonicalName(h.Name) // one spelling per name: see CanonicalName
		if nameWireLen(h.Name) > 255 {
			c.placeErr(p, "name %s is longer than 255 octets", h.Name)
			continue
		}
		if !dns.IsSubDomain(z.Origin, h.Name) {
			c.placeErr(p, "name %s is outside the zone %s", h.Name, z.Origin)
			continue
		}
		if h.Class != dns.ClassINET {
			c.placeErr(p, "name %q: class %s is not served (only IN)", c.rel(h.Name), dns.Class(h.Class))
			continue
		}
		unescapeNames(rr)
		if t, ok := rr.(*dns.TXT); ok && len(t.Txt) == 0 {
			// RFC 1035 3.3.14: one or more strings; NSD and Knot refuse
			// it too, and packed it would go out as one empty string.
			c.placeErr(p, "name %q: TXT record without a string (write \"\" for an empty one)", c.rel(h.Name))
			continue
		}
		if h.Ttl > maxTTL {
			// RFC 2181 8: the top bit is reserved and a receiver reads such
			// a TTL as 0; so it is served, with a warning (as BIND). Knot
			// and NSD load it too; the YAML's ttl: refuses it.
			c.bigTTLs = append(c.bigTTLs, bigTTL{rr, h.Ttl})
			h.Ttl = 0
		}
		if c.spec.dnssec != nil && signerOwns(h.Rrtype) {
			c.signerOwned = append(c.signerOwned, rr) // warned of in validate, where warnings are placed
			continue
		}
		if c.spec.dnssec == nil && signedElsewhere(h.Rrtype) {
			c.presigned = true // served as signed elsewhere: presigned.go
		}
		if c.presigned && (h.Rrtype == dns.TypeNSEC3 || h.Rrtype == dns.TypeRRSIG && rr.(*dns.RRSIG).TypeCovered == dns.TypeNSEC3) {
			// A hash, not a name of the zone: kept beside the tree.
			if off, end := dns.NextLabel(h.Name, 0); end || h.Name[off:] != z.Origin {
				c.placeErr(p, "name %q: an NSEC3 record's owner is a hash one label below the apex", c.rel(h.Name))
				continue
			}
			c.nsec3 = append(c.nsec3, rr)
			continue
		}
		n := c.node(h.Name)
		i := slices.IndexFunc(n.sets, func(s rrset) bool { return s.rtype == h.Rrtype })
		if i < 0 {
			n.sets = append(n.sets, rrset{rtype: h.Rrtype})
			i = len(n.sets) - 1
			switch h.Rrtype {
			case dns.TypeNS, dns.TypeMX, dns.TypeSRV:
				c.targets = append(c.targets, setRef{n, h.Rrtype})
			case dns.TypeDNAME:
				c.dnames++
			}
		}
		set := &n.sets[i]
		if len(set.all) > 0 && h.Rrtype != dns.TypeRRSIG {
			// RFC 2181 5.2: one TTL per set, the lowest given (the set is
			// kept no longer than any record of it was meant to be). Not
			// RRSIGs: each has the TTL of the set it covers (RFC 4034 3).
			if t := set.all[0].Header().Ttl; h.Ttl > t {
				h.Ttl = t
			} else if h.Ttl < t {
				for _, o := range set.all {
					o.Header().Ttl = h.Ttl
				}
			}
		}
		set.all = append(set.all, rr) // records only until finishNodes counts them
	}
}

// unescapeNames rewrites the domain names in rr's data with no escape
// for a printable byte ("\066y" becomes "By"), as owner names are
// (CanonicalName). A signer lowercases names as text, which leaves "\066"
// (B) as it is, where a validator lowercases the wire: the signature of a
// CNAME to "\066y" failed to verify.
func unescapeNames(rr dns.RR) {
	fix := func(s *string) {
		if strings.IndexByte(*s, '\\') < 0 {
			return
		}
		buf := make([]byte, 256)
		if n, err := dns.PackDomainName(*s, buf, 0, nil, false); err == nil {
			if name, _, err := dns.UnpackDomainName(buf[:n], 0); err == nil {
				*s = name
			}
		}
	}
	switch x := rr.(type) {
	case *dns.NS:
		fix(&x.Ns)
	case *dns.CNAME:
		fix(&x.Target)
	case *dns.DNAME:
		fix(&x.Target)
	case *dns.PTR:
		fix(&x.Ptr)
	case *dns.MX:
		fix(&x.Mx)
	case *dns.SRV:
		fix(&x.Target)
	case *dns.SOA:
		fix(&x.Ns)
		fix(&x.Mbox)
	case *dns.NAPTR:
		fix(&x.Replacement)
	case *dns.AFSDB:
		fix(&x.Hostname)
	case *dns.KX:
		fix(&x.Exchanger)
	case *dns.RT:
		fix(&x.Host)
	case *dns.RP:
		fix(&x.Mbox)
		fix(&x.Txt)
	case *dns.MINFO:
		fix(&x.Rmail)
		fix(&x.Email)
	case *dns.PX:
		fix(&x.Map822)
		fix(&x.Mapx400)
	}
}

// signerOwns tells the types a signed zone gets from its signer alone:
// imported ones (a zone once signed elsewhere) would be served beside the
// signer's, and an old NSEC of the file proves names absent that exist. Knot
// drops them too when it signs a zone itself.
func signerOwns(t uint16) bool {
	switch t {
	case dns.TypeRRSIG, dns.TypeNSEC, dns.TypeNSEC3, dns.TypeNSEC3PARAM, dns.TypeDNSKEY, dns.TypeCDS, dns.TypeCDNSKEY:
		return true
	}
	return false
}

// maxTTL is the largest TTL a record may have (RFC 2181 8).
const maxTTL = 1<<31 - 1

// bigTTL is a record given a TTL above maxTTL, and that TTL.
type bigTTL struct {
	rr  dns.RR
	ttl uint32
}

// signedElsewhere tells the types only a signed zone has: found in a zone
// geodns does not sign, they mean a pre-signed file.
func signedElsewhere(t uint16) bool {
	return t == dns.TypeRRSIG || t == dns.TypeNSEC || t == dns.TypeNSEC3
}

// dedupe keeps each record of a set once (RFC 2181 5), in the order given.
// Small sets compare pairwise; large ones (a $GENERATE can make 65,535
// records at one name) group by a normalized text first, so a zone cannot
// make a reload quadratic.
func dedupe(rrs []dns.RR) []dns.RR {
	out := rrs[:0:0]
	if len(rrs) <= 16 {
		for _, rr := range rrs {
			if !slices.ContainsFunc(out, func(o dns.RR) bool { return dns.IsDuplicate(o, rr) }) {
				out = append(out, rr)
			}
		}
		return out
	}
	// Duplicates compare names without case, so they share this key;
	// records that share it are told apart by IsDuplicate itself.
	groups := make(map[string][]dns.RR, len(rrs))
	for _, rr := range rrs {
		key := strings.ToLower(rdata(rr))
		if slices.ContainsFunc(groups[key], func(o dns.RR) bool { return dns.IsDuplicate(o, rr) }) {
			continue
		}
		groups[key] = append(groups[key], rr)
		out = append(out, rr)
	}
	return out
}

func (c *compiler) placeErr(p placed, format string, args ...any) {
	if p.node != nil {
		c.errAt(p.node, format, args...)
		return
	}
	if pos, ok := c.importPos(p.rr); ok {
		c.errs.add(pos.file, pos.line, pos.col, format, args...)
		return
	}
	c.errAt(c.spec.importNode, "import %s: "+format, append([]any{c.spec.importFile}, args...)...)
}
