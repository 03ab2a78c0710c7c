package main

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/miekg/dns"
	"github.com/stretchr/testify/require"
)

// The pre-signed zones in testdata/presigned were signed by ldns-signzone
// (signatures valid 2026-12-01 to 2037-12-31; the keys are not kept):
//
//	nsec.test    NSEC
//	nsec3.test   NSEC3, SHA-1, 5 iterations, salt c0ffee
//	optout.test  NSEC3 with opt-out, no iterations, no salt
//
// from one file holding what proofs are about: a wildcard and a name
// beside it, a CNAME to a wildcard's name, CNAME chains, a CNAME to
// nothing, an empty non-terminal, delegations with a DS and without one
// (glue in the zone and out of it), DNAMEs to a name and to nothing.

// presignedZones lays out the pre-signed zones for geodns (a YAML that
// imports each file) and returns the YAML directory and the zone files
// by origin, as NSD and Knot read them.
func presignedZones(t *testing.T) (dir string, files map[string]string) {
	t.Helper()
	paths, err := filepath.Glob("testdata/presigned/*.zone")
	require.NoError(t, err)
	require.Len(t, paths, 3)
	dir, files = t.TempDir(), map[string]string{}
	for _, f := range paths {
		origin := strings.TrimSuffix(filepath.Base(f), "zone")
		copyConformance(t, f, dir)
		yaml := fmt.Sprintf("origin: %s\nimport: %s\n", origin, filepath.Base(f))
		require.NoError(t, os.WriteFile(filepath.Join(dir, origin+"yaml"), []byte(yaml), 0o644))
		files[origin] = f
	}
	return dir, files
}

// presignedNames are the names the pre-signed zones are asked about: every
// owner but the NSEC3 hashes, its ancestors, a name below each, and names
// a wildcard, a delegation or a DNAME answers.
func presignedNames(t *testing.T, files map[string]string) []string {
	t.Helper()
	set := map[string]bool{}
	for origin, f := range files {
		for _, rr := range zoneFile(t, origin, f) {
			if rr.Header().Rrtype == dns.TypeNSEC3 || rr.Header().Rrtype == dns.TypeRRSIG && rr.(*dns.RRSIG).TypeCovered == dns.TypeNSEC3 {
				continue
			}
			n := strings.ToLower(rr.Header().Name)
			addAncestors(set, n, origin)
			set["nx."+n] = true
		}
		for _, n := range []string{"q.w", "a.b.w", "x.d", "y.x.d2", "x.secure", "x.insecure", "b.c", "zz", "0", "~"} {
			set[n+"."+origin] = true
		}
	}
	return sortedNames(set)
}

// zoneFile returns the records of the master file file, for origin.
func zoneFile(t *testing.T, origin, file string) []dns.RR {
	t.Helper()
	data, err := os.ReadFile(file)
	require.NoError(t, err)
	var out []dns.RR
	zp := dns.NewZoneParser(strings.NewReader(string(data)), origin, file)
	for rr, ok := zp.Next(); ok; rr, ok = zp.Next() {
		out = append(out, rr)
	}
	require.NoError(t, zp.Err(), file)
	return out
}

// zoneKSK returns the key-signing key (flags 257) of a signed master file.
func zoneKSK(t *testing.T, origin, file string) *dns.DNSKEY {
	t.Helper()
	for _, rr := range zoneFile(t, origin, file) {
		if k, ok := rr.(*dns.DNSKEY); ok && k.Flags == 257 {
			return k
		}
	}
	t.Fatalf("%s: no KSK", file)
	return nil
}

// sortedNames returns the names of set, sorted.
func sortedNames(set map[string]bool) []string {
	out := make([]string, 0, len(set))
	for n := range set {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}

// TestPresignedMatchesNSD: the pre-signed zones served by geodns, NSD and
// Knot from the same files answer alike, with DO and without, over UDP and
// TCP: the same answer and authority sections (signatures and proofs
// included) as NSD, or as Knot where the two differ; referrals' glue too.
func TestPresignedMatchesNSD(t *testing.T) {
	dir, files := presignedZones(t)
	for origin := range files {
		var out, errOut strings.Builder
		require.Equal(t, 0, run([]string{"check", filepath.Join(dir, origin+"yaml")}, &out, &errOut), errOut.String())
		require.Contains(t, out.String(), ", pre-signed (signatures valid until 2037-12-31T00:00:00Z, ")
	}
	nsd := startNSD(t, files)
	knot := startKnot(t, files)
	ours, _ := startGeodns(t, dir, "nsec.test.")
	for origin := range files {
		waitSOA(t, ours, origin)
		waitSOA(t, nsd, origin)
		waitSOA(t, knot, origin)
	}
	types := []uint16{dns.TypeA, dns.TypeAAAA, dns.TypeTXT, dns.TypeCNAME, dns.TypeDNAME, dns.TypeMX, dns.TypeNS,
		dns.TypeSOA, dns.TypeSRV, dns.TypeDS, dns.TypeDNSKEY, dns.TypeNSEC3PARAM, dns.TypeNSEC, dns.TypeRRSIG, dns.TypeANY}
	asked, signed := 0, 0
	var diffs []string
	for _, n := range presignedNames(t, files) {
		for _, qt := range types {
			for _, do := range []bool{true, false} {
				for _, size := range []int{0, 512, 1232, 4096} {
					tcp := size == 0
					q := query{name: n, qtype: qt, tcp: tcp, edns: max(size, 4096), do: do}
					if !tcp {
						q.edns = size
					}
					asked++
					a, b, c := q.askAll(t, ours, nsd, knot)
					for _, rr := range append(a.Answer, a.Ns...) {
						if rr.Header().Rrtype == dns.TypeRRSIG && qt != dns.TypeRRSIG {
							signed++
							break
						}
					}
					vsNSD, vsKnot := compareResponses(q, a, b, nsdAsk(nsd)), compareResponses(q, a, c, nsdAsk(knot))
					if a.Authoritative && len(a.Answer) > 0 {
						// Additional data (an MX's or SRV's target), its signatures
						// with DO: what NSD adds (beside its apex NS set's glue).
						extra := rrStrings(a.Extra)
						if !subset(extra, rrStrings(b.Extra)) {
							vsNSD = strings.TrimPrefix(vsNSD+"; additional section not a part of NSD's", "; ")
						}
						if !subset(extra, rrStrings(c.Extra)) {
							vsKnot = strings.TrimPrefix(vsKnot+"; additional section not a part of Knot's", "; ")
						}
						if do && len(extra) > 0 && !slices.ContainsFunc(a.Extra, func(rr dns.RR) bool { return rr.Header().Rrtype == dns.TypeRRSIG }) {
							vsNSD, vsKnot = vsNSD+"; additional data unsigned", vsKnot+"; additional data unsigned"
						}
					}
					if vsNSD == "" {
						continue
					}
					if vsKnot != "" {
						diffs = append(diffs, fmt.Sprintf("%s\n  vs NSD: %s\n  vs Knot: %s\n--- geodns:\n%s\n--- nsd:\n%s\n--- knot:\n%s",
							q, vsNSD, vsKnot, a, b, c))
					}
				}
			}
		}
	}
	t.Logf("%d questions, %d answered with signatures, %d match neither NSD nor Knot", asked, signed, len(diffs))
	if show := os.Getenv("PRESIGNED_SHOW"); show != "" {
		for _, d := range diffs {
			if show == "all" || strings.HasPrefix(d, show) {
				t.Log(d)
			}
		}
	}
	for i, d := range diffs {
		if i == 10 {
			t.Errorf("... and %d more", len(diffs)-10)
			break
		}
		t.Error(d)
	}
}

// TestPresignedValidated: a validating Unbound, given each pre-signed
// zone's key as its trust anchor, finds every kind of answer geodns gives
// from them secure: positive answers, CNAME chains, wildcards, DNAME
// substitution, NXDOMAIN, NODATA (empty non-terminals and wildcards too),
// and the DS set of a delegation or the proof it has none.
func TestPresignedValidated(t *testing.T) {
	dir, files := presignedZones(t)
	ours, _ := startGeodns(t, dir, "nsec.test.")
	var anchors strings.Builder
	stubs := map[string]string{}
	for origin, f := range files {
		waitSOA(t, ours, origin)
		fmt.Fprintf(&anchors, "  trust-anchor: %q\n", strings.ReplaceAll(zoneKSK(t, origin, f).String(), "\t", " "))
		stubs[origin] = ours
	}
	unbound, ubLog := runUnbound(t, "validator iterator", "  val-log-level: 2\n  local-zone: \"test.\" nodefault\n"+anchors.String(),
		stubs, "nsec.test.")

	// In the opt-out zone every NSEC3 has the opt-out flag: a proof that
	// rests on one covering the next closer name (NXDOMAIN, a wildcard's
	// answer) cannot rule out an unsigned delegation there, and validators
	// call it insecure (RFC 5155 9.2), not bogus: the rcode still holds
	// (a bogus answer would be SERVFAIL). NSD serves the same proofs
	// (TestPresignedMatchesNSD).
	cases := []struct {
		name   string
		qtype  uint16
		rcode  int
		what   string
		optOut bool // insecure in the opt-out zone
	}{
		{"www", dns.TypeA, dns.RcodeSuccess, "positive", false},
		{"", dns.TypeMX, dns.RcodeSuccess, "apex, additional data", false},
		{"chain", dns.TypeA, dns.RcodeSuccess, "CNAME chain", false},
		{"dangling", dns.TypeA, dns.RcodeNameError, "CNAME to a name that does not exist", true},
		{"nx.www", dns.TypeA, dns.RcodeNameError, "NXDOMAIN", true},
		{"a.b.nx", dns.TypeTXT, dns.RcodeNameError, "NXDOMAIN, deeper", true},
		{"zz", dns.TypeA, dns.RcodeNameError, "NXDOMAIN past the last name", true},
		{"www", dns.TypeTXT, dns.RcodeSuccess, "NODATA", false},
		{"c", dns.TypeA, dns.RcodeSuccess, "NODATA at an empty non-terminal", false},
		{"_tcp", dns.TypeSRV, dns.RcodeSuccess, "NODATA at an empty non-terminal", false},
		{"q.w", dns.TypeA, dns.RcodeSuccess, "wildcard", true},
		{"a.b.w", dns.TypeTXT, dns.RcodeSuccess, "wildcard, two labels down", true},
		{"q.w", dns.TypeMX, dns.RcodeSuccess, "wildcard NODATA", true},
		{"wc", dns.TypeA, dns.RcodeSuccess, "CNAME to a wildcard's name", true},
		{"d", dns.TypeDNAME, dns.RcodeSuccess, "DNAME", false},
		{"x.d", dns.TypeA, dns.RcodeNameError, "DNAME to a name with nothing below", true},
		{"x.d2", dns.TypeA, dns.RcodeNameError, "DNAME to nothing", true},
		{"secure", dns.TypeDS, dns.RcodeSuccess, "DS of a delegation", false},
		{"insecure", dns.TypeDS, dns.RcodeSuccess, "no DS at a delegation", false},
		{"insecure2", dns.TypeDS, dns.RcodeSuccess, "no DS at a delegation without glue", false},
	}
	secure, insecure := 0, 0
	for origin := range files {
		for _, c := range cases {
			name := origin
			if c.name != "" {
				name = c.name + "." + origin
			}
			r, err := resolve(unbound, name, c.qtype, "")
			require.NoError(t, err)
			require.Equal(t, c.rcode, r.Rcode, "%s %s (%s): %v\nunbound:\n%s", name, dns.TypeToString[c.qtype], c.what, r, ubLog.String())
			if c.optOut && origin == "optout.test." {
				require.False(t, r.AuthenticatedData, "%s %s (%s): secure despite opt-out", name, dns.TypeToString[c.qtype], c.what)
				insecure++
				continue
			}
			require.True(t, r.AuthenticatedData, "%s %s (%s) not secure: %v\nunbound:\n%s", name, dns.TypeToString[c.qtype], c.what, r, ubLog.String())
			secure++
		}
	}
	t.Logf("Unbound: %d answers secure, %d insecure by opt-out as expected, none bogus", secure, insecure)
}

// TestPresignedTransfer: a pre-signed zone goes to secondaries as its file
// holds it, signatures and NSEC3 chain included: the AXFR has the file's
// records, one for one, and ldns-verify-zone finds it verified and
// complete. The metrics say when its signatures expire.
func TestPresignedTransfer(t *testing.T) {
	dir, files := presignedZones(t)
	for origin := range files {
		y := fmt.Sprintf("origin: %s\nimport: %s\ntransfer: {allow: [127.0.0.1/32]}\n", origin, filepath.Base(files[origin]))
		require.NoError(t, os.WriteFile(filepath.Join(dir, origin+"yaml"), []byte(y), 0o644))
	}
	httpAddr := freeAddr(t)
	ours, _ := startGeodns(t, dir, "nsec.test.", "--http", httpAddr)
	code, metrics := call(t, "GET", "http://"+httpAddr+"/metrics", "")
	require.Equal(t, 200, code)
	for origin := range files {
		// 2037-12-31T00:00:00Z, the signer's -e.
		require.Contains(t, metrics, fmt.Sprintf("geodns_zone_signatures_expire_timestamp_seconds{zone=%q} 2.1458304e+09", origin))
	}
	for origin, f := range files {
		waitSOA(t, ours, origin)
		tr := &dns.Transfer{}
		m := new(dns.Msg).SetAxfr(origin)
		env, err := tr.In(m, ours)
		require.NoError(t, err)
		var got []string
		var text strings.Builder
		for e := range env {
			require.NoError(t, e.Error)
			for _, rr := range e.RR {
				got = append(got, strings.ToLower(rr.String()))
				fmt.Fprintln(&text, rr.String())
			}
		}
		require.Greater(t, len(got), 2)
		got = got[:len(got)-1] // the closing SOA
		var want []string
		for _, rr := range zoneFile(t, origin, f) {
			want = append(want, strings.ToLower(rr.String()))
		}
		sort.Strings(got)
		sort.Strings(want)
		require.Equal(t, want, got, origin)

		out := filepath.Join(t.TempDir(), origin+"axfr")
		require.NoError(t, os.WriteFile(out, []byte(text.String()), 0o644))
		verified := logTool(t, "ldns-verify-zone", out)
		require.Contains(t, verified, "Zone is verified and complete", origin)
	}
}

// TestPresignedFitsUDP: a signed answer is sent whole over UDP when it
// fits the client's buffer, as NSD and Knot send it: each question of the
// pre-signed zones whose DO answer over TCP is 512 to 1232 bytes is asked
// over UDP with a buffer of exactly that size, and must come back whole,
// without TC. (miekg/dns's length estimate counts two bytes more than are
// written per RRSIG and fourteen per NSEC3 record: answers within that
// margin of the buffer came back empty with TC.)
func TestPresignedFitsUDP(t *testing.T) {
	dir, files := presignedZones(t)
	ours, _ := startGeodns(t, dir, "nsec.test.")
	for origin := range files {
		waitSOA(t, ours, origin)
	}
	types := []uint16{dns.TypeA, dns.TypeTXT, dns.TypeMX, dns.TypeDS, dns.TypeSRV, dns.TypeNS, dns.TypeDNSKEY, dns.TypeSOA}
	asked := 0
	var bad []string
	for _, n := range presignedNames(t, files) {
		for _, qt := range types {
			whole, err := query{name: n, qtype: qt, tcp: true, edns: 4096, do: true}.exchange(ours)
			require.NoError(t, err)
			whole.Compress = true
			wire, err := whole.Pack()
			require.NoError(t, err)
			if len(wire) < 512 || len(wire) > 1232 {
				continue
			}
			asked++
			q := query{name: n, qtype: qt, edns: len(wire), do: true}
			r, err := q.exchange(ours)
			require.NoError(t, err)
			if r.Truncated || len(r.Answer) != len(whole.Answer) || len(r.Ns) != len(whole.Ns) {
				bad = append(bad, fmt.Sprintf("%s: %d bytes over TCP; over UDP TC=%v, %d+%d records, not %d+%d",
					q, len(wire), r.Truncated, len(r.Answer), len(r.Ns), len(whole.Answer), len(whole.Ns)))
			}
		}
	}
	t.Logf("%d answers of 512 to 1232 bytes asked over UDP at their size, %d not sent whole", asked, len(bad))
	require.Greater(t, asked, 50)
	require.Empty(t, bad)
}

// TestPresignedNSEC3ParamChoice: a file may list NSEC3PARAMs of chains it
// does not hold (RFC 5155 4 allows several, as during a resalt); its
// denials are proven from the chain it holds, as NSD proves them (Knot
// answers SERVFAIL). nsec3.test's file is served with an NSEC3PARAM of
// another chain before its own: every answer with DO must be NSD's. (The
// first NSEC3PARAM was taken: every NXDOMAIN and NODATA went without a
// proof, and validators found them bogus.)
func TestPresignedNSEC3ParamChoice(t *testing.T) {
	dir := t.TempDir()
	data, err := os.ReadFile("testdata/presigned/nsec3.test.zone")
	require.NoError(t, err)
	text := strings.Replace(string(data), "nsec3.test.\t3600\tIN\tNSEC3PARAM", "nsec3.test.\t3600\tIN\tNSEC3PARAM\t1 0 7 beef\nnsec3.test.\t3600\tIN\tNSEC3PARAM", 1)
	require.NotEqual(t, string(data), text)
	f := filepath.Join(dir, "nsec3.test.zone")
	require.NoError(t, os.WriteFile(f, []byte(text), 0o644))
	require.NoError(t, os.WriteFile(filepath.Join(dir, "nsec3.test.yaml"), []byte("origin: nsec3.test.\nimport: nsec3.test.zone\n"), 0o644))
	files := map[string]string{"nsec3.test.": f}
	nsd := startNSD(t, files)
	ours, _ := startGeodns(t, dir, "nsec3.test.")
	asked, denials := 0, 0
	var diffs []string
	for _, n := range presignedNames(t, files) {
		if strings.HasPrefix(n, "*.") {
			continue // the wildcard asked as a name: NSD differs from Knot and geodns (TestPresignedMatchesNSD)
		}
		for _, qt := range []uint16{dns.TypeA, dns.TypeTXT, dns.TypeMX, dns.TypeDS} {
			q := query{name: n, qtype: qt, tcp: true, edns: 4096, do: true}
			a, err := q.exchange(ours)
			require.NoError(t, err)
			b, err := q.exchange(nsd)
			require.NoError(t, err)
			asked++
			if slices.ContainsFunc(a.Ns, func(rr dns.RR) bool { return rr.Header().Rrtype == dns.TypeSOA }) {
				denials++
			}
			if d := compareResponses(q, a, b, nsdAsk(nsd)); d != "" {
				diffs = append(diffs, fmt.Sprintf("%s: %s", q, d))
			}
		}
	}
	t.Logf("%d questions (%d denials), %d differ from NSD", asked, denials, len(diffs))
	require.Greater(t, denials, 20)
	for i, d := range diffs {
		if i == 5 {
			t.Errorf("... and %d more", len(diffs)-5)
			break
		}
		t.Error(d)
	}
}
