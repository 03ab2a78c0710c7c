package zones

import (
	"net/netip"
	"testing"
	"time"

	"github.com/miekg/dns"
	"github.com/stretchr/testify/require"
)

func TestDNSSECDecoded(t *testing.T) {
	z, err := LoadFile("testdata/good/signed.example.yaml", nil)
	require.NoError(t, err)
	require.Equal(t, &DNSSEC{Algorithm: "ED25519", Split: true, ZSKLifetime: 30 * 24 * time.Hour, KSKLifetime: -1,
		DNSKEYTTL: 600, Propagation: 5 * time.Minute, Validity: 10 * 24 * time.Hour, Refresh: 4 * 24 * time.Hour,
		Parent: []netip.AddrPort{netip.MustParseAddrPort("127.0.0.1:5300"), netip.MustParseAddrPort("127.0.0.2:53")}}, z.DNSSEC)

	// The shape of the issue: only the algorithm; off without the key.
	src := "soa: {ns: ns1.a.example., mbox: h.a.example.}\ndnssec: {algorithm: ECDSAP256SHA256}\nrecords: {\"@\": {NS: [ns1.a.example.]}, ns1: {A: [192.0.2.1]}}\n"
	z2, err := Compile("a.example.yaml", []byte(src), "a.example.", time.Unix(1700000000, 0), nil)
	require.NoError(t, err)
	require.Equal(t, &DNSSEC{Algorithm: "ECDSAP256SHA256"}, z2.DNSSEC)
	z3, err := Compile("a.example.yaml", []byte("soa: {ns: ns1.a.example., mbox: h.a.example.}\nrecords: {\"@\": {NS: [ns1.a.example.]}, ns1: {A: [192.0.2.1]}}\n"), "a.example.", time.Unix(1700000000, 0), nil)
	require.NoError(t, err)
	require.Nil(t, z3.DNSSEC)
	require.NotEqual(t, z2.Hash, z3.Hash, "turning signing on is a change")
}

func TestNameTypes(t *testing.T) {
	z, err := LoadFile("testdata/good/signed.example.yaml", nil)
	require.NoError(t, err)
	for name, want := range map[string][]uint16{
		"signed.example.":       {dns.TypeSOA, dns.TypeNS},
		"www.signed.example.":   {dns.TypeA, dns.TypeAAAA},
		"sub.signed.example.":   {dns.TypeNS, dns.TypeDS},
		"x.dev.signed.example.": {dns.TypeA}, // from the wildcard
		"dev.signed.example.":   nil,         // an empty non-terminal
		"nope.signed.example.":  nil,
		"a.sub.signed.example.": nil, // below the cut: not ours
	} {
		require.ElementsMatch(t, want, z.NameTypes(name), name)
	}
	require.Equal(t, uint32(60), z.NegativeTTL())
	require.Equal(t, uint32(3600), z.MaxTTL())
}
