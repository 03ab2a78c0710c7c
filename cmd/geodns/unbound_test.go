package main

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// startUnbound runs Unbound with its ECS module, sending example.com to
// geodns at stub and client subnets to it.
func startUnbound(t *testing.T, stub string) string {
	t.Helper()
	stubHost, _, _ := net.SplitHostPort(stub)
	addr, _ := runUnbound(t, "subnetcache iterator", fmt.Sprintf(`  send-client-subnet: %s
  max-client-subnet-ipv6: 56
`, stubHost), map[string]string{"example.com": stub}, "example.com.")
	return addr
}

// runUnbound runs an Unbound of the tests on a free loopback port, in the
// foreground in its own directory: modules is its module-config, server
// extra lines for its server: block (two-space indented), each stub zone
// sent to its server. It returns once Unbound answers probe's SOA.
func runUnbound(t *testing.T, modules, server string, stubs map[string]string, probe string) (string, *logBuffer) {
	t.Helper()
	bin := sbinTool(t, "unbound")
	addr := freeAddr(t)
	host, port, _ := net.SplitHostPort(addr)
	dir := t.TempDir()
	var b strings.Builder
	fmt.Fprintf(&b, `server:
  interface: %s@%s
  port: %s
  do-ip6: no
  access-control: 127.0.0.0/8 allow
  username: ""
  chroot: ""
  directory: %q
  pidfile: %q
  use-syslog: no
  logfile: ""
  verbosity: 1
  num-threads: 1
  so-reuseport: no
  do-not-query-localhost: no
  qname-minimisation: no
  module-config: %q
  client-subnet-always-forward: yes
  max-client-subnet-ipv4: 24
%sremote-control:
  control-enable: no
`, host, port, port, dir, filepath.Join(dir, "unbound.pid"), modules, server)
	for zone, srv := range stubs {
		h, p, _ := net.SplitHostPort(srv)
		fmt.Fprintf(&b, "stub-zone:\n  name: %q\n  stub-addr: %s@%s\n", zone, h, p)
	}
	file := filepath.Join(dir, "unbound.conf")
	require.NoError(t, os.WriteFile(file, []byte(b.String()), 0o644))
	log := new(logBuffer)
	startProcess(t, log, bin, "-d", "-c", file)
	waitSOA(t, addr, probe)
	return addr, log
}

var digAnswerRE = regexp.MustCompile(`(?m)^www\.example\.com\.\s+(\d+)\s+IN\s+A\s+(\S+)$`)
var digSubnetRE = regexp.MustCompile(`CLIENT-SUBNET: (\S+)/(\d+)/(\d+)`)

// dig asks Unbound for www.example.com with a client subnet and returns
// the address, its TTL and the scope Unbound reports.
func dig(t *testing.T, server, subnet string) (addr string, ttl, scope int) {
	t.Helper()
	host, port, _ := net.SplitHostPort(server)
	out, err := exec.Command("dig", "@"+host, "-p", port, "+subnet="+subnet, "+tries=1", "+time=3",
		"www.example.com", "A").CombinedOutput()
	require.NoError(t, err, "%s", out)
	m := digAnswerRE.FindStringSubmatch(string(out))
	require.NotNil(t, m, "no answer in:\n%s", out)
	ttl, _ = strconv.Atoi(m[1])
	if s := digSubnetRE.FindStringSubmatch(string(out)); s != nil {
		scope, _ = strconv.Atoi(s[3])
	}
	t.Logf("dig @unbound +subnet=%-15s www.example.com A -> %s ttl %d scope /%d", subnet, m[2], ttl, scope)
	return m[2], ttl, scope
}

// TestUnboundECS puts a real resolver between clients and geodns.
func TestUnboundECS(t *testing.T) {
	if _, err := exec.LookPath("dig"); err != nil {
		t.Fatal("dig is not installed: run scripts/test-deps.sh (make test does)")
	}
	files := realDB(t)
	dir := t.TempDir()
	staticExample(t, dir)
	geodns, _ := startGeodns(t, dir, "example.com.", "--geoip", files[0], "--geoip", files[1])
	unbound := startUnbound(t, geodns)

	const west, east = "198.51.100.10", "192.0.2.10" // the example zone's web endpoints
	// Berkeley (DB-IP: 128.32.0.0/16) is west; Princeton (128.112.0.0/23) east.
	got, ttl, scope := dig(t, unbound, "128.32.0.0/24")
	require.Equal(t, west, got)
	require.Equal(t, 30, ttl, "fresh from geodns")
	require.Equal(t, 16, scope, "geodns's scope reaches the client")

	got, ttl, _ = dig(t, unbound, "128.112.0.0/24")
	require.Equal(t, east, got)
	require.Equal(t, 30, ttl)

	time.Sleep(1100 * time.Millisecond)
	// Another /24 in Berkeley's /16: Unbound answers from its cache (the TTL
	// has counted down) because geodns said the answer holds for the /16.
	got, ttl, _ = dig(t, unbound, "128.32.77.0/24")
	require.Equal(t, west, got)
	require.Less(t, ttl, 30, "cached under the /16 scope")
	// Stanford is west too, but outside that /16: a fresh answer.
	got, ttl, _ = dig(t, unbound, "171.64.0.0/24")
	require.Equal(t, west, got)
	require.Equal(t, 30, ttl, "outside the scope: not from the cache")
	// And Princeton's neighbour outside its /23 is not served Princeton's entry.
	got, ttl, _ = dig(t, unbound, "128.112.2.0/24")
	require.Equal(t, 30, ttl, "outside the /23: asked again")
	require.NotEmpty(t, got)
}
