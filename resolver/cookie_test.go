package resolver

import (
	"encoding/hex"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"
	"github.com/stretchr/testify/require"
)

// check answers a query's COOKIE option (hex) as deliver does.
func check(c *cookies, hexCookie string, ip netip.Addr, now time.Time) (cookieStatus, string) {
	raw, err := hex.DecodeString(hexCookie)
	if err != nil || !cookieLen(len(raw)) {
		return cookieMalformed, ""
	}
	var out [cookieReplyLen]byte
	status := c.reply(&out, raw, ip, now)
	return status, hex.EncodeToString(out[:])
}

// TestCookieRFC9018Vectors checks the server cookie against the test
// vectors of RFC 9018 Appendix A.
func TestCookieRFC9018Vectors(t *testing.T) {
	secret, _ := hex.DecodeString("e5e973e5a6b2a43f48e7dc849e37bfcf")
	c := newCookies(secret)
	ip := netip.MustParseAddr("198.51.100.100")

	// A.1: a client learns a new server cookie.
	status, co := check(c, "2464c4abcf10c957", ip, time.Unix(1559731985, 0))
	require.Equal(t, cookieClient, status)
	require.Equal(t, "2464c4abcf10c957010000005cf79f111f8130c3eee29480", co)

	// A.2: 40 minutes later the cookie is valid but old enough to renew.
	status, co = check(c, "2464c4abcf10c957010000005cf79f111f8130c3eee29480", ip, time.Unix(1559734385, 0))
	require.Equal(t, cookieValid, status)
	require.Equal(t, "2464c4abcf10c957010000005cf7a871d4a564a1442aca77", co)

	// Fresh (10 minutes old): valid and kept as it is.
	status, co = check(c, "2464c4abcf10c957010000005cf79f111f8130c3eee29480", ip, time.Unix(1559731985+600, 0))
	require.Equal(t, cookieValid, status)
	require.Equal(t, "2464c4abcf10c957010000005cf79f111f8130c3eee29480", co)

	// Another address, an expired cookie, a forged one: not valid, a new one is made.
	for name, tc := range map[string]struct {
		ip  string
		at  int64
		hex string
	}{
		"other client address": {"198.51.100.101", 1559731985 + 60, "2464c4abcf10c957010000005cf79f111f8130c3eee29480"},
		"older than an hour":   {"198.51.100.100", 1559731985 + 3601, "2464c4abcf10c957010000005cf79f111f8130c3eee29480"},
		"forged hash":          {"198.51.100.100", 1559731985 + 60, "2464c4abcf10c957010000005cf79f111f8130c3eee29481"},
		"unknown version":      {"198.51.100.100", 1559731985 + 60, "2464c4abcf10c957020000005cf79f111f8130c3eee29480"},
	} {
		status, co := check(c, tc.hex, netip.MustParseAddr(tc.ip), time.Unix(tc.at, 0))
		require.Equal(t, cookieClient, status, name)
		require.Len(t, co, 48, name)
		require.NotEqual(t, tc.hex, co, name)
	}
}

func TestCookiesInAnswers(t *testing.T) {
	h := newTestHandler(t, Config{})
	q := func(hexCookie string) *dns.Msg {
		m := new(dns.Msg).SetQuestion("www.example.net.", dns.TypeA)
		m.SetEdns0(1232, false)
		m.IsEdns0().Option = append(m.IsEdns0().Option, &dns.EDNS0_COOKIE{Code: dns.EDNS0COOKIE, Cookie: hexCookie})
		return m
	}
	resp := h.Answer(q("0102030405060708"), testClient, false)
	require.Equal(t, dns.RcodeSuccess, resp.Rcode)
	var got string
	for _, o := range resp.IsEdns0().Option {
		if c, ok := o.(*dns.EDNS0_COOKIE); ok {
			got = c.Cookie
		}
	}
	require.Len(t, got, 48, "client cookie and a 16-byte server cookie")
	require.Equal(t, "0102030405060708", got[:16])

	resp = h.Answer(q(got), testClient, false)
	require.Len(t, resp.Answer, 2)
	require.Equal(t, got, resp.IsEdns0().Option[0].(*dns.EDNS0_COOKIE).Cookie, "the cookie it was given is valid and fresh: kept")

	for _, bad := range []string{"01020304050607", "0102030405060708aabbccdd", strings.Repeat("ab", 41)} { // 7, 12 and 41 bytes
		resp = h.Answer(q(bad), testClient, false)
		require.Empty(t, resp.IsEdns0().Option, bad)
		require.Equal(t, dns.RcodeFormatError, resp.Rcode, "%d-byte cookie", len(bad)/2)
	}
}

// TestServeWireAtDatesCookies: a query served with the time it was read
// (a UDP reader's one reading per batch) dates its server cookie by that
// time, not by a clock reading of its own; a test's fixed clock still
// wins.
func TestServeWireAtDatesCookies(t *testing.T) {
	h := newTestHandler(t, Config{})
	m := new(dns.Msg).SetQuestion("www.example.net.", dns.TypeA)
	m.SetEdns0(1232, false)
	m.IsEdns0().Option = append(m.IsEdns0().Option, &dns.EDNS0_COOKIE{Code: dns.EDNS0COOKIE, Cookie: "0102030405060708"})
	wire, err := m.Pack()
	require.NoError(t, err)
	stamp := func(resp []byte) uint32 {
		r := new(dns.Msg)
		require.NoError(t, r.Unpack(resp))
		c := r.IsEdns0().Option[0].(*dns.EDNS0_COOKIE).Cookie
		b, err := hex.DecodeString(c[16:])
		require.NoError(t, err)
		return uint32(b[4])<<24 | uint32(b[5])<<16 | uint32(b[6])<<8 | uint32(b[7])
	}
	read := time.Unix(1_700_000_000, 0)
	require.Equal(t, uint32(1_700_000_000), stamp(h.ServeWireAt(wire, testClient, false, nil, read)))
	require.InDelta(t, time.Now().Unix(), stamp(h.ServeWire(wire, testClient, false, nil)), 2, "no time given: the clock")
	fixed := time.Unix(1_800_000_000, 0)
	h.now = func() time.Time { return fixed }
	require.Equal(t, uint32(1_800_000_000), stamp(h.ServeWireAt(wire, testClient, false, nil, read)), "a test's clock wins")
}
