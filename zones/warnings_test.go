package zones

import (
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/miekg/dns"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/stretchr/testify/require"
)

// TestWarnZones loads every file in testdata/warn: each loads, with
// warnings in file:line:col form, compared with testdata/warn/want.txt
// (rewrite it with -update after checking them).
func TestWarnZones(t *testing.T) {
	files, err := filepath.Glob("testdata/warn/*.yaml")
	require.NoError(t, err)
	require.GreaterOrEqual(t, len(files), 4)
	var got []string
	for _, f := range files {
		z, err := LoadFile(f, nil)
		require.NoError(t, err, "%s must load: a warning never blocks a load", f)
		require.NotEmpty(t, z.Warnings, "%s must warn", f)
		for _, w := range z.Warnings {
			line := strings.TrimPrefix(w.Error(), "testdata/warn/")
			require.Regexp(t, posRE, line)
			got = append(got, line)
		}
	}
	golden := "testdata/warn/want.txt"
	if *update {
		require.NoError(t, os.WriteFile(golden, []byte(strings.Join(got, "\n")+"\n"), 0o644))
	}
	want, err := os.ReadFile(golden)
	require.NoError(t, err)
	require.Equal(t, strings.Split(strings.TrimSpace(string(want)), "\n"), got)
}

// TestOccludedNeverServed: occluded data loads but every question at or
// below the cut is a referral; the glue is only in its additional section.
func TestOccludedNeverServed(t *testing.T) {
	z, err := LoadFile("testdata/warn/import-warnings.example.yaml", nil)
	require.NoError(t, err)
	for _, q := range []struct {
		name  string
		qtype uint16
	}{
		{"sub.import-warnings.example.", dns.TypeTXT},
		{"sub.import-warnings.example.", dns.TypeANY},
		{"ns.sub.import-warnings.example.", dns.TypeA},
		{"ns.sub.import-warnings.example.", dns.TypeTXT},
		{"deep.x.sub.import-warnings.example.", dns.TypeTXT},
		{"x.sub.import-warnings.example.", dns.TypeTXT},
		{"nx.sub.import-warnings.example.", dns.TypeA},
	} {
		a := z.Lookup(q.name, q.qtype, false, nil)
		require.Equal(t, Delegation, a.Result, "%s %s", q.name, dns.TypeToString[q.qtype])
		require.Empty(t, a.Answer, "%s %s", q.name, dns.TypeToString[q.qtype])
		require.Len(t, a.Ns, 1)
		require.Equal(t, "ns.sub.import-warnings.example.", a.Ns[0].(*dns.NS).Ns)
		for _, rr := range a.Extra {
			require.IsType(t, &dns.A{}, rr, "only glue goes with a referral")
		}
	}
}

// writeFiles writes name -> content into a new directory and returns it.
func writeFiles(t *testing.T, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	for name, content := range files {
		require.NoError(t, os.MkdirAll(filepath.Dir(filepath.Join(dir, name)), 0o755))
		require.NoError(t, os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644))
	}
	return dir
}

// TestGenerateTTL: records of $GENERATE get the TTL a record line would
// get there, as BIND gives them: $TTL's, or the last TTL given; one in the
// template wins.
func TestGenerateTTL(t *testing.T) {
	dir := writeFiles(t, map[string]string{
		"gen.example.yaml": "import: gen.zone\n",
		"gen.zone": `$ORIGIN gen.example.
@    3600 SOA ns1.example.net. hostmaster.example.net. 1 3600 600 1209600 60
@    3600 NS  ns1.example.net.
$GENERATE 1-2 early$ A 192.0.2.$
a    120  A   192.0.2.100
$GENERATE 1-2 last$ A 192.0.2.$
$TTL 300
$GENERATE 1-4 host$ A 192.0.2.$
$GENERATE 1-2 own$ 77 A 192.0.2.$
mixed 900 A 192.0.2.200
$GENERATE 1-1 mixed A 192.0.2.$
`,
	})
	z, err := LoadFile(filepath.Join(dir, "gen.example.yaml"), nil)
	require.NoError(t, err)
	ttl := func(name string) uint32 {
		a := z.Lookup(name+".gen.example.", dns.TypeA, false, nil)
		require.Equal(t, Success, a.Result, name)
		return a.Answer[0].Header().Ttl
	}
	require.Equal(t, uint32(3600), ttl("early1"), "no $TTL: the last TTL given (the SOA's)")
	require.Equal(t, uint32(120), ttl("last2"), "no $TTL: the last TTL given")
	for _, n := range []string{"host1", "host4"} {
		require.Equal(t, uint32(300), ttl(n), "after $TTL 300: %s", n)
	}
	require.Equal(t, uint32(77), ttl("own1"), "a TTL in the template")
	a := z.Lookup("mixed.gen.example.", dns.TypeA, false, nil)
	require.Len(t, a.Answer, 2)
	for _, rr := range a.Answer {
		require.Equal(t, uint32(300), rr.Header().Ttl, "one TTL per set: the lowest (the generated record's, from $TTL)")
	}
}

// TestSetTTLIsTheLowest: records of one set given different TTLs share
// the lowest (RFC 2181 5.2), whichever comes first. Before, the first
// record's TTL won: a set was served for 200 s though one record of it
// was meant to last 100 (NSD keeps each record's own; Knot the lowest).
func TestSetTTLIsTheLowest(t *testing.T) {
	dir := t.TempDir()
	writeZone(t, dir, "mix.zone", "$TTL 300\n@ SOA ns1 host 1 3600 600 1209600 120\n@ NS ns1\nns1 A 192.0.2.1\n"+
		"mix2 200 TXT \"two\"\nmix2 100 TXT \"one\"\nup 100 TXT \"one\"\nup 200 TXT \"two\"\n")
	writeZone(t, dir, "mix.example.yaml", "import: mix.zone\nrecords:\n  y: {TXT: [a]}\n")
	z, err := LoadFile(filepath.Join(dir, "mix.example.yaml"), nil)
	require.NoError(t, err)
	for _, name := range []string{"mix2", "up"} {
		a := z.Lookup(name+".mix.example.", dns.TypeTXT, false, nil)
		require.Len(t, a.Answer, 2)
		for _, rr := range a.Answer {
			require.Equal(t, uint32(100), rr.Header().Ttl, "%s: %s", name, rr)
		}
	}
}

// TestInclude: $INCLUDE reads a file relative to the including one, with
// its origin, and confined like the import; the zone reloads when it
// changes (it is among the zone's Imports).
func TestInclude(t *testing.T) {
	dir := writeFiles(t, map[string]string{
		"inc.example.yaml": "import: master/inc.zone\n",
		"master/inc.zone": `$ORIGIN inc.example.
$TTL 300
@    SOA ns1.example.net. hostmaster.example.net. 1 3600 600 1209600 60
@    NS  ns1.example.net.
$INCLUDE sub/part.zone part.inc.example.
back A 192.0.2.98
`,
		"master/sub/part.zone": "a A 192.0.2.1\n@ TXT \"at the include's origin\"\n$INCLUDE ../../deeper.zone\n",
		"deeper.zone":          "deep 600 TXT \"two levels down, back in the zone directory\"\n",
	})
	z, err := LoadFile(filepath.Join(dir, "inc.example.yaml"), nil)
	require.NoError(t, err)
	for name, qt := range map[string]uint16{
		"a.part.inc.example.": dns.TypeA, "part.inc.example.": dns.TypeTXT,
		"deep.part.inc.example.": dns.TypeTXT, "back.inc.example.": dns.TypeA,
	} {
		require.Equal(t, Success, z.Lookup(name, qt, false, nil).Result, name)
	}
	require.Equal(t, uint32(300), z.Lookup("a.part.inc.example.", dns.TypeA, false, nil).Answer[0].Header().Ttl)
	require.Contains(t, z.Imports, filepath.Join(dir, "master/sub/part.zone"))
	require.Contains(t, z.Imports, filepath.Join(dir, "deeper.zone"))

	// Outside the zone directory: refused at the $INCLUDE's line, unread.
	out := writeFiles(t, map[string]string{"secret.zone": "x TXT \"secret\"\n"})
	dir2 := writeFiles(t, map[string]string{
		"out.example.yaml": "import: out.zone\n",
		"out.zone": "$ORIGIN out.example.\n@ 300 SOA ns1.example.net. h.example.net. 1 2 3 4 5\n@ 300 NS ns1.example.net.\n" +
			"$INCLUDE " + filepath.Join(out, "secret.zone") + "\n",
	})
	_, err = LoadFile(filepath.Join(dir2, "out.example.yaml"), nil)
	require.ErrorContains(t, err, "out.zone:4:")
	require.ErrorContains(t, err, ": $INCLUDE ")
	require.ErrorContains(t, err, "is outside the allowed directories")
	require.NotContains(t, err.Error(), "secret\"")
	// Allowed by ImportDirs (zone_import_dirs), it loads.
	z, err = Limits{ImportDirs: []string{out}}.Load(filepath.Join(dir2, "out.example.yaml"), nil)
	require.NoError(t, err)
	require.Equal(t, Success, z.Lookup("x.out.example.", dns.TypeTXT, false, nil).Result)
}

// TestWarningPositionsInIncludes: a warning about a record of an included
// file names that file and line.
func TestWarningPositionsInIncludes(t *testing.T) {
	z, err := LoadFile("testdata/warn/import-warnings.example.yaml", nil)
	require.NoError(t, err)
	var got []string
	for _, w := range z.Warnings {
		got = append(got, w.Error())
	}
	require.Contains(t, got, `testdata/warn/import-warnings.inc.txt:2:1: name "deep.x.sub": TXT record below the delegation at sub.import-warnings.example. is occluded: never served (only glue belongs there)`)
}

// TestSerialUnchangedWarning: content that changed under the same SOA
// serial loads, with a warning at the SOA; the same content does not warn.
func TestSerialUnchangedWarning(t *testing.T) {
	src := "soa: {ns: ns1.example.net., mbox: h.example.net., serial: 7}\nrecords:\n  \"@\": {NS: [ns1.example.net.]}\n  www: {A: [%s]}\n"
	v1, err := Compile("ser.example.yaml", []byte(strings.Replace(src, "%s", "192.0.2.1", 1)), "ser.example.", time.Now(), nil)
	require.NoError(t, err)
	require.Empty(t, v1.Warnings)
	same, err := Compile("ser.example.yaml", []byte(strings.Replace(src, "%s", "192.0.2.1", 1)), "ser.example.", time.Now(), v1)
	require.NoError(t, err)
	require.Empty(t, same.Warnings)
	v2, err := Compile("ser.example.yaml", []byte(strings.Replace(src, "%s", "192.0.2.2", 1)), "ser.example.", time.Now(), v1)
	require.NoError(t, err)
	require.Len(t, v2.Warnings, 1)
	require.Contains(t, v2.Warnings[0].Error(), `ser.example.yaml:3:3: name "@": the content changed but the SOA serial (7) did not`)
	// Not transferred: nothing moves the serial on its own.
	require.Contains(t, v2.Warnings[0].Error(), "SOA answers still say 7")
}

// TestImportFileChecks: `geodns import` (ImportFile) refuses what check
// refuses and reports the same warnings, at the record's own line.
func TestImportFileChecks(t *testing.T) {
	dir := writeFiles(t, map[string]string{
		"bad.zone": "$ORIGIN x.example.\n$TTL 300\n@ SOA ns1 h 1 2 3 4 5\n@ NS ns1\nns1 A 192.0.2.1\nwww CNAME a.example.net.\nwww TXT \"beside\"\n",
		"warn.zone": "$ORIGIN x.example.\n$TTL 300\n@ SOA ns1 h 1 2 3 4 5\n@ NS ns1\nns1 A 192.0.2.1\n@ MX 10 mail\n" +
			"$GENERATE 1-2 h$ A 192.0.2.$\n",
	})
	_, _, err := Limits{}.ImportFile(filepath.Join(dir, "bad.zone"), "x.example.")
	require.ErrorContains(t, err, "bad.zone:6:1: name \"www\": CNAME beside other data (TXT)")
	y, warns, err := Limits{}.ImportFile(filepath.Join(dir, "warn.zone"), "x.example.")
	require.NoError(t, err)
	require.Len(t, warns, 1)
	require.Contains(t, warns[0].Error(), "warn.zone:6:1: name \"@\": MX target mail.x.example. is in the zone but has no address")
	require.Contains(t, string(y), "h1:")
	require.Contains(t, string(y), "ttl: 300")
}

// TestWatcherWarnings: the watcher logs a zone's warnings at WARN when it
// loads new content (not again for a reload of the same content), counts
// them in geodns_zone_warnings, and counts a changed zone whose serial
// did not move.
func TestWatcherWarnings(t *testing.T) {
	dir := t.TempDir()
	body := "soa: {ns: a.example., mbox: b.example., serial: 3}\nrecords:\n  \"@\": {NS: [ns1.example.net.], MX: [10 mail]}\n  sub: {NS: [ns.example.net.]}\n  www.sub: {TXT: [%s]}\n"
	writeZone(t, dir, "w.example.yaml", fmt.Sprintf(body, "one"))
	var set atomic.Pointer[Set]
	reg := prometheus.NewRegistry()
	var logs strings.Builder
	w := NewWatcher(dir, &set, NewMetrics(reg), slog.New(slog.NewTextHandler(&logs, nil)))
	w.Poll = time.Hour
	require.NoError(t, w.Scan(true))
	require.Equal(t, 2, strings.Count(logs.String(), "level=WARN msg=\"zone loaded with a warning\""), logs.String())
	require.Contains(t, logs.String(), "is occluded")
	require.Equal(t, 2.0, testutil.ToFloat64(oneSeries(reg, "geodns_zone_warnings")))

	logs.Reset()
	require.NoError(t, w.Scan(false)) // nothing changed: nothing logged
	require.NotContains(t, logs.String(), "zone loaded with a warning")

	writeZone(t, dir, "w.example.yaml", fmt.Sprintf(body, "two")) // same serial
	require.NoError(t, w.Scan(true))
	require.Contains(t, logs.String(), "the content changed but the SOA serial (3) did not")
	require.Equal(t, 3.0, testutil.ToFloat64(oneSeries(reg, "geodns_zone_warnings")))
	require.Equal(t, 1.0, testutil.ToFloat64(oneSeries(reg, "geodns_zone_serial_unchanged_total")))
}

// oneSeries is the one series of the metric name in reg.
func oneSeries(reg *prometheus.Registry, name string) prometheus.Collector {
	return collectorFunc(func(ch chan<- prometheus.Metric) {
		mfs, _ := reg.Gather()
		for _, mf := range mfs {
			if mf.GetName() == name && len(mf.Metric) == 1 {
				m := mf.Metric[0]
				v := m.GetGauge().GetValue() + m.GetCounter().GetValue()
				ch <- prometheus.MustNewConstMetric(prometheus.NewDesc(name, "x", nil, nil), prometheus.GaugeValue, v)
			}
		}
	})
}

type collectorFunc func(chan<- prometheus.Metric)

func (f collectorFunc) Describe(chan<- *prometheus.Desc)    {}
func (f collectorFunc) Collect(ch chan<- prometheus.Metric) { f(ch) }

// TestWatcherReloadsInclude: a change to a file read through $INCLUDE
// reloads the zone, as a change to the import does.
func TestWatcherReloadsInclude(t *testing.T) {
	dir := writeFiles(t, map[string]string{
		"inc.example.yaml": "import: inc.zone\n",
		"inc.zone": "$ORIGIN inc.example.\n$TTL 300\n@ SOA ns1.example.net. h.example.net. 1 2 3 4 5\n" +
			"@ NS ns1.example.net.\n$INCLUDE parts/www.zone\n",
		"parts/www.zone": "www A 192.0.2.1\n",
	})
	var set atomic.Pointer[Set]
	w := NewWatcher(dir, &set, NewMetrics(nil), slog.New(slog.NewTextHandler(io.Discard, nil)))
	w.Poll = time.Hour
	require.NoError(t, w.Scan(true))
	require.Equal(t, "192.0.2.1", answerA(&set, "inc.example."))
	writeZone(t, filepath.Join(dir, "parts"), "www.zone", "www A 192.0.2.2\n")
	require.NoError(t, w.Scan(false))
	require.Equal(t, "192.0.2.2", answerA(&set, "inc.example."))
}

// TestIncludeTTLCarriesOver: a $TTL (or a last TTL) set in an included
// file holds after the include, as in BIND, whose TTL state belongs to
// the whole load (only the origin and the current owner return).
func TestIncludeTTLCarriesOver(t *testing.T) {
	dir := writeFiles(t, map[string]string{
		"ttl.example.yaml": "import: ttl.zone\n",
		"ttl.zone": `$ORIGIN ttl.example.
@    3600 SOA ns1.example.net. h.example.net. 1 2 3 4 5
@    3600 NS  ns1.example.net.
before A 192.0.2.1
$INCLUDE part.zone sub.ttl.example.
after A 192.0.2.2
`,
		"part.zone": "$TTL 600\ninside A 192.0.2.3\n",
	})
	z, err := LoadFile(filepath.Join(dir, "ttl.example.yaml"), nil)
	require.NoError(t, err)
	ttl := func(name string) uint32 {
		a := z.Lookup(name, dns.TypeA, false, nil)
		require.Equal(t, Success, a.Result, name)
		return a.Answer[0].Header().Ttl
	}
	require.Equal(t, uint32(3600), ttl("before.ttl.example."))
	require.Equal(t, uint32(600), ttl("inside.sub.ttl.example."))
	require.Equal(t, uint32(600), ttl("after.ttl.example."), "the included $TTL holds after the include")
}

// TestDirectiveDetector: a $GENERATE split between two reads is seen.
func TestDirectiveDetector(t *testing.T) {
	for _, parts := range [][]string{
		{"a A 192.0.2.1\n$GENERATE 1-2 h$ A 192.0.2.$\n"},
		{"a A 192.0.2.1\n$GEN", "erate 1-2 h$ A 192.0.2.$\n"},
		{"$", "GENERATE"},
		{"x $generat", "e"},
	} {
		d := &directiveDetector{}
		for _, p := range parts {
			d.Write([]byte(p))
		}
		require.True(t, d.generate, "%q", parts)
	}
	d := &directiveDetector{}
	d.Write([]byte("$TTL 300\n$GENERAL"))
	d.Write([]byte("$ORIGIN x.\n"))
	require.False(t, d.generate)
}

// FuzzScanMatchesParser: for any master file the parser reads without an
// error, the scan that places records finds as many, in its files, as the
// parser makes (positions and TTL fixes stand on it).
func FuzzScanMatchesParser(f *testing.F) {
	for _, s := range []string{
		"a A 192.0.2.1\n b TXT \"x ; y\" ( \"z\"\n )\n",
		"$TTL 300\n$GENERATE 1-4/2 h$ A 192.0.2.$\n@ MX 10 mail ; c\n",
		"a 60 IN TXT \"(\" \\; x\n\tAAAA ::1\n$ORIGIN sub\nx CNAME a\n",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, src string) {
		if strings.Contains(strings.ToUpper(src), "$INCLUDE") {
			return
		}
		for _, l := range strings.Split(src, "\n") {
			if _, isType := dns.StringToType[strings.ToUpper(strings.TrimSpace(l))]; isType {
				return // a line of one type word (CRLF or blanks around it too) the parser reads as a record of that type with no owner: no real zone has one
			}
		}
		if !strings.HasSuffix(src, "\n") {
			src += "\n" // the parser drops a last line without one unread: no error, no record
		}
		zp := dns.NewZoneParser(strings.NewReader(src), "fuzz.example.", "")
		n := 0
		for rr, ok := zp.Next(); ok; rr, ok = zp.Next() {
			if d := rdata(rr); d == "" || strings.Contains(d, "<nil>") {
				return // the parser's lone-word quirks ("A " at the end of a file): no real zone has them
			}
			n++
		}
		if zp.Err() != nil {
			return
		}
		dir := t.TempDir()
		path := filepath.Join(dir, "f.zone")
		require.NoError(t, os.WriteFile(path, []byte(src), 0o644))
		c := &compiler{spec: &spec{file: path, ttl: DefaultTTL}}
		got := c.scanMaster(path, path, ttlState{DefaultTTL, false}, &ttlState{DefaultTTL, false}, 0, nil)
		require.Len(t, got, n, "%q", src)
	})
}

// TestImportedTTLTopBit: a master file's TTL above 2^31-1 is served as 0
// (RFC 2181 8: a receiver reads it so), with a warning at its record, as
// BIND does. Before, 4294967295 went out as it was, the SOA's in every
// negative answer too.
func TestImportedTTLTopBit(t *testing.T) {
	dir := t.TempDir()
	writeZone(t, dir, "big.zone", strings.Join([]string{
		"$TTL 300",
		"@ 2147483648 SOA ns1 host 1 3600 600 1209600 120",
		"@ NS ns1",
		"ns1 A 192.0.2.1",
		"x 4294967295 A 192.0.2.2",
		"y 2147483647 A 192.0.2.3",
	}, "\n")+"\n")
	writeZone(t, dir, "big.example.yaml", "import: big.zone\n")
	z, err := LoadFile(filepath.Join(dir, "big.example.yaml"), nil)
	require.NoError(t, err)
	ttl := func(name string, qtype uint16) uint32 {
		a := z.Lookup(name, qtype, false, nil)
		require.Len(t, a.Answer, 1, "%s %d", name, qtype)
		return a.Answer[0].Header().Ttl
	}
	require.Equal(t, uint32(0), ttl("x.big.example.", dns.TypeA))
	require.Equal(t, uint32(2147483647), ttl("y.big.example.", dns.TypeA), "the largest TTL allowed is kept")
	require.Equal(t, uint32(0), ttl("big.example.", dns.TypeSOA))
	neg := z.Lookup("nx.big.example.", dns.TypeA, false, nil)
	require.Equal(t, uint32(0), neg.Ns[0].Header().Ttl, "the negative answer's SOA")
	var ws []string
	for _, w := range z.Warnings {
		ws = append(ws, strings.TrimPrefix(w.Error(), dir+"/"))
	}
	require.Equal(t, []string{
		`big.zone:2:1: name "@": TTL 2147483648 is above 2147483647 (RFC 2181 8: a receiver reads it as 0): served as 0`,
		`big.zone:5:1: name "x": TTL 4294967295 is above 2147483647 (RFC 2181 8: a receiver reads it as 0): served as 0`,
	}, ws)
}

// TestWildcardDelegation: NS at a wildcard loads with a warning (NSD and
// Knot load it; before, geodns refused the zone), names the wildcard
// matches get its other records, as NSD answers; a zone geodns signs
// refuses it.
func TestWildcardDelegation(t *testing.T) {
	dir := t.TempDir()
	writeZone(t, dir, "wns.zone", "$TTL 300\n@ SOA ns1 host 1 3600 600 1209600 120\n@ NS ns1\nns1 A 192.0.2.1\n*.w NS ns.other.example.\n")
	writeZone(t, dir, "wns.example.yaml", "import: wns.zone\n")
	z, err := LoadFile(filepath.Join(dir, "wns.example.yaml"), nil)
	require.NoError(t, err)
	require.Len(t, z.Warnings, 1)
	require.Contains(t, z.Warnings[0].Error(), `wns.zone:5:1: name "*.w": wildcard delegation (NS at a wildcard`)
	require.Equal(t, NoData, z.Lookup("foo.w.wns.example.", dns.TypeA, false, nil).Result, "a matched name: the wildcard's other records")
	require.Equal(t, Delegation, z.Lookup("*.w.wns.example.", dns.TypeA, false, nil).Result, "the literal name is delegated")
	require.Equal(t, Delegation, z.Lookup("x.*.w.wns.example.", dns.TypeA, false, nil).Result)

	writeZone(t, dir, "wns.example.yaml", "import: wns.zone\ndnssec: {algorithm: ECDSAP256SHA256}\n")
	_, err = LoadFile(filepath.Join(dir, "wns.example.yaml"), nil)
	require.ErrorContains(t, err, `wns.zone:5:1: name "*.w": wildcard delegation (NS at a wildcard) in a zone geodns signs: not supported`)
}

// TestTXTWithoutString: a TXT record with no string is refused (RFC 1035
// 3.3.14; NSD and Knot refuse it too); before, it loaded and went out as
// one empty string. An empty string written as "" is fine.
func TestTXTWithoutString(t *testing.T) {
	dir := t.TempDir()
	writeZone(t, dir, "txt.zone", "$TTL 300\n@ SOA ns1 host 1 3600 600 1209600 120\n@ NS ns1\nns1 A 192.0.2.1\ne TXT \"\"\nx TXT\n")
	writeZone(t, dir, "txt.example.yaml", "import: txt.zone\n")
	_, err := LoadFile(filepath.Join(dir, "txt.example.yaml"), nil)
	require.ErrorContains(t, err, `txt.zone:6:1: name "x": TXT record without a string (write "" for an empty one)`)
	require.NotContains(t, err.Error(), `"e"`)
}
