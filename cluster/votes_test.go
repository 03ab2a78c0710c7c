package cluster

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/geodns/geodns/health"
	"github.com/geodns/geodns/internal/etcdtest"
	"github.com/geodns/geodns/zones"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// backends serves /healthz on n loopback addresses and counts the
// requests each gets.
type backends struct {
	addrs []string
	hits  []atomic.Int64
	srvs  []*http.Server
}

func startBackends(t *testing.T, n int) *backends {
	b := &backends{hits: make([]atomic.Int64, n)}
	for i := range n {
		ln, err := net.Listen("tcp", fmt.Sprintf("127.0.%d.%d:0", 10+i/200, 1+i%200))
		require.NoError(t, err)
		srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			b.hits[i].Add(1)
			fmt.Fprint(w, "ok")
		})}
		go srv.Serve(ln)
		t.Cleanup(func() { srv.Close() })
		b.addrs = append(b.addrs, ln.Addr().String())
		b.srvs = append(b.srvs, srv)
	}
	return b
}

func (b *backends) total() int64 {
	var n int64
	for i := range b.hits {
		n += b.hits[i].Load()
	}
	return n
}

// votesZone probes every target with check hc (interval 200ms, keepalive
// off so a probe is one request and one connection).
func votesZone(t *testing.T, check string, targets []string) *zones.Set {
	var b strings.Builder
	b.WriteString("soa: {ns: ns1.example.net., mbox: h.example.net.}\nrecords:\n  \"@\": {NS: [ns1.example.net.]}\n  www: {service: web}\n")
	b.WriteString("sites:\n  east: {lat: 39, lon: -77}\n")
	fmt.Fprintf(&b, "checks:\n  hc: %s\nservices:\n  web:\n    endpoints:\n", check)
	for i, tg := range targets {
		fmt.Fprintf(&b, "      - {site: east, address: 192.0.2.%d, check: hc, target: %q}\n", i+1, tg)
	}
	z, err := zones.Compile("example.net.yaml", []byte(b.String()), "example.net.", time.Now(), nil)
	require.NoError(t, err)
	return zones.NewSet(z)
}

// voter is one node: a Cluster, a health manager and its Votes.
type voter struct {
	c     *Cluster
	h     *health.Manager
	votes *Votes
	stop  func()
}

func startVoter(t *testing.T, ec *etcdtest.Cluster, name string, set *zones.Set, allow []netip.Prefix, opts VotesOptions) *voter {
	t.Helper()
	return startVoterReports(t, ec, name, set, allow, opts, true)
}

// startVoterReports starts a voter, with its reports (as geodns runs it)
// or without (every live node taken to have every probe).
func startVoterReports(t *testing.T, ec *etcdtest.Cluster, name string, set *zones.Set, allow []netip.Prefix, opts VotesOptions, reports bool) *voter {
	t.Helper()
	c, err := New(Options{Config: testConfig(ec, name, ""), Version: "test", TTL: 2 * time.Second, Timeout: time.Second, Log: quiet})
	require.NoError(t, err)
	h := health.NewManager(health.Options{Allow: allow, Log: quiet, MaxKept: -1})
	h.SetZones(set)
	v := NewVotes(c, h, opts, nil)
	ctx, cancel := context.WithCancel(context.Background())
	parts := 3
	done := make(chan struct{}, 4)
	if reports {
		r := NewReports(c, Sources{Zones: func() *zones.Set { return set }})
		v.UseReports(r)
		parts++
		go func() { r.Run(ctx); done <- struct{}{} }()
	}
	go func() { c.Run(ctx); done <- struct{}{} }()
	go func() { h.Run(ctx); done <- struct{}{} }()
	go func() { v.Run(ctx); done <- struct{}{} }()
	stopped := false
	stop := func() {
		if !stopped {
			stopped = true
			cancel()
			for range parts {
				<-done
			}
			c.Close()
		}
	}
	t.Cleanup(stop)
	return &voter{c: c, h: h, votes: v, stop: stop}
}

func upIn(h *health.Manager, set *zones.Set, target string) bool {
	for _, ep := range set.Zone("example.net.").Services["web"].Endpoints {
		if ep.Probe.Target == target {
			return h.Table().Probe(ep.Probe).Up
		}
	}
	panic("no endpoint for " + target)
}

var loopback = []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}

// TestVotesSplitView: a node that cannot reach a target (its probe_allow
// leaves it out: "target not allowed", its own probe down) is outvoted by
// the two that can, so all three see it up; when the target really dies,
// all three see it down.
func TestVotesSplitView(t *testing.T) {
	ec := etcdtest.Start(t, etcdtest.Options{})
	b := startBackends(t, 2)
	set := votesZone(t, "{type: http, port: 80, path: /healthz, interval: 200ms, timeout: 150ms, rise: 2, fall: 2, keepalive: false}", b.addrs)
	east := b.addrs[0]
	cut := []netip.Prefix{netip.PrefixFrom(netip.MustParseAddrPort(b.addrs[1]).Addr(), 32)} // node 1 reaches only the second backend
	vs := []*voter{
		startVoter(t, ec, "ns1", set, cut, VotesOptions{}),
		startVoter(t, ec, "ns2", set, loopback, VotesOptions{}),
		startVoter(t, ec, "ns3", set, loopback, VotesOptions{}),
	}
	require.Eventually(t, func() bool {
		for _, v := range vs {
			st, ok := v.h.Votes()[probeKey(set, east)]
			if !ok || len(st.Votes) != 3 || st.Votes[0].Up { // ns1's own probe went down (fall 2)
				return false
			}
		}
		return true
	}, 10*time.Second, 20*time.Millisecond, "every node sees three votes on east, ns1's down")
	for i, v := range vs {
		require.True(t, upIn(v.h, set, east), "node %d: east is up by 2 votes of 3", i+1)
	}
	st := vs[0].h.Votes()[probeKey(set, east)]
	t.Logf("east: votes %v -> up=%v on every node", fmtVotes(st.Votes), st.Up)

	// East dies: every node sees it down.
	start := time.Now()
	b.srvs[0].Close()
	require.Eventually(t, func() bool {
		for _, v := range vs {
			if upIn(v.h, set, east) {
				return false
			}
		}
		return true
	}, 10*time.Second, 10*time.Millisecond)
	t.Logf("east died: down on all three nodes after %v (fall 2 x interval 200ms)", time.Since(start).Round(time.Millisecond))
}

func probeKey(set *zones.Set, target string) string {
	for _, ep := range set.Zone("example.net.").Services["web"].Endpoints {
		if ep.Probe.Target == target {
			return ep.Probe.Key
		}
	}
	panic("no endpoint for " + target)
}

func fmtVotes(vs []health.Vote) string {
	var out []string
	for _, v := range vs {
		s := "down"
		if v.Up {
			s = "up"
		}
		out = append(out, v.Node+":"+s)
	}
	return strings.Join(out, " ")
}

// TestProbeSharding: with probers 2 of 3 nodes every target is probed by
// two nodes, so the backends see 2/3 of the probes they see with probers
// 3; and when a prober leaves, its targets move to the node left out.
func TestProbeSharding(t *testing.T) {
	const targets, window = 30, 3 * time.Second
	check := "{type: http, port: 80, path: /healthz, interval: 200ms, timeout: 150ms, keepalive: false}"
	count := func(probers int) (total int64, per map[string]int) {
		ec := etcdtest.Start(t, etcdtest.Options{})
		b := startBackends(t, targets)
		set := votesZone(t, check, b.addrs)
		var vs []*voter
		for _, n := range []string{"ns1", "ns2", "ns3"} {
			vs = append(vs, startVoter(t, ec, n, set, loopback, VotesOptions{Probers: probers}))
		}
		require.Eventually(t, func() bool {
			for _, v := range vs {
				if len(v.c.Nodes()) != 3 {
					return false
				}
				for _, st := range v.h.Votes() {
					if len(st.Votes) != probers {
						return false
					}
				}
			}
			return true
		}, 15*time.Second, 20*time.Millisecond, "every target has %d votes", probers)
		before := b.total()
		time.Sleep(window) // a counting window, not synchronisation
		total = b.total() - before
		per = map[string]int{}
		for _, v := range vs {
			for _, st := range v.h.Votes() {
				if st.Runs {
					per[v.c.self.Name]++
				}
			}
		}
		for _, v := range vs {
			v.stop()
		}
		return total, per
	}
	n3, per3 := count(3)
	n2, per2 := count(2)
	ratio := float64(n2) / float64(n3)
	t.Logf("%d targets, 3 nodes, %v: probers 3: %d requests at the backends (targets per node %v); probers 2: %d (%v); ratio %.3f (want 2/3)",
		targets, window, n3, per3, n2, per2, ratio)
	require.InDelta(t, 2.0/3, ratio, 0.08)
	for _, n := range per2 {
		require.Greater(t, n, 0)
	}
}

// TestHandOverOnJoin: a node that joins takes its share of the targets
// over from the nodes that probed them, and no target is ever left
// without a live vote: with probers 1, the old prober's vote stands until
// the new node's is in etcd (the new node's first probes come at random
// over a 2 s interval, long after it joined).
func TestHandOverOnJoin(t *testing.T) {
	const targets = 30
	ec := etcdtest.Start(t, etcdtest.Options{})
	b := startBackends(t, targets)
	set := votesZone(t, "{type: http, port: 80, path: /healthz, interval: 2s, timeout: 500ms, keepalive: false}", b.addrs)
	opts := VotesOptions{Probers: 1}
	startVoter(t, ec, "ns1", set, loopback, opts)
	startVoter(t, ec, "ns2", set, loopback, opts)
	cli := ec.Client()
	// votes returns, by vote id, the nodes voting on it.
	votes := func() map[string][]string {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		r, err := cli.Get(ctx, "/test/votes/", clientv3.WithPrefix(), clientv3.WithKeysOnly())
		require.NoError(t, err)
		out := map[string][]string{}
		for _, kv := range r.Kvs {
			node, id, _ := strings.Cut(strings.TrimPrefix(string(kv.Key), "/test/votes/"), "/")
			out[id] = append(out[id], node)
		}
		return out
	}
	require.Eventually(t, func() bool {
		vs := votes()
		if len(vs) != targets {
			return false
		}
		for _, n := range vs {
			if len(n) != 1 {
				return false
			}
		}
		return true
	}, 15*time.Second, 20*time.Millisecond, "one vote on each target: %v", votes())

	ns3 := startVoter(t, ec, "ns3", set, loopback, opts)
	joined := time.Now()
	var orphaned []string
	mine := 0
	require.Eventually(t, func() bool {
		vs := votes()
		for id, n := range vs {
			if len(n) == 0 {
				orphaned = append(orphaned, id)
			}
		}
		if len(vs) < targets {
			orphaned = append(orphaned, fmt.Sprintf("%d targets without a vote %.2f s after ns3 joined", targets-len(vs), time.Since(joined).Seconds()))
		}
		mine = 0
		for _, st := range ns3.h.Votes() {
			if st.Runs {
				mine++
			}
		}
		by3 := 0
		for _, n := range vs {
			if len(n) != 1 {
				return false // a handover under way
			}
			if n[0] == "ns3" {
				by3++
			}
		}
		return len(orphaned) > 0 || (mine > 0 && mine < targets && by3 == mine) // ns3's share is its own
	}, 15*time.Second, 10*time.Millisecond)
	t.Logf("ns3 joined: it took %d of %d targets over, handed over in %.2f s, no target without a vote meanwhile", mine, targets, time.Since(joined).Seconds())
	require.Empty(t, orphaned, "a target lost its only vote while handed over")
}

// TestProbersOfMatchesRendezvous: the probers a node hands a target over
// to are the nodes that, each on its own, decide to probe it.
func TestProbersOfMatchesRendezvous(t *testing.T) {
	nodes := []string{"ns1", "ns2", "ns3", "ns4", "ns5"}
	for k := 1; k <= 6; k++ {
		of := probersOf(nodes, k)
		for i := range 500 {
			id := fmt.Sprintf("127.0.0.%d:80|%x", i%250, i)
			var want []string
			for _, n := range nodes {
				if rendezvous(n, nodes, k)(id) {
					want = append(want, n)
				}
			}
			require.ElementsMatch(t, want, of(id), "k %d id %s", k, id)
		}
	}
}

// TestVotesAloneFromStart: a node started while etcd is down probes every
// target and decides alone; past the partition grace it says so, in the
// log and in geodns_cluster_health_alone, as a node cut off later does.
// Before, the metric stayed 0 and nothing was logged. When etcd comes,
// it joins and the metric goes back to 0.
func TestVotesAloneFromStart(t *testing.T) {
	ec := etcdtest.Start(t, etcdtest.Options{Members: 1})
	b := startBackends(t, 1)
	set := votesZone(t, "{type: http, port: 80}", b.addrs)
	ec.KillAll()
	v := startVoter(t, ec, "ns1", set, loopback, VotesOptions{Grace: 500 * time.Millisecond})
	votes := v.votes
	require.Eventually(t, func() bool { return testutil.ToFloat64(votes.metrics.alone) == 1 }, 10*time.Second, 20*time.Millisecond)
	require.True(t, upIn(v.h, set, b.addrs[0]), "decided from its own probe")
	ec.RestartAll()
	require.Eventually(t, func() bool { return testutil.ToFloat64(votes.metrics.alone) == 0 }, 15*time.Second, 20*time.Millisecond)
}

// TestVotesNoProberHasTheProbe: with probers 1 of 3 and ns3 on another
// version of the check (a rolling deploy), rendezvous over all three
// nodes gave some of ns1's and ns2's probes to ns3, which does not have
// them, and some of ns3's to the others: nobody voted on those, and every
// node kept their last decision, "up", for as long as it lasted, after
// the targets died. Probes are shared among the nodes with the same
// probes: every target dies on every node as fast as when all agree (the
// grace, a minute here, plays no part).
func TestVotesNoProberHasTheProbe(t *testing.T) {
	orphanTest(t, VotesOptions{Probers: 1, Grace: time.Minute}, true)
}

// TestVotesOrphanAdopted: the same without reports (as when a node's
// report is not seen yet, or nodes do not agree on who has what): a node
// that has a probe nobody votes on for the partition grace probes it
// itself.
func TestVotesOrphanAdopted(t *testing.T) {
	orphanTest(t, VotesOptions{Probers: 1, Grace: time.Second}, false)
}

// orphanTest runs ns1 and ns2 on one version of a check and ns3 on
// another, kills every target, and wants them down on every node within
// 10 s.
func orphanTest(t *testing.T, opts VotesOptions, reports bool) {
	const targets = 12
	ec := etcdtest.Start(t, etcdtest.Options{Members: 1})
	b := startBackends(t, targets)
	oldSet := votesZone(t, "{type: http, port: 80, path: /healthz, interval: 200ms, timeout: 150ms, fall: 2, keepalive: false}", b.addrs)
	newSet := votesZone(t, "{type: http, port: 80, path: /healthz, interval: 300ms, timeout: 150ms, fall: 2, keepalive: false}", b.addrs)
	type node struct {
		v   *voter
		set *zones.Set
	}
	ns := []node{
		{startVoterReports(t, ec, "ns1", oldSet, loopback, opts, reports), oldSet},
		{startVoterReports(t, ec, "ns2", oldSet, loopback, opts, reports), oldSet},
		{startVoterReports(t, ec, "ns3", newSet, loopback, opts, reports), newSet},
	}
	start := time.Now()
	var voteless []string
	if !assert.Eventually(t, func() bool {
		voteless = nil
		for _, n := range ns {
			if len(n.v.c.Nodes()) != 3 || len(n.v.h.Votes()) != targets {
				voteless = append(voteless, n.v.c.self.Name+": not joined")
				continue
			}
			for key, st := range n.v.h.Votes() {
				if len(st.Votes) == 0 {
					voteless = append(voteless, n.v.c.self.Name+":"+key[:strings.IndexByte(key, '|')])
				}
			}
		}
		return len(voteless) == 0
	}, 15*time.Second, 20*time.Millisecond) {
		t.Fatalf("probes without a vote 15 s after the start: %v", voteless)
	}
	t.Logf("every probe has a vote on every node %v after the start", time.Since(start).Round(time.Millisecond))
	for _, s := range b.srvs {
		s.Close()
	}
	died := time.Now()
	stuck := func() []string {
		var out []string
		for _, n := range ns {
			for _, a := range b.addrs {
				if upIn(n.v.h, n.set, a) {
					out = append(out, n.v.c.self.Name+":"+a)
				}
			}
		}
		return out
	}
	var up []string
	if !assert.Eventually(t, func() bool { up = stuck(); return len(up) == 0 }, 10*time.Second, 20*time.Millisecond) {
		t.Fatalf("still up 10 s after every target died: %v", up)
	}
	t.Logf("every target down on every node %v after they died (grace %v)", time.Since(died).Round(time.Millisecond), opts.Grace)
}
