package cluster

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/geodns/geodns/internal/etcdtest"
	"github.com/stretchr/testify/require"
	clientv3 "go.etcd.io/etcd/client/v3"
)

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

// testConfig is a node's cluster config on etcd ec, with its own mTLS
// identity.
func testConfig(ec *etcdtest.Cluster, node, region string) Config {
	cfg := Config{Etcd: ec.Endpoints(), Node: node, Region: region, Prefix: "/test"}
	if ec.Certs != nil {
		cert, key := ec.Certs.Client(node)
		cfg.TLS = TLSConfig{CA: ec.Certs.CA, Cert: cert, Key: key}
	}
	return cfg
}

// startNode runs a Cluster with a lease TTL of 3 s until the test ends
// (or stop is called).
func startNode(t *testing.T, cfg Config) (c *Cluster, stop func()) {
	t.Helper()
	return startNodeTTL(t, cfg, 3*time.Second)
}

// startNodeTTL is startNode with a lease TTL of ttl; before, if given,
// sees the Cluster before it runs (what must be set up before Run).
func startNodeTTL(t *testing.T, cfg Config, ttl time.Duration, before ...func(*Cluster)) (c *Cluster, stop func()) {
	t.Helper()
	c, err := New(Options{Config: cfg, Version: "test", TTL: ttl, Timeout: time.Second, Log: quiet})
	require.NoError(t, err)
	for _, f := range before {
		f(c)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { c.Run(ctx); c.Close(); close(done) }()
	stop = func() { cancel(); <-done }
	t.Cleanup(stop)
	return c, stop
}

func names(ns []Node) []string {
	var out []string
	for _, n := range ns {
		out = append(out, n.Name)
	}
	return out
}

// TestNodesAndConnection: nodes see each other over mTLS; one etcd
// member down changes nothing; a node that stops leaves the list at once;
// with every member down a node says it is disconnected and stale, keeps
// its last list, and reconnects when etcd is back.
func TestNodesAndConnection(t *testing.T) {
	ec := etcdtest.Start(t, etcdtest.Options{TLS: true})
	// TTL 5 s. A keep-alive goes every third of the TTL. When the member
	// killed below is the leader, the next is answered only after an
	// election (etcd draws its timeout from 1-2 s here, etcdtest) and the
	// client's 500 ms retry: up to 3.5 s without an answer, more on a
	// loaded machine. TTL 3 s did not cover it: the node counted itself
	// disconnected in a fresh-clone make test (2026-12-03), as TTL 2 s
	// had in 2 of 3 -race runs.
	const ttl = 5 * time.Second
	a, _ := startNodeTTL(t, testConfig(ec, "ns1", "eu"), ttl)
	b, stopB := startNodeTTL(t, testConfig(ec, "ns2", "us"), ttl)
	both := []string{"ns1", "ns2"}
	require.Eventually(t, func() bool { return a.Connected() && b.Connected() }, 10*time.Second, 10*time.Millisecond)
	require.Eventually(t, func() bool { return len(a.Nodes()) == 2 && len(b.Nodes()) == 2 }, 5*time.Second, 10*time.Millisecond)
	require.Equal(t, both, names(a.Nodes()))
	require.Equal(t, "us", a.Nodes()[1].Region)

	ec.Kill(0)
	for range 50 { // a TTL and a half: nothing changes
		require.True(t, a.Connected())
		time.Sleep(150 * time.Millisecond)
	}
	require.Equal(t, both, names(a.Nodes()))
	ec.RestartAll()

	ch := a.NodesChanged()
	stopB()
	select {
	case <-ch:
	case <-time.After(3 * time.Second):
		t.Fatal("a stopped node stays in the list")
	}
	require.Equal(t, []string{"ns1"}, names(a.Nodes()), "revoked: gone at once, not a TTL later")

	ec.KillAll()
	start := time.Now()
	require.Eventually(t, func() bool { return !a.Connected() }, ttl+3*time.Second, 10*time.Millisecond)
	t.Logf("disconnected after %v without etcd (TTL %v)", time.Since(start).Round(time.Millisecond), ttl)
	require.Equal(t, []string{"ns1"}, names(a.Nodes()), "the last list is kept")
	require.Eventually(t, func() bool { return a.Stale() > time.Second }, 5*time.Second, 10*time.Millisecond)

	ec.RestartAll()
	start = time.Now()
	require.Eventually(t, a.Connected, 10*time.Second, 10*time.Millisecond)
	t.Logf("reconnected %v after etcd answered", time.Since(start).Round(time.Millisecond))
	require.Zero(t, a.Stale())
	require.Equal(t, []string{"ns1"}, names(a.Nodes()))
}

// lockedBuffer is a log destination safe for the Cluster's goroutines.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// TestNoEtcdIsLogged: a node whose etcd endpoint has nothing listening
// says so at WARN, naming the endpoint and the error, once when it starts
// failing and then at most once per interval, not at every retry.
func TestNoEtcdIsLogged(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	endpoint := "http://" + l.Addr().String()
	l.Close() // nothing listens there now
	var buf lockedBuffer
	c, err := New(Options{Config: Config{Etcd: []string{endpoint}, Node: "ns1"}, TTL: 2 * time.Second, Timeout: 300 * time.Millisecond,
		Log: slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelWarn}))})
	require.NoError(t, err)
	c.noLeaseWarnEvery = 2 * time.Second
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { c.Run(ctx); c.Close(); close(done) }()
	defer func() { cancel(); <-done }()

	warnings := func() []string {
		var out []string
		for _, line := range strings.Split(buf.String(), "\n") {
			if strings.Contains(line, "level=WARN") && strings.Contains(line, "no lease") {
				out = append(out, line)
			}
		}
		return out
	}
	require.Eventually(t, func() bool { return len(warnings()) > 0 }, 2*time.Second, 10*time.Millisecond, "no warning:\n%s", buf.String())
	first := warnings()[0]
	require.Contains(t, first, l.Addr().String(), "the endpoint")
	require.Contains(t, first, "connection refused", "the error")
	require.False(t, c.Connected())
	// Retries every 100 ms to 600 ms (a third of the TTL): many in the
	// next second, and still only the one warning.
	time.Sleep(time.Second)
	require.Len(t, warnings(), 1, buf.String())
	// Still failing after the interval: warned again.
	require.Eventually(t, func() bool { return len(warnings()) == 2 }, 3*time.Second, 10*time.Millisecond, buf.String())
	t.Logf("log:\n%s", buf.String())
}

// TestRewindNeedsAnAnswerBelowItsFloor: answers to requests sent at once
// arrive in any order; a lower revision than another answer's is no
// rewind unless it is below what the node had seen when it sent that
// request. Before, a clean start counted two rewinds (revision 5 after 6).
func TestRewindNeedsAnAnswerBelowItsFloor(t *testing.T) {
	c, err := New(Options{Config: Config{Etcd: []string{"http://127.0.0.1:9"}, Node: "ns1"}, Log: quiet})
	require.NoError(t, err)
	defer c.Close()
	f1, f2 := c.floor(), c.floor()
	c.observe(f2, 6)
	epoch, _ := c.observe(f1, 5)
	require.Zero(t, epoch, "sent before 6 was seen: no rewind")
	c.saw(40) // a watch's answer
	epoch, rewound := c.observe(c.floor(), 12)
	require.Equal(t, int64(1), epoch, "below what the watch showed: a rewind")
	select {
	case <-rewound:
		t.Fatal("the new epoch's channel is open")
	default:
	}
	epoch, _ = c.observe(c.floor(), 13)
	require.Equal(t, int64(1), epoch, "the new history goes on")
}

// TestDuplicateNodeName: a second process started with a node name a live
// process holds does not register over it: Run returns an error naming
// the other process, and the first keeps its registration and votes.
// Before, the second overwrote P/nodes/<name>, deleted the first's votes
// under its new lease, and, stopping, took the first's keys with it.
func TestDuplicateNodeName(t *testing.T) {
	ec := etcdtest.Start(t, etcdtest.Options{Members: 1})
	first, _ := startNode(t, testConfig(ec, "ns1", "r1"))
	require.Eventually(t, func() bool { return len(first.Nodes()) == 1 }, 10*time.Second, 20*time.Millisecond)
	cli := ec.Client()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	lease, _ := first.Lease()
	_, err := cli.Put(ctx, "/test/votes/ns1/x", "u 0 0", clientv3.WithLease(lease))
	require.NoError(t, err)

	second, err := New(Options{Config: testConfig(ec, "ns1", "r2"), Version: "test", TTL: 3 * time.Second, Timeout: time.Second, Log: quiet})
	require.NoError(t, err)
	defer second.Close()
	// Votes under the second's lease would delete the first's (resync).
	done := make(chan error, 1)
	go func() { done <- second.Run(ctx) }()
	var runErr error
	select {
	case runErr = <-done:
	case <-time.After(15 * time.Second):
	}
	require.Error(t, runErr, "the second process runs on as ns1")
	require.ErrorContains(t, runErr, `node name "ns1" is held by another live process (region r1`)
	t.Logf("second process: %v", runErr)
	r, err := cli.Get(ctx, "/test/nodes/ns1")
	require.NoError(t, err)
	require.Len(t, r.Kvs, 1)
	require.Contains(t, string(r.Kvs[0].Value), `"region":"r1"`, "the first's registration")
	r, err = cli.Get(ctx, "/test/votes/ns1/x")
	require.NoError(t, err)
	require.Len(t, r.Kvs, 1, "the first's vote")
}

// TestRestartAfterACrash: a node restarted before the lease of its
// previous run lapsed (killed, its registration still in etcd for up to
// a TTL) is not taken for a duplicate: it registers once that lease goes.
func TestRestartAfterACrash(t *testing.T) {
	ec := etcdtest.Start(t, etcdtest.Options{Members: 1})
	cli := ec.Client()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	g, err := cli.Grant(ctx, 3) // the dead run's lease: nobody keeps it alive
	require.NoError(t, err)
	_, err = cli.Put(ctx, "/test/nodes/ns1", `{"node":"ns1","region":"r1","started":"2026-01-01T00:00:00Z"}`, clientv3.WithLease(g.ID))
	require.NoError(t, err)
	c, _ := startNode(t, testConfig(ec, "ns1", "r1"))
	start := time.Now()
	require.Eventually(t, func() bool {
		l, _ := c.Lease()
		return l != 0 && len(c.Nodes()) == 1 && c.Nodes()[0].Started.Equal(c.self.Started)
	}, 15*time.Second, 20*time.Millisecond)
	t.Logf("registered %v after the start (the old lease had 3 s)", time.Since(start).Round(time.Millisecond))
}
