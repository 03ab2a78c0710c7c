//go:build linux

package main

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/geodns/geodns/internal/etcdtest"
	"github.com/miekg/dns"
	"github.com/stretchr/testify/require"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// The NS-set health test runs in a network namespace of its own (the test
// re-executes itself there: CLONE_NEWNET, as root), where every geodns
// node has a namespace of its own too, linked by a veth pair:
//
//	root (the test, etcd on 10.200.0.1, us-east's backend on 10.200.0.2,
//	      us-west's on 10.200.0.3)
//	  vh<i> 10.201.<i>.1  <->  vn<i> 10.201.<i>.2   node i (geodns)
//
// so that one node's path to one backend can be cut (a blackhole route in
// that node's namespace only) while the rest of the set reaches it. Nothing
// leaves the test's namespace.
const (
	nsEtcd = "10.200.0.1"
	nsEast = "10.200.0.2"
	nsWest = "10.200.0.3"
)

// inNewNetns runs the named test again in a new network namespace and
// reports its output; it returns false there (run the test's body).
func inNewNetns(t *testing.T, name string) bool {
	t.Helper()
	if os.Getenv("GEODNS_TEST_NETNS") != "" {
		return false
	}
	cmd := exec.Command(os.Args[0], "-test.run=^"+name+"$", "-test.v", "-test.count=1", "-test.timeout=8m")
	cmd.Env = append(os.Environ(), "GEODNS_TEST_NETNS=1", "GEODNS_TEST_BINARY="+binary)
	cmd.SysProcAttr = &syscall.SysProcAttr{Cloneflags: syscall.CLONE_NEWNET}
	out := new(logBuffer)
	cmd.Stdout, cmd.Stderr = out, out
	err := cmd.Run()
	t.Logf("in its own network namespace:\n%s", out.String())
	require.NoError(t, err, "the test failed in its network namespace (needs root)")
	return true
}

func sh(t *testing.T, args ...string) {
	t.Helper()
	out, err := exec.Command(args[0], args[1:]...).CombinedOutput()
	require.NoError(t, err, "%s: %s", strings.Join(args, " "), out)
}

// nsNode is a network namespace for one geodns node, held open by a
// process of its own.
type nsNode struct {
	name string
	ip   string // its address, 10.201.<i>.2
	pid  int    // the holder's
	dir  string
	proc *process
	log  *logBuffer
}

func newNSNode(t *testing.T, i int) *nsNode {
	t.Helper()
	hold := exec.Command("sleep", "3600")
	hold.SysProcAttr = &syscall.SysProcAttr{Cloneflags: syscall.CLONE_NEWNET}
	require.NoError(t, hold.Start())
	t.Cleanup(func() { hold.Process.Kill(); hold.Wait() })
	n := &nsNode{name: fmt.Sprintf("ns%d", i), ip: fmt.Sprintf("10.201.%d.2", i), pid: hold.Process.Pid, dir: t.TempDir()}
	host, peer := fmt.Sprintf("vh%d", i), fmt.Sprintf("vn%d", i)
	sh(t, "ip", "link", "add", host, "type", "veth", "peer", "name", peer)
	sh(t, "ip", "link", "set", peer, "netns", strconv.Itoa(n.pid))
	sh(t, "ip", "addr", "add", fmt.Sprintf("10.201.%d.1/24", i), "dev", host)
	sh(t, "ip", "link", "set", host, "up")
	n.in(t, "ip", "link", "set", "lo", "up")
	n.in(t, "ip", "addr", "add", n.ip+"/24", "dev", peer)
	n.in(t, "ip", "link", "set", peer, "up")
	n.in(t, "ip", "route", "add", "default", "via", fmt.Sprintf("10.201.%d.1", i))
	return n
}

// in runs a command in the node's namespace.
func (n *nsNode) in(t *testing.T, args ...string) {
	t.Helper()
	sh(t, append([]string{"nsenter", "--net=/proc/" + strconv.Itoa(n.pid) + "/ns/net"}, args...)...)
}

func (n *nsNode) dnsAddr() string { return n.ip + ":5353" }

// launch starts geodns in the node's namespace (nsenter execs it: the PID is
// geodns's) with the given cluster: section ("" for none), fresh state.
func (n *nsNode) launch(t *testing.T, zdir string, geoip []string, clusterYAML string) {
	t.Helper()
	state := t.TempDir()
	// The namespace is the node's own: its fixed ports clash with nothing.
	cfg := fmt.Sprintf("zones: %s\nlisten: [%q]\nhttp: %q\nprobe_allow: [10.200.0.0/24]\nstate_dir: %s\ngeoip: [%q, %q]\n%s",
		zdir, n.dnsAddr(), n.ip+":8053", state, geoip[0], geoip[1], clusterYAML)
	file := filepath.Join(n.dir, "geodns.yaml")
	require.NoError(t, os.WriteFile(file, []byte(cfg), 0o644))
	n.log = new(logBuffer)
	n.proc = startProcess(t, n.log, "nsenter", "--net=/proc/"+strconv.Itoa(n.pid)+"/ns/net", binary, "serve", "--config", file)
}

// startNSNodes starts geodns on every node at once.
func startNSNodes(t *testing.T, nodes []*nsNode, zdir string, geoip []string, clusterYAML func(*nsNode) string) {
	t.Helper()
	for _, n := range nodes {
		n.launch(t, zdir, geoip, clusterYAML(n))
	}
	for _, n := range nodes {
		waitSOA(t, n.dnsAddr(), "example.com.")
	}
}

// kill sends SIGKILL to the node's geodns.
func (n *nsNode) kill(t *testing.T) {
	t.Helper()
	require.NoError(t, n.proc.cmd.Process.Signal(syscall.SIGKILL))
	<-n.proc.done
}

// siteBackend is a site's web server in the test's namespace; it counts
// the probes from each node (by source address) and can die and return.
type siteBackend struct {
	addr string
	mu   sync.Mutex
	from map[string]int
	srv  *http.Server
}

func startSiteBackend(t *testing.T, ip string) *siteBackend {
	b := &siteBackend{from: map[string]int{}}
	// Below the ephemeral range (freeLoopback): revive binds it again.
	ln, err := net.Listen("tcp", freeLoopback(t, ip))
	require.NoError(t, err)
	b.addr = ln.Addr().String()
	b.serve(ln)
	t.Cleanup(func() { b.srv.Close() })
	return b
}

func (b *siteBackend) serve(ln net.Listener) {
	b.srv = &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		host, _, _ := net.SplitHostPort(r.RemoteAddr)
		b.mu.Lock()
		b.from[host]++
		b.mu.Unlock()
		fmt.Fprint(w, "ok")
	})}
	go b.srv.Serve(ln)
}

// die closes the listener and every connection: the site is gone.
func (b *siteBackend) die() { b.srv.Close() }

func (b *siteBackend) revive(t *testing.T) {
	ln, err := net.Listen("tcp", b.addr)
	require.NoError(t, err)
	b.serve(ln)
}

// probers returns the nodes (by address) that probed since the last call.
func (b *siteBackend) probers() map[string]int {
	b.mu.Lock()
	defer b.mu.Unlock()
	out := b.from
	b.from = map[string]int{}
	return out
}

// side is which site a node sends the east clients to: east, west or
// mixed.
func side(t *testing.T, c *dns.Client, server string) string {
	got, _ := answers(t, c, server, eastClients)
	switch {
	case all(got, eastAddr):
		return "east"
	case all(got, westAddr):
		return "west"
	}
	return fmt.Sprint(got)
}

// sides is side for every node, e.g. "ns1=west ns2=east ns3=east".
func sides(t *testing.T, c *dns.Client, nodes []*nsNode) string {
	var out []string
	for _, n := range nodes {
		out = append(out, n.name+"="+side(t, c, n.dnsAddr()))
	}
	return strings.Join(out, " ")
}

func allSide(s string) string {
	return "ns1=" + s + " ns2=" + s + " ns3=" + s
}

// untilSide waits (up to limit) until every node answers want and returns
// how long each took.
func untilSide(t *testing.T, c *dns.Client, nodes []*nsNode, want string, limit time.Duration) []time.Duration {
	t.Helper()
	start := time.Now()
	took := make([]time.Duration, len(nodes))
	var wg sync.WaitGroup
	for i, n := range nodes {
		wg.Go(func() {
			for time.Since(start) < limit {
				if side(t, c, n.dnsAddr()) == want {
					took[i] = time.Since(start)
					return
				}
				time.Sleep(20 * time.Millisecond)
			}
			took[i] = -1
		})
	}
	wg.Wait()
	for i, d := range took {
		require.GreaterOrEqual(t, d, time.Duration(0), "%s never answered %s within %v (now: %s)", nodes[i].name, want, limit, sides(t, c, nodes))
	}
	return took
}

func fmtTimes(nodes []*nsNode, ds []time.Duration) string {
	var out []string
	for i, d := range ds {
		out = append(out, fmt.Sprintf("%s %.2f s", nodes[i].name, d.Seconds()))
	}
	return strings.Join(out, ", ")
}

// holdSide checks that every node answers want for d.
func holdSide(t *testing.T, c *dns.Client, nodes []*nsNode, want string, d time.Duration) {
	t.Helper()
	for end := time.Now().Add(d); time.Now().Before(end); time.Sleep(100 * time.Millisecond) {
		require.Equal(t, allSide(want), sides(t, c, nodes))
	}
}

// TestNSSetHealth is the NS set's health end to end: three geodns nodes,
// a 3-member etcd, us-east and us-west; node 1's path to us-east is cut.
// Alone, node 1 answers west while the others answer east; in the set,
// the votes keep all three east, and a real death of us-east moves all
// three within the single-node bound (3 s) + 1 s. Then etcd dies
// entirely: the nodes keep their last agreed view, after the grace period
// their own probes decide (node 1 goes west: its path is still cut; a
// real death is handled), and they converge when etcd returns. Last, a
// node is killed: its votes expire and its probe targets move within one
// lease TTL.
func TestNSSetHealth(t *testing.T) {
	if inNewNetns(t, "TestNSSetHealth") {
		return
	}
	const ttl, grace = 3 * time.Second, 3 * time.Second
	files := realDB(t)
	sh(t, "ip", "link", "set", "lo", "up")
	for _, ip := range []string{nsEtcd, nsEast, nsWest} {
		sh(t, "ip", "addr", "add", ip+"/32", "dev", "lo")
	}
	ec := etcdtest.Start(t, etcdtest.Options{Host: nsEtcd})
	east, west := startSiteBackend(t, nsEast), startSiteBackend(t, nsWest)
	zdir := t.TempDir()
	require.NoError(t, os.WriteFile(filepath.Join(zdir, "example.com.yaml"), []byte(chaosZone(east.addr, west.addr)), 0o644))
	var nodes []*nsNode
	for i := 1; i <= 3; i++ {
		nodes = append(nodes, newNSNode(t, i))
	}
	nodes[0].in(t, "ip", "route", "add", "blackhole", nsEast+"/32") // node 1 cannot reach us-east
	c := &dns.Client{Timeout: time.Second}

	// Without the cluster: every node decides alone.
	startNSNodes(t, nodes, zdir, files, func(*nsNode) string { return "" })
	require.Eventually(t, func() bool { return sides(t, c, nodes) == "ns1=west ns2=east ns3=east" }, 10*time.Second, 50*time.Millisecond,
		"without the cluster: %s", sides(t, c, nodes))
	t.Logf("without the cluster (node 1's path to us-east cut): %s", sides(t, c, nodes))
	for _, n := range nodes {
		n.kill(t)
	}

	// With the cluster (every node probes every target: probers default
	// to all live nodes, up to 3).
	clusterYAML := func(n *nsNode, extra string) string {
		return fmt.Sprintf("cluster: {etcd: [%s], node: %s, lease_ttl: %v, partition_grace: %v%s}\n",
			strings.Join(ec.Endpoints(), ", "), n.name, ttl, grace, extra)
	}
	startNSNodes(t, nodes, zdir, files, func(n *nsNode) string { return clusterYAML(n, "") })
	cli := ec.Client()
	eastVote := func(n *nsNode) string {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		r, err := cli.Get(ctx, "/geodns/votes/"+n.name+"/"+east.addr+"|", clientv3.WithPrefix())
		require.NoError(t, err)
		if len(r.Kvs) != 1 {
			return "none"
		}
		return string(r.Kvs[0].Value[:1])
	}
	require.Eventually(t, func() bool {
		return eastVote(nodes[0]) == "d" && eastVote(nodes[1]) == "u" && eastVote(nodes[2]) == "u"
	}, 15*time.Second, 50*time.Millisecond, "node 1 votes us-east down, nodes 2 and 3 up")
	holdSide(t, c, nodes, "east", 2*time.Second) // us-east stays up: node 1's vote never takes it down
	t.Logf("with the cluster: votes on us-east ns1=%s ns2=%s ns3=%s; answers %s, held for 2 s", eastVote(nodes[0]), eastVote(nodes[1]), eastVote(nodes[2]),
		sides(t, c, nodes))

	// us-east really dies.
	east.die()
	took := untilSide(t, c, nodes, "west", 10*time.Second)
	t.Logf("us-east killed: every node answers west after %s (bound: 3 s + 1 s)", fmtTimes(nodes, took))
	for _, d := range took {
		require.LessOrEqual(t, d, 4*time.Second)
	}
	east.revive(t)
	took = untilSide(t, c, nodes, "east", 10*time.Second)
	t.Logf("us-east back: every node answers east after %s (rise 3 x 1 s)", fmtTimes(nodes, took))

	// etcd dies entirely: the last agreed view holds through the grace
	// period, then each node's own probes decide.
	ec.KillAll()
	killed := time.Now()
	holdSide(t, c, nodes, "east", grace/2)
	require.Eventually(t, func() bool { return side(t, c, nodes[0].dnsAddr()) == "west" }, ttl+grace+3*time.Second, 50*time.Millisecond)
	t.Logf("etcd down: the last agreed view held; after %.2f s (grace %v after losing contact) node 1 decides from its own probes: %s",
		time.Since(killed).Seconds(), grace, sides(t, c, nodes))
	east.die()
	took = untilSide(t, c, nodes, "west", 10*time.Second)
	t.Logf("etcd down, us-east killed: every node answers west after %s (from local probes)", fmtTimes(nodes, took))
	for _, d := range took {
		require.LessOrEqual(t, d, 4*time.Second)
	}
	east.revive(t)
	require.Eventually(t, func() bool { return sides(t, c, nodes) == "ns1=west ns2=east ns3=east" }, 10*time.Second, 50*time.Millisecond,
		"etcd down, us-east back: nodes 2 and 3 see it, node 1 cannot")
	restarted := time.Now()
	ec.RestartAll()
	took = untilSide(t, c, nodes, "east", 30*time.Second)
	t.Logf("etcd back (restarted %.2f s): the nodes converge, all east after %s", time.Since(restarted).Seconds(), fmtTimes(nodes, took))
	holdSide(t, c, nodes, "east", 2*time.Second)

	// A node dies: its votes expire with its lease, and its targets move
	// to the node left out within one lease TTL. With probers 2 of 3
	// nodes, one is left out of each target (us-west here: every node
	// reaches it).
	for _, n := range nodes {
		n.kill(t)
	}
	startNSNodes(t, nodes, zdir, files, func(n *nsNode) string { return clusterYAML(n, ", probers: 2") })
	var before map[string]int
	require.Eventually(t, func() bool {
		west.probers()
		time.Sleep(1500 * time.Millisecond) // a counting window
		before = west.probers()
		return len(before) == 2
	}, 20*time.Second, time.Millisecond, "probers: 2: us-west is probed by two nodes: %v", before)
	var victim, spare *nsNode
	for _, n := range nodes {
		if _, ok := before[n.ip]; ok && victim == nil {
			victim = n
		} else if !ok {
			spare = n
		}
	}
	require.NotNil(t, spare)
	votesOf := func(n *nsNode) int64 {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		r, err := cli.Get(ctx, "/geodns/votes/"+n.name+"/", clientv3.WithPrefix(), clientv3.WithCountOnly())
		require.NoError(t, err)
		return r.Count
	}
	require.Positive(t, votesOf(victim))
	victim.kill(t)
	dead := time.Now()
	var moved, expired time.Duration
	require.Eventually(t, func() bool {
		if moved == 0 && west.probers()[spare.ip] > 0 {
			moved = time.Since(dead)
		}
		if expired == 0 && votesOf(victim) == 0 {
			expired = time.Since(dead)
		}
		return moved > 0 && expired > 0
	}, 3*ttl, 20*time.Millisecond)
	t.Logf("%s killed (SIGKILL): its votes expired after %.2f s (lease TTL %v), its us-west probes moved to %s after %.2f s: %.2f s after the lapse",
		victim.name, expired.Seconds(), ttl, spare.name, moved.Seconds(), (moved - expired).Seconds())
	// "Within one lease TTL" is counted from the lapse: etcd revokes an
	// expired lease on its own check (every 500 ms) by a raft round, so
	// the lapse comes up to 1.5 s after the TTL from the kill. The move
	// after it is the watch, and the taken-over probe sent at once (its
	// start spread over at most 500 ms when many move together).
	require.LessOrEqual(t, expired, ttl+1500*time.Millisecond)
	require.LessOrEqual(t, moved-expired, 500*time.Millisecond, "a taken-over probe is sent at once, not at its next turn")
}

// TestDrillNS: `geodns drill --ns` watches every nameserver, prints each
// one's time, and fails naming the one that lags: two nodes that share
// nothing (no cluster), so a drain through node 1's API never reaches
// node 2; watching node 1 alone passes; and three nodes of an NS set on
// etcd pass together.
func TestDrillNS(t *testing.T) {
	files := realDB(t)
	east := serveOn(t, "127.0.0.2", http.HandlerFunc(okBackend))
	west := serveOn(t, "127.0.0.3", http.HandlerFunc(okBackend))
	zdir := t.TempDir()
	require.NoError(t, os.WriteFile(filepath.Join(zdir, "example.com.yaml"), []byte(chaosZone(east, west)), 0o644))
	httpAddr := freeLoopback(t, "127.0.0.1")
	ns1, _ := startGeodns(t, zdir, "example.com.", "--geoip", files[0], "--geoip", files[1], "--http", httpAddr,
		"--api-token-file", tokenFile(t, testToken))
	ns2, _ := startGeodns(t, zdir, "example.com.", "--geoip", files[0], "--geoip", files[1])
	base := "http://" + httpAddr
	require.Eventually(t, func() bool { code, _ := call(t, "GET", base+"/readyz", ""); return code == 200 }, 5*time.Second, 50*time.Millisecond)

	code, stdout, stderr := runGeodns(t, "drill", "--api", base, "--site", "us-east", "--ns", ns1+","+ns2, "--duration", "1s",
		"--wait", "3s", "--token", testToken)
	t.Logf("drill --ns %s,%s (exit %d):\n%s%s", ns1, ns2, code, stdout, stderr)
	require.Equal(t, 1, code)
	require.Regexp(t, regexp.QuoteMeta(ns1)+`: moved off us-east in [0-9.]+ s`, stdout)
	require.Contains(t, stdout, ns2+": LAGS")
	require.Contains(t, stderr, ns2+" lagged")
	require.NotContains(t, stderr, ns1+" lagged")

	code, stdout, stderr = runGeodns(t, "drill", "--api", base, "--site", "us-east", "--ns", ns1, "--duration", "1s", "--token", testToken)
	t.Logf("drill --ns %s (exit %d):\n%s%s", ns1, code, stdout, stderr)
	require.Equal(t, 0, code, stderr)
	require.Regexp(t, regexp.QuoteMeta(ns1)+`: back on us-east in [0-9.]+ s`, stdout)

	// An NS set shares its drains: the drill through node 1's API passes on
	// all three nameservers, each timed.
	ec := etcdtest.Start(t, etcdtest.Options{TLS: true})
	nodes := newClusterNodes(t, ec, 3, clusterZone)
	startAll(t, nodes)
	waitClusterUp(t, nodes)
	set := nodes[0].dns + "," + nodes[1].dns + "," + nodes[2].dns
	code, stdout, stderr = runGeodns(t, "drill", "--api", "http://"+nodes[0].http, "--site", "us-east", "--ns", set, "--duration", "1s",
		"--limit", "2s", "--token", testToken)
	t.Logf("drill --ns on an NS set of three (exit %d):\n%s%s", code, stdout, stderr)
	require.Equal(t, 0, code, stderr)
	for _, n := range nodes {
		require.Regexp(t, regexp.QuoteMeta(n.dns)+`: moved off us-east in [0-9.]+ s`, stdout)
		require.Regexp(t, regexp.QuoteMeta(n.dns)+`: back on us-east in [0-9.]+ s`, stdout)
	}
}
