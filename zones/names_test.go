package zones

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"
	"github.com/stretchr/testify/require"
)

// TestCanonicalName: every escape form of RFC 1035 5.1 gives the name's
// one spelling, the one miekg/dns's unpacker gives its octets (so a name
// from a query needs only its letters lowered), and NameFromWire agrees.
func TestCanonicalName(t *testing.T) {
	for in, want := range map[string]string{
		"www.Example.COM.":         "www.example.com.",
		"www.example.com":          "www.example.com.",
		".":                        ".",
		`\065bc.x.`:                "abc.x.",
		`\#leading.x.`:             "#leading.x.",
		`\032space.x.`:             `\ space.x.`,
		`a\ b.x.`:                  `a\ b.x.`,
		`\(\)\*\+\,-\./01.x.`:      `\(\)*+,-\./01.x.`,
		`a\.b.x.`:                  `a\.b.x.`,
		`\"quote.x.`:               `\"quote.x.`,
		`\;semi.x.`:                `\;semi.x.`,
		`\@at.x.`:                  `\@at.x.`,
		`\$dollar.x.`:              "$dollar.x.",
		`\\back.x.`:                `\\back.x.`,
		`\000.x.`:                  `\000.x.`,
		`\255\128.x.`:              `\255\128.x.`,
		`\M\i\X.x.`:                "mix.x.",
		"caf\u00e9.x.":             `caf\195\169.x.`,
		`*.\#wild.x.`:              "*.#wild.x.",
		`\042.x.`:                  "*.x.", // the wildcard label, however written
		"a'b.x.":                   `a\'b.x.`,
		`\097\098\099.\069xample.`: "abc.example.",
	} {
		got := CanonicalName(in)
		require.Equal(t, want, got, "CanonicalName(%q)", in)
		require.Equal(t, got, CanonicalName(got), "canonical names are fixed points: %q", in)

		buf := make([]byte, 256)
		n, err := dns.PackDomainName(dns.Fqdn(in), buf, 0, nil, false)
		require.NoError(t, err, in)
		require.Equal(t, want, NameFromWire(buf[:n]), "NameFromWire of %q", in)
		unpacked, _, err := dns.UnpackDomainName(buf[:n], 0)
		require.NoError(t, err)
		require.Equal(t, want, strings.ToLower(unpacked), "the unpacker's spelling, lowered: %q", in)
		require.Equal(t, n, nameWireLen(want), "wire length of %q", want)
	}
}

// escapeMaster is a master file with owner names of every escape form.
const escapeMaster = `$TTL 300
@                 SOA    ns1 hostmaster 1 3600 600 1209600 60
@                 NS     ns1
ns1               A      192.0.2.53
\#leading         TXT    "hash"
\032space         TXT    "space octet"
\(\)\*\+\,-\./01  TXT    "punctuation"
a\.b              TXT    "one label with a dot"
a.b               TXT    "two labels"
\"quote           TXT    "quote"
\;semi            TXT    "semicolon"
\@at              TXT    "at sign"
\$dollar          TXT    "dollar"
\000              TXT    "nul octet"
\065bc            TXT    "A by decimal escape"
abc               TXT    "the same name"
*.\#wild          TXT    "wildcard below an escaped label"
x                 CNAME  \035leading
`

func escapeZone(t *testing.T) *Zone {
	t.Helper()
	dir := t.TempDir()
	require.NoError(t, os.WriteFile(filepath.Join(dir, "escape.test.zone"), []byte(escapeMaster), 0o644))
	yaml := "import: escape.test.zone\nrecords:\n" +
		"  '\\@yaml': {TXT: [from a yaml key]}\n" +
		"  'Y\\032Key': {TXT: [yaml space]}\n"
	z, err := Compile(filepath.Join(dir, "escape.test.yaml"), []byte(yaml), "escape.test.", time.Unix(1700000000, 0), nil)
	require.NoError(t, err)
	return z
}

// TestEscapedOwnerNames: names with any octet are found under the name a
// query carries (before, names were keyed as written: \#leading was never
// found, \065bc and abc stayed two RRsets, the CNAME to \035leading was
// not followed, and the wildcard below \#wild was never found).
func TestEscapedOwnerNames(t *testing.T) {
	z := escapeZone(t)
	for _, c := range []struct {
		q     string // as a query spells it (miekg's unpacker)
		n     int    // TXT records
		owner string
	}{
		{`#leading.escape.test.`, 1, ""},
		{`\ space.escape.test.`, 1, ""},
		{`\(\)*+\,-\./01.escape.test.`, 1, ""},
		{`a\.b.escape.test.`, 1, ""},
		{`a.b.escape.test.`, 1, ""},
		{`\"quote.escape.test.`, 1, ""},
		{`\;semi.escape.test.`, 1, ""},
		{`\@at.escape.test.`, 1, ""},
		{`$dollar.escape.test.`, 1, ""},
		{`\000.escape.test.`, 1, ""},
		{`ABC.escape.test.`, 2, ""},
		{`x.#wild.escape.test.`, 1, ""},
		{`a.b.#wild.escape.test.`, 1, ""},
		{`\@yaml.escape.test.`, 1, ""},
		{`y\ key.escape.test.`, 1, ""},
	} {
		a := z.Lookup(CanonicalName(c.q), dns.TypeTXT, false, nil)
		require.Equal(t, Success, a.Result, c.q)
		require.Len(t, a.Answer, c.n, c.q)
	}
	a := z.Lookup("x.escape.test.", dns.TypeTXT, false, nil)
	require.Equal(t, Success, a.Result)
	require.Len(t, a.Answer, 2, "the CNAME to \\035leading is followed")
	require.Equal(t, "#leading.escape.test.", a.Answer[1].Header().Name)
	require.Equal(t, NoData, z.Lookup(CanonicalName(`\#wild.escape.test.`), dns.TypeTXT, false, nil).Result,
		"the wildcard's parent exists")
}

// dnameYAML is a zone of DNAMEs: at the apex of another zone, chains,
// loops, a substitution too long, one at a wildcard owner.
const dnameYAML = `ttl: 300
soa: {ns: ns1.dname.test., mbox: hostmaster.dname.test., serial: 1, minttl: 60}
records:
  "@": {NS: [ns1]}
  ns1: {A: [192.0.2.53]}
  target: {A: [192.0.2.2]}
  www.target: {A: [192.0.2.3]}
  cn.target: {CNAME: www.target}
  d: {DNAME: target, TXT: [at the owner], ttl: 120}
  chain1: {DNAME: chain2}
  chain2: {DNAME: target}
  out: {DNAME: example.org.}
  self: {DNAME: self}
  grow: {DNAME: more.grow}
  loopa: {DNAME: loopb}
  loopb: {DNAME: loopa}
  long: {DNAME: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa.aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa.aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa}
  "*.w": {A: [192.0.2.5]}
  d.w: {DNAME: target}
  "*.wd": {DNAME: target}
`

func dnameZone(t *testing.T) *Zone {
	t.Helper()
	z, err := Compile("dname.test.yaml", []byte(dnameYAML), "dname.test.", time.Unix(1700000000, 0), nil)
	require.NoError(t, err)
	return z
}

// TestDNAME: RFC 6672 substitution. Before, every name below a DNAME
// owner answered NXDOMAIN.
func TestDNAME(t *testing.T) {
	z := dnameZone(t)
	strs := func(a Answer) []string {
		var out []string
		for _, rr := range a.Answer {
			out = append(out, rr.String())
		}
		return out
	}
	cases := []struct {
		name, qname, asked string
		qtype              uint16
		result             Result
		answer             []string
	}{
		{"synthesis and chase", "www.d.dname.test.", "WwW.d.dname.test.", dns.TypeA, Success, []string{
			"d.dname.test.\t120\tIN\tDNAME\ttarget.dname.test.",
			"WwW.d.dname.test.\t120\tIN\tCNAME\twww.target.dname.test.",
			"www.target.dname.test.\t300\tIN\tA\t192.0.2.3"}},
		{"the CNAME asked for: not chased", "www.d.dname.test.", "www.d.dname.test.", dns.TypeCNAME, Success, []string{
			"d.dname.test.\t120\tIN\tDNAME\ttarget.dname.test.",
			"www.d.dname.test.\t120\tIN\tCNAME\twww.target.dname.test."}},
		{"into a CNAME", "cn.d.dname.test.", "cn.d.dname.test.", dns.TypeA, Success, []string{
			"d.dname.test.\t120\tIN\tDNAME\ttarget.dname.test.",
			"cn.d.dname.test.\t120\tIN\tCNAME\tcn.target.dname.test.",
			"cn.target.dname.test.\t300\tIN\tCNAME\twww.target.dname.test.",
			"www.target.dname.test.\t300\tIN\tA\t192.0.2.3"}},
		{"to a name that does not exist", "nx.d.dname.test.", "nx.d.dname.test.", dns.TypeA, NXDomain, []string{
			"d.dname.test.\t120\tIN\tDNAME\ttarget.dname.test.",
			"nx.d.dname.test.\t120\tIN\tCNAME\tnx.target.dname.test."}},
		{"the owner's own data", "d.dname.test.", "d.dname.test.", dns.TypeTXT, Success, []string{
			"d.dname.test.\t120\tIN\tTXT\t\"at the owner\""}},
		{"the DNAME asked for at its owner", "d.dname.test.", "d.dname.test.", dns.TypeDNAME, Success, []string{
			"d.dname.test.\t120\tIN\tDNAME\ttarget.dname.test."}},
		{"a chain of DNAMEs", "www.chain1.dname.test.", "www.chain1.dname.test.", dns.TypeA, Success, []string{
			"chain1.dname.test.\t300\tIN\tDNAME\tchain2.dname.test.",
			"www.chain1.dname.test.\t300\tIN\tCNAME\twww.chain2.dname.test.",
			"chain2.dname.test.\t300\tIN\tDNAME\ttarget.dname.test.",
			"www.chain2.dname.test.\t300\tIN\tCNAME\twww.target.dname.test.",
			"www.target.dname.test.\t300\tIN\tA\t192.0.2.3"}},
		{"out of the zone: not chased", "x.out.dname.test.", "x.out.dname.test.", dns.TypeA, Success, []string{
			"out.dname.test.\t300\tIN\tDNAME\texample.org.",
			"x.out.dname.test.\t300\tIN\tCNAME\tx.example.org."}},
		{"to itself: a loop", "x.self.dname.test.", "x.self.dname.test.", dns.TypeA, Success, []string{
			"self.dname.test.\t300\tIN\tDNAME\tself.dname.test.",
			"x.self.dname.test.\t300\tIN\tCNAME\tx.self.dname.test."}},
		{"below itself: stopped at the second use", "x.grow.dname.test.", "x.grow.dname.test.", dns.TypeA, Success, []string{
			"grow.dname.test.\t300\tIN\tDNAME\tmore.grow.dname.test.",
			"x.grow.dname.test.\t300\tIN\tCNAME\tx.more.grow.dname.test."}},
		{"two in a loop", "x.loopa.dname.test.", "x.loopa.dname.test.", dns.TypeA, Success, []string{
			"loopa.dname.test.\t300\tIN\tDNAME\tloopb.dname.test.",
			"x.loopa.dname.test.\t300\tIN\tCNAME\tx.loopb.dname.test.",
			"loopb.dname.test.\t300\tIN\tDNAME\tloopa.dname.test.",
			"x.loopb.dname.test.\t300\tIN\tCNAME\tx.loopa.dname.test."}},
		{"too long: YXDOMAIN with the DNAME", strings.Repeat("b", 63) + ".long.dname.test.", "", dns.TypeA, YXDomain, []string{
			"long.dname.test.\t300\tIN\tDNAME\t" + strings.Repeat(strings.Repeat("a", 63)+".", 3) + "dname.test."}},
		{"a DNAME below a wildcard's parent", "x.d.w.dname.test.", "x.d.w.dname.test.", dns.TypeA, NXDomain, []string{
			"d.w.dname.test.\t300\tIN\tDNAME\ttarget.dname.test.",
			"x.d.w.dname.test.\t300\tIN\tCNAME\tx.target.dname.test."}},
		{"a DNAME at a wildcard owner: the literal name's", "x.*.wd.dname.test.", "x.*.wd.dname.test.", dns.TypeA, NXDomain, []string{
			"*.wd.dname.test.\t300\tIN\tDNAME\ttarget.dname.test.",
			"x.*.wd.dname.test.\t300\tIN\tCNAME\tx.target.dname.test."}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			asked := c.asked
			if asked == "" {
				asked = c.qname
			}
			a := z.LookupAs(c.qname, asked, c.qtype, false, nil)
			require.Equal(t, c.result, a.Result)
			require.Equal(t, c.answer, strs(a))
		})
	}
}

// TestDNAMEAtApex: every name below the apex is substituted; the apex's
// own data is served.
func TestDNAMEAtApex(t *testing.T) {
	z, err := Compile("apexdname.test.yaml", []byte(`ttl: 300
soa: {ns: ns1.dname.test., mbox: hostmaster.dname.test., serial: 1, minttl: 60}
records:
  "@": {NS: [ns1.dname.test.], DNAME: [dname.test.], TXT: [apex data]}
`), "apexdname.test.", time.Unix(1700000000, 0), nil)
	require.NoError(t, err)
	a := z.Lookup("www.x.apexdname.test.", dns.TypeA, false, nil)
	require.Equal(t, Success, a.Result)
	require.Len(t, a.Answer, 2)
	require.Equal(t, "www.x.dname.test.", a.Answer[1].(*dns.CNAME).Target)
	a = z.Lookup("apexdname.test.", dns.TypeTXT, false, nil)
	require.Equal(t, Success, a.Result)
	require.Len(t, a.Answer, 1)
}

// TestDNAMEZonesRefused: one name, one substitution, and no names below it
// (RFC 6672 2.4); a zone with two DNAMEs at a name or data below one is
// refused at load, with positions, as NSD and Knot refuse it, rather than
// served with one of them. So is an owner name over 255 octets.
func TestDNAMEZonesRefused(t *testing.T) {
	_, err := Compile("dname.test.yaml", []byte(`ttl: 300
soa: {ns: ns1.dname.test., mbox: hostmaster.dname.test., serial: 1, minttl: 60}
records:
  "@": {NS: [ns1]}
  ns1: {A: [192.0.2.53]}
  d: {DNAME: target}
  x.d: {A: [192.0.2.1]}
`), "dname.test.", time.Unix(1700000000, 0), nil)
	require.ErrorContains(t, err, `dname.test.yaml:7:3: name "x.d": data below the DNAME at d`)

	dir := t.TempDir()
	long := strings.Repeat(strings.Repeat("a", 63)+".", 3) + strings.Repeat("a", 63) // relative: 4 labels and dname.test.
	require.NoError(t, os.WriteFile(filepath.Join(dir, "long.zone"), []byte("$TTL 300\n@ SOA ns1 h 1 2 3 4 5\n@ NS ns1\nns1 A 192.0.2.53\n"+long+" A 192.0.2.1\n"), 0o644))
	_, err = Compile(filepath.Join(dir, "dname.test.yaml"), []byte("import: long.zone\n"), "dname.test.", time.Unix(1700000000, 0), nil)
	require.ErrorContains(t, err, "is longer than 255 octets")
}

func TestTwoDNAMEsRefused(t *testing.T) {
	_, err := Compile("dname.test.yaml", []byte(`ttl: 300
soa: {ns: ns1.dname.test., mbox: hostmaster.dname.test., serial: 1, minttl: 60}
records:
  "@": {NS: [ns1]}
  ns1: {A: [192.0.2.53]}
  d: {DNAME: [a.example., b.example.]}
`), "dname.test.", time.Unix(1700000000, 0), nil)
	require.ErrorContains(t, err, `dname.test.yaml:6:3: name "d": more than one DNAME`)
}

// TestNameFromWireEveryOctet: each of the 256 octets, alone and inside a
// label, is written as miekg/dns's unpacker writes it (lowered): the
// whole-label copy of plain labels and the escapes agree with it.
func TestNameFromWireEveryOctet(t *testing.T) {
	for c := range 256 {
		for _, w := range [][]byte{{1, byte(c), 0}, {3, 'a', byte(c), 'b', 1, 'x', 0}} {
			unpacked, _, err := dns.UnpackDomainName(w, 0)
			require.NoError(t, err)
			require.Equal(t, strings.ToLower(unpacked), NameFromWire(w), "octet %d", c)
		}
	}
}
