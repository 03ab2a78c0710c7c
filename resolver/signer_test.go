package resolver

import (
	"fmt"
	"sync"
	"testing"

	"github.com/miekg/dns"
	"github.com/stretchr/testify/require"

	"github.com/geodns/geodns/zones"
)

// markSigner is a Signer that marks what it is given: one RRSIG per RRset,
// covering its type, with the set's size as key tag; and counts its calls.
// It signs nothing; it shows where a signer plugs in and when it is asked.
type markSigner struct {
	mu    sync.Mutex
	calls map[string]int // owner/type -> calls
}

func (s *markSigner) Sign(z *zones.Zone, rrs []dns.RR) []dns.RR {
	hdr := rrs[0].Header()
	s.mu.Lock()
	s.calls[dns.TypeToString[hdr.Rrtype]+" "+hdr.Name]++
	s.mu.Unlock()
	return []dns.RR{&dns.RRSIG{Hdr: dns.RR_Header{Name: hdr.Name, Rrtype: dns.TypeRRSIG, Class: dns.ClassINET, Ttl: hdr.Ttl},
		TypeCovered: hdr.Rrtype, Algorithm: dns.ECDSAP256SHA256, KeyTag: uint16(len(rrs)), SignerName: z.Origin, Signature: "AAAA"}}
}

// TestSignerSeam: with DO=1 and a signer, each RRset of the answer and
// authority sections is followed by the RRSIGs the signer returns for it,
// and the signed response is cached: each response — per (name, type) and
// per routing decision of a service — is signed once, however often it is
// asked. DO=0
// is never signed.
func TestSignerSeam(t *testing.T) {
	h := newGeoHandler(t)
	sg := &markSigner{calls: map[string]int{}}
	h.cfg.Signer = sg
	ask := func(name string, qtype uint16, do bool, ecs string) *dns.Msg {
		q := new(dns.Msg).SetQuestion(name, qtype)
		q.SetEdns0(1232, do)
		if ecs != "" {
			e := subnet(ecs)
			e.Code = dns.EDNS0SUBNET
			q.IsEdns0().Option = []dns.EDNS0{e}
		}
		wire, err := q.Pack()
		require.NoError(t, err)
		m := new(dns.Msg)
		require.NoError(t, m.Unpack(h.ServeWire(wire, testClient, false, nil)))
		return m
	}
	types := func(rrs []dns.RR) (out []string) {
		for _, rr := range rrs {
			s := dns.TypeToString[rr.Header().Rrtype]
			if sig, ok := rr.(*dns.RRSIG); ok {
				s += "(" + dns.TypeToString[sig.TypeCovered] + ")"
			}
			out = append(out, s)
		}
		return out
	}
	orders := map[string]bool{} // svc's responses: west's, and east's two endpoints in either order
	for range 3 {
		require.Equal(t, []string{"A", "A"}, types(ask("www.example.net.", dns.TypeA, false, "").Answer), "DO=0: unsigned")
		require.Equal(t, []string{"A", "A", "RRSIG(A)"}, types(ask("www.example.net.", dns.TypeA, true, "").Answer))
		m := ask("nope.example.net.", dns.TypeA, true, "")
		require.Equal(t, dns.RcodeNameError, m.Rcode)
		require.Equal(t, []string{"SOA", "RRSIG(SOA)"}, types(m.Ns), "the negative answer's SOA")
		require.Equal(t, []string{"CNAME", "RRSIG(CNAME)", "CNAME", "RRSIG(CNAME)", "A", "A", "RRSIG(A)"},
			types(ask("chain.example.net.", dns.TypeA, true, "").Answer), "a chain: each set signed")
		for _, subnet := range []string{"198.51.100.0/24", "203.0.113.0/24"} { // west, east
			a := ask("svc.example.net.", dns.TypeA, true, subnet).Answer
			require.IsType(t, &dns.RRSIG{}, a[len(a)-1], subnet)
			orders[fmt.Sprint(a[:len(a)-1])] = true
		}
	}
	require.Equal(t, map[string]int{
		"A www.example.net.": 2, // once per cached response holding it: www's own and chain's
		"SOA example.net.":   1, "CNAME chain.example.net.": 1, "CNAME alias.example.net.": 1,
		"A svc.example.net.": len(orders), // one per response: per routing decision and order
	}, sg.calls, "each response variant signed once")
}
