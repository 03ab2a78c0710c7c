package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/geodns/geodns/api"
	"github.com/geodns/geodns/cluster"
	"github.com/geodns/geodns/internal/etcdtest"
	"github.com/miekg/dns"
	"github.com/stretchr/testify/require"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// clusterZone is two sites with static checks (always up): the cluster
// tests move answers with operator state, not probes.
const clusterZone = `soa: {ns: ns1.example.com., mbox: hostmaster.example.com.}
records:
  "@": {NS: [ns1.example.com., ns2.example.com., ns3.example.com.]}
  www: {service: web}
sites:
  us-east: {lat: 39.04, lon: -77.49}
  us-west: {lat: 37.34, lon: -121.89}
checks:
  up: {type: static, up: true}
services:
  web:
    ttl: 30
    return_ramp: 0s
    endpoints:
      - {site: us-east, address: 192.0.2.10, check: up}
      - {site: us-west, address: 198.51.100.10, check: up}
`

// clusterNode is a geodns binary in an NS set of the tests: its own zone
// directory, state directory, mTLS identity and API address.
type clusterNode struct {
	name, zdir, state, http, dns, config string
	args                                 []string
}

// newClusterNodes writes the config of n nodes on etcd ec, each with
// zone in its own zone directory (not started).
func newClusterNodes(t *testing.T, ec *etcdtest.Cluster, n int, zone string) []*clusterNode {
	t.Helper()
	files := realDB(t)
	token := tokenFile(t, testToken)
	var nodes []*clusterNode
	for i := range n {
		name := fmt.Sprintf("ns%d", i+1)
		dir := t.TempDir()
		cert, key := ec.Certs.Client(name)
		nd := &clusterNode{name: name, zdir: filepath.Join(dir, "zones"), state: filepath.Join(dir, "state"),
			http: freeLoopback(t, "127.0.0.1"), config: filepath.Join(dir, "geodns.yaml")}
		require.NoError(t, os.MkdirAll(nd.zdir, 0o755))
		require.NoError(t, os.WriteFile(filepath.Join(nd.zdir, "example.com.yaml"), []byte(zone), 0o644))
		cfg := fmt.Sprintf(`cluster:
  etcd: [%s]
  node: %s
  region: r%d
  lease_ttl: 3s
  tls: {ca: %s, cert: %s, key: %s}
`, strings.Join(ec.Endpoints(), ", "), name, i+1, ec.Certs.CA, cert, key)
		require.NoError(t, os.WriteFile(nd.config, []byte(cfg), 0o644))
		nd.args = []string{"--config", nd.config, "--geoip", files[0], "--geoip", files[1], "--state-dir", nd.state,
			"--http", nd.http, "--api-token-file", token}
		nodes = append(nodes, nd)
	}
	return nodes
}

func (n *clusterNode) start(t *testing.T) {
	t.Helper()
	n.launch(t)
	waitSOA(t, n.dns, "example.com.")
}

// launch starts the node's binary without waiting for it (as
// startGeodns, which waits).
func (n *clusterNode) launch(t *testing.T) {
	t.Helper()
	n.dns = freeAddr(t)
	args := append([]string{"serve", "--zones", n.zdir, "--listen", n.dns, "--probe-allow", "127.0.0.0/8"}, n.args...)
	servers.Store(n.dns, startProcess(t, new(logBuffer), binary, args...))
}

// startAll starts the nodes at once and waits until each answers.
func startAll(t *testing.T, nodes []*clusterNode) {
	t.Helper()
	for _, n := range nodes {
		n.launch(t)
	}
	for _, n := range nodes {
		waitSOA(t, n.dns, "example.com.")
	}
}

func (n *clusterNode) stop(t *testing.T) { stopGeodns(t, n.dns) }

func (n *clusterNode) url(path string) string { return "http://" + n.http + path }

// view returns the node's /api/v1/cluster.
func (n *clusterNode) view(t *testing.T) cluster.View {
	t.Helper()
	code, body := call(t, "GET", n.url("/api/v1/cluster"), "")
	require.Equal(t, 200, code, body)
	var v cluster.View
	require.NoError(t, json.Unmarshal([]byte(body), &v))
	return v
}

// status returns the node's /api/v1/status.
func (n *clusterNode) status(t *testing.T) api.Status {
	t.Helper()
	code, body := call(t, "GET", n.url("/api/v1/status"), "")
	require.Equal(t, 200, code, body)
	var st api.Status
	require.NoError(t, json.Unmarshal([]byte(body), &st))
	return st
}

// waitClusterUp waits until every node sees every node connected.
func waitClusterUp(t *testing.T, nodes []*clusterNode) {
	t.Helper()
	require.Eventually(t, func() bool {
		for _, n := range nodes {
			v := n.view(t)
			if !v.Connected || len(v.Nodes) != len(nodes) {
				return false
			}
			for _, nv := range v.Nodes {
				if !nv.Connected {
					return false
				}
			}
		}
		return true
	}, 20*time.Second, 20*time.Millisecond, "the nodes never all saw each other")
}

// eastAnswer is what an east-coast client gets from server.
func eastAnswer(c *dns.Client, server string) string {
	q := question("www.example.com.", dns.TypeA)
	q.SetEdns0(1232, false)
	q.IsEdns0().Option = append(q.IsEdns0().Option, &dns.EDNS0_SUBNET{Code: dns.EDNS0SUBNET, Family: 1, SourceNetmask: 24,
		Address: net.ParseIP("3.80.0.0").To4()})
	r, _, err := c.Exchange(q, server)
	if err != nil || len(r.Answer) == 0 {
		return "error"
	}
	return r.Answer[0].(*dns.A).A.String()
}

// untilAnswer polls every server until each gives an east client want,
// and returns how long the slowest took (failing after limit).
func untilAnswer(t *testing.T, c *dns.Client, servers []string, want string, limit time.Duration) time.Duration {
	t.Helper()
	start := time.Now()
	pending := slices.Clone(servers)
	for len(pending) > 0 {
		pending = slices.DeleteFunc(pending, func(s string) bool { return eastAnswer(c, s) == want })
		if len(pending) > 0 {
			require.Less(t, time.Since(start), limit, "%v never answered %s", pending, want)
			time.Sleep(2 * time.Millisecond)
		}
	}
	return time.Since(start)
}

func p99(ds []time.Duration) time.Duration {
	s := slices.Clone(ds)
	slices.Sort(s)
	return s[(len(s)*99+99)/100-1]
}

// TestClusterDrainAnywhere (issue 19, "drain anywhere"): three geodns
// nodes on a 3-member etcd (mTLS); a drain through node 1's API changes
// the DNS answers of nodes 2 and 3 within 1 s (p99 over 20 tries, each
// timed from the API call), the undrain the same; a drain survives
// restarting every node.
func TestClusterDrainAnywhere(t *testing.T) {
	ec := etcdtest.Start(t, etcdtest.Options{TLS: true})
	nodes := newClusterNodes(t, ec, 3, clusterZone)
	startAll(t, nodes)
	waitClusterUp(t, nodes)
	c := &dns.Client{Timeout: time.Second}
	others := []string{nodes[1].dns, nodes[2].dns}
	for _, n := range nodes {
		require.Equal(t, eastAddr, eastAnswer(c, n.dns))
	}

	const tries = 20
	var drains, undrains []time.Duration
	for range tries {
		via := nodes[0]
		start := time.Now()
		code, body := call(t, "POST", via.url("/api/v1/sites/us-east/drain"), testToken)
		require.Equal(t, 200, code, body)
		require.Equal(t, westAddr, eastAnswer(c, via.dns), "in effect on node 1 when acknowledged")
		untilAnswer(t, c, others, westAddr, 5*time.Second)
		drains = append(drains, time.Since(start))

		start = time.Now()
		code, body = call(t, "POST", via.url("/api/v1/sites/us-east/undrain"), testToken)
		require.Equal(t, 200, code, body)
		untilAnswer(t, c, others, eastAddr, 5*time.Second)
		undrains = append(undrains, time.Since(start))
	}
	t.Logf("drain on ns1 -> answers of ns2 and ns3 moved: p50 %v p99 %v max %v (%d tries)",
		drains[len(drains)/2].Round(time.Millisecond), p99(drains).Round(time.Millisecond), slices.Max(drains).Round(time.Millisecond), tries)
	t.Logf("undrain on ns1 -> answers of ns2 and ns3 back: p99 %v max %v", p99(undrains).Round(time.Millisecond), slices.Max(undrains).Round(time.Millisecond))
	require.Less(t, p99(drains), time.Second, "drain p99")
	require.Less(t, p99(undrains), time.Second, "undrain p99")

	// /api/v1/status shows the revision every node applied: one revision.
	require.Eventually(t, func() bool {
		st := nodes[2].status(t).Cluster
		if st == nil || len(st.Revisions) != 3 || st.Revision == 0 {
			return false
		}
		for _, r := range st.Revisions {
			if r != st.Revision {
				return false
			}
		}
		return true
	}, 5*time.Second, 20*time.Millisecond)
	t.Logf("applied revisions: %v", nodes[2].status(t).Cluster.Revisions)

	// A drain made on node 3 survives restarting every node.
	code, body := call(t, "POST", nodes[2].url("/api/v1/sites/us-east/drain"), testToken)
	require.Equal(t, 200, code, body)
	for _, n := range nodes {
		n.stop(t)
	}
	startAll(t, nodes)
	for _, n := range nodes {
		require.Equal(t, westAddr, eastAnswer(c, n.dns), "%s: the drain survived the restart", n.name)
	}
	waitClusterUp(t, nodes)
	code, body = call(t, "POST", nodes[1].url("/api/v1/sites/us-east/undrain"), testToken)
	require.Equal(t, 200, code, body)
	untilAnswer(t, c, []string{nodes[0].dns, nodes[1].dns, nodes[2].dns}, eastAddr, time.Second)
}

// metric returns the value of a metric line (name with labels) in the
// node's scrape, or "" when it is missing.
func (n *clusterNode) metric(t *testing.T, name string) string {
	t.Helper()
	code, body := call(t, "GET", n.url("/metrics"), "")
	require.Equal(t, 200, code)
	for _, l := range strings.Split(body, "\n") {
		if v, ok := strings.CutPrefix(l, name+" "); ok {
			return v
		}
	}
	return ""
}

// TestClusterEtcdFailures (issue 19, "etcd failures", operator state):
// one etcd member killed changes nothing; with every member killed each
// node keeps answering from its last view and the drain stays in force,
// also on a node restarted meanwhile (from its state file); when etcd is
// back the nodes converge.
func TestClusterEtcdFailures(t *testing.T) {
	ec := etcdtest.Start(t, etcdtest.Options{TLS: true})
	nodes := newClusterNodes(t, ec, 3, clusterZone)
	startAll(t, nodes)
	waitClusterUp(t, nodes)
	c := &dns.Client{Timeout: time.Second}
	all3 := func() []string { return []string{nodes[0].dns, nodes[1].dns, nodes[2].dns} }
	code, body := call(t, "POST", nodes[0].url("/api/v1/sites/us-east/drain"), testToken)
	require.Equal(t, 200, code, body)
	untilAnswer(t, c, all3(), westAddr, time.Second)

	// A follower down: every node stays connected (for over a lease TTL),
	// and a change still reaches every node. (Member 0 used to be killed,
	// and was the leader in about a third of the runs: see below.)
	leader := ec.Leader()
	require.NotEqual(t, -1, leader, "etcd names no leader")
	ec.Kill((leader + 1) % 3)
	killed := time.Now()
	for time.Since(killed) < 4*time.Second { // over a lease TTL
		for _, n := range nodes {
			require.Equal(t, "1", n.metric(t, "geodns_cluster_connected"), "%s with one etcd member (a follower) down", n.name)
			require.Equal(t, westAddr, eastAnswer(c, n.dns))
		}
		time.Sleep(100 * time.Millisecond)
	}
	// undrainDrain undrains us-east via n, waits for every node to answer
	// east, drains it again and waits for west; it returns how long the
	// undrain took to reach every node.
	undrainDrain := func(n *clusterNode) time.Duration {
		start := time.Now()
		code, body := call(t, "POST", n.url("/api/v1/sites/us-east/undrain"), testToken)
		require.Equal(t, 200, code, body)
		untilAnswer(t, c, all3(), eastAddr, time.Second)
		took := time.Since(start).Round(time.Millisecond)
		code, body = call(t, "POST", n.url("/api/v1/sites/us-east/drain"), testToken)
		require.Equal(t, 200, code, body)
		untilAnswer(t, c, all3(), westAddr, time.Second)
		return took
	}
	t.Logf("one etcd member (a follower) down: undrain via ns2 reached all nodes %v after the call", undrainDrain(nodes[1]))
	ec.RestartAll()

	// The leader down: etcd elects another (an election timeout or two,
	// 1-2 s here), and no keep-alive is answered meanwhile, so with this
	// test's 3 s lease a node may count itself disconnected for a moment
	// (one of five runs did). Every node answers from its view throughout,
	// is connected again soon after, and a change reaches all of them.
	leader = ec.Leader()
	require.NotEqual(t, -1, leader, "etcd names no leader")
	ec.Kill(leader)
	killed = time.Now()
	var flipped []string // nodes that counted themselves disconnected meanwhile
	for time.Since(killed) < 4*time.Second {
		for _, n := range nodes {
			require.Equal(t, westAddr, eastAnswer(c, n.dns), "%s keeps answering while etcd elects a leader", n.name)
			if n.metric(t, "geodns_cluster_connected") != "1" && !slices.Contains(flipped, n.name) {
				flipped = append(flipped, n.name)
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	waitMetricEverywhere(t, nodes, "geodns_cluster_connected", "1", 10*time.Second, "every node connected after the election")
	t.Logf("the etcd leader down: nodes that reported disconnected meanwhile: %v; undrain via ns1 reached all nodes %v after the call",
		flipped, undrainDrain(nodes[0]))
	ec.RestartAll()

	// Every member down: nodes notice within a lease TTL and keep the
	// drain; a change is refused, not half made.
	ec.KillAll()
	start := time.Now()
	waitMetricEverywhere(t, nodes, "geodns_cluster_connected", "0", 8*time.Second, "every node disconnected")
	t.Logf("all etcd members down: every node reports disconnected after %v (lease TTL 3s)", time.Since(start).Round(time.Millisecond))
	for _, n := range nodes {
		require.Equal(t, westAddr, eastAnswer(c, n.dns), "%s keeps the drain without etcd", n.name)
	}
	code, body = call(t, "POST", nodes[0].url("/api/v1/sites/us-east/undrain"), testToken)
	require.Equal(t, 503, code, body)
	require.Equal(t, westAddr, eastAnswer(c, nodes[0].dns), "the refused undrain is not in effect")

	// A node restarted while etcd is down serves its persisted drain.
	nodes[2].stop(t)
	start = time.Now()
	nodes[2].start(t)
	require.Equal(t, westAddr, eastAnswer(c, nodes[2].dns), "restarted without etcd: the drain from its state file")
	t.Logf("ns3 restarted without etcd: answering (drained) %v after start", time.Since(start).Round(time.Millisecond))
	v := nodes[2].view(t)
	require.False(t, v.Connected)
	require.Greater(t, v.StaleSeconds, 0.0)
	// A zone whose file goes during the outage keeps serving through the
	// reload that renumbers ns3's zones when etcd is back: only SIGHUP or
	// zone_missing_grace remove a zone (the reload was a SIGHUP before).
	otherFile := filepath.Join(nodes[2].zdir, "other.example.yaml")
	require.NoError(t, os.WriteFile(otherFile, []byte("soa: {ns: ns1.other.example., mbox: h.other.example.}\nrecords:\n  \"@\": {NS: [ns1.other.example.]}\n  ns1: {A: [192.0.2.53]}\n  www: {A: [192.0.2.7]}\n"), 0o644))
	otherAnswer := func() int {
		m := new(dns.Msg)
		m.SetQuestion("www.other.example.", dns.TypeA)
		r, _, err := c.Exchange(m, nodes[2].dns)
		if err != nil {
			return -1
		}
		return r.Rcode
	}
	require.Eventually(t, func() bool { return otherAnswer() == dns.RcodeSuccess }, 10*time.Second, 20*time.Millisecond)
	require.NoError(t, os.Remove(otherFile))
	require.Eventually(t, func() bool { return nodes[2].metric(t, `geodns_zone_file_missing{zone="other.example."}`) == "1" }, 10*time.Second, 20*time.Millisecond)
	for _, n := range nodes {
		require.NotEmpty(t, n.metric(t, "geodns_cluster_stale_seconds"))
		require.NotEqual(t, "0", n.metric(t, "geodns_cluster_stale_seconds"))
	}

	// etcd back: every node reconnects and applies one revision; a change
	// reaches all of them again.
	const reloadsOK = `geodns_zone_reloads_total{result="ok",zone="example.com."}`
	reloadsBefore := nodes[2].metric(t, reloadsOK)
	require.NotEmpty(t, reloadsBefore)
	ec.RestartAll()
	start = time.Now()
	require.Eventually(t, func() bool {
		var revs []int64
		for _, n := range nodes {
			st := n.status(t).Cluster
			if st == nil || !st.Connected {
				return false
			}
			revs = append(revs, st.Revision)
		}
		return revs[0] != 0 && revs[0] == revs[1] && revs[1] == revs[2]
	}, 15*time.Second, 20*time.Millisecond)
	t.Logf("etcd back: all nodes connected on one revision %v after the cluster answered", time.Since(start).Round(time.Millisecond))
	require.Eventually(t, func() bool { return nodes[2].metric(t, reloadsOK) != reloadsBefore }, 10*time.Second, 20*time.Millisecond,
		"ns3 reloads the zone it numbered alone")
	require.Equal(t, dns.RcodeSuccess, otherAnswer(), "the zone whose file went is still served after the reconnect's reload")
	for _, n := range nodes {
		require.Equal(t, westAddr, eastAnswer(c, n.dns))
	}
	start = time.Now()
	code, body = call(t, "POST", nodes[2].url("/api/v1/sites/us-east/undrain"), testToken)
	require.Equal(t, 200, code, body)
	untilAnswer(t, c, all3(), eastAddr, time.Second)
	t.Logf("after the outage: undrain via ns3 reached all nodes %v after the call", time.Since(start).Round(time.Millisecond))
}

// deploy writes zone into the node's zone directory (renamed into place,
// as a deploy does) with the modification time mtime.
func (n *clusterNode) deploy(t *testing.T, zone string, mtime time.Time) {
	t.Helper()
	tmp := filepath.Join(n.zdir, ".example.com.yaml.tmp")
	require.NoError(t, os.WriteFile(tmp, []byte(zone), 0o644))
	require.NoError(t, os.Chtimes(tmp, mtime, mtime))
	require.NoError(t, os.Rename(tmp, filepath.Join(n.zdir, "example.com.yaml")))
}

// TestClusterSerials (issue 19, "serials"): the same zone file deployed to
// three nodes at different times (different mtimes) gets one serial on
// every node; a changed file on one node shows as drift in /api/v1/cluster,
// in geodns_cluster_drift and in `geodns cluster status`, and goes when
// the others get it too, under one new serial; going back to the old
// content gives a newer serial still, again one for all.
func TestClusterSerials(t *testing.T) {
	ec := etcdtest.Start(t, etcdtest.Options{TLS: true})
	// Transferable: SOA answers say the exported serial (xfr), numbered
	// through the cluster too.
	clusterZone := clusterZone + "transfer: {allow: [127.0.0.0/8]}\n"
	nodes := newClusterNodes(t, ec, 3, clusterZone)
	base := time.Now().Add(-time.Hour).Truncate(time.Second)
	var serials []uint32
	for i, n := range nodes {
		// Deployed an hour, then ten minutes, apart: the mtime serials differ.
		n.deploy(t, clusterZone, base.Add(time.Duration(i)*10*time.Minute))
		n.start(t)
		serials = append(serials, soaSerial(n.dns, "example.com."))
	}
	t.Logf("one content deployed at three mtimes (%d, %d, %d): serials %v", base.Unix(), base.Add(10*time.Minute).Unix(), base.Add(20*time.Minute).Unix(), serials)
	require.Equal(t, uint32(base.Unix()), serials[0], "the first node's own serial (its file's mtime)")
	require.Equal(t, []uint32{serials[0], serials[0], serials[0]}, serials, "one serial everywhere")
	waitClusterUp(t, nodes)
	for _, n := range nodes {
		require.Equal(t, "0", n.metric(t, `geodns_cluster_drift{kind="zone"}`))
	}

	// A changed file on ns2 only: drift, seen from every node.
	changed := strings.Replace(clusterZone, "ttl: 30", "ttl: 31", 1)
	nodes[1].deploy(t, changed, base.Add(30*time.Minute))
	require.Eventually(t, func() bool { return soaSerial(nodes[1].dns, "example.com.") != serials[0] }, 10*time.Second, 20*time.Millisecond)
	newSerial := soaSerial(nodes[1].dns, "example.com.")
	waitMetricEverywhere(t, nodes, `geodns_cluster_drift{kind="zone"}`, "1", 10*time.Second, "every node counts one drifting node")
	v := nodes[0].view(t)
	require.True(t, v.Drift)
	for _, nv := range v.Nodes {
		if nv.Node == "ns2" {
			require.Len(t, nv.Drift, 1)
			require.Contains(t, nv.Drift[0], "zone example.com.: serial "+fmt.Sprint(newSerial))
			t.Logf("ns1's /api/v1/cluster: ns2 drift: %s", nv.Drift[0])
		} else {
			require.Empty(t, nv.Drift, nv.Node)
		}
	}
	code, out, _ := runGeodns(t, "cluster", "status", "--api", nodes[2].url(""))
	require.Equal(t, 3, code, "drift: exit 3\n%s", out)
	require.Contains(t, out, "drift: ns2: zone example.com.")
	t.Logf("geodns cluster status --api (ns3):\n%s", out)

	// The others get the new file, later, with other mtimes: its serial.
	nodes[0].deploy(t, changed, base.Add(40*time.Minute))
	nodes[2].deploy(t, changed, base.Add(-time.Hour))
	require.Eventually(t, func() bool {
		return soaSerial(nodes[0].dns, "example.com.") == newSerial && soaSerial(nodes[2].dns, "example.com.") == newSerial
	}, 10*time.Second, 20*time.Millisecond)
	waitMetricEverywhere(t, nodes, `geodns_cluster_drift{kind="zone"}`, "0", 10*time.Second, "drift gone")
	code, out, _ = runGeodns(t, "cluster", "status", "--api", nodes[0].url(""))
	require.Equal(t, 0, code, out)
	code, scrape := call(t, "GET", nodes[0].url("/metrics"), "")
	require.Equal(t, 200, code)
	promtool(t, scrape) // the cluster metrics too
	t.Logf("after deploying to all: serial %d everywhere; geodns cluster status:\n%s", newSerial, out)

	// Back to the first content: a serial after the second's, one for all.
	for i, n := range nodes {
		n.deploy(t, clusterZone, base.Add(time.Duration(i)*time.Minute))
	}
	var back []uint32
	require.Eventually(t, func() bool {
		back = back[:0]
		for _, n := range nodes {
			back = append(back, soaSerial(n.dns, "example.com."))
		}
		return back[0] != newSerial && back[0] == back[1] && back[1] == back[2]
	}, 10*time.Second, 20*time.Millisecond)
	require.Greater(t, back[0], newSerial, "a return to older content moves the serial on")
	t.Logf("back to the first content: serial %d everywhere (was %d, then %d)", back[0], serials[0], newSerial)
}

// TestClusterStatusShowsVotes: `geodns cluster status` and
// /api/v1/cluster show the NS set's health votes: each shared probe, what
// the set decided and every node's vote.
func TestClusterStatusShowsVotes(t *testing.T) {
	up := serveOn(t, "127.0.0.2", http.HandlerFunc(okBackend))
	dead := freeLoopback(t, "127.0.0.3") // nothing listens there
	zone := fmt.Sprintf(`soa: {ns: ns1.example.com., mbox: hostmaster.example.com.}
records:
  "@": {NS: [ns1.example.com., ns2.example.com., ns3.example.com.]}
  www: {service: web}
sites:
  us-east: {lat: 39.04, lon: -77.49}
  us-west: {lat: 37.34, lon: -121.89}
checks:
  web: {type: http, interval: 200ms, timeout: 200ms, rise: 1, fall: 1}
services:
  web:
    endpoints:
      - {site: us-east, address: 192.0.2.10, check: web, target: %q}
      - {site: us-west, address: 198.51.100.10, check: web, target: %q}
`, up, dead)
	ec := etcdtest.Start(t, etcdtest.Options{TLS: true})
	nodes := newClusterNodes(t, ec, 3, zone)
	startAll(t, nodes)
	waitClusterUp(t, nodes)
	var out string
	require.Eventually(t, func() bool {
		var code int
		code, out, _ = runGeodns(t, "cluster", "status", "--api", nodes[0].url(""))
		return code == 0 && strings.Contains(out, "health votes on 2 probes: 1 up by every vote, 1 down, 0 where the nodes disagree, 0 with no votes") &&
			strings.Contains(out, dead+"  down     yes          ns1=down ns2=down ns3=down")
	}, 15*time.Second, 200*time.Millisecond, "cluster status:\n%s", out)
	t.Logf("geodns cluster status:\n%s", out)
	code, raw, _ := runGeodns(t, "cluster", "status", "--json", "--api", nodes[1].url(""))
	require.Zero(t, code)
	var v struct {
		Votes []struct {
			Target string
			Up     bool
			Votes  []struct{ Node string }
		}
	}
	require.NoError(t, json.Unmarshal([]byte(raw), &v))
	require.Len(t, v.Votes, 2, raw)
	for _, p := range v.Votes {
		require.Len(t, p.Votes, 3, "a vote from every node on %s", p.Target)
		require.Equal(t, p.Target == up, p.Up, p.Target)
	}
}

// waitMetricEverywhere waits up to within until every node's metric
// series reads want.
func waitMetricEverywhere(t *testing.T, nodes []*clusterNode, series, want string, within time.Duration, msg string) {
	t.Helper()
	require.Eventually(t, func() bool {
		for _, n := range nodes {
			if n.metric(t, series) != want {
				return false
			}
		}
		return true
	}, within, 20*time.Millisecond, msg)
}

// TestClusterLostNode: a node killed does not vanish from /api/v1/cluster:
// once its lease lapses the others list it as lost, since when, with its
// last applied revision and serials (for 24 h: its record's own lease),
// and `geodns cluster status` prints it; a node stopped says it left; a
// node back is live again and its record goes.
func TestClusterLostNode(t *testing.T) {
	ec := etcdtest.Start(t, etcdtest.Options{TLS: true})
	nodes := newClusterNodes(t, ec, 3, clusterZone)
	startAll(t, nodes)
	waitClusterUp(t, nodes)
	var before cluster.NodeView
	for _, nv := range nodes[0].view(t).Nodes {
		if nv.Node == "ns3" {
			before = nv
		}
	}
	require.Equal(t, cluster.StateLive, before.State)
	serial := before.Zones["example.com."].Serial
	require.NotZero(t, serial)

	// ns3 is killed: no goodbye, its lease lapses.
	nodes[2].stop(t)
	killed := time.Now()
	var lost cluster.NodeView
	require.Eventually(t, func() bool {
		for _, nv := range nodes[0].view(t).Nodes {
			if nv.Node == "ns3" {
				lost = nv
			}
		}
		return lost.State == cluster.StateLost
	}, 10*time.Second, 20*time.Millisecond, "ns3 never shown lost: %+v", lost)
	t.Logf("ns3 killed: listed as lost after %.2f s (lease TTL 3 s), since %s, revision %d, example.com. serial %d",
		time.Since(killed).Seconds(), lost.Since.Format(time.RFC3339Nano), lost.OperatorRevision, lost.Zones["example.com."].Serial)
	require.False(t, lost.Connected)
	require.WithinDuration(t, killed, lost.Since, 6*time.Second, "lost when its lease lapsed")
	require.True(t, lost.Since.After(killed), "not before the kill")
	require.Equal(t, before.OperatorRevision, lost.OperatorRevision, "its last applied revision")
	require.Equal(t, serial, lost.Zones["example.com."].Serial, "its last serial")
	require.Empty(t, lost.Drift, "a node gone is not drift")
	// Every node shows it, from the one record.
	require.Eventually(t, func() bool {
		for _, nv := range nodes[1].view(t).Nodes {
			if nv.Node == "ns3" {
				return nv.State == cluster.StateLost && nv.Since.Equal(lost.Since)
			}
		}
		return false
	}, 5*time.Second, 20*time.Millisecond)
	cli := ec.Client()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	r, err := cli.Get(ctx, "/geodns/gone/ns3")
	require.NoError(t, err)
	require.Len(t, r.Kvs, 1)
	ttl, err := cli.TimeToLive(ctx, clientv3.LeaseID(r.Kvs[0].Lease))
	require.NoError(t, err)
	require.InDelta(t, (24 * time.Hour).Seconds(), float64(ttl.TTL), 60, "listed for 24 h")
	st := nodes[0].status(t)
	require.NotContains(t, st.Cluster.Revisions, "ns3", "the status lists live nodes' revisions")

	code, out, _ := runGeodns(t, "cluster", "status", "--api", nodes[0].url(""))
	require.Zero(t, code, out)
	require.Regexp(t, `(?m)^ns3\s+r3\s+lost \d+s ago\s+\d+\s+example\.com\.@`+fmt.Sprint(serial), out)
	require.Contains(t, out, "ns3: lost at ")

	// ns2 stops (SIGTERM): it says it left.
	v, _ := servers.Load(nodes[1].dns)
	require.NoError(t, v.(*process).cmd.Process.Signal(syscall.SIGTERM))
	<-v.(*process).done
	require.Eventually(t, func() bool {
		for _, nv := range nodes[0].view(t).Nodes {
			if nv.Node == "ns2" {
				return nv.State == cluster.StateLeft
			}
		}
		return false
	}, 5*time.Second, 20*time.Millisecond, "ns2 shown left")
	_, out, _ = runGeodns(t, "cluster", "status", "--api", nodes[0].url(""))
	t.Logf("geodns cluster status, ns2 stopped and ns3 killed:\n%s", out)
	require.Regexp(t, `(?m)^ns2\s+r2\s+left \d+s ago`, out)

	// ns3 is back: live, and its record is gone.
	nodes[2].start(t)
	require.Eventually(t, func() bool {
		for _, nv := range nodes[0].view(t).Nodes {
			if nv.Node == "ns3" {
				return nv.State == cluster.StateLive && nv.Connected
			}
		}
		return false
	}, 10*time.Second, 20*time.Millisecond, "ns3 back")
	require.Eventually(t, func() bool {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		r, err := cli.Get(ctx, "/geodns/gone/ns3", clientv3.WithCountOnly())
		return err == nil && r.Count == 0
	}, 5*time.Second, 20*time.Millisecond, "ns3's record goes when it is back")
}

// TestClusterWrongEtcdAddress: a node whose cluster.etcd has nothing
// listening serves DNS and is ready (etcd is not on the query path), logs
// a warning naming the endpoint and the error, and `geodns cluster status`
// says it is not connected and exits 4.
func TestClusterWrongEtcdAddress(t *testing.T) {
	dir := t.TempDir()
	zdir := filepath.Join(dir, "zones")
	require.NoError(t, os.MkdirAll(zdir, 0o755))
	require.NoError(t, os.WriteFile(filepath.Join(zdir, "example.com.yaml"), []byte(clusterZone), 0o644))
	etcd := freeLoopback(t, "127.0.0.1") // nothing listens there
	config := filepath.Join(dir, "geodns.yaml")
	require.NoError(t, os.WriteFile(config, []byte("cluster:\n  etcd: [http://"+etcd+"]\n  node: ns1\n  lease_ttl: 2s\n"), 0o644))
	httpAddr := freeLoopback(t, "127.0.0.1")
	_, log := startGeodns(t, zdir, "example.com.", "--config", config, "--state-dir", filepath.Join(dir, "state"), "--http", httpAddr)

	require.Eventually(t, func() bool {
		return strings.Contains(log.String(), "no lease from etcd") && strings.Contains(log.String(), "connection refused")
	}, 10*time.Second, 20*time.Millisecond, "no warning:\n%s", log.String())
	for _, l := range strings.Split(log.String(), "\n") {
		if strings.Contains(l, "no lease from etcd") {
			require.Contains(t, l, "level=WARN")
			require.Contains(t, l, etcd, "the endpoint")
			t.Logf("serve logs: %s", l)
			break
		}
	}
	code, body := call(t, "GET", "http://"+httpAddr+"/readyz", "")
	require.Equal(t, 200, code, "ready without etcd (docs/operations.md): %s", body)

	code, out, errOut := runGeodns(t, "cluster", "status", "--api", "http://"+httpAddr)
	require.Equal(t, 4, code, "not connected: exit 4\n%s%s", out, errOut)
	require.Contains(t, out, "ns1 is NOT connected to etcd")
	require.NotContains(t, out, "no drift: every live node")
	t.Logf("geodns cluster status:\n%s", out)
	code, out, errOut = runGeodns(t, "cluster", "status", "--json", "--api", "http://"+httpAddr)
	require.Equal(t, 4, code, "--json: the same exit code (it was 0)\n%s%s", out, errOut)
	require.Contains(t, out, `"connected": false`)
}

// TestClusterStatusAPIEnv: `geodns cluster status` finds the node's API
// through $GEODNS_API, as `geodns ctl` does; --api wins over it.
func TestClusterStatusAPIEnv(t *testing.T) {
	addr := serveOn(t, "127.0.0.1", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/api/v1/cluster" {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprint(w, `{"node": "ns1", "connected": true, "nodes": [{"node": "ns1", "self": true, "state": "live", "connected": true}], "votes": []}`)
	}))
	env := []string{"GEODNS_API=http://" + addr}
	code, out, errOut := runWithEnv(t, env, "cluster", "status")
	require.Equal(t, 0, code, "%s%s", out, errOut)
	require.Contains(t, out, "as seen by ns1 (connected)")

	dead := freeLoopback(t, "127.0.0.1") // nothing listens there
	code, _, errOut = runWithEnv(t, env, "cluster", "status", "--api", "http://"+dead)
	require.Equal(t, 1, code)
	require.Contains(t, errOut, dead, "--api wins over $GEODNS_API")

	// geodns drill too (it asked 127.0.0.1:8053 whatever $GEODNS_API said).
	code, _, errOut = runWithEnv(t, []string{"GEODNS_API=http://" + dead}, "drill", "--site", "east")
	require.Equal(t, 1, code, errOut)
	require.Contains(t, errOut, dead, "drill asks $GEODNS_API")
}

// TestClusterSignedTransfersAgree: two nodes sharing keys transfer a
// signed zone as the same bytes under the same serial, before and after
// an edit deployed to both at different times, so a secondary may take
// IXFR from either. The keys are shared through a directory (one node
// rolls, the other follows) or through etcd (key_secret_file; each node
// its own key_dir), where `geodns dnssec ds` finds them too.
func TestClusterSignedTransfersAgree(t *testing.T) {
	for _, through := range []string{"directory", "etcd"} {
		t.Run(through, func(t *testing.T) { testClusterSignedTransfersAgree(t, through) })
	}
}

func testClusterSignedTransfersAgree(t *testing.T, through string) {
	ec := etcdtest.Start(t, etcdtest.Options{TLS: true})
	zone := clusterZone + "dnssec: {algorithm: ECDSAP256SHA256}\ntransfer: {allow: [127.0.0.0/8]}\n"
	nodes := newClusterNodes(t, ec, 2, zone)
	keys := t.TempDir()
	secret := filepath.Join(t.TempDir(), "dnssec.secret")
	require.NoError(t, os.WriteFile(secret, []byte("c2VjcmV0IG9mIHRoZSBzZXQsIHNoYXJlZCBieSBldmVyeSBub2Rl\n"), 0o600))
	for i, n := range nodes {
		f, err := os.OpenFile(n.config, os.O_APPEND|os.O_WRONLY, 0)
		require.NoError(t, err)
		if through == "etcd" {
			_, err = fmt.Fprintf(f, "dnssec: {key_secret_file: %s}\n", secret)
		} else {
			_, err = fmt.Fprintf(f, "dnssec: {key_dir: %s, follow: %v}\n", keys, i > 0)
		}
		require.NoError(t, err)
		require.NoError(t, f.Close())
	}
	base := time.Now().Add(-time.Hour).Truncate(time.Second)
	for i, n := range nodes {
		n.deploy(t, zone, base.Add(time.Duration(i)*10*time.Minute))
		n.start(t) // the first makes the keys
	}
	axfr := func(n *clusterNode) string {
		ch, err := (&dns.Transfer{}).In(new(dns.Msg).SetAxfr("example.com."), n.dns)
		require.NoError(t, err)
		var b strings.Builder
		for env := range ch {
			require.NoError(t, env.Error)
			for _, rr := range env.RR {
				b.WriteString(rr.String() + "\n")
			}
		}
		return b.String()
	}
	same := func(what string) string {
		t.Helper()
		var a, b string
		require.Eventually(t, func() bool {
			a, b = axfr(nodes[0]), axfr(nodes[1])
			return a == b
		}, 10*time.Second, 50*time.Millisecond, "%s: the nodes transfer different zones:\n%s\n---\n%s", what, a, b)
		require.Contains(t, a, "RRSIG\tSOA")
		require.Contains(t, a, "\tNSEC\t")
		return a
	}
	first := same("deployed")
	t.Logf("both nodes transfer %d records, serial %d", strings.Count(first, "\n"), soaSerial(nodes[0].dns, "example.com."))
	if through == "etcd" {
		// The DS for the registrar, read from etcd, is the served key's.
		code, out, errOut := runGeodns(t, "dnssec", "ds", "--zone", "example.com", "--config", nodes[1].config)
		require.Equal(t, 0, code, errOut)
		t.Logf("$ geodns dnssec ds --zone example.com --config ns2.yaml\n%s", out)
		r, err := dns.Exchange(question("example.com.", dns.TypeDNSKEY), nodes[0].dns)
		require.NoError(t, err)
		require.Len(t, r.Answer, 1)
		ds := r.Answer[0].(*dns.DNSKEY).ToDS(dns.SHA256)
		require.Contains(t, out, fmt.Sprintf("DS %d %d %d %s", ds.KeyTag, ds.Algorithm, ds.DigestType, strings.ToUpper(ds.Digest)))
		// A command keeps no copy of the private keys (it wrote one into
		// its working directory, ./dnssec-keys, the default key_dir).
		_, err = os.Stat("dnssec-keys")
		require.True(t, os.IsNotExist(err), "geodns dnssec ds left private keys in ./dnssec-keys")
	}

	edited := strings.Replace(zone, "ttl: 30", "ttl: 31", 1)
	nodes[1].deploy(t, edited, base.Add(30*time.Minute))
	nodes[0].deploy(t, edited, base.Add(40*time.Minute))
	var second string
	require.Eventually(t, func() bool {
		second = same("edited")
		return second != first
	}, 10*time.Second, 50*time.Millisecond)
	require.Equal(t, soaSerial(nodes[0].dns, "example.com."), soaSerial(nodes[1].dns, "example.com."))
	t.Logf("after the edit: serial %d on both, the same %d records", soaSerial(nodes[0].dns, "example.com."), strings.Count(second, "\n"))
}
