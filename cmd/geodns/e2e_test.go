package main

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/geodns/geodns/resolver"
	"github.com/miekg/dns"
	"github.com/stretchr/testify/require"
)

// binary is the geodns command built once for the end-to-end tests.
var binary string

func TestMain(m *testing.M) {
	if addr := os.Getenv("GEODNS_TEST_BACKEND"); addr != "" {
		serveBackend(addr) // this process is a test backend, not the tests
		return
	}
	if b := os.Getenv("GEODNS_TEST_BINARY"); b != "" {
		binary = b // a test re-run in a network namespace of its own (nsset_test.go): built already
		os.Exit(m.Run())
	}
	dir, err := os.MkdirTemp("", "geodns-e2e")
	if err != nil {
		panic(err)
	}
	binary = filepath.Join(dir, "geodns")
	build := exec.Command("go", "build", "-race", "-o", binary, ".")
	build.Stderr = os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "building geodns:", err)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// freeAddr returns a 127.0.0.1 address whose port is free for UDP and TCP.
func freeAddr(t *testing.T) string { return freeLoopback(t, "127.0.0.1") }

// freeLoopback returns an address on ip whose port is free for UDP and TCP,
// for a server the test starts (or a port nothing should answer on).
//
// The port is in 10000-19999: below the ephemeral range, because between
// this check and the server's own bind any connect() on the machine
// (other test packages run alongside, thousands of probe connections, a
// node's own etcd client) may take a free ephemeral port as its source,
// and then the server cannot bind it (seen in CI: a cluster node's HTTP
// port). Below the range only an explicit bind takes it; and not in
// etcdtest's 20000-31999, so that a restarted etcd member finds its port.
func freeLoopback(t *testing.T, ip string) string {
	t.Helper()
	for range 1000 {
		// Plain binds, not resolver.Listen: its SO_REUSEPORT would share a
		// port a running geodns holds.
		port := 10000 + rand.IntN(10000)
		if !handOut(port) {
			continue
		}
		addr := net.JoinHostPort(ip, strconv.Itoa(port))
		ln, err := net.Listen("tcp", addr)
		if err != nil {
			continue // taken: another
		}
		pc, err := net.ListenPacket("udp", addr)
		ln.Close()
		if err != nil {
			continue
		}
		pc.Close()
		return addr
	}
	t.Fatalf("no free port on %s in 10000-19999", ip)
	return ""
}

// handedOut holds the ports freeLoopback has given: free when checked, a
// port is bound only later, by the process it was given to, so without
// this two nodes of one test could be given the same port (CI: a node's
// DNS port was another's, "bind: address already in use").
var handedOut sync.Map // port -> true

// handOut reserves port for this test process; false if it was given before.
func handOut(port int) bool {
	_, given := handedOut.LoadOrStore(port, true)
	return !given
}

// process is a command started by startProcess; done closes when it exits.
type process struct {
	cmd  *exec.Cmd
	done chan struct{}
}

// startProcess runs a command until the test ends, killing it by its PID.
func startProcess(t *testing.T, log *logBuffer, name string, args ...string) *process {
	t.Helper()
	cmd := exec.Command(name, args...)
	cmd.Stdout, cmd.Stderr = log, log
	require.NoError(t, cmd.Start())
	p := &process{cmd: cmd, done: make(chan struct{})}
	go func() { cmd.Wait(); close(p.done) }()
	t.Cleanup(func() {
		cmd.Process.Kill()
		<-p.done
		if t.Failed() {
			t.Logf("%s output:\n%s", name, log.String())
		}
	})
	return p
}

// logBuffer collects a process's output; safe to read while it writes.
type logBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// servers maps a running geodns's DNS address to its process.
var servers sync.Map

// stopGeodns kills a geodns started by startGeodns with SIGKILL.
func stopGeodns(t *testing.T, addr string) {
	t.Helper()
	v, ok := servers.Load(addr)
	require.True(t, ok)
	p := v.(*process)
	require.NoError(t, p.cmd.Process.Signal(syscall.SIGKILL))
	select {
	case <-p.done:
	case <-time.After(5 * time.Second):
		t.Fatal("geodns did not exit after SIGKILL")
	}
}

// startGeodns serves zonesDir with the built binary and waits until it
// answers for zone.
func startGeodns(t *testing.T, zonesDir, zone string, extra ...string) (addr string, log *logBuffer) {
	t.Helper()
	addr = freeAddr(t)
	log = new(logBuffer)
	// Probes may only reach loopback: a test zone pointing elsewhere fails closed.
	args := append([]string{"serve", "--zones", zonesDir, "--listen", addr, "--probe-allow", "127.0.0.0/8"}, extra...)
	if !slices.Contains(extra, "--http") {
		args = append(args, "--http", "off") // the default port would clash between test servers
	}
	servers.Store(addr, startProcess(t, log, binary, args...))
	waitSOA(t, addr, zone)
	return addr, log
}

// startNSD serves the given master files (zone name -> file) with NSD.
func startNSD(t *testing.T, zonefiles map[string]string) string {
	t.Helper()
	nsd := sbinTool(t, "nsd")
	addr := freeAddr(t)
	dir := t.TempDir()
	var conf strings.Builder
	conf.WriteString(nsdServerConf(addr, dir, 1))
	first := ""
	for zone, file := range zonefiles {
		abs, err := filepath.Abs(file)
		require.NoError(t, err)
		fmt.Fprintf(&conf, "zone:\n  name: %q\n  zonefile: %q\n", zone, abs)
		first = zone
	}
	confFile := filepath.Join(dir, "nsd.conf")
	require.NoError(t, os.WriteFile(confFile, []byte(conf.String()), 0o644))
	startProcess(t, new(logBuffer), nsd, "-d", "-c", confFile)
	waitSOA(t, addr, first)
	return addr
}

// nsdServerConf is the server part of the config of an NSD of the tests'
// at addr, its files in dir: answering as the reference does (EDNS size
// as ours, ANY answered, no rate limit), logging at verbosity.
func nsdServerConf(addr, dir string, verbosity int) string {
	host, port, _ := net.SplitHostPort(addr)
	return fmt.Sprintf(`server:
  ip-address: %s
  port: %s
  do-ip6: no
  username: ""
  chroot: ""
  zonesdir: %q
  database: ""
  zonelistfile: %q
  xfrdfile: %q
  xfrdir: %q
  pidfile: %q
  server-count: 1
  verbosity: %d
  hide-version: yes
  hide-identity: yes
  ipv4-edns-size: %d
  refuse-any: no
  rrl-ratelimit: 0
  rrl-whitelist-ratelimit: 0
remote-control:
  control-enable: no
`, host, port, dir, dir+"/zone.list", dir+"/xfrd.state", dir, dir+"/nsd.pid", verbosity, resolver.DefaultMaxUDPSize)
}

func waitSOA(t *testing.T, addr, zone string) {
	t.Helper()
	c := &dns.Client{Timeout: 200 * time.Millisecond}
	q := question(zone, dns.TypeSOA)
	q.RecursionDesired = true // resolvers need it; authoritative servers ignore it
	require.Eventually(t, func() bool {
		r, _, err := c.Exchange(q, addr)
		return err == nil && r.Rcode == dns.RcodeSuccess && len(r.Answer) == 1
	}, 20*time.Second, 50*time.Millisecond, "no server answering for %s at %s", zone, addr)
}

func question(name string, qtype uint16) *dns.Msg {
	m := new(dns.Msg)
	m.SetQuestion(dns.Fqdn(name), qtype)
	m.RecursionDesired = false
	return m
}

// exampleCheck is the example zone's health check, as written there.
const exampleCheck = "web: {type: http, port: 8080, path: /healthz, expect_status: [200], expect_body: ok}"

// staticExample writes the example zone into dir with its check made
// static (always up): for tests of DNS semantics, not of health checking,
// which would otherwise see the demo backends missing and fail over.
func staticExample(t *testing.T, dir string) string {
	t.Helper()
	src, err := os.ReadFile("../../examples/zones/example.com.yaml")
	require.NoError(t, err)
	require.Contains(t, string(src), exampleCheck, "the example zone's check changed: update exampleCheck")
	out := strings.Replace(string(src), exampleCheck, "web: {type: static, up: true}", 1)
	path := filepath.Join(dir, "example.com.yaml")
	require.NoError(t, os.WriteFile(path, []byte(out), 0o644))
	return out
}

// runGeodns runs the binary to completion and returns its exit code and output.
func runGeodns(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	var stdout, stderr bytes.Buffer
	cmd := exec.Command(binary, args...)
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else {
		require.NoError(t, err)
	}
	return code, stdout.String(), stderr.String()
}
