package resolver

import (
	"net"
	"testing"

	"github.com/miekg/dns"
	"github.com/stretchr/testify/require"
)

// TestMsgFromWireMatchesUnpack: every response the engine writes for the
// test queries (every kind of answer, escaped names, odd queries, over UDP
// and TCP) decodes to the message dns.Msg.Unpack makes of it.
func TestMsgFromWireMatchesUnpack(t *testing.T) {
	h := newTestHandler(t, Config{ServerID: "ns-test-1"})
	h.now = fixedNow
	qs := append(fastQueries(), oddQueries()...)
	for _, qt := range []uint16{dns.TypeNS, dns.TypeSOA, dns.TypeMX, dns.TypeANY, dns.TypeDS, dns.TypeCNAME} {
		for _, n := range []string{"example.net.", "sub.example.net.", "alias.example.net.", "www.example.net."} {
			q := new(dns.Msg).SetQuestion(n, qt)
			q.SetEdns0(1232, true)
			qs = append(qs, q)
		}
	}
	for _, req := range qs {
		wire, err := req.Pack()
		require.NoError(t, err)
		for _, tcp := range []bool{false, true} {
			resp := h.ServeWire(wire, testClient, tcp, nil)
			if resp == nil {
				continue
			}
			want := new(dns.Msg)
			require.NoError(t, want.Unpack(resp))
			// Twice: decoded, then from the records decoded before.
			for range 2 {
				got, err := msgFromWire(resp, req)
				require.NoError(t, err)
				require.Equal(t, want, got, "%s tcp=%v", queryString(req), tcp)
			}
		}
	}
}

// TestMsgFromWireHostile: cut and corrupted responses are refused or
// decoded, never a panic, and what decodes is what Unpack reads.
func TestMsgFromWireHostile(t *testing.T) {
	h := newTestHandler(t, Config{})
	req := new(dns.Msg).SetQuestion("sub.example.net.", dns.TypeA)
	req.SetEdns0(1232, false)
	wire, err := req.Pack()
	require.NoError(t, err)
	resp := h.ServeWire(wire, testClient, false, nil)
	require.NotNil(t, resp)
	for cut := range len(resp) {
		msgFromWire(resp[:cut], req)
	}
	for i := range resp {
		for _, v := range []byte{0, 0xC0, 0xFF, 0x3F, 12} {
			b := append([]byte(nil), resp...)
			b[i] = v
			got, err := msgFromWire(b, req)
			if err != nil {
				continue
			}
			want := new(dns.Msg)
			if want.Unpack(b) == nil && got.Question != nil && want.Question[0] == got.Question[0] {
				require.Equal(t, want.String(), got.String(), "byte %d = %#x", i, v)
			}
		}
	}
}

// TestAnswerAllocations: Answer (the dns.Msg API) allocates the message
// and its records, not the wire it goes through (issue 18: Pack, answer
// and Unpack was 14-26 allocations; the engine before it, 7-10; decoding
// every record, 3-4).
func TestAnswerAllocations(t *testing.T) {
	h := newTestHandler(t, Config{})
	for _, c := range []struct {
		name  string
		qtype uint16
		max   float64
	}{
		// The message, its question, sections and OPT record, in one
		// allocation: the records are decoded once and shared.
		{"mail.example.net.", dns.TypeA, 1},
		{"nothere.example.net.", dns.TypeA, 1},
		{"deep.sub.example.net.", dns.TypeA, 1}, // a referral
		{"svc.example.net.", dns.TypeA, 1},      // a service: routed
	} {
		// One more under the race detector, whose sync.Pool drops a
		// quarter of what is put back.
		c.max += raceSlack
		req := new(dns.Msg).SetQuestion(c.name, c.qtype)
		req.SetEdns0(1232, false)
		require.NotEmpty(t, h.Answer(req, testClient, false).String())
		allocs := testing.AllocsPerRun(200, func() { h.Answer(req, testClient, false) })
		require.LessOrEqual(t, allocs, c.max, c.name)
	}
}

// TestMsgFromWireShared: the records of a response decoded before are
// shared by the messages decoded from the same bytes; what varies per
// query (the ID, the question's letter case, the OPT record and its
// options) is each message's own, and bytes that differ in any of them
// decode apart.
func TestMsgFromWireShared(t *testing.T) {
	h := newTestHandler(t, Config{})
	ask := func(name string, ecs *dns.EDNS0_SUBNET, id uint16) (*dns.Msg, *dns.Msg) {
		req := new(dns.Msg).SetQuestion(name, dns.TypeA)
		req.Id = id
		req.SetEdns0(1232, false)
		if ecs != nil {
			req.IsEdns0().Option = []dns.EDNS0{ecs}
		}
		wire, err := req.Pack()
		require.NoError(t, err)
		resp := h.ServeWire(wire, testClient, false, nil)
		want := new(dns.Msg)
		require.NoError(t, want.Unpack(resp))
		got, err := msgFromWire(resp, req)
		require.NoError(t, err)
		require.Equal(t, want, got, name)
		return got, want
	}
	a, _ := ask("chain.example.net.", nil, 1)
	b, _ := ask("chain.example.net.", nil, 2)
	require.Equal(t, uint16(2), b.Id)
	require.Len(t, b.Answer, 4)
	for i := range a.Answer {
		require.Same(t, a.Answer[i], b.Answer[i], "decoded once, shared")
	}
	require.NotSame(t, &a.Answer[0], &b.Answer[0], "each message has its own sections")
	require.NotSame(t, a.IsEdns0(), b.IsEdns0(), "and its own OPT record")

	// The letter case of the question, which the records compressed to
	// it read as: another response, decoded apart.
	c, _ := ask("ChAiN.example.net.", nil, 3)
	require.Equal(t, "ChAiN.example.net.", c.Question[0].Name)
	require.Equal(t, "ChAiN.example.net.", c.Answer[0].Header().Name)
	require.Equal(t, "chain.example.net.", b.Answer[0].Header().Name)

	// The ECS option echoed is the query's: the same records, each
	// message its own option.
	e1, _ := ask("chain.example.net.", &dns.EDNS0_SUBNET{Family: 1, SourceNetmask: 24, Address: net.ParseIP("198.51.100.0")}, 4)
	e2, _ := ask("chain.example.net.", &dns.EDNS0_SUBNET{Family: 2, SourceNetmask: 48, Address: net.ParseIP("2001:db8:7::")}, 5)
	require.Same(t, a.Answer[3], e1.Answer[3])
	require.Equal(t, "198.51.100.0", e1.IsEdns0().Option[0].(*dns.EDNS0_SUBNET).Address.String())
	require.Equal(t, "2001:db8:7::", e2.IsEdns0().Option[0].(*dns.EDNS0_SUBNET).Address.String())

	// A name that points into the ID (never written by the engine, but
	// bytes are bytes): the ID is not part of what is shared, so such a
	// response is decoded alone, never from another ID's records.
	resp := func(id string) []byte {
		return []byte{id[0], id[1], 0x00, 0x00, 0, 0, 0, 1, 0, 0, 0, 0,
			0xC0, 0x00, 0, 1, 0, 1, 0, 0, 0, 60, 0, 4, 192, 0, 2, 1}
	}
	for _, id := range []string{"\x01a", "\x01b", "\x01a"} {
		b := resp(id)
		want := new(dns.Msg)
		require.NoError(t, want.Unpack(b))
		got, err := msgFromWire(b, new(dns.Msg))
		require.NoError(t, err)
		require.Equal(t, want, got)
		require.Equal(t, id[1:]+".", got.Answer[0].Header().Name)
	}
}
