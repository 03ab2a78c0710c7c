package dnssec

import (
	"slices"

	"github.com/miekg/dns"
)

// nextName is the immediate successor of name in canonical order
// (RFC 4034 6.1), by RFC 4471 3.1.2's absolute method: name with a label
// \000 in front; where that would exceed 255 octets, the first label with
// a \000 octet appended; where that does not fit either, the first label
// incremented. The result is always a name that packs.
func nextName(name string) string {
	if name == "." {
		return "\\000."
	}
	wire := make([]byte, 255)
	n, err := dns.PackDomainName(dns.Fqdn(name), wire, 0, nil, false)
	if err != nil {
		return "\\000." + name // not a name we answer for; keep the old form
	}
	if n+2 <= 255 {
		return "\\000." + name
	}
	wire = wire[:n]
	if l := int(wire[0]); l < 63 && n+1 <= 255 {
		out := make([]byte, 0, n+1)
		out = append(out, byte(l+1))
		out = append(out, wire[1:1+l]...)
		out = append(out, 0)
		out = append(out, wire[1+l:]...)
		return unpackName(out)
	}
	// No longer name fits between name and its successor, so the successor
	// is the first label with its last octet incremented. An 0xff octet is
	// dropped and the carry goes to the octet before it, then to the
	// parent's label once the first is empty.
	labels := splitWire(wire)
	for len(labels) > 0 {
		l := labels[0]
		for len(l) > 0 {
			c := lower(l[len(l)-1])
			if c == 0xff {
				l = l[:len(l)-1]
				continue
			}
			c++
			if c >= 'A' && c <= 'Z' { // canonical order compares lowercased: 'A'..'Z' sort as 'a'..'z'
				c = 'Z' + 1
			}
			l[len(l)-1] = c
			labels[0] = l
			return unpackName(joinWire(labels))
		}
		labels = labels[1:]
	}
	return "." // every octet was 0xff: the last name there is; wrap to the first
}

func lower(c byte) byte {
	if c >= 'A' && c <= 'Z' {
		return c + 'a' - 'A'
	}
	return c
}

// splitWire returns copies of the labels of the uncompressed wire name w,
// without the root.
func splitWire(w []byte) [][]byte {
	var labels [][]byte
	for i := 0; i < len(w) && w[i] != 0; i += 1 + int(w[i]) {
		labels = append(labels, slices.Clone(w[i+1:i+1+int(w[i])]))
	}
	return labels
}

func joinWire(labels [][]byte) []byte {
	var w []byte
	for _, l := range labels {
		w = append(w, byte(len(l)))
		w = append(w, l...)
	}
	return append(w, 0)
}

// unpackName is the presentation form of the wire name w.
func unpackName(w []byte) string {
	s, _, err := dns.UnpackDomainName(w, 0)
	if err != nil {
		panic("dnssec: unpacking a name built in range: " + err.Error())
	}
	return s
}

// NXNameNSEC is the compact denial (RFC 9824 3.2) of name: an NSEC owned
// by it, to its immediate successor, with RRSIG, NSEC and NXNAME in its
// bitmap, which tells a validator the name does not exist.
func NXNameNSEC(name string, ttl uint32) *dns.NSEC {
	return &dns.NSEC{Hdr: dns.RR_Header{Name: name, Rrtype: dns.TypeNSEC, Class: dns.ClassINET, Ttl: ttl},
		NextDomain: nextName(name), TypeBitMap: []uint16{dns.TypeRRSIG, dns.TypeNSEC, dns.TypeNXNAME}}
}

// NoDataNSEC is the compact proof (RFC 9824 3.1) that name has none of the
// types it lacks: an NSEC owned by it, to its immediate successor, listing
// types (the types name has) with RRSIG and NSEC. A name that exists
// without records (an empty non-terminal) has types empty.
func NoDataNSEC(name string, ttl uint32, types []uint16) *dns.NSEC {
	bm := make([]uint16, 0, len(types)+2)
	bm = append(bm, types...)
	bm = append(bm, dns.TypeRRSIG, dns.TypeNSEC)
	slices.Sort(bm)
	bm = slices.Compact(bm)
	return &dns.NSEC{Hdr: dns.RR_Header{Name: name, Rrtype: dns.TypeNSEC, Class: dns.ClassINET, Ttl: ttl},
		NextDomain: nextName(name), TypeBitMap: bm}
}

// IsNXName reports whether nsec is a compact denial of its owner's
// existence (it lists NXNAME): what a client restores NXDOMAIN from.
func IsNXName(nsec *dns.NSEC) bool { return slices.Contains(nsec.TypeBitMap, dns.TypeNXNAME) }
