package resolver

import (
	"strings"
	"testing"

	"github.com/miekg/dns"
	"github.com/stretchr/testify/require"
)

// TestDNAMEServed: below a DNAME, both paths answer the DNAME and a CNAME
// owned by the name as the client wrote it, with the DNAME's TTL, chased
// in the zone; YXDOMAIN when the substitution is too long (RFC 6672 2.2).
// Before, such names answered NXDOMAIN.
func TestDNAMEServed(t *testing.T) {
	h := newTestHandler(t, Config{})
	q := new(dns.Msg).SetQuestion("A.B.D.example.net.", dns.TypeTXT)
	q.SetEdns0(1232, false)
	wire, err := q.Pack()
	require.NoError(t, err)
	for _, path := range []string{"oracle", "miss", "hit"} {
		var resp []byte
		if path == "oracle" {
			resp = oracleWire(h, wire, testClient, false)
		} else {
			resp = h.ServeWire(wire, testClient, false, nil)
		}
		m := new(dns.Msg)
		require.NoError(t, m.Unpack(resp))
		require.Equal(t, dns.RcodeSuccess, m.Rcode, path)
		require.Len(t, m.Answer, 3, path)
		// Owners other than the name asked may take the question's case
		// (compressed against it): compared without case.
		require.Equal(t, "d.example.net.\t300\tin\tdname\tc.example.net.", strings.ToLower(m.Answer[0].String()), path)
		require.Equal(t, "A.B.D.example.net.\t300\tIN\tCNAME\ta.b.c.example.net.", m.Answer[1].String(), path)
		require.Equal(t, "a.b.c.example.net.", strings.ToLower(m.Answer[2].Header().Name), path)
	}
	q = new(dns.Msg).SetQuestion(strings.Repeat("y", 63)+".long.example.net.", dns.TypeA)
	m := serveBoth(t, h, q)
	require.Equal(t, dns.RcodeYXDomain, m.Rcode)
	require.Len(t, m.Answer, 1, "the DNAME only")
	require.True(t, m.Authoritative)
}

// TestEscapedNamesServed: owner names with any octet are found by both
// paths, whatever the letter case, and the question comes back as the
// client's bytes. Before, they answered NXDOMAIN.
func TestEscapedNamesServed(t *testing.T) {
	h := newTestHandler(t, Config{})
	for _, c := range []struct {
		name  string
		qtype uint16
		n     int
	}{
		{`\#esc.example.net.`, dns.TypeTXT, 1},
		{`\#ESC.example.net.`, dns.TypeTXT, 1},
		{`\035esc.example.net.`, dns.TypeTXT, 1},
		{`e\.x.example.net.`, dns.TypeA, 1},
		{`E\.X.example.net.`, dns.TypeA, 1},
		{`anything.\#w.example.net.`, dns.TypeTXT, 1},
		{"esccname.example.net.", dns.TypeTXT, 2},
	} {
		q := new(dns.Msg).SetQuestion(c.name, c.qtype)
		wire, err := q.Pack()
		require.NoError(t, err)
		m := serveBoth(t, h, q)
		require.Equal(t, dns.RcodeSuccess, m.Rcode, c.name)
		require.Len(t, m.Answer, c.n, c.name)
		resp := h.ServeWire(wire, testClient, false, nil)
		end := len(wire) - 4
		require.Equal(t, wire[12:end], resp[12:end], "the question echoes the query's bytes: %s", c.name)
	}
	q := new(dns.Msg).SetQuestion(`e.x.example.net.`, dns.TypeA)
	require.Equal(t, dns.RcodeNameError, serveBoth(t, h, q).Rcode, "an escaped dot is not a label boundary")
}
