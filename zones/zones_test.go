package zones

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"
	"github.com/stretchr/testify/require"
)

var update = flag.Bool("update", false, "rewrite golden files")

// posRE is the shape every zone error must have: file:line:col: message.
var posRE = regexp.MustCompile(`^[^:]+:\d+:\d+: \S`)

// TestBadZones loads every file in testdata/bad and compares its errors
// with testdata/bad/want.txt (rewrite it with -update after checking them).
func TestBadZones(t *testing.T) {
	files, err := filepath.Glob("testdata/bad/*.yaml")
	require.NoError(t, err)
	require.GreaterOrEqual(t, len(files), 30)
	var got []string
	for _, f := range files {
		_, err := LoadFile(f, nil)
		require.Error(t, err, "%s must not load", f)
		for _, e := range Errors(err) {
			line := strings.TrimPrefix(e.Error(), "testdata/bad/")
			require.Regexp(t, posRE, line)
			got = append(got, line)
		}
	}
	golden := "testdata/bad/want.txt"
	if *update {
		require.NoError(t, os.WriteFile(golden, []byte(strings.Join(got, "\n")+"\n"), 0o644))
	}
	want, err := os.ReadFile(golden)
	require.NoError(t, err)
	require.Equal(t, strings.Split(strings.TrimSpace(string(want)), "\n"), got)
}

// TestBadZoneReportsAllErrors: one pass finds every problem in a file.
func TestBadZoneReportsAllErrors(t *testing.T) {
	src := `soa: {ns: a.example., mbox: b.example.}
records:
  "@": {NS: [ns1.example.net.]}
  a: {A: [300.1.1.1]}
  b: {AAAA: [nope]}
  c: {CNAME: x, TXT: [y]}
  d: {service: missing}
`
	_, err := Compile("many.example.yaml", []byte(src), "many.example.", time.Now(), nil)
	errs := Errors(err)
	require.Len(t, errs, 4, "%v", err)
	lines := []int{}
	for _, e := range errs {
		lines = append(lines, e.Line)
	}
	require.Equal(t, []int{4, 5, 6, 7}, lines)
}

func TestGoodZones(t *testing.T) {
	files, err := filepath.Glob("testdata/good/*.yaml")
	require.NoError(t, err)
	examples, err := filepath.Glob("../examples/zones/*.yaml")
	require.NoError(t, err)
	more, err := filepath.Glob("../examples/*/zones/*.yaml")
	require.NoError(t, err)
	examples = append(examples, more...)
	require.GreaterOrEqual(t, len(examples), 2)
	for _, f := range append(files, examples...) {
		z, err := LoadFile(f, nil)
		require.NoError(t, err, f)
		require.NotZero(t, z.Len())
		require.Empty(t, z.Warnings, "%s: good zones and examples load without warnings", f)
	}
}

func TestFullZoneDecoded(t *testing.T) {
	z, err := LoadFile("testdata/good/full.example.yaml", nil)
	require.NoError(t, err)
	require.Equal(t, uint32(2024120101), z.Serial)
	require.Equal(t, uint32(3600), z.SOA().Hdr.Ttl)

	get := func(name string, t uint16) []string {
		a := z.Lookup(name, t, false, nil)
		var out []string
		for _, rr := range a.Answer {
			out = append(out, rr.String())
		}
		return out
	}
	require.Equal(t, []string{"mail.full.example.\t60\tIN\tA\t192.0.2.25"}, get("mail.full.example.", dns.TypeA))
	require.Equal(t, []string{"ns2.full.example.\t86400\tIN\tAAAA\t2001:db8::2"}, get("ns2.full.example.", dns.TypeAAAA))
	require.Equal(t, []string{
		"full.example.\t600\tIN\tTXT\t\"plain text with \\\"quotes\\\" and spaces\"",
		"full.example.\t600\tIN\tTXT\t\"pre\" \"quoted\"",
	}, get("full.example.", dns.TypeTXT))
	require.Equal(t, []string{"legacy.full.example.\t300\tIN\tA\t192.0.2.77"}, get("legacy.full.example.", dns.TypeA), "imported")
	require.Equal(t, []string{"odd.full.example.\t600\tCLASS1\tTYPE65534\t\\# 4 0A000001"}, get("odd.full.example.", 65534))

	web := z.Services["web"]
	require.Equal(t, uint32(30), web.TTL)
	require.Equal(t, 1, web.Answers)
	require.Equal(t, AllDownFallback, web.AllDown)
	require.Equal(t, []string{"west", "east"}, web.SiteOrder)
	require.Len(t, web.Endpoints, 3)
	require.Equal(t, "127.0.0.2:8443", web.Endpoints[0].Target)
	require.Equal(t, []string{"CA", "MX"}, web.Rules[0].Countries)
	require.Equal(t, "203.0.113.0/24", web.Rules[1].CIDRs[0].String())
	require.False(t, web.Rules[0].Only)
	require.True(t, web.Rules[1].Only)
	hc := z.Checks["hc"]
	require.Equal(t, 2*time.Second, hc.Interval)
	require.Equal(t, []int{200, 204}, hc.ExpectStatus)
	require.False(t, z.Checks["pin"].Up)
	require.Equal(t, map[string]*Service{"full.example.": web, "lb.full.example.": web}, z.ServiceNames())
}

func TestHashIsStable(t *testing.T) {
	a, err := LoadFile("../examples/zones/example.com.yaml", nil)
	require.NoError(t, err)
	b, err := LoadFile("../examples/zones/example.com.yaml", a)
	require.NoError(t, err)
	require.Equal(t, a.Hash, b.Hash)
	require.Equal(t, a.Serial, b.Serial, "reloading unchanged content keeps the serial")
}

func TestProbes(t *testing.T) {
	z, err := LoadFile("../examples/zones/example.com.yaml", nil)
	require.NoError(t, err)
	eps := z.Services["web"].Endpoints
	require.Equal(t, "127.0.0.2:8080", eps[0].Probe.Target)
	require.Equal(t, eps[0].Probe.Key, eps[1].Probe.Key, "A and AAAA behind one target share a probe")
	require.NotEqual(t, eps[0].Probe.Key, eps[2].Probe.Key)
	require.Same(t, z.Checks["web"], eps[0].Probe.Check)

	full, err := LoadFile("testdata/good/full.example.yaml", nil)
	require.NoError(t, err)
	web := full.Services["web"].Endpoints
	require.Equal(t, "127.0.0.2:8443", web[0].Probe.Target, "target with a port")
	require.Equal(t, "", web[1].Probe.Target, "static checks probe nothing")
	require.Nil(t, web[2].Probe, "no check, no probe")
}

func TestCheckDefaults(t *testing.T) {
	src := `soa: {ns: a.example., mbox: b.example.}
records: {"@": {NS: [ns1.example.net.]}}
checks: {hc: {type: https}}
`
	z, err := Compile("d.example.yaml", []byte(src), "d.example.", time.Now(), nil)
	require.NoError(t, err)
	hc := z.Checks["hc"]
	require.Equal(t, Check{Name: "hc", Type: "https", Port: 443, Path: "/", ExpectStatus: []int{200},
		Interval: time.Second, Timeout: 800 * time.Millisecond, Rise: 3, Fall: 2, Up: true, KeepAlive: true}, *hc)

	z, err = Compile("d.example.yaml", []byte(strings.Replace(src, "type: https", "type: http, keepalive: false", 1)), "d.example.", time.Now(), nil)
	require.NoError(t, err)
	require.False(t, z.Checks["hc"].KeepAlive)
	_, err = Compile("d.example.yaml", []byte(strings.Replace(src, "type: https", "type: http, keepalive: maybe", 1)), "d.example.", time.Now(), nil)
	require.ErrorContains(t, err, "d.example.yaml:3:")
}

// TestCheckQuorum: the NS set's rule per check; majority (the default,
// also when named) leaves the probe key as it was.
func TestCheckQuorum(t *testing.T) {
	src := `soa: {ns: a.example., mbox: b.example.}
records: {"@": {NS: [ns1.example.net.]}}
checks: {hc: {type: http%s}}
`
	for _, tc := range []struct {
		rule string
		want Quorum
	}{{"", Quorum{}}, {", quorum: majority", Quorum{}}, {", min_up: 2", Quorum{MinUp: 2}}, {", up_ratio: 0.18", Quorum{UpRatio: 0.18}}} {
		z, err := Compile("d.example.yaml", []byte(strings.Replace(src, "%s", tc.rule, 1)), "d.example.", time.Now(), nil)
		require.NoError(t, err, tc.rule)
		require.Equal(t, tc.want, z.Checks["hc"].Quorum, tc.rule)
	}
	require.Equal(t, "up_ratio: 0.18", Quorum{UpRatio: 0.18}.String())
}

// TestCheckRequestFields: an http check's path and host go into the
// probe's request as written, so a CR, LF or space in them is refused at
// its key. Before, a path "/h HTTP/1.1\r\nX: 1\r\n\r\nGET /evil" loaded,
// and the probe sent the backend two requests of the zone file's making.
func TestCheckRequestFields(t *testing.T) {
	src := `soa: {ns: a.example., mbox: b.example.}
records: {"@": {NS: [ns1.example.net.]}}
checks: {hc: {type: http, %s}}
`
	for _, ok := range []string{`path: "/healthz?x=1&y=%20"`, `path: ""`, `host: www.example.com:8443`, `host: "[2001:db8::1]"`} {
		_, err := Compile("d.example.yaml", []byte(strings.Replace(src, "%s", ok, 1)), "d.example.", time.Now(), nil)
		require.NoError(t, err, ok)
	}
	for field, want := range map[string]string{
		`path: "/h HTTP/1.1\r\nX-Inj: 1\r\n\r\nGET /evil"`: `d.example.yaml:3:33: check "hc": path "/h HTTP/1.1\r\nX-Inj: 1\r\n\r\nGET /evil": "/" then printable ASCII without spaces (percent-encode the rest)`,
		`path: "/a b"`:           `d.example.yaml:3:33: check "hc": path "/a b": "/" then printable ASCII`,
		`path: healthz`:          `d.example.yaml:3:33: check "hc": path "healthz": "/" then`,
		`path: "/caf\u00e9"`:     `d.example.yaml:3:33: check "hc": path "/café": "/" then`,
		`host: "h\r\nX-Host: 1"`: `d.example.yaml:3:33: check "hc": host "h\r\nX-Host: 1": printable ASCII without spaces`,
		`host: "a b"`:            `d.example.yaml:3:33: check "hc": host "a b": printable ASCII without spaces`,
	} {
		_, err := Compile("d.example.yaml", []byte(strings.Replace(src, "%s", field, 1)), "d.example.", time.Now(), nil)
		require.ErrorContains(t, err, want, field)
	}
}

const serialZone = `soa: {ns: a.example., mbox: b.example.}
records: {"@": {NS: [ns1.example.net.]}, www: {A: [%s]}}
`

func compileSerial(t *testing.T, addr string, mtime time.Time, prev *Zone) *Zone {
	t.Helper()
	z, err := Compile("s.example.yaml", []byte(strings.Replace(serialZone, "%s", addr, 1)), "s.example.", mtime, prev)
	require.NoError(t, err)
	return z
}

func TestAutomaticSerial(t *testing.T) {
	t0 := time.Unix(1_700_000_000, 0)
	z1 := compileSerial(t, "192.0.2.1", t0, nil)
	require.Equal(t, uint32(1_700_000_000), z1.Serial, "starts at the file's mtime")
	require.Equal(t, z1.Serial, z1.SOA().Serial)

	z2 := compileSerial(t, "192.0.2.1", t0.Add(time.Hour), z1)
	require.Equal(t, z1.Serial, z2.Serial, "unchanged content keeps its serial, even if touched")

	z3 := compileSerial(t, "192.0.2.2", t0, z2)
	require.Equal(t, z1.Serial+1, z3.Serial, "changed content within the same second still moves on")

	z4 := compileSerial(t, "192.0.2.3", t0.Add(time.Hour), z3)
	require.Equal(t, uint32(1_700_003_600), z4.Serial)

	neg := z4.Lookup("nx.s.example.", dns.TypeA, false, nil).Ns[0].(*dns.SOA)
	require.Equal(t, z4.Serial, neg.Serial, "negative answers carry the current serial")
	require.Equal(t, uint32(60), neg.Hdr.Ttl, "min(SOA TTL, minttl)")

	require.True(t, serialAfter(1, 0xffffffff), "RFC 1982 wrap-around")
	require.False(t, serialAfter(0xffffffff, 1))
}

// TestAutomaticSerialImported: an imported file's content moves the serial
// as the YAML's own records do, and so does the YAML's default TTL, which
// its records without a TTL take.
func TestAutomaticSerialImported(t *testing.T) {
	dir := t.TempDir()
	// The SOA has a TTL of its own: only the imported records take the default.
	yamlSrc := "origin: i.example.\nttl: %d\nimport: i.example.zone\nsoa: {ns: a.example., mbox: b.example., ttl: 3600}\n"
	compile := func(ttl int, master string, prev *Zone) *Zone {
		t.Helper()
		require.NoError(t, os.WriteFile(filepath.Join(dir, "i.example.zone"), []byte(master), 0o644))
		z, err := Compile(filepath.Join(dir, "i.example.yaml"), fmt.Appendf(nil, yamlSrc, ttl), "i.example.",
			time.Unix(1_700_000_000, 0), prev)
		require.NoError(t, err)
		return z
	}
	master := "@ NS ns1.example.net.\nwww A 192.0.2.1\n"
	z1 := compile(300, master, nil)
	z2 := compile(300, master, z1)
	require.Equal(t, z1.Serial, z2.Serial, "the same file again keeps the serial")
	z3 := compile(300, strings.Replace(master, "192.0.2.1", "192.0.2.2", 1), z2)
	require.Equal(t, z2.Serial+1, z3.Serial, "an edited record moves it")
	z4 := compile(600, strings.Replace(master, "192.0.2.1", "192.0.2.2", 1), z3)
	require.Equal(t, z3.Serial+1, z4.Serial, "a new default TTL for the imported records moves it")
	ans := z4.Lookup("www.i.example.", dns.TypeA, false, nil).Answer
	require.Equal(t, uint32(600), ans[0].Header().Ttl)
}

// TestImportRoundTrip converts master files to YAML and checks that the
// compiled zone holds exactly the master file's records.
func TestImportRoundTrip(t *testing.T) {
	files, err := filepath.Glob("../cmd/geodns/testdata/diff/*.zone")
	require.NoError(t, err)
	require.NotEmpty(t, files)
	for _, f := range files {
		origin := strings.TrimSuffix(filepath.Base(f), "zone")
		data, err := os.ReadFile(f)
		require.NoError(t, err)
		y, err := ImportMaster(strings.NewReader(string(data)), origin, f)
		require.NoError(t, err)
		z, err := Compile(origin+"yaml", y, origin, time.Now(), nil)
		require.NoError(t, err, "%s:\n%s", f, y)

		var want []string
		zp := dns.NewZoneParser(strings.NewReader(string(data)), origin, f)
		for rr, ok := zp.Next(); ok; rr, ok = zp.Next() {
			rr.Header().Name = strings.ToLower(rr.Header().Name)
			want = append(want, rr.String())
		}
		var got []string
		z.Records(func(rr dns.RR) { got = append(got, rr.String()) })
		sort.Strings(want)
		sort.Strings(got)
		require.Equal(t, slices.Compact(want), got, f)
	}
}

func TestLookupDoesNotMutateZone(t *testing.T) {
	z, err := LoadFile("testdata/good/full.example.yaml", nil)
	require.NoError(t, err)
	before := z.Lookup("full.example.", dns.TypeMX, false, nil)
	snapshot := []string{}
	for _, rr := range before.Answer {
		snapshot = append(snapshot, rr.String())
	}
	// A wildcard answer is synthesized from copies, never from the zone's records.
	a := z.Lookup("x.apps.full.example.", dns.TypeCNAME, false, nil)
	require.Equal(t, "x.apps.full.example.", a.Answer[0].Header().Name)
	b := z.Lookup("*.apps.full.example.", dns.TypeCNAME, false, nil)
	require.Equal(t, "*.apps.full.example.", b.Answer[0].Header().Name)
	after := z.Lookup("full.example.", dns.TypeMX, false, nil)
	for i, rr := range after.Answer {
		require.Equal(t, snapshot[i], rr.String())
	}
}

// apexOnly compiles a zone named origin that holds its SOA and NS only.
func apexOnly(t *testing.T, origin string) *Zone {
	src := "soa: {ns: a.example., mbox: b.example.}\nrecords: {\"@\": {NS: [ns1.example.net.]}}\n"
	z, err := Compile(origin+"yaml", []byte(src), origin, time.Now(), nil)
	require.NoError(t, err)
	return z
}

func TestSetFind(t *testing.T) {
	s := NewSet(apexOnly(t, "example.com."), apexOnly(t, "sub.example.com."))
	require.Equal(t, "sub.example.com.", s.Find("a.sub.example.com.", dns.TypeA).Origin)
	require.Equal(t, "sub.example.com.", s.Find("sub.example.com.", dns.TypeSOA).Origin)
	require.Equal(t, "example.com.", s.Find("sub.example.com.", dns.TypeDS).Origin, "DS comes from the parent")
	require.Equal(t, "example.com.", s.Find("www.example.com.", dns.TypeA).Origin)
	require.Nil(t, s.Find("example.org.", dns.TypeA))
	require.Nil(t, s.Find("com.", dns.TypeA))
	require.Len(t, s.Without("example.com.").Zones(), 1)
	// Find looks up only suffixes as long as some origin: a copy knows its own.
	require.Equal(t, "example.com.", s.Without("sub.example.com.").Find("a.sub.example.com.", dns.TypeA).Origin)
	w := s.With(apexOnly(t, "example.org.")).With(apexOnly(t, "a.b.example.net."))
	require.Equal(t, "example.org.", w.Find("x.y.example.org.", dns.TypeA).Origin)
	require.Equal(t, "a.b.example.net.", w.Find("c.a.b.example.net.", dns.TypeA).Origin)
	require.Nil(t, s.Find("x.y.example.org.", dns.TypeA))
}

func TestTrafficSettings(t *testing.T) {
	src := `
soa: {ns: ns1.example.net., mbox: h.example.net.}
records:
  "@": {NS: [ns1.example.net.]}
  www: {service: web}
  api: {service: api}
sites:
  east: {lat: 39, lon: -77, capacity: 100}
  west: {lat: 37, lon: -122}
services:
  web:
    spillover: {max_load: 0.9}
    return_ramp: 2m
    dials: {east: 25}
    endpoints: [{site: east, address: 192.0.2.1}, {site: west, address: 192.0.2.2}]
  api:
    spillover: true
    return_ramp: 0
    endpoints: [{site: east, address: 192.0.2.3}]
`
	z, err := Compile("example.net.yaml", []byte(src), "example.net.", time.Now(), nil)
	require.NoError(t, err)
	web, api := z.Services["web"], z.Services["api"]
	require.True(t, web.Spillover)
	require.Equal(t, 0.9, web.MaxLoad)
	require.Equal(t, 2*time.Minute, web.ReturnRamp)
	require.Equal(t, map[string]float64{"east": 0.25}, web.Dials)
	require.Equal(t, 100.0, web.Sites[0].Capacity)
	require.Equal(t, 1.0, web.Sites[1].Capacity, "default capacity")
	require.True(t, api.Spillover)
	require.Equal(t, 0.8, api.MaxLoad, "default max_load")
	require.Zero(t, api.ReturnRamp)
}

// TestCompileHook: the hook the program sets runs around every compile,
// started before and done after (cmd/geodns raises GOGC with it).
func TestCompileHook(t *testing.T) {
	var started, done int
	SetCompileHook(func() func() {
		started++
		return func() { done++ }
	})
	defer SetCompileHook(nil)
	_, err := Compile("example.net.yaml", []byte("soa: {ns: ns1.example.net., mbox: h.example.net.}\nrecords:\n  \"@\": {NS: [ns1.example.net.]}\n"), "example.net.", time.Now(), nil)
	require.NoError(t, err)
	require.Equal(t, 1, started)
	require.Equal(t, 1, done)
	SetCompileHook(nil)
	_, err = Compile("example.net.yaml", []byte("soa: {ns: ns1.example.net., mbox: h.example.net.}\n"), "example.net.", time.Now(), nil)
	require.Equal(t, 1, started, "no hook: nothing runs (err %v)", err)
}

// TestAnswerAppendKeepsExtra: a set's records and its additional data share
// one slice; a caller that appends to the records it was given must not
// write over the additional data.
func TestAnswerAppendKeepsExtra(t *testing.T) {
	z, err := LoadFile("../examples/zones/example.com.yaml", nil)
	require.NoError(t, err)
	a := z.Lookup("example.com.", dns.TypeMX, false, nil)
	require.NotEmpty(t, a.Extra, "the MX target's address")
	want := a.Extra[0].String()
	_ = append(a.Answer, &dns.A{Hdr: dns.RR_Header{Name: "x.example.com.", Rrtype: dns.TypeA, Class: dns.ClassINET}})
	require.Equal(t, want, z.Lookup("example.com.", dns.TypeMX, false, nil).Extra[0].String())
}

// TestGlueFromWildcard: a delegation whose NS target exists only through
// a wildcard gets that wildcard's address as glue, owned by the target,
// as from NSD and Knot; none from a wildcard beyond a cut. Before, the
// referral had no glue (the load check counted the wildcard's address).
func TestGlueFromWildcard(t *testing.T) {
	src := "soa: {ns: ns1.d.example., mbox: h.d.example.}\nrecords:\n  \"@\": {NS: [ns1.d.example.]}\n  ns1: {A: [192.0.2.1]}\n" +
		"  \"*.wh\": {A: [192.0.2.44]}\n  wg: {NS: [ns.x.wh.d.example.]}\n" +
		"  cut: {NS: [ns1.d.example.]}\n  \"*.cut\": {A: [192.0.2.9]}\n  wc: {NS: [ns.y.cut.d.example.]}\n"
	z, err := Compile("d.example.yaml", []byte(src), "d.example.", time.Now(), nil)
	require.NoError(t, err)
	a := z.Lookup("host.wg.d.example.", dns.TypeA, false, nil)
	require.Equal(t, Delegation, a.Result)
	require.Len(t, a.Extra, 1)
	require.Equal(t, "ns.x.wh.d.example.", a.Extra[0].Header().Name)
	require.Equal(t, "192.0.2.44", a.Extra[0].(*dns.A).A.String())
	a = z.Lookup("host.wc.d.example.", dns.TypeA, false, nil)
	require.Equal(t, Delegation, a.Result)
	require.Empty(t, a.Extra, "no wildcard answers below a cut")
}
