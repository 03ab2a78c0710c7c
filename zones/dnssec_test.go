package zones

import (
	"bytes"
	"net/netip"
	"path/filepath"
	"strings"
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

// TestImportedDNSSECDroppedOrPresigned: a signed zone whose master file
// still holds another signer's records (RRSIG, NSEC, DNSKEY, NSEC3PARAM)
// loads without them, each a warning. Before, they were served beside the
// signer's own, and re-signed: an old NSEC "www NSEC zzz" validated as a
// proof that nothing lies between, while xxx exists. In a zone geodns does
// not sign the file is pre-signed: served as it is, its signatures with
// the sets they cover (before, refused; before that, served as plain data,
// none with a DO answer).
func TestImportedDNSSECDroppedOrPresigned(t *testing.T) {
	dir := t.TempDir()
	writeZone(t, dir, "imp.zone", strings.Join([]string{
		"$TTL 300",
		"@ SOA ns1 host 1 3600 600 1209600 120",
		"@ NS ns1",
		"ns1 A 192.0.2.1",
		"www A 192.0.2.2",
		"www NSEC zzz.imp.example. A RRSIG NSEC",
		"www RRSIG A 13 3 300 20300101000000 20200101000000 3023 imp.example. dGVzdA==",
		"xxx A 192.0.2.3",
		"@ DNSKEY 257 3 13 dGVzdA==",
		"@ NSEC3PARAM 1 0 0 -",
	}, "\n")+"\n")
	for _, signed := range []bool{true, false} {
		y := "import: imp.zone\n"
		if signed {
			y += "dnssec: {algorithm: ECDSAP256SHA256}\n"
		}
		writeZone(t, dir, "imp.example.yaml", y)
		z, err := LoadFile(filepath.Join(dir, "imp.example.yaml"), nil)
		if !signed {
			require.NoError(t, err)
			require.True(t, z.Presigned())
			www := z.Lookup("www.imp.example.", dns.TypeA, false, nil).Answer
			require.Len(t, www, 1)
			sigs := z.Signatures(www)
			require.Len(t, sigs, 1)
			require.Equal(t, dns.TypeA, sigs[0].(*dns.RRSIG).TypeCovered)
			require.Len(t, z.Lookup("www.imp.example.", dns.TypeNSEC, false, nil).Answer, 1)
			require.Empty(t, z.Warnings)
			continue
		}
		require.False(t, z.Presigned())
		require.NoError(t, err)
		require.Empty(t, z.Lookup("www.imp.example.", dns.TypeNSEC, false, nil).Answer, "the old NSEC is not served")
		require.Empty(t, z.Lookup("imp.example.", dns.TypeDNSKEY, false, nil).Answer)
		require.Len(t, z.Lookup("www.imp.example.", dns.TypeA, false, nil).Answer, 1)
		var ws []string
		for _, w := range z.Warnings {
			ws = append(ws, strings.TrimPrefix(w.Error(), dir+"/"))
		}
		require.Equal(t, []string{
			`imp.zone:6:1: name "www": NSEC record in a zone geodns signs (dnssec:): dropped, the signer makes its own`,
			`imp.zone:7:1: name "www": RRSIG record in a zone geodns signs (dnssec:): dropped, the signer makes its own`,
			`imp.zone:9:1: name "@": DNSKEY record in a zone geodns signs (dnssec:): dropped, the signer makes its own`,
			`imp.zone:10:1: name "@": NSEC3PARAM record in a zone geodns signs (dnssec:): dropped, the signer makes its own`,
		}, ws)
	}
}

// TestRdataNamesUnescaped: a name in record data written with an escape
// for a printable byte ("\066y", B) is kept as the plain byte, as owner
// names are. Before, the escape stayed: a signer lowercases names as text
// and left the B, a validator lowercases the wire, and the CNAME's
// signature failed to verify ("RRSIG failed to verify").
func TestRdataNamesUnescaped(t *testing.T) {
	src := "soa: {ns: ns1.e.example., mbox: h.e.example.}\ndnssec: {algorithm: ECDSAP256SHA256}\n" +
		"records:\n  \"@\": {NS: [ns1.e.example.], MX: ['10 \\077x.e.example.']}\n  ns1: {A: [192.0.2.1]}\n" +
		"  esc: {CNAME: '\\066y.e.example.'}\n  odd: {CNAME: 'a\\.b.e.example.'}\n"
	z, err := Compile("e.example.yaml", []byte(src), "e.example.", time.Now(), nil)
	require.NoError(t, err)
	require.Equal(t, "By.e.example.", z.Lookup("esc.e.example.", dns.TypeCNAME, false, nil).Answer[0].(*dns.CNAME).Target)
	require.Equal(t, "a\\.b.e.example.", z.Lookup("odd.e.example.", dns.TypeCNAME, false, nil).Answer[0].(*dns.CNAME).Target, "a dot in a label stays escaped")
	require.Equal(t, "Mx.e.example.", z.Lookup("e.example.", dns.TypeMX, false, nil).Answer[0].(*dns.MX).Mx)
}

// TestPresignedRefused: what a pre-signed zone cannot hold is refused with
// its place: a service (no file can hold the signature of a per-client
// answer), an NSEC3 owner that is not a hash below the apex, an NSEC3 hash
// algorithm RFC 5155 does not define.
func TestPresignedRefused(t *testing.T) {
	dir := t.TempDir()
	head := "$TTL 300\n@ SOA ns1 host 1 3600 600 1209600 120\n@ NS ns1\nns1 A 192.0.2.1\n"
	for _, c := range []struct{ file, yaml, want string }{
		{"www RRSIG A 13 3 300 20300101000000 20200101000000 3023 p.example. dGVzdA==\n",
			"www: {service: web}\n",
			`p.example.yaml:3:3: name "www": service "web" in a pre-signed zone (its file holds RRSIG, NSEC or NSEC3 records): ` +
				`a per-client answer has no signature a file can hold; let geodns sign the zone (dnssec:) instead`},
		{"a.b NSEC3 1 0 0 - 0p9mhaveqvm6t7vbl5lop2u3t2rp3tom A\n", "",
			`p.zone:5:1: name "a.b": an NSEC3 record's owner is a hash one label below the apex`},
		{"0p9mhaveqvm6t7vbl5lop2u3t2rp3tom NSEC3 2 0 0 - 0p9mhaveqvm6t7vbl5lop2u3t2rp3tom A\n", "",
			`p.example.yaml:1:9: import p.zone: NSEC3 hash algorithm 2: only SHA-1 (1) is defined`},
	} {
		writeZone(t, dir, "p.zone", head+c.file)
		y := "import: p.zone\n"
		if c.yaml != "" {
			y += "records:\n  " + c.yaml + "sites:\n  a: {lat: 1, lon: 1}\nservices:\n  web:\n    endpoints: [{site: a, address: 192.0.2.9}]\n"
		}
		writeZone(t, dir, "p.example.yaml", y)
		_, err := LoadFile(filepath.Join(dir, "p.example.yaml"), nil)
		require.Error(t, err)
		require.Equal(t, c.want, strings.ReplaceAll(err.Error(), dir+"/", ""))
	}
}

// TestPresignedManyIterations: an NSEC3 chain of more iterations than
// validators take as secure loads (NSD and Knot serve it) with a warning
// at its first record.
func TestPresignedManyIterations(t *testing.T) {
	dir := t.TempDir()
	writeZone(t, dir, "p.zone", "$TTL 300\n@ SOA ns1 host 1 3600 600 1209600 120\n@ NS ns1\nns1 A 192.0.2.1\n"+
		"0p9mhaveqvm6t7vbl5lop2u3t2rp3tom NSEC3 1 0 500 ab 0p9mhaveqvm6t7vbl5lop2u3t2rp3tom A\n")
	writeZone(t, dir, "p.example.yaml", "import: p.zone\n")
	z, err := LoadFile(filepath.Join(dir, "p.example.yaml"), nil)
	require.NoError(t, err)
	require.Len(t, z.Warnings, 1)
	require.Equal(t, `p.zone:5:1: name "0p9mhaveqvm6t7vbl5lop2u3t2rp3tom": NSEC3 with 500 extra iterations: validators treat more than 150 as insecure `+
		`(RFC 9276 3.2), and each denial costs this server 1503 hashes; RFC 9276 says 0`, strings.ReplaceAll(z.Warnings[0].Error(), dir+"/", ""))
}

// TestCanonicalKey: keys sort names as RFC 4034 6.1's example lists them,
// octets 0x00 and 0x01 included.
func TestCanonicalKey(t *testing.T) {
	names := []string{"example.", "a.example.", "yljkjljk.a.example.", "Z.a.example.", "zABC.a.EXAMPLE.",
		"z.example.", `\000.z.example.`, `\001.z.example.`, `\001\000.z.example.`, `\002.z.example.`, "*.z.example.", `\200.z.example.`}
	for i := 1; i < len(names); i++ {
		a, b := CanonicalKey(nil, names[i-1]), CanonicalKey(nil, names[i])
		require.Negative(t, bytes.Compare(a, b), "%s before %s", names[i-1], names[i])
	}
	require.Equal(t, CanonicalKey(nil, "Z.A.example."), CanonicalKey(nil, "z.a.EXAMPLE."))
}

// TestPresignedSignaturesExpire: a pre-signed zone says when its first
// RRset runs out of signatures (the latest of each set's counts: a
// signature of a key on its way out may expire first, harmlessly), and
// warns when that has passed.
func TestPresignedSignaturesExpire(t *testing.T) {
	dir := t.TempDir()
	head := "$TTL 300\n@ SOA ns1 host 1 3600 600 1209600 120\n@ NS ns1\n@ NSEC ns1.p.example. NS SOA RRSIG NSEC\nns1 A 192.0.2.1\nwww A 192.0.2.2\n"
	for _, c := range []struct {
		sigs, set, at, warning string
	}{
		{"www RRSIG A 13 3 300 20350101000000 20200101000000 1 p.example. dGVzdA==\n" +
			"www RRSIG A 13 3 300 20210101000000 20200101000000 2 p.example. dGVzdA==\n" +
			"ns1 RRSIG A 13 3 300 20340101000000 20200101000000 1 p.example. dGVzdA==\n",
			"ns1.p.example. A", "2034-01-01T00:00:00Z", ""},
		{"www RRSIG A 13 3 300 20210101000000 20200101000000 1 p.example. dGVzdA==\n",
			"www.p.example. A", "2021-01-01T00:00:00Z",
			`p.zone:2:1: name "@": the signatures of www.p.example. A expired at 2021-01-01T00:00:00Z (the first RRset without a valid one): ` +
				`validators reject the zone's answers until its file is signed again`},
	} {
		writeZone(t, dir, "p.zone", head+c.sigs)
		writeZone(t, dir, "p.example.yaml", "import: p.zone\n")
		z, err := LoadFile(filepath.Join(dir, "p.example.yaml"), nil)
		require.NoError(t, err)
		at, set, ok := z.SignaturesExpire()
		require.True(t, ok)
		require.Equal(t, c.set, set)
		require.Equal(t, c.at, at.UTC().Format(time.RFC3339))
		var ws []string
		for _, w := range z.Warnings {
			ws = append(ws, strings.ReplaceAll(w.Error(), dir+"/", ""))
		}
		if c.warning == "" {
			require.Empty(t, ws)
		} else {
			require.Equal(t, []string{c.warning}, ws)
		}
	}
	z, err := LoadFile("testdata/good/signed.example.yaml", nil)
	require.NoError(t, err)
	_, _, ok := z.SignaturesExpire()
	require.False(t, ok, "a zone geodns signs")
}

// TestPresignedSignatureTTLs: each RRSIG takes the TTL of the set it
// covers (RFC 4034 3). A YAML zone holds one TTL for all the RRSIGs at a
// name: `geodns import` of a signed file wrote www's RRSIG over its NSEC
// (TTL 300) with the A set's 600, served so before.
func TestPresignedSignatureTTLs(t *testing.T) {
	dir := t.TempDir()
	writeZone(t, dir, "p.example.yaml", `soa: {ns: ns1.p.example., mbox: h.p.example.}
records:
  "@": {NS: [ns1.p.example.]}
  ns1: {A: [192.0.2.1]}
  www:
    A: {ttl: 600, values: [192.0.2.2]}
    RRSIG: {ttl: 600, values: ["A 13 3 600 20350101000000 20200101000000 1 p.example. dGVzdA==", "NSEC 13 3 300 20350101000000 20200101000000 1 p.example. dGVzdA=="]}
    NSEC: {ttl: 300, values: [p.example. A RRSIG NSEC]}
`)
	z, err := LoadFile(filepath.Join(dir, "p.example.yaml"), nil)
	require.NoError(t, err)
	require.True(t, z.Presigned())
	ttls := map[uint16]uint32{}
	for _, rr := range z.Lookup("www.p.example.", dns.TypeRRSIG, false, nil).Answer {
		ttls[rr.(*dns.RRSIG).TypeCovered] = rr.Header().Ttl
	}
	require.Equal(t, map[uint16]uint32{dns.TypeA: 600, dns.TypeNSEC: 300}, ttls)
}

// TestPresignedWithoutChain: a pre-signed file with no NSEC records and no
// NSEC3 chain of its NSEC3PARAM's parameters loads with a warning: its
// denials go out without proof (validators reject them). Before, nothing
// said so.
func TestPresignedWithoutChain(t *testing.T) {
	dir := t.TempDir()
	writeZone(t, dir, "p.zone", "$TTL 300\n@ SOA ns1 host 1 3600 600 1209600 120\n@ NS ns1\nns1 A 192.0.2.1\n"+
		"@ NSEC3PARAM 1 0 7 beef\n"+
		"0p9mhaveqvm6t7vbl5lop2u3t2rp3tom NSEC3 1 0 0 - 0p9mhaveqvm6t7vbl5lop2u3t2rp3tom A\n"+
		"ns1 RRSIG A 13 3 300 20350101000000 20200101000000 1 p.example. dGVzdA==\n")
	writeZone(t, dir, "p.example.yaml", "import: p.zone\n")
	z, err := LoadFile(filepath.Join(dir, "p.example.yaml"), nil)
	require.NoError(t, err)
	require.Len(t, z.Warnings, 1)
	require.Equal(t, `p.zone:2:1: name "@": a pre-signed zone with no NSEC records, and no NSEC3 chain of its NSEC3PARAM's parameters `+
		`(1 0 7 BEEF): names and types that do not exist are answered without proof, which validators reject`,
		strings.ReplaceAll(z.Warnings[0].Error(), dir+"/", ""))
}

// TestPresignedHash: the NSEC3 hash a pre-signed zone makes is RFC 5155's,
// as miekg/dns computes it, with a salt and iterations and without.
func TestPresignedHash(t *testing.T) {
	for _, p := range []*presigned{{alg: 1, iterations: 5, salt: "C0FFEE", saltRaw: []byte{0xc0, 0xff, 0xee}}, {alg: 1}} {
		for _, n := range []string{"example.", "www.example.", "*.w.example.", "Mixed.Case.example.", `\000.example.`} {
			require.Equal(t, strings.ToLower(dns.HashName(n, p.alg, p.iterations, p.salt)), p.hash(n), n)
		}
	}
}
