package dnssec

import (
	"slices"

	"github.com/miekg/dns"
)

// nextName is the immediate successor of name in canonical order
// (RFC 4034 6.1): name with a label \000 in front.
func nextName(name string) string {
	if name == "." {
		return "\\000."
	}
	return "\\000." + name
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
