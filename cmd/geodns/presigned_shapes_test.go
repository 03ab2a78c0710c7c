package main

import (
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/miekg/dns"
	"github.com/stretchr/testify/require"
)

// shapesSource is an unsigned master file for origin with the shapes
// proofs are hard for: deep trees and empty non-terminals, wildcards at
// several levels (under the apex, with a CNAME, below an empty
// non-terminal), names with upper-case letters and escaped octets, DNAMEs
// with targets below, delegations with glue at several depths, secure and
// insecure delegations below empty non-terminals, CNAME chains through a
// wildcard into NXDOMAIN, a CNAME and a DNAME leading into a delegation
// (whose referral is proven as one).
func shapesSource(origin string) string {
	const ds = "12345 13 2 0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
	return fmt.Sprintf(`$ORIGIN %s
$TTL 3600
@ 3600 IN SOA ns1 hostmaster 2026010101 7200 3600 1209600 300
@ NS ns1
@ NS ns2
@ MX 10 mail
ns1 A 127.0.0.53
ns2 A 127.0.0.54
mail A 127.0.0.25
mail AAAA 2001:db8::25
* TXT "apex wildcard"
* MX 10 mail
www A 127.0.0.80
*.cn CNAME target
target A 127.0.0.1
*.wnx CNAME nothere
chain CNAME q.wnx
chain2 CNAME q.cn
chain3 CNAME chain
a.b.c.d.deep A 127.0.0.2
e.d.deep TXT "side"
*.x.ent.y A 127.0.0.3
*.l1 TXT "level1"
*.l2.l1 TXT "level2"
*.l3.l2.l1 A 127.0.0.33
Upper.CaSe A 127.0.0.4
MiXeD.upper.case TXT "mixed"
\066y.esc A 127.0.0.5
a\.dot.esc TXT "dot"
\200\255.esc TXT "high"
sp\032ace.esc TXT "space"
dn DNAME t2
t2 A 127.0.0.6
a.t2 A 127.0.0.7
b.a.t2 TXT "below"
dn2 DNAME x.cn
deleg NS ns.deleg
deleg NS ns.sub.deleg
deleg NS ns.other.example.
ns.deleg A 127.0.0.61
ns.sub.deleg A 127.0.0.65
sec NS ns.sec
sec DS %s
ns.sec A 127.0.0.62
c.b.a.deep2 NS ns.c.b.a.deep2
ns.c.b.a.deep2 A 127.0.0.63
ns.c.b.a.deep2 AAAA ::1
x.y.insec NS ns.example.org.
p.q.secdeep NS ns.p.q.secdeep
p.q.secdeep DS %s
ns.p.q.secdeep A 127.0.0.64
srv._tcp SRV 0 0 80 target
cnd CNAME host.deleg
dnd DNAME deleg
z TXT "last"
`, origin, ds, ds)
}

// signShapes signs src (for origin) with fresh keys by ldns-signzone with
// args (NSEC3 options) into dir; returns the signed file and the KSK.
func signShapes(t *testing.T, dir, origin, src string, args ...string) (file string, ksk *dns.DNSKEY) {
	t.Helper()
	in := filepath.Join(dir, origin+"src")
	require.NoError(t, os.WriteFile(in, []byte(src), 0o644))
	keygen := func(extra ...string) string {
		cmd := exec.Command("ldns-keygen", append(append([]string{"-a", "ECDSAP256SHA256", "-r", "/dev/urandom"}, extra...), origin)...)
		cmd.Dir = dir
		out, err := cmd.CombinedOutput()
		require.NoError(t, err, "%s", out)
		return strings.TrimSpace(string(out))
	}
	k, z := keygen("-k"), keygen()
	file = filepath.Join(dir, origin+"zone")
	now := time.Now().UTC()
	cmd := exec.Command("ldns-signzone", append(append([]string{"-f", file, "-o", origin,
		"-i", now.Add(-time.Hour).Format("20060102150405"), "-e", now.Add(30 * 24 * time.Hour).Format("20060102150405")}, args...), in, z, k)...)
	cmd.Dir = dir
	out, err := cmd.CombinedOutput()
	require.NoError(t, err, "%s", out)
	b, err := os.ReadFile(filepath.Join(dir, k+".key"))
	require.NoError(t, err)
	rr, err := dns.NewRR(string(b))
	require.NoError(t, err)
	return file, rr.(*dns.DNSKEY)
}

// kzoneSign signs src (for origin) with Knot's kzonesign under a policy
// of extra lines (NSEC3 options) into dir; returns the signed file and
// the KSK.
func kzoneSign(t *testing.T, dir, origin, src string, policy ...string) (file string, ksk *dns.DNSKEY) {
	t.Helper()
	kd := filepath.Join(dir, "kz-"+origin)
	require.NoError(t, os.MkdirAll(filepath.Join(kd, "out"), 0o755))
	in := filepath.Join(kd, origin+"zone")
	require.NoError(t, os.WriteFile(in, []byte(src), 0o644))
	var pol strings.Builder
	for _, l := range policy {
		fmt.Fprintf(&pol, "    %s\n", l)
	}
	conf := fmt.Sprintf("server:\n  rundir: %q\ndatabase:\n  storage: %q\npolicy:\n  - id: p\n    algorithm: ecdsap256sha256\n%stemplate:\n  - id: default\n    storage: %q\n    dnssec-signing: on\n    dnssec-policy: p\nzone:\n  - domain: %s\n    file: %q\n",
		kd, kd, pol.String(), kd, origin, in)
	require.NoError(t, os.WriteFile(filepath.Join(kd, "knot.conf"), []byte(conf), 0o644))
	out, err := exec.Command("kzonesign", "-c", filepath.Join(kd, "knot.conf"), "-o", filepath.Join(kd, "out"), origin).CombinedOutput()
	require.NoError(t, err, "%s", out)
	file = filepath.Join(dir, origin+"zone")
	b, err := os.ReadFile(filepath.Join(kd, "out", origin+"zone"))
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(file, b, 0o644))
	return file, zoneKSK(t, origin, file)
}

// shapesNames are the names asked of a zone: every owner and its
// ancestors, names below each, below wildcards and cuts.
func shapesNames(t *testing.T, origin, file string) []string {
	t.Helper()
	set := map[string]bool{}
	for _, rr := range zoneFile(t, origin, file) {
		n := rr.Header().Name
		if rr.Header().Rrtype == dns.TypeNSEC3 {
			set[n] = true
			continue
		}
		addAncestors(set, n, origin, "nx.") // below empty non-terminals too
		if strings.HasPrefix(n, "*.") {
			set["q"+n[1:]] = true
			set["a.b"+n[1:]] = true
		}
	}
	for _, n := range []string{"x.dn", "a.dn", "b.a.dn", "nx.a.dn", "x.dnd", "q.dn2", "a.q.dn2", "x.deleg", "host.deleg", "x.y.insec", "q.y.insec", "zz", "~", "0", "a.x.ent.y", "r.l3.l2.l1"} {
		set[n+"."+origin] = true
	}
	return sortedNames(set)
}

// TestPresignedShapes: zones of harder shapes than the test data's
// (shapesSource), signed at test time by ldns-signzone (NSEC; NSEC3 with
// salt and iterations; NSEC3 opt-out, which keeps an NSEC3 for every
// name) and by Knot's kzonesign (NSEC; NSEC3; NSEC3 opt-out, which leaves
// insecure delegations and the empty non-terminals above them out of the
// chain), are served by geodns, NSD and Knot and asked about every name
// and more, 16 types, DO on and off, over UDP and TCP, in random letter
// case: each answer must be NSD's or Knot's. Then two validating Unbounds,
// one resolving from geodns and one from NSD, must agree on every answer
// (rcode and AD), but where NSD's is bogus.
//
// Names below an empty non-terminal that Knot's opt-out chain leaves out
// (nx.deep2, nx.insec in kopt.shapes.) get NSD's answer, which validators
// find bogus (the closest encloser has no NSEC3; the provable one, the
// apex, has a wildcard no proof can cover); Knot answers them with an
// empty, non-authoritative NXDOMAIN.
//
// Not asked: ANY over TCP (geodns answers every RRset, NSD and Knot one;
// compared as for unsigned zones in TestDifferentialNSD) and type RRSIG
// below an NSEC3 hash (NSD takes hashes for names of the zone, Knot and
// geodns do not; Knot answers one signature of several).
func TestPresignedShapes(t *testing.T) {
	dir := t.TempDir()
	files, keys := map[string]string{}, map[string]*dns.DNSKEY{}
	for origin, args := range map[string][]string{
		"nsec.shapes.":   nil,
		"nsec3.shapes.":  {"-n", "-s", "ab12cd", "-t", "3"},
		"optout.shapes.": {"-n", "-p", "-t", "0"},
	} {
		files[origin], keys[origin] = signShapes(t, dir, origin, shapesSource(origin), args...)
	}
	for origin, policy := range map[string][]string{
		"knsec.shapes.":  nil,
		"knsec3.shapes.": {"nsec3: on", "nsec3-iterations: 1", "nsec3-salt-length: 8"},
		"kopt.shapes.":   {"nsec3: on", "nsec3-opt-out: on", "nsec3-iterations: 0", "nsec3-salt-length: 0"},
	} {
		files[origin], keys[origin] = kzoneSign(t, dir, origin, shapesSource(origin), policy...)
	}
	for origin, f := range files {
		yaml := fmt.Sprintf("origin: %s\nimport: %s\n", origin, filepath.Base(f))
		require.NoError(t, os.WriteFile(filepath.Join(dir, origin+"yaml"), []byte(yaml), 0o644))
	}
	nsd := startNSD(t, files)
	knot := startKnot(t, files)
	ours, _ := startGeodns(t, dir, "nsec.shapes.")
	for origin := range files {
		waitSOA(t, ours, origin)
		waitSOA(t, nsd, origin)
	}
	seed := uint64(time.Now().UnixNano())
	t.Logf("letter case seed %d", seed)
	rng := rand.New(rand.NewPCG(seed, 2))
	types := []uint16{dns.TypeA, dns.TypeAAAA, dns.TypeTXT, dns.TypeCNAME, dns.TypeDNAME, dns.TypeMX, dns.TypeNS,
		dns.TypeSOA, dns.TypeSRV, dns.TypeDS, dns.TypeDNSKEY, dns.TypeNSEC3PARAM, dns.TypeNSEC, dns.TypeNSEC3, dns.TypeRRSIG, dns.TypeANY}
	var diffs []string
	asked := 0
	for origin, f := range files {
		hashes := nsec3Owners(t, origin, f)
		for _, n := range shapesNames(t, origin, f) {
			belowHash := false
			if off, end := dns.NextLabel(n, 0); !end && hashes[strings.ToLower(n[off:])] {
				belowHash = true
			}
			for _, qt := range types {
				if qt == dns.TypeRRSIG && belowHash {
					continue
				}
				for _, do := range []bool{true, false} {
					for _, tcp := range []bool{false, true} {
						if tcp && qt == dns.TypeANY {
							continue
						}
						q := query{name: randomCase(n, rng), qtype: qt, tcp: tcp, edns: 1232, do: do}
						asked++
						a, b, c := q.askAll(t, ours, nsd, knot)
						vsNSD, vsKnot := compareResponses(q, a, b, nsdAsk(nsd)), compareResponses(q, a, c, nsdAsk(knot))
						if vsNSD != "" && vsKnot != "" {
							diffs = append(diffs, fmt.Sprintf("%s\n  vs NSD: %s\n  vs Knot: %s\n--- geodns:\n%s\n--- nsd:\n%s\n--- knot:\n%s", q, vsNSD, vsKnot, a, b, c))
						}
					}
				}
			}
		}
	}
	t.Logf("%d questions, %d match neither NSD nor Knot", asked, len(diffs))
	for i, d := range diffs {
		if i == 10 {
			t.Errorf("... and %d more", len(diffs)-10)
			break
		}
		t.Error(d)
	}
	validateShapes(t, ours, nsd, files, keys)
}

// nsec3Owners returns the owners of the NSEC3 records of a zone file, in
// lower case.
func nsec3Owners(t *testing.T, origin, file string) map[string]bool {
	t.Helper()
	out := map[string]bool{}
	for _, rr := range zoneFile(t, origin, file) {
		if rr.Header().Rrtype == dns.TypeNSEC3 {
			out[strings.ToLower(rr.Header().Name)] = true
		}
	}
	return out
}

// validateShapes asks two validating Unbounds, one resolving from geodns
// and one from NSD, about every name of the zones (files, their KSKs
// keys) but those a delegation answers (their servers do not exist):
// they must agree on rcode and AD, but where NSD's answer is bogus.
func validateShapes(t *testing.T, ours, nsd string, files map[string]string, keys map[string]*dns.DNSKEY) {
	var anchors strings.Builder
	stubs, stubsNSD := map[string]string{}, map[string]string{}
	for origin := range files {
		fmt.Fprintf(&anchors, "  trust-anchor: %q\n", strings.ReplaceAll(keys[origin].String(), "\t", " "))
		stubs[origin], stubsNSD[origin] = ours, nsd
	}
	conf := "  val-log-level: 2\n  local-zone: \"shapes.\" nodefault\n" + anchors.String()
	ub, ubLog := runUnbound(t, "validator iterator", conf, stubs, "nsec.shapes.")
	ubN, _ := runUnbound(t, "validator iterator", conf, stubsNSD, "nsec.shapes.")
	types := []uint16{dns.TypeA, dns.TypeTXT, dns.TypeMX, dns.TypeDS, dns.TypeAAAA, dns.TypeSRV, dns.TypeCNAME}
	bad := 0
	counts := map[string]int{}
	type job struct {
		n  string
		qt uint16
	}
	jobs := make(chan job)
	var mu sync.Mutex
	var wg sync.WaitGroup
	for range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := range jobs {
				a, err1 := resolve(ub, j.n, j.qt, "")
				b, err2 := resolve(ubN, j.n, j.qt, "")
				mu.Lock()
				if err1 != nil || err2 != nil {
					t.Logf("no answer %s %s: %v %v", j.n, dns.TypeToString[j.qt], err1, err2)
				} else {
					counts[fmt.Sprintf("%s/ad=%v", dns.RcodeToString[a.Rcode], a.AuthenticatedData)]++
					if b.Rcode == dns.RcodeServerFailure && a.Rcode != dns.RcodeServerFailure {
						// NSD's answer is bogus (a DS at an empty non-terminal
						// Knot's opt-out chain leaves out), geodns's is not.
						t.Logf("bogus from NSD only: %s %s: geodns %s ad=%v", j.n, dns.TypeToString[j.qt], dns.RcodeToString[a.Rcode], a.AuthenticatedData)
					} else if a.Rcode != b.Rcode || a.AuthenticatedData != b.AuthenticatedData {
						bad++
						t.Logf("VALIDATION %s %s: geodns %s ad=%v, nsd %s ad=%v", j.n, dns.TypeToString[j.qt],
							dns.RcodeToString[a.Rcode], a.AuthenticatedData, dns.RcodeToString[b.Rcode], b.AuthenticatedData)
					}
				}
				mu.Unlock()
			}
		}()
	}
	for origin, f := range files {
		for _, n := range shapesNames(t, origin, f) {
			if strings.HasPrefix(n, "nx.") && len(n) > 40 {
				continue
			}
			for _, qt := range types {
				// Not what leads into a delegation: its servers do not exist.
				d, err := query{name: n, qtype: qt, tcp: true, edns: 4096, do: true}.exchange(nsd)
				require.NoError(t, err)
				if slices.ContainsFunc(d.Ns, func(rr dns.RR) bool { return rr.Header().Rrtype == dns.TypeNS }) {
					continue
				}
				jobs <- job{n, qt}
			}
		}
	}
	close(jobs)
	wg.Wait()
	t.Logf("validated: %v; %d differ from NSD's", counts, bad)
	if bad > 0 {
		t.Errorf("%d answers validated otherwise than NSD's; unbound:\n%s", bad, ubLog.String())
	}
}
