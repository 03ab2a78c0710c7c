package resolver

import (
	"bytes"
	"encoding/binary"
	"net"
	"net/netip"
	"strings"
	"testing"

	"github.com/miekg/dns"
)

func seedQueries() [][]byte {
	var out [][]byte
	add := func(m *dns.Msg) {
		b, err := m.Pack()
		if err == nil {
			out = append(out, b)
		}
	}
	for _, q := range []struct {
		name string
		t    uint16
	}{{"www.example.net.", dns.TypeA}, {"svc.example.net.", dns.TypeAAAA}, {"x.wild.example.net.", dns.TypeMX},
		{"host.sub.example.net.", dns.TypeA}, {"sub.example.net.", dns.TypeDS}, {"chain.example.net.", dns.TypeANY},
		{"big.example.net.", dns.TypeTXT}, {"nope.example.org.", dns.TypeA},
		// DNAME substitution, its YXDOMAIN, names with any octet (issue 17)
		{"www.a.b.D.example.net.", dns.TypeTXT}, {strings.Repeat("y", 63) + ".long.example.net.", dns.TypeA},
		{`\#esc.example.net.`, dns.TypeTXT}, {`e\.x.example.net.`, dns.TypeA}, {`q.\#w.example.net.`, dns.TypeANY},
		{"esccname.example.net.", dns.TypeA}, {"example.net.", dns.TypeAXFR}} {
		m := new(dns.Msg).SetQuestion(q.name, q.t)
		add(m)
		m.SetEdns0(1232, true)
		add(m)
	}
	m := new(dns.Msg).SetQuestion("svc.example.net.", dns.TypeA)
	m.SetEdns0(4096, false)
	m.IsEdns0().Option = append(m.IsEdns0().Option, &dns.EDNS0_SUBNET{Code: dns.EDNS0SUBNET, Family: 1, SourceNetmask: 24, Address: net.IPv4(198, 51, 100, 0).To4()})
	add(m)
	m = new(dns.Msg).SetQuestion("id.server.", dns.TypeTXT)
	m.Question[0].Qclass = dns.ClassCHAOS
	add(m)
	add(new(dns.Msg).SetNotify("example.net."))
	m = new(dns.Msg).SetQuestion("www.example.net.", dns.TypeA)
	m.SetEdns0(1232, false)
	m.IsEdns0().SetVersion(1)
	add(m)
	return out
}

// FuzzAnswer: any query that unpacks gets a response that packs, and
// echoes the ID and the question; a message that is itself a response
// gets none.
func FuzzAnswer(f *testing.F) {
	for _, s := range seedQueries() {
		f.Add(s, false)
	}
	h := newTestHandler(f, Config{ServerID: "fuzz"})
	client := netip.MustParseAddr("198.51.100.7")
	f.Fuzz(func(t *testing.T, packet []byte, tcp bool) {
		req := new(dns.Msg)
		if err := req.Unpack(packet); err != nil {
			return // the server answers FORMERR or drops these before the handler
		}
		resp := h.Answer(req, client, tcp)
		if resp == nil {
			if !req.Response {
				t.Fatalf("query dropped: %v", req)
			}
			return // a response (QR set) is never answered
		}
		wire, err := resp.Pack()
		if err != nil {
			t.Fatalf("response does not pack: %v\nquery: %v\nresponse: %v", err, req, resp)
		}
		if !tcp && len(wire) > 65535 {
			t.Fatalf("response of %d bytes", len(wire))
		}
		back := new(dns.Msg)
		if err := back.Unpack(wire); err != nil {
			t.Fatalf("response does not unpack: %v", err)
		}
		if back.Id != req.Id || !back.Response {
			t.Fatalf("ID %d != %d or QR unset", back.Id, req.Id)
		}
		if len(req.Question) == 1 && (len(back.Question) != 1 || back.Question[0] != req.Question[0]) {
			t.Fatalf("question not echoed: %v vs %v", back.Question, req.Question)
		}
	})
}

// FuzzECS: parsing any client subnet option either accepts a canonical
// (masked) prefix or rejects it; it never panics. What it accepts is the
// option's address.
func FuzzECS(f *testing.F) {
	f.Add([]byte{0, 1, 24, 0, 198, 51, 100})
	f.Add([]byte{0, 2, 56, 0, 0x20, 0x01, 0x0d, 0xb8, 0, 0, 0})
	f.Add([]byte{0, 0, 0, 0})
	f.Add([]byte{0, 1, 33, 0, 1, 2, 3, 4, 5})
	f.Add([]byte{0, 1, 23, 0, 198, 51, 101})
	f.Add([]byte{0, 2, 0, 0})
	f.Fuzz(func(t *testing.T, data []byte) {
		var ecs clientSubnet
		ok := parseSubnet(data, &ecs)
		if want, wantOK := parseSubnetNetip(data); ok != wantOK || ecs != want {
			t.Fatalf("option %x: read as %v %v, netip's checks say %v %v", data, ecs, ok, want, wantOK)
		}
		if !ok || ecs.family == 0 {
			return
		}
		if ecs.prefix.Masked() != ecs.prefix {
			t.Fatalf("accepted an unmasked prefix %v", ecs.prefix)
		}
		if int(ecs.source) != ecs.prefix.Bits() {
			t.Fatalf("source %d, prefix %v", ecs.source, ecs.prefix)
		}
		// The prefix is the option's address bytes, zero-padded.
		var want []byte
		if ecs.family == 1 {
			b := ecs.prefix.Addr().As4()
			want = b[:]
		} else {
			b := ecs.prefix.Addr().As16()
			want = b[:]
		}
		if n := len(data) - 4; !bytes.Equal(want[:n], data[4:]) || !bytes.Equal(want[n:], make([]byte, len(want)-n)) {
			t.Fatalf("option %x read as %v", data, ecs.prefix)
		}
	})
}

// parseSubnetNetip reads an ECS option as parseSubnet did before it
// checked the bytes itself: netip builds the prefix, and newSubnet
// checks family, length and masking.
func parseSubnetNetip(b []byte) (clientSubnet, bool) {
	if len(b) < 4 || b[3] != 0 {
		return clientSubnet{}, false
	}
	family, source, a := binary.BigEndian.Uint16(b), b[2], b[4:]
	if family == 0 {
		return clientSubnet{}, source == 0 && len(a) == 0
	}
	if len(a) != (int(source)+7)/8 || len(a) > 16 {
		return clientSubnet{}, false
	}
	var x [16]byte
	copy(x[:], a)
	addr := netip.AddrFrom16(x)
	if family == 1 {
		addr = netip.AddrFrom4([4]byte(x[:4]))
	}
	return newSubnet(family, source, addr)
}

// newSubnet checks an ECS option's family, source prefix and address as
// netip sees them (the tests' reading of an option): ok is false for an
// unknown family, a prefix longer than the family's addresses, or address
// bits set past the prefix.
func newSubnet(family uint16, source uint8, addr netip.Addr) (clientSubnet, bool) {
	bits := familyBits(family)
	if bits == 0 || addr.BitLen() != bits || int(source) > bits {
		return clientSubnet{}, false
	}
	p := netip.PrefixFrom(addr, int(source))
	if p.Masked().Addr() != addr {
		return clientSubnet{}, false // bits set beyond the source prefix
	}
	return clientSubnet{family: family, source: source, prefix: p}, true
}
