package xfr

import (
	"crypto/sha256"
	"net/netip"
	"slices"
	"strings"

	"github.com/geodns/geodns/zones"
	"github.com/miekg/dns"
)

// exported returns a zone's exported records, SOA excluded, in canonical
// order, and a digest of them: every static record, and for each service
// name the answer its export: setting picks (exportAnswer).
func exported(z *zones.Zone) ([]dns.RR, [32]byte) {
	var rrs []dns.RR
	z.Records(func(rr dns.RR) {
		if rr.Header().Rrtype != dns.TypeSOA {
			rrs = append(rrs, rr)
		}
	})
	for owner, svc := range z.ServiceNames() {
		rrs = append(rrs, exportAnswer(owner, svc)...)
	}
	return sortDigest(rrs)
}

// sortDigest sorts rrs canonically (names from the root, then type, then
// text) and digests their text: equal content, equal digest.
func sortDigest(rrs []dns.RR) ([]dns.RR, [32]byte) {
	type keyed struct {
		rr   dns.RR
		text string
	}
	ks := make([]keyed, len(rrs))
	for i, rr := range rrs {
		ks[i] = keyed{rr, rr.String()}
	}
	slices.SortFunc(ks, func(a, b keyed) int {
		if c := compareNames(a.rr.Header().Name, b.rr.Header().Name); c != 0 {
			return c
		}
		if c := int(a.rr.Header().Rrtype) - int(b.rr.Header().Rrtype); c != 0 {
			return c
		}
		return strings.Compare(a.text, b.text)
	})
	h := sha256.New()
	out := rrs[:0]
	for i, k := range ks {
		if i > 0 && k.text == ks[i-1].text {
			continue // a service answer equal to a static record
		}
		out = append(out, k.rr)
		h.Write([]byte(k.text))
		h.Write([]byte{'\n'})
	}
	var sum [32]byte
	copy(sum[:], h.Sum(nil))
	return out, sum
}

// exportAnswer is the fixed answer a service name exports. It depends on
// the zone file only, never on health, so the exported serial does not
// move when a backend flaps:
//   - "fallback": the service's fallback addresses;
//   - a site name: every endpoint of that site;
//   - "all": every endpoint of every site (all sites, as configured; not
//     "all up sites", which would tie the serial to health);
//   - default: the fallback addresses if any, else, for each address
//     family, the endpoints of the first site in the service's site order
//     (the sites as listed) that has that family: what a client with no
//     known location gets while all is up (a site without AAAA falls back
//     to the next for AAAA). A CNAME service: the first site's.
//
// A CNAME service exports one CNAME: the first endpoint name chosen.
func exportAnswer(owner string, svc *zones.Service) []dns.RR {
	var addrs []netip.Addr
	var names []string
	site := ""
	switch {
	case svc.Export == "fallback" || svc.Export == "" && len(svc.Fallback) > 0:
		addrs = svc.Fallback
	case svc.Export == "all":
	case svc.Export != "":
		site = svc.Export
	case svc.CNAME && len(svc.SiteOrder) > 0:
		site = svc.SiteOrder[0]
	case len(svc.SiteOrder) > 0:
		for _, v4 := range []bool{true, false} {
			for _, site := range svc.SiteOrder {
				n := len(addrs)
				for _, ep := range svc.Endpoints {
					if ep.Site == site && ep.Address.IsValid() && ep.Address.Unmap().Is4() == v4 {
						addrs = append(addrs, ep.Address)
					}
				}
				if len(addrs) > n {
					break
				}
			}
		}
		if addrs == nil {
			addrs = []netip.Addr{} // no address at all: nothing exported
		}
	}
	if addrs == nil {
		for _, ep := range svc.Endpoints {
			if site != "" && ep.Site != site {
				continue
			}
			if ep.Address.IsValid() {
				addrs = append(addrs, ep.Address)
			} else if ep.CNAME != "" {
				names = append(names, ep.CNAME)
			}
		}
	}
	hdr := func(t uint16) dns.RR_Header {
		return dns.RR_Header{Name: owner, Rrtype: t, Class: dns.ClassINET, Ttl: svc.TTL}
	}
	var out []dns.RR
	if svc.CNAME {
		if len(names) > 0 {
			out = append(out, &dns.CNAME{Hdr: hdr(dns.TypeCNAME), Target: names[0]})
		}
		return out
	}
	for _, a := range addrs {
		if a.Is4() {
			out = append(out, &dns.A{Hdr: hdr(dns.TypeA), A: a.AsSlice()})
		} else {
			out = append(out, &dns.AAAA{Hdr: hdr(dns.TypeAAAA), AAAA: a.AsSlice()})
		}
	}
	return out
}

// compareNames orders names canonically (RFC 4034 6.1): by labels from the
// root.
func compareNames(a, b string) int {
	la, lb := dns.SplitDomainName(a), dns.SplitDomainName(b)
	for i, j := len(la)-1, len(lb)-1; i >= 0 && j >= 0; i, j = i-1, j-1 {
		if c := strings.Compare(strings.ToLower(la[i]), strings.ToLower(lb[j])); c != 0 {
			return c
		}
	}
	return len(la) - len(lb)
}

// serialAfter reports whether a comes after b in RFC 1982 serial arithmetic.
func serialAfter(a, b uint32) bool { return a != b && int32(a-b) > 0 }
