package xfr

import (
	"net"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"
	"github.com/stretchr/testify/require"
)

// TestSignedUDPAnswerFitsClientSize: a TSIG-signed UDP answer fits the
// client's size (512 without EDNS, else its EDNS size) with its TSIG; one
// that would not is sent truncated (TC), the question and the TSIG only,
// signed, so the client retries over TCP (RFC 8945 5.3). The TSIG used to
// be appended to an answer sized without it: 598 bytes to a 512-byte
// client.
func TestSignedUDPAnswerFitsClientSize(t *testing.T) {
	src := strings.Replace(zoneSrc, "  ns1: {A: [192.0.2.53]}\n",
		"  ns1: {A: [192.0.2.53]}\n"+
			"  big: {TXT: [\""+strings.Repeat("b", 220)+"\", \""+strings.Repeat("c", 220)+"\"]}\n"+
			"  bigger: {TXT: [\""+strings.Repeat("d", 250)+"\", \""+strings.Repeat("e", 250)+"\"]}\n", 1)
	h := newHarnessSrc(t, t.TempDir(), src)
	exchange := func(q *dns.Msg) ([]byte, *dns.Msg) {
		t.Helper()
		wire, err := q.Pack()
		require.NoError(t, err)
		c, err := net.Dial("udp", h.addr)
		require.NoError(t, err)
		defer c.Close()
		_, err = c.Write(wire)
		require.NoError(t, err)
		c.SetReadDeadline(time.Now().Add(2 * time.Second))
		buf := make([]byte, 65535) // the whole datagram, whatever its size
		n, err := c.Read(buf)
		require.NoError(t, err)
		r := new(dns.Msg)
		require.NoError(t, r.Unpack(buf[:n]))
		return buf[:n], r
	}
	for _, tc := range []struct {
		name  string
		edns  uint16 // 0: none
		limit int
	}{
		{"big.t.test.", 0, 512},
		{"bigger.t.test.", 600, 600},
	} {
		q := new(dns.Msg).SetQuestion(tc.name, dns.TypeTXT)
		if tc.edns != 0 {
			q.SetEdns0(tc.edns, false)
		}
		plain, r := exchange(q)
		require.False(t, r.Truncated)
		require.Greater(t, len(plain), tc.limit-80, "the unsigned answer nearly fills the limit")
		require.LessOrEqual(t, len(plain), tc.limit)

		q.SetTsig(keyName, dns.HmacSHA256, 300, time.Now().Unix())
		signedQ, reqMAC, err := dns.TsigGenerate(q, keySecret, "", false)
		require.NoError(t, err)
		c, err := net.Dial("udp", h.addr)
		require.NoError(t, err)
		_, err = c.Write(signedQ)
		require.NoError(t, err)
		c.SetReadDeadline(time.Now().Add(2 * time.Second))
		buf := make([]byte, 65535)
		n, err := c.Read(buf)
		c.Close()
		require.NoError(t, err)
		b := buf[:n]
		r = new(dns.Msg)
		require.NoError(t, r.Unpack(b))
		t.Logf("%s (limit %d): unsigned %d bytes; signed %d bytes, TC %v, %d answers", tc.name, tc.limit, len(plain), len(b), r.Truncated, len(r.Answer))
		require.LessOrEqual(t, len(b), tc.limit, "the signed answer exceeds the client's size")
		require.True(t, r.Truncated)
		require.Empty(t, r.Answer)
		require.Len(t, r.Question, 1)
		require.NotNil(t, r.IsTsig())
		require.NoError(t, dns.TsigVerify(b, keySecret, reqMAC, false), "the truncated answer is signed")
		require.Equal(t, tc.edns != 0, r.IsEdns0() != nil, "an EDNS query gets an OPT back")
	}
}

// TestSignedUDPAnswerThatFits: a signed UDP answer with room for its
// TSIG is sent whole, not truncated.
func TestSignedUDPAnswerThatFits(t *testing.T) {
	h := newHarness(t, t.TempDir())
	q := new(dns.Msg).SetQuestion("ns1.t.test.", dns.TypeA)
	q.SetTsig(keyName, dns.HmacSHA256, 300, time.Now().Unix())
	c := &dns.Client{Net: "udp", TsigSecret: map[string]string{keyName: keySecret}}
	r, _, err := c.Exchange(q, h.addr)
	require.NoError(t, err, "the answer's TSIG verifies")
	require.False(t, r.Truncated)
	require.Len(t, r.Answer, 1)
}
