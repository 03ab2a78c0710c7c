package xfr

import (
	"testing"
	"time"

	"github.com/geodns/geodns/resolver"
	"github.com/miekg/dns"
	"github.com/stretchr/testify/require"
)

// TestCatalogQueriesFollowAllow: a signed query for a catalog name is
// answered only to a client the catalog's allow: lets transfer it; any
// other gets REFUSED with EDE 18 (Prohibited), as its AXFR does, over
// UDP and TCP. Any key of the server used to read the catalog's SOA,
// version and member PTRs (confirming a guessed zone name), while the
// same key's AXFR was refused.
func TestCatalogQueriesFollowAllow(t *testing.T) {
	const otherName, otherSecret = "other.", "b3RoZXItc2VjcmV0LW90aGVyLXNlY3JldCE="
	h := newHarnessSrc(t, t.TempDir(), zoneSrc, func(o *Options, _ *resolver.Config) {
		keys, err := ParseKeys(map[string]KeyConfig{
			"sec1":  {Algorithm: "hmac-sha256", Secret: keySecret},
			"other": {Algorithm: "hmac-sha512", Secret: otherSecret},
		})
		require.NoError(t, err)
		o.Keys = keys
		o.Catalog.Allow = []string{"key:sec1"}
	})
	query := func(network, name string, qtype uint16, key, alg, secret string) *dns.Msg {
		t.Helper()
		q := new(dns.Msg).SetQuestion(name, qtype)
		q.SetEdns0(1232, false)
		q.SetTsig(key, alg, 300, time.Now().Unix())
		c := &dns.Client{Net: network, TsigSecret: map[string]string{key: secret}}
		r, _, err := c.Exchange(q, h.addr)
		require.NoError(t, err, "%s %s over %s: the answer's TSIG verifies", name, dns.TypeToString[qtype], network)
		return r
	}
	_, err := h.xfr("catalog.invalid.", dns.TypeAXFR, 0, otherName, dns.HmacSHA512, otherSecret)
	require.Error(t, err, "AXFR with a key the catalog does not allow")

	for _, network := range []string{"udp", "tcp"} {
		for _, q := range []struct {
			name  string
			qtype uint16
		}{{"catalog.invalid.", dns.TypeSOA}, {"version.catalog.invalid.", dns.TypeTXT}} {
			r := query(network, q.name, q.qtype, keyName, dns.HmacSHA256, keySecret)
			require.Equal(t, dns.RcodeSuccess, r.Rcode, "allowed key")
			require.NotEmpty(t, r.Answer)

			r = query(network, q.name, q.qtype, otherName, dns.HmacSHA512, otherSecret)
			t.Logf("%s %s over %s with %s: %s, %d answers", q.name, dns.TypeToString[q.qtype], network, otherName, dns.RcodeToString[r.Rcode], len(r.Answer))
			require.Equal(t, dns.RcodeRefused, r.Rcode, "a key the catalog does not allow")
			require.Empty(t, r.Answer)
			opt := r.IsEdns0()
			require.NotNil(t, opt)
			require.Len(t, opt.Option, 1)
			require.Equal(t, uint16(dns.ExtendedErrorCodeProhibited), opt.Option[0].(*dns.EDNS0_EDE).InfoCode)
		}
	}
}
