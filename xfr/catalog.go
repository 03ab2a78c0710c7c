package xfr

import (
	"crypto/sha256"
	"encoding/hex"

	"github.com/miekg/dns"
)

// catalogRecords are the catalog zone's records (RFC 9432): its NS, the
// schema version 2, and one member PTR per zone served with a transfer:
// setting (a consumer could never transfer the others), under a label
// derived from the member's name so it stays the same across versions.
func catalogRecords(origin string, views map[string]*view) ([]dns.RR, [32]byte) {
	hdr := func(name string, t uint16) dns.RR_Header {
		return dns.RR_Header{Name: name, Rrtype: t, Class: dns.ClassINET, Ttl: 0}
	}
	rrs := []dns.RR{
		&dns.NS{Hdr: hdr(origin, dns.TypeNS), Ns: "invalid."},
		&dns.TXT{Hdr: hdr("version."+origin, dns.TypeTXT), Txt: []string{"2"}},
	}
	for o, v := range views {
		if v.src == nil || v.tr == nil {
			continue // the catalog itself, or a zone never transferred
		}
		id := sha256.Sum256([]byte(o))
		rrs = append(rrs, &dns.PTR{Hdr: hdr(hex.EncodeToString(id[:10])+".zones."+origin, dns.TypePTR), Ptr: o})
	}
	return sortDigest(rrs)
}

func catalogSOA(origin string) *dns.SOA {
	return &dns.SOA{Hdr: dns.RR_Header{Name: origin, Rrtype: dns.TypeSOA, Class: dns.ClassINET},
		Ns: "invalid.", Mbox: "invalid.", Refresh: 3600, Retry: 600, Expire: 2419200, Minttl: 0}
}
