package resolver

import (
	"net"
	"strings"
	"testing"

	"github.com/miekg/dns"
	"github.com/stretchr/testify/require"
)

// TestPackQueryMatchesPack: for every query packQuery takes, its bytes are
// the ones dns.Msg.Pack writes; the ones it leaves to Pack are those with
// a part it does not write (escaped or bad names, other options, records).
func TestPackQueryMatchesPack(t *testing.T) {
	opt := func(m *dns.Msg, o ...dns.EDNS0) *dns.Msg {
		m.SetEdns0(1232, true)
		m.IsEdns0().Option = o
		return m
	}
	q := func(name string, qt uint16) *dns.Msg { return new(dns.Msg).SetQuestion(name, qt) }
	v4 := net.ParseIP("198.51.100.77")
	v6 := net.ParseIP("2001:db8:1234:5678::1")
	flags := q("www.example.net.", dns.TypeA)
	flags.Response, flags.Authoritative, flags.Truncated, flags.RecursionAvailable = true, true, true, true
	flags.Zero, flags.AuthenticatedData, flags.CheckingDisabled, flags.Rcode, flags.Opcode = true, true, true, 5, dns.OpcodeNotify
	extRcode := opt(q("www.example.net.", dns.TypeA))
	extRcode.IsEdns0().Hdr.Ttl |= 0x7F000000 // Pack resets the extended rcode bits
	for _, c := range []struct {
		m    *dns.Msg
		fast bool
	}{
		{q("www.example.net.", dns.TypeA), true},
		{q("WwW.ExAmple.NET.", dns.TypeAAAA), true},
		{q(".", dns.TypeNS), true},
		{q(strings.Repeat("a", 63)+".example.", dns.TypeA), true},
		{q(strings.Repeat("abcdefg.", 31)+"abcde.", dns.TypeA), true}, // 254 bytes: 255 on the wire
		{q("a(b)c;d\"e@f.example.", dns.TypeTXT), true},               // no escape needed on the wire
		{flags, true},
		{extRcode, true},
		{new(dns.Msg), true},
		{opt(q("www.example.net.", dns.TypeA)), true},
		{opt(q("www.example.net.", dns.TypeA), &dns.EDNS0_SUBNET{Family: 1, SourceNetmask: 21, Address: v4}), true},
		{opt(q("www.example.net.", dns.TypeA), &dns.EDNS0_SUBNET{Family: 1, SourceNetmask: 32, SourceScope: 7, Address: v4.To4()}), true},
		{opt(q("www.example.net.", dns.TypeA), &dns.EDNS0_SUBNET{Family: 1, SourceNetmask: 0, Address: v4}), true},
		{opt(q("www.example.net.", dns.TypeA), &dns.EDNS0_SUBNET{Family: 2, SourceNetmask: 57, Address: v6}), true},
		{opt(q("www.example.net.", dns.TypeA), &dns.EDNS0_SUBNET{Family: 2, SourceNetmask: 128, Address: v6}), true},
		{opt(q("www.example.net.", dns.TypeA), &dns.EDNS0_SUBNET{Family: 0}), true},
		{opt(q("www.example.net.", dns.TypeA), &dns.EDNS0_COOKIE{Code: dns.EDNS0COOKIE, Cookie: "0102030405060708"},
			&dns.EDNS0_SUBNET{Family: 1, SourceNetmask: 24, Address: v4}), true},
		// Left to Pack: it writes them, or fails.
		{q(`a\.b.example.`, dns.TypeA), false},
		{q(`a\065b.example.`, dns.TypeA), false},
		{q("a..example.", dns.TypeA), false},
		{q(".example.", dns.TypeA), false},
		{q("www.example.net", dns.TypeA), false},
		{q(strings.Repeat("a", 64)+".example.", dns.TypeA), false},
		{opt(q("www.example.net.", dns.TypeA), &dns.EDNS0_NSID{Code: dns.EDNS0NSID}), false},
		{opt(q("www.example.net.", dns.TypeA), &dns.EDNS0_SUBNET{Family: 1, SourceNetmask: 33, Address: v4}), false},
		{opt(q("www.example.net.", dns.TypeA), &dns.EDNS0_SUBNET{Family: 2, SourceNetmask: 48, Address: v4.To4()}), false},
		{opt(q("www.example.net.", dns.TypeA), &dns.EDNS0_SUBNET{Family: 3}), false},
		{opt(q("www.example.net.", dns.TypeA), &dns.EDNS0_COOKIE{Code: dns.EDNS0COOKIE, Cookie: "xyz"}), false},
		{func() *dns.Msg { m := q("www.example.net.", dns.TypeA); m.Rcode = dns.RcodeBadVers; return opt(m) }(), false},
		{func() *dns.Msg { m := q("www.example.net.", dns.TypeA); m.Opcode = 16; return m }(), false},
		// An OPT built by hand without its type: Pack writes type 0 and
		// leaves the TTL as it is (helper review, 2026-12-02).
		{func() *dns.Msg {
			m := q("www.example.net.", dns.TypeA)
			m.Extra = []dns.RR{&dns.OPT{Hdr: dns.RR_Header{Name: ".", Class: 1232, Ttl: 0x01008000}}}
			return m
		}(), false},
		{func() *dns.Msg {
			m := q("www.example.net.", dns.TypeA)
			m.Question = append(m.Question, m.Question[0])
			return m
		}(), false},
		{func() *dns.Msg {
			m := q("www.example.net.", dns.TypeIXFR)
			m.Ns = []dns.RR{&dns.SOA{Hdr: dns.RR_Header{Name: "example.net.", Rrtype: dns.TypeSOA, Class: dns.ClassINET}, Ns: "ns.example.net.", Mbox: "h.example.net."}}
			return m
		}(), false},
		{func() *dns.Msg {
			m := opt(q("www.example.net.", dns.TypeA))
			m.IsEdns0().Hdr.Name = "example.net."
			return m
		}(), false},
	} {
		name := "?"
		if len(c.m.Question) > 0 {
			name = c.m.Question[0].Name
		}
		got, ok := packQuery(c.m, make([]byte, 0, 512))
		require.Equal(t, c.fast, ok, "%s", name)
		if !ok {
			continue
		}
		want, err := c.m.Pack()
		require.NoError(t, err, name)
		require.Equal(t, want, got, "%s", name)
	}
}

// FuzzPackQuery: whatever query packQuery writes is what Pack writes;
// and an engine response to it decodes, twice (the second time from the
// records decoded the first), to what Unpack reads.
func FuzzPackQuery(f *testing.F) {
	for _, s := range seedQueries() {
		f.Add(s, false)
	}
	h := newTestHandler(f, Config{ServerID: "fuzz"})
	f.Fuzz(func(t *testing.T, packet []byte, tcp bool) {
		req := new(dns.Msg)
		if err := req.Unpack(packet); err != nil {
			return
		}
		got, ok := packQuery(req, nil)
		if !ok {
			return
		}
		want, err := req.Pack()
		require.NoError(t, err)
		require.Equal(t, want, got)
		resp := h.ServeWire(got, testClient, tcp, nil)
		if resp == nil {
			return
		}
		unpacked := new(dns.Msg)
		if unpacked.Unpack(resp) != nil {
			return
		}
		for range 2 {
			m, err := msgFromWire(resp, req)
			require.NoError(t, err)
			require.Equal(t, unpacked, m)
		}
	})
}
