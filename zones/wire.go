package zones

import (
	"errors"
	"fmt"
	"slices"

	"github.com/miekg/dns"
)

// checkWire packs each record whose text the parser takes without checking
// all of it (hex and base64 fields, SVCB parameters). A record that cannot
// be packed would fail every answer holding it (SERVFAIL), and one that
// packs into what resolvers reject (an SVCB mandatory key it lacks) makes
// them FORMERR; NSD and Knot refuse such a zone, and so does this.
func (c *compiler) checkWire(recs []placed) {
	var buf []byte
	for _, p := range recs {
		h := p.rr.Header()
		switch h.Rrtype {
		case dns.TypeA, dns.TypeAAAA, dns.TypeNS, dns.TypeCNAME, dns.TypePTR, dns.TypeDNAME, dns.TypeMX, dns.TypeSRV, dns.TypeSOA:
			continue // names and numbers, checked as they were parsed
		}
		if buf == nil {
			buf = make([]byte, dns.MaxMsgSize)
		}
		_, err := dns.PackRR(p.rr, buf, 0, nil, false)
		if err == nil {
			err = svcbCheck(p.rr)
		}
		if err != nil {
			c.placeErr(p, "name %q: %s record cannot be sent: %v", c.rel(h.Name), dns.Type(h.Rrtype), err)
		}
	}
}

// svcbCheck checks what RFC 9460 asks of SVCB and HTTPS parameters beyond
// their syntax (section 8: a key listed in mandatory must be present, and
// mandatory must not list itself or a key twice; section 7.1.1: alpn is a
// list of ids, none empty).
func svcbCheck(rr dns.RR) error {
	var kv []dns.SVCBKeyValue
	switch x := rr.(type) {
	case *dns.SVCB:
		kv = x.Value
	case *dns.HTTPS:
		kv = x.Value
	default:
		return nil
	}
	has := func(k dns.SVCBKey) bool {
		return slices.ContainsFunc(kv, func(v dns.SVCBKeyValue) bool { return v.Key() == k })
	}
	for _, v := range kv {
		switch x := v.(type) {
		case *dns.SVCBMandatory:
			for i, k := range x.Code {
				switch {
				case k == dns.SVCB_MANDATORY:
					return errors.New("mandatory lists itself")
				case slices.Contains(x.Code[:i], k):
					return fmt.Errorf("mandatory lists %s twice", k)
				case !has(k):
					return fmt.Errorf("mandatory lists %s, which the record does not have", k)
				}
			}
		case *dns.SVCBAlpn:
			if len(x.Alpn) == 0 || slices.Contains(x.Alpn, "") {
				return errors.New("an empty alpn id")
			}
		}
	}
	return nil
}
