package resolver

import (
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
			got, err := msgFromWire(resp, req)
			require.NoError(t, err)
			require.Equal(t, want, got, "%s tcp=%v", queryString(req), tcp)
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
// and Unpack was 14-26 allocations; the engine before it, 7-10).
func TestAnswerAllocations(t *testing.T) {
	h := newTestHandler(t, Config{})
	for _, c := range []struct {
		name  string
		qtype uint16
		max   float64
	}{
		{"mail.example.net.", dns.TypeA, 3},     // message, A, OPT
		{"nothere.example.net.", dns.TypeA, 4},  // message, SOA, OPT
		{"deep.sub.example.net.", dns.TypeA, 4}, // referral: message, OPT, glue beyond the first two addresses
		{"svc.example.net.", dns.TypeA, 4},      // a service: routed
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
