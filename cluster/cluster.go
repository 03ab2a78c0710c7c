package cluster

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net"
	"net/url"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
	"google.golang.org/grpc"
	"google.golang.org/grpc/backoff"
)

// Options configure a Cluster.
type Options struct {
	Config  Config
	Version string // geodns's version, registered with the node
	Address string // the node's API address, registered (for `geodns cluster status`)
	// TTL is the lease's time to live: a dead node's keys go this long
	// after its last keep-alive, and a node without a keep-alive answer
	// for as long counts itself disconnected. Default 10s; whole
	// seconds (etcd's unit), at least 2s.
	TTL time.Duration
	// Timeout bounds each etcd request. Default 3s.
	Timeout    time.Duration
	Log        *slog.Logger // nil: slog.Default
	Registerer prometheus.Registerer
}

// Node is a live node's registration.
type Node struct {
	Name    string    `json:"node"`
	Region  string    `json:"region,omitempty"`
	Version string    `json:"version,omitempty"`
	Address string    `json:"address,omitempty"`
	Started time.Time `json:"started"`
}

// Cluster is one node's membership of the NS set.
type Cluster struct {
	opts    Options
	cfg     Config
	prefix  string
	log     *slog.Logger
	cli     *clientv3.Client
	tls     *tls.Config // the client's, as New loaded it (nil: plain)
	self    Node
	metrics *metrics

	lease       atomic.Int64 // clientv3.LeaseID; 0: none
	contact     atomic.Int64 // unix nanoseconds of the last answer from etcd
	disconnects atomic.Int64 // unix nanoseconds the node last lost contact; 0: connected

	revMu      sync.Mutex
	generation string        // P/generation as last read: checkGeneration
	seen       int64         // the highest revision etcd answered a read, write or grant with
	epoch      int64         // how many times etcd was seen to go back in time
	rewound    chan struct{} // closed at the next time it does

	mu        sync.Mutex
	leaseDone chan struct{} // closed when the current lease is lost
	sessions  []func(ctx context.Context, lease clientv3.LeaseID) error
	leaving   []func(ctx context.Context)
	nodes     map[string]Node
	nodesCh   chan struct{} // closed at the next change of nodes
	started   atomic.Bool

	noLeaseWarnEvery time.Duration // how often a node without a lease says so; default a minute
}

// New makes a Cluster; it connects lazily (in Run), so a node starts while
// etcd is unreachable.
func New(opts Options) (*Cluster, error) {
	if ps := opts.Config.Check(); len(ps) > 0 {
		return nil, errors.New(ps[0].Msg)
	}
	if opts.Log == nil {
		opts.Log = slog.Default()
	}
	if opts.TTL == 0 {
		opts.TTL = opts.Config.LeaseTTL
	}
	if opts.TTL == 0 {
		opts.TTL = 10 * time.Second
	}
	opts.TTL = max(opts.TTL.Round(time.Second), 2*time.Second)
	if opts.Timeout == 0 {
		opts.Timeout = 3 * time.Second
	}
	tc, err := opts.Config.tlsConfig()
	if err != nil {
		return nil, err
	}
	cli, err := clientv3.New(clientv3.Config{
		Endpoints: opts.Config.Etcd, TLS: tc, Logger: zap.NewNop(),
		DialTimeout: opts.Timeout,
		// gRPC keep-alives find a dead member (a partition, a killed
		// process) in seconds, not at the kernel's TCP timeout.
		DialKeepAliveTime: 2 * time.Second, DialKeepAliveTimeout: 2 * time.Second,
		PermitWithoutStream: true,
		// gRPC's default reconnect backoff grows to 2 minutes: after a
		// long etcd outage a node would lag that long behind the others.
		DialOptions: []grpc.DialOption{grpc.WithConnectParams(grpc.ConnectParams{
			Backoff:           backoff.Config{BaseDelay: 100 * time.Millisecond, Multiplier: 1.6, Jitter: 0.2, MaxDelay: 2 * time.Second},
			MinConnectTimeout: 2 * time.Second,
		})},
	})
	if err != nil {
		return nil, err
	}
	c := &Cluster{opts: opts, cfg: opts.Config, tls: tc, prefix: opts.Config.prefix(), log: opts.Log.With("cluster_node", opts.Config.Node), cli: cli,
		nodes: map[string]Node{}, nodesCh: make(chan struct{}), leaseDone: make(chan struct{}), rewound: make(chan struct{}),
		noLeaseWarnEvery: time.Minute}
	c.self = Node{Name: opts.Config.Node, Region: opts.Config.Region, Version: opts.Version, Address: opts.Address, Started: time.Now().UTC()}
	c.disconnects.Store(time.Now().UnixNano())
	c.metrics = newMetrics(c, opts.Registerer)
	return c, nil
}

// SetAddress sets the API address the node registers; call before Run.
func (c *Cluster) SetAddress(addr string) { c.self.Address = addr }

// Client returns the etcd client.
func (c *Cluster) Client() *clientv3.Client { return c.cli }

// Self returns this node's registration.
func (c *Cluster) Self() Node { return c.self }

// Key returns the full key of a path under the prefix ("nodes/ns1" ->
// "/geodns/nodes/ns1").
func (c *Cluster) Key(path string) string { return c.prefix + "/" + path }

// TTL returns the lease TTL.
func (c *Cluster) TTL() time.Duration { return c.opts.TTL }

// Timeout returns the per-request timeout.
func (c *Cluster) Timeout() time.Duration { return c.opts.Timeout }

// Log returns the cluster's logger.
func (c *Cluster) Log() *slog.Logger { return c.log }

// Lease returns the current lease (0 while there is none) and a channel
// closed when it is lost.
func (c *Cluster) Lease() (clientv3.LeaseID, <-chan struct{}) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return clientv3.LeaseID(c.lease.Load()), c.leaseDone
}

// OnSession registers f, run under every new lease (in its own goroutine,
// again with each new lease) with a context that ends when the lease is
// lost: to put keys under the lease and keep them current. An error is
// logged and f is run again after a pause, while the lease lasts. Call
// before Run.
func (c *Cluster) OnSession(f func(ctx context.Context, lease clientv3.LeaseID) error) {
	if c.started.Load() {
		panic("cluster: OnSession after Run")
	}
	c.sessions = append(c.sessions, f)
}

// OnLeave registers f, run when the node leaves the set on purpose (Run's
// context ended) before its lease is revoked, with a context of a second:
// to say so while the node can. Call before Run.
func (c *Cluster) OnLeave(f func(ctx context.Context)) {
	if c.started.Load() {
		panic("cluster: OnLeave after Run")
	}
	c.leaving = append(c.leaving, f)
}

// Connected reports whether the node has the shared view now: it holds a
// lease whose keep-alive etcd answered within the TTL. (Keep-alives go
// every third of it; one lost with a dying etcd member is retried after
// half a second, so a shorter bound would flap while a member fails over.)
func (c *Cluster) Connected() bool { return c.Stale() == 0 }

// Stale returns how long the node has been without the shared view; 0
// when connected.
func (c *Cluster) Stale() time.Duration {
	if c.lease.Load() == 0 {
		return time.Since(time.Unix(0, c.disconnects.Load()))
	}
	last := time.Unix(0, c.contact.Load())
	if since := time.Since(last); since > c.opts.TTL {
		return since
	}
	return 0
}

// touch records an answer from etcd.
func (c *Cluster) touch() { c.contact.Store(time.Now().UnixNano()) }

// A floor is what the node had seen of etcd's history when it sent a
// request: the epoch and the highest revision.
type floor struct{ epoch, rev int64 }

// floor returns the node's floor now, for a request about to be sent.
func (c *Cluster) floor() floor {
	c.revMu.Lock()
	defer c.revMu.Unlock()
	return floor{c.epoch, c.seen}
}

// saw raises the highest revision seen (from any answer: a watch's too).
func (c *Cluster) saw(rev int64) {
	c.revMu.Lock()
	c.seen = max(c.seen, rev)
	c.revMu.Unlock()
}

// observe records the revision of an answer to a read, a write or a lease
// grant sent at floor f, and returns the epoch it belongs to and a channel
// closed when that epoch ends. etcd's revision never goes back, unless its
// data was lost (a member rebuilt empty, a restore from an older snapshot)
// or another cluster took its address: the revisions the node has seen
// then mean nothing there, and a watch resumed from one waits, silent, for
// the new history to reach it. An answer that raft applied after
// everything committed before it was sent (these are) cannot have a
// revision below one the node saw before sending it, from whatever
// answer, watches included (a member's watch is never ahead of the
// commit). One that does starts a new epoch, in which every Mirror reads
// everything again. (Answers to requests sent at once arrive in any
// order, so each is held to its own floor, not to the others'.)
func (c *Cluster) observe(f floor, rev int64) (int64, <-chan struct{}) {
	c.revMu.Lock()
	defer c.revMu.Unlock()
	switch {
	case f.epoch == c.epoch && rev < f.rev:
		c.rewindLocked(rev, "revision", rev, "seen", f.rev)
	case f.epoch == c.epoch:
		c.seen = max(c.seen, rev)
	}
	return c.epoch, c.rewound
}

// rewindLocked starts a new epoch at revision rev: every Mirror reads
// everything again. Under revMu.
func (c *Cluster) rewindLocked(rev int64, why ...any) {
	c.log.Warn("cluster: etcd went back in time (its data was lost or replaced); reading the shared state again", why...)
	c.metrics.rewinds.Inc()
	c.epoch++
	close(c.rewound)
	c.rewound = make(chan struct{})
	c.seen = rev // where the new history starts
}

const generationKey = "generation"

// checkGeneration reads P/generation, a random value the first node to
// find it missing puts there, and starts a new epoch when it is not the
// value the node saw before: etcd's data was lost and rebuilt, even when
// the new history's revisions already passed all the node saw (revisions
// alone cannot tell then). Called with each new lease, which a data loss
// always takes (the lease is gone with it).
func (c *Cluster) checkGeneration(ctx context.Context) {
	key := c.Key(generationKey)
	gctx, cancel := context.WithTimeout(ctx, c.opts.Timeout)
	defer cancel()
	b := make([]byte, 16)
	rand.Read(b)
	t, err := c.cli.Txn(gctx).If(clientv3.Compare(clientv3.CreateRevision(key), "=", 0)).
		Then(clientv3.OpPut(key, hex.EncodeToString(b))).Else(clientv3.OpGet(key)).Commit()
	if err != nil {
		return // checked again with the next lease
	}
	gen := hex.EncodeToString(b)
	if !t.Succeeded {
		if kvs := t.Responses[0].GetResponseRange().Kvs; len(kvs) > 0 {
			gen = string(kvs[0].Value)
		}
	}
	c.revMu.Lock()
	defer c.revMu.Unlock()
	if c.generation != "" && gen != c.generation {
		c.rewindLocked(t.Header.Revision, "generation", gen, "was", c.generation)
	}
	c.generation = gen
}

// Nodes returns the live nodes, by name.
func (c *Cluster) Nodes() []Node {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := slices.Collect(maps.Values(c.nodes))
	slices.SortFunc(out, func(a, b Node) int { return compareStrings(a.Name, b.Name) })
	return out
}

// NodesChanged returns a channel closed at the next change of Nodes.
func (c *Cluster) NodesChanged() <-chan struct{} {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.nodesCh
}

func compareStrings(a, b string) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// Run keeps the node's lease and registration and the node list until
// ctx ends, then revokes the lease (the node leaves at once, not a TTL
// later). It returns an error, having written nothing under the node's
// name, when another live process holds that name (node names must be
// unique in the set): the caller should stop.
func (c *Cluster) Run(ctx context.Context) error {
	c.started.Store(true)
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	wg.Go(func() {
		c.Mirror(ctx, "nodes/", c.applyNodes)
	})
	err := c.keepLease(ctx)
	cancel()
	wg.Wait()
	return err
}

// Close closes the etcd client, once Run and every user of it are done.
func (c *Cluster) Close() error { return c.cli.Close() }

func (c *Cluster) applyNodes(u Update) {
	c.mu.Lock()
	defer c.mu.Unlock()
	next := maps.Clone(c.nodes)
	if u.Reset {
		next = map[string]Node{}
	}
	for k, v := range u.Puts {
		var n Node
		if err := json.Unmarshal(v, &n); err != nil || n.Name != k {
			c.log.Warn("cluster: bad node registration ignored", "key", c.Key("nodes/"+k))
			continue
		}
		next[k] = n
	}
	for _, k := range u.Deletes {
		delete(next, k)
	}
	if maps.EqualFunc(next, c.nodes, func(a, b Node) bool { return a == b }) {
		return
	}
	c.nodes = next
	close(c.nodesCh)
	c.nodesCh = make(chan struct{})
}

// heldError is a registration held under another lease by another
// process: the same node restarted (until its old lease lapses), or
// another process with the same node name.
type heldError struct {
	lease clientv3.LeaseID
	node  Node
}

func (e *heldError) Error() string {
	return fmt.Sprintf("node name %q is held by another live process (region %s, address %s, version %s, started %s); every node of the set needs its own name",
		e.node.Name, e.node.Region, e.node.Address, e.node.Version, e.node.Started.Format(time.RFC3339))
}

// register puts the node's registration under the lease, unless another
// process holds it (heldError): nothing under the node's name is written
// before it is registered, so that a second process with the same name
// never overwrites the first's registration, report or votes.
func (c *Cluster) register(ctx context.Context, lease clientv3.LeaseID) error {
	b, _ := json.Marshal(c.self)
	key := c.Key("nodes/" + c.self.Name)
	rctx, cancel := context.WithTimeout(ctx, c.opts.Timeout)
	defer cancel()
	put := clientv3.OpPut(key, string(b), clientv3.WithLease(lease))
	t, err := c.cli.Txn(rctx).If(clientv3.Compare(clientv3.CreateRevision(key), "=", 0)).Then(put).Else(clientv3.OpGet(key)).Commit()
	if err != nil || t.Succeeded {
		return err
	}
	kvs := t.Responses[0].GetResponseRange().Kvs
	if len(kvs) == 0 {
		return errors.New("registration changed meanwhile")
	}
	var held Node
	json.Unmarshal(kvs[0].Value, &held)
	// Taken over: this process's own (under a lease it lost, not yet
	// lapsed in etcd), or one under no lease (no live process's: written
	// by hand).
	if other := clientv3.LeaseID(kvs[0].Lease); other != lease && other != 0 && !held.Started.Equal(c.self.Started) {
		return &heldError{lease: other, node: held}
	}
	t, err = c.cli.Txn(rctx).If(clientv3.Compare(clientv3.ModRevision(key), "=", kvs[0].ModRevision)).Then(put).Commit()
	if err == nil && !t.Succeeded {
		err = errors.New("registration changed meanwhile") // its lease lapsed, say: the next session registers
	}
	return err
}

// heldFor is how long a registration may stay held by another lease
// before this node takes it as another live process's. A restarted node
// waits for the lease of its previous run to lapse: its TTL, or two when
// an etcd leader change gave it its full TTL again meanwhile (etcd does
// that for every lease), and a margin for etcd's expiry check (every
// 500 ms). A live process's lease never lapses.
func (c *Cluster) heldFor(ctx context.Context, lease clientv3.LeaseID) time.Duration {
	tctx, cancel := context.WithTimeout(ctx, c.opts.Timeout)
	defer cancel()
	ttl := c.opts.TTL
	if r, err := c.cli.TimeToLive(tctx, lease); err == nil && r.GrantedTTL > 0 {
		ttl = time.Duration(r.GrantedTTL) * time.Second
	}
	return 2*ttl + 2*time.Second
}

// keepLease grants a lease, keeps it alive and runs the session work
// under it; when it is lost (etcd unreachable for a TTL, or expired), it
// grants a new one, until ctx ends. It returns an error when another live
// process holds this node's name.
func (c *Cluster) keepLease(ctx context.Context) error {
	backoff := 100 * time.Millisecond
	var failing, warned time.Time // since when grants fail; the last warning
	var held clientv3.LeaseID     // the other lease holding the registration
	var heldUntil time.Time       // when it has been held too long to be a restart's
	for ctx.Err() == nil {
		gctx, cancel := context.WithTimeout(ctx, c.opts.Timeout)
		f := c.floor()
		g, err := c.cli.Grant(gctx, int64(c.opts.TTL/time.Second))
		cancel()
		if err != nil {
			// A wrong address or a dead etcd must show in the log, but
			// the retries come every few seconds: warn when it starts,
			// then at a bounded rate.
			if now := time.Now(); ctx.Err() == nil {
				if failing.IsZero() {
					failing = now
				}
				if warned.IsZero() || now.Sub(warned) >= c.noLeaseWarnEvery {
					args := []any{"etcd", c.cfg.Etcd, "error", err, "failing_for", now.Sub(failing).Round(time.Second).String()}
					if errors.Is(err, context.DeadlineExceeded) {
						args = append(args, "dial", c.dialErrors(ctx))
					}
					c.log.Warn("cluster: no lease from etcd; serving the last shared view, changes are refused", args...)
					warned = now
				}
			}
			sleep(ctx, backoff)
			backoff = min(2*backoff, c.opts.TTL/3)
			continue
		}
		failing, warned = time.Time{}, time.Time{}
		backoff = 100 * time.Millisecond
		c.touch()
		c.observe(f, g.Revision)
		c.checkGeneration(ctx)
		var he *heldError
		if err := c.session(ctx, g.ID); errors.As(err, &he) {
			now := time.Now()
			if he.lease != held {
				held, heldUntil = he.lease, now.Add(c.heldFor(ctx, he.lease))
				c.log.Info("cluster: this node's name is registered under another lease; waiting for it to lapse (a restart's)",
					"lease", int64(he.lease), "region", he.node.Region, "started", he.node.Started)
			} else if now.After(heldUntil) {
				c.log.Error("cluster: another live process uses this node's name; stopping", "error", he.Error())
				return he
			}
			sleep(ctx, 500*time.Millisecond)
		} else if err != nil {
			sleep(ctx, backoff)
		}
	}
	return nil
}

// dialErrors connects to each endpoint as the client would (TCP, then
// TLS) and says why each it cannot reach fails; "" when all answer. The
// client's own error is only "context deadline exceeded" when no member
// answers, which names neither a refused port nor a wrong certificate.
func (c *Cluster) dialErrors(ctx context.Context) string {
	tc := c.tls
	errs := make([]error, len(c.cfg.Etcd))
	var wg sync.WaitGroup
	for i, e := range c.cfg.Etcd {
		wg.Go(func() {
			u, err := url.Parse(e)
			if err != nil {
				errs[i] = err
				return
			}
			d := &net.Dialer{Timeout: c.opts.Timeout}
			conn, err := d.DialContext(ctx, "tcp", u.Host)
			if err != nil {
				errs[i] = err
				return
			}
			defer conn.Close()
			if u.Scheme == "https" && tc != nil {
				tc := tc.Clone()
				tc.ServerName = u.Hostname()
				hctx, cancel := context.WithTimeout(ctx, c.opts.Timeout)
				defer cancel()
				if err := tls.Client(conn, tc).HandshakeContext(hctx); err != nil {
					errs[i] = fmt.Errorf("%s: TLS: %w", u.Host, err)
				}
			}
		})
	}
	wg.Wait()
	var out []string
	for _, err := range errs {
		if err != nil {
			out = append(out, err.Error())
		}
	}
	return strings.Join(out, "; ")
}

// session holds one lease until it is lost or ctx ends. It registers
// the node first: when that fails, nothing else runs under the lease,
// which is revoked, and the error is returned.
func (c *Cluster) session(ctx context.Context, id clientv3.LeaseID) error {
	sctx, cancel := context.WithCancel(ctx)
	defer cancel()
	ka, err := c.cli.KeepAlive(sctx, id)
	if err != nil {
		return err
	}
	if err := c.register(sctx, id); err != nil {
		cancel()
		rctx, rcancel := context.WithTimeout(context.Background(), time.Second)
		c.cli.Revoke(rctx, id)
		rcancel()
		return err
	}
	c.mu.Lock()
	c.lease.Store(int64(id))
	done := c.leaseDone
	c.mu.Unlock()
	c.disconnects.Store(0)
	c.log.Info("cluster: connected", "lease", int64(id), "etcd", c.cfg.Etcd)
	var wg sync.WaitGroup
	for _, f := range c.sessions {
		wg.Go(func() {
			for sctx.Err() == nil {
				err := f(sctx, id)
				if err == nil || sctx.Err() != nil {
					return
				}
				c.log.Warn("cluster: session work failed; retrying", "error", err)
				sleep(sctx, c.opts.TTL/4)
			}
		})
	}
	for range ka {
		c.touch()
	}
	// The keep-alive channel closes when ctx ends or when no answer came
	// for a whole TTL: the lease is gone, or as good as gone.
	cancel()
	wg.Wait()
	c.mu.Lock()
	c.lease.Store(0)
	close(done)
	c.leaseDone = make(chan struct{})
	c.mu.Unlock()
	c.disconnects.Store(c.contact.Load())
	if ctx.Err() != nil {
		for _, f := range c.leaving {
			lctx, lcancel := context.WithTimeout(context.Background(), time.Second)
			f(lctx)
			lcancel()
		}
		rctx, rcancel := context.WithTimeout(context.Background(), time.Second)
		c.cli.Revoke(rctx, id) // leave at once; a dead etcd lets the lease lapse instead
		rcancel()
		return nil
	}
	c.log.Warn("cluster: lost the etcd lease; serving the last shared view until etcd answers again", "lease", int64(id))
	return nil
}

// sleep waits d or until ctx ends.
func sleep(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}
