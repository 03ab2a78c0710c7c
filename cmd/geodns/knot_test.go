package main

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/geodns/geodns/resolver"
	"github.com/miekg/dns"
	"github.com/stretchr/testify/require"
)

// sbinTool finds a reference tool in PATH or /usr/sbin; a missing one fails
// the test (never skips it): scripts/test-deps.sh installs them all.
func sbinTool(t *testing.T, name string) string {
	t.Helper()
	if p, err := exec.LookPath(name); err == nil {
		return p
	}
	for _, dir := range []string{"/usr/sbin", "/usr/bin"} {
		if p := filepath.Join(dir, name); isExecutable(p) {
			return p
		}
	}
	t.Fatalf("%s is not installed: run scripts/test-deps.sh (make test does)", name)
	return ""
}

// knotServerConf is the server part of the config of a Knot of the tests
// at addr, its files in dir: one worker of each kind, the EDNS size as
// ours, no identity, logging at info to stderr.
func knotServerConf(addr, dir string) string {
	host, port, _ := net.SplitHostPort(addr)
	return fmt.Sprintf(`server:
  rundir: %q
  listen: %s@%s
  identity: ""
  version: ""
  nsid: ""
  udp-workers: 1
  tcp-workers: 1
  background-workers: 1
  udp-max-payload-ipv4: %d
database:
  storage: %q
log:
  - target: stderr
    any: info
`, dir, host, port, resolver.DefaultMaxUDPSize, dir)
}

func isExecutable(p string) bool {
	st, err := os.Stat(p)
	return err == nil && !st.IsDir() && st.Mode()&0o111 != 0
}

// startKnot serves the given master files (zone name -> file) with Knot DNS
// on a free loopback port, its run and storage directories in a temporary
// directory, and returns its address. Knot is killed by its PID when the
// test ends.
//
// The zones are loaded whole from their files and never written back, with
// no journal: the files are the only state. Semantic checks are Knot's
// default (off): the mandatory checks only, those that keep a zone from
// loading, as a server is usually run; TestZoneAcceptance runs kzonecheck
// for the extra ones.
func startKnot(t *testing.T, zonefiles map[string]string) string {
	t.Helper()
	knotd := sbinTool(t, "knotd")
	addr := freeAddr(t)
	dir := t.TempDir()
	var conf strings.Builder
	conf.WriteString(knotServerConf(addr, dir))
	fmt.Fprintf(&conf, `template:
  - id: default
    storage: %q
    zonefile-sync: -1
    zonefile-load: whole
    journal-content: none
zone:
`, dir)
	for zone, file := range zonefiles {
		abs, err := filepath.Abs(file)
		require.NoError(t, err)
		fmt.Fprintf(&conf, "  - domain: %q\n    file: %q\n", zone, abs)
	}
	confFile := filepath.Join(dir, "knot.conf")
	require.NoError(t, os.WriteFile(confFile, []byte(conf.String()), 0o644))
	startProcess(t, new(logBuffer), knotd, "-c", confFile)
	// Knot answers before its background workers have loaded every zone.
	for zone := range zonefiles {
		waitSOA(t, addr, zone)
	}
	return addr
}

// TestDifferentialKnot is TestDifferentialNSD with Knot DNS as the
// reference: the same zones, the same generated corpus (random case, UDP and
// TCP, EDNS sizes and versions), compared with compareKnot.
//
// Knot differs from NSD where NSD differs from geodns, and there it behaves
// as geodns does, so the tolerances compareResponses grants NSD are refused
// to Knot (each is checked again, strictly):
//   - Positive answers: Knot sends minimal responses, as geodns does. The
//     authority sections must be equal, with no apex NS set added.
//   - CNAME loops: Knot stops at the first repeated name, as geodns does.
//     The answers must be equal, duplicates included.
//
// The tolerances that stay are those where geodns and Knot both differ from
// NSD's choice or where answers are not unique:
//   - ANY: Knot answers one RRset over both transports (as NSD); geodns all
//     of them over TCP. Checked set by set as for NSD.
//   - Service names: Knot serves the static answer writeMaster makes.
//   - Additional data outside referrals (Knot adds the addresses of MX, SRV
//     and NS targets) is optional and not compared.
//
// Knot adds Extended DNS Errors (RFC 8914): EDE 20 (Not Authoritative) to
// REFUSED outside its zones, as geodns does. Their codes are compared.
func TestDifferentialKnot(t *testing.T) {
	geoDir, masters, all := diffZones(t)
	ours, _ := startGeodns(t, geoDir, "example.com.")
	theirs := startKnot(t, masters)
	seen := map[string]int{}
	differential(t, "knot", ours, theirs, all, func(q query, a, b *dns.Msg, ask func(string, uint16) *dns.Msg) string {
		d, gap := compareKnot(q, a, b, ask)
		if gap != "" {
			seen[gap]++
		}
		return d
	})
	checkDiffGaps(t, seen)
}

// knotDiffGaps are the classes of difference from Knot in the differential
// corpus that today's geodns gets wrong, each with the item of issue 17 it
// belongs to. A difference of a listed class is tolerated; a listed class
// that no longer occurs fails the test: whoever fixes one removes it here.
var knotDiffGaps = map[string]string{}

// checkDiffGaps fails for each listed gap that did not show.
func checkDiffGaps(t *testing.T, seen map[string]int) {
	t.Helper()
	for class, item := range knotDiffGaps {
		if seen[class] == 0 {
			t.Errorf("known gap %q no longer occurs: remove it from knotDiffGaps (%s)", class, item)
		} else {
			t.Logf("known gap %q: %d responses (%s)", class, seen[class], item)
		}
	}
}

// compareKnot returns what differs between geodns's (a) and Knot's (b)
// response, or "", and the knotDiffGaps class of a tolerated difference.
func compareKnot(q query, a, b *dns.Msg, ask func(string, uint16) *dns.Msg) (diff, gap string) {
	var d []string
	if s := compareResponses(q, a, b, ask); s != "" {
		d = append(d, s)
	}
	if !a.Truncated && !b.Truncated && len(d) == 0 {
		if x, y := rrStrings(a.Ns), rrStrings(b.Ns); !slices.Equal(x, y) {
			d = append(d, fmt.Sprintf("authority differs:\n  %s\n  %s", strings.Join(x, "\n  "), strings.Join(y, "\n  ")))
		}
		if x, y := rrStrings(a.Answer), rrStrings(b.Answer); q.qtype != dns.TypeANY && !slices.Equal(x, y) {
			d = append(d, fmt.Sprintf("answer differs:\n  %s\n  %s", strings.Join(x, "\n  "), strings.Join(y, "\n  ")))
		}
	}
	if x, y := edeCodes(a), edeCodes(b); !slices.Equal(x, y) {
		d = append(d, fmt.Sprintf("EDE codes %v != %v", x, y))
	}
	return strings.Join(d, "; "), gap
}

// edeCodes returns the Extended DNS Error codes of m, sorted.
func edeCodes(m *dns.Msg) []uint16 {
	var out []uint16
	if opt := m.IsEdns0(); opt != nil {
		for _, o := range opt.Option {
			if e, ok := o.(*dns.EDNS0_EDE); ok {
				out = append(out, e.InfoCode)
			}
		}
	}
	slices.Sort(out)
	return out
}
