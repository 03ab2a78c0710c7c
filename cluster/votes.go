package cluster

import (
	"cmp"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"maps"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/geodns/geodns/health"
	"github.com/geodns/geodns/zones"
	"github.com/prometheus/client_golang/prometheus"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// Health votes on etcd.
//
//	P/votes/<node>/<vote id>   "u|d <since ms> <back ms>": the node's state of
//	                           one probe (health.VoteID), under its lease
//
// A node writes only its own transitions (batched, every Batch at most),
// rewrites all of its votes under each new lease, and mirrors everyone's
// into its health manager, which decides each probe by its check's quorum
// rule; a dead node's votes go with its lease. Which node probes what is
// rendezvous hashing of the probe's vote id over the live nodes: every
// node computes the same k probers for each probe without talking, and a
// node's death moves only its own share (its heirs probe it at once). A
// node that joins takes its share over: the old probers keep probing and
// voting until the new one's vote is in (health.Sharing.Probers).
//
// Nodes share a probe only with nodes that have it: the live nodes are
// grouped by the probes they have (Report.Probes), and each group shares
// its probes among itself. While nodes run different versions of a zone
// (a rolling deploy, a file that fails to load on one node), a probe
// whose vote id changed is not given to a node that does not have it,
// where nobody would probe it; a probe both versions have is probed in
// each group. A probe that still gets no vote for the partition grace
// (a node's report not seen yet) is probed by every node that has it
// (health.Sharing.Grace).

// VotesOptions configure Votes.
type VotesOptions struct {
	// Probers is how many live nodes probe each target; 0: every live
	// node, up to 3.
	Probers int
	// Grace is how long a node cut off from etcd keeps the last agreed
	// health before its own probes decide; default 10s.
	Grace time.Duration
	// Batch is the shortest time between two writes of the node's votes;
	// default 100ms.
	Batch time.Duration
}

// Votes shares a node's health with the NS set. Build it with NewVotes
// and run it with Run; the health manager does the rest.
type Votes struct {
	c       *Cluster
	h       *health.Manager
	opts    VotesOptions
	metrics *voteMetrics
	reports *Reports // nil: every live node is taken to have every probe
}

// UseReports has probes shared only among nodes with the same probes, as
// their reports say; call before Run.
func (v *Votes) UseReports(r *Reports) { v.reports = r }

// NewVotes shares h's health through c.
func NewVotes(c *Cluster, h *health.Manager, opts VotesOptions, reg prometheus.Registerer) *Votes {
	if opts.Grace == 0 {
		opts.Grace = 10 * time.Second
	}
	if opts.Batch == 0 {
		opts.Batch = 100 * time.Millisecond
	}
	return &Votes{c: c, h: h, opts: opts, metrics: newVoteMetrics(reg)}
}

// Run mirrors the set's votes into the manager, writes this node's, and
// sets which probes it runs, until ctx ends.
func (v *Votes) Run(ctx context.Context) error {
	done := make(chan struct{})
	go func() {
		defer close(done)
		v.c.Mirror(ctx, "votes/", v.apply)
	}()
	v.loop(ctx)
	<-done
	return nil
}

// apply hands a step of the mirrored votes to the manager.
func (v *Votes) apply(u Update) {
	out := make(map[string]map[string]*health.Vote, len(u.Puts)+len(u.Deletes))
	set := func(key string, vote *health.Vote) {
		node, id, ok := strings.Cut(key, "/")
		if !ok {
			return
		}
		if out[id] == nil {
			out[id] = map[string]*health.Vote{}
		}
		out[id][node] = vote
	}
	for k, b := range u.Puts {
		vote, ok := decodeVote(b)
		if !ok {
			v.c.log.Warn("cluster: bad vote ignored", "key", v.c.Key("votes/"+k))
			continue
		}
		set(k, &vote)
	}
	for _, k := range u.Deletes {
		set(k, nil)
	}
	v.h.UpdateVotes(u.Reset, out)
}

// sharing is what SetSharing was last given, to call it only on a change.
type sharing struct {
	alone   bool
	nodes   string // the probers' names, joined
	probers int
	joined  bool // has been connected: until then the manager is left alone (a single node's health)
}

func (v *Votes) loop(ctx context.Context) {
	var (
		written  clientv3.LeaseID            // the lease this node's votes are written under; 0: none
		pending  = map[string]*health.Vote{} // drained, not yet written
		last     sharing
		lastPut  time.Time
		tick     = time.NewTicker(v.opts.Batch)
		wantPush bool
	)
	defer tick.Stop()
	for {
		var reports <-chan struct{} // nil: never
		if v.reports != nil {
			reports = v.reports.Updated()
		}
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		case <-v.c.NodesChanged():
		case <-reports:
		case <-v.h.VotesChanged():
			wantPush = true
			// Batch: a burst of transitions (a datacenter dies) is one write.
			if wait := v.opts.Batch - time.Since(lastPut); wait > 0 {
				sleep(ctx, wait)
			}
		}
		last = v.share(last)
		lease, _ := v.c.Lease()
		switch {
		case lease == 0 || !v.c.Connected():
			written = 0 // written again under the next lease
			continue
		case lease != written:
			clear(pending)
			if v.resync(ctx, lease) {
				written = lease
			}
			lastPut, wantPush = time.Now(), false
			continue
		}
		if !wantPush && len(pending) == 0 {
			continue
		}
		maps.Copy(pending, v.h.DrainVotes())
		if len(pending) > 0 && v.write(ctx, lease, pending) {
			clear(pending)
		}
		lastPut, wantPush = time.Now(), false
	}
}

// share tells the manager which probes this node runs and whether it is
// alone, when that changed.
func (v *Votes) share(last sharing) sharing {
	next := last
	switch {
	case v.c.Connected():
		if !last.joined || last.alone {
			v.c.log.Info("cluster: health decided by the NS set's votes")
		}
		next.alone, next.joined = false, true
		names := []string{v.c.self.Name}
		var mine string
		var theirs map[string]string
		if v.reports != nil {
			mine, theirs = v.reports.probeSets()
		}
		for _, n := range v.c.Nodes() {
			if n.Name == v.c.self.Name {
				continue
			}
			// Left out: a node without this node's probes, or not known
			// yet. Rendezvous over fewer nodes gives a probe one of them
			// or this node: a prober more, never none.
			if p, ok := theirs[n.Name]; v.reports == nil || ok && p == mine {
				names = append(names, n.Name)
			}
		}
		slices.Sort(names)
		next.nodes = strings.Join(names, ",")
		next.probers = v.opts.Probers
		if next.probers == 0 {
			next.probers = min(len(names), 3)
		}
	case last.joined && !last.alone && v.c.Stale() >= v.opts.Grace:
		v.c.log.Warn("cluster: cut off from etcd past the partition grace; this node probes every target and its own results decide",
			"stale", v.c.Stale().Round(time.Millisecond), "grace", v.opts.Grace)
		next.alone = true
	case !last.joined && !last.alone && v.c.Stale() >= v.opts.Grace:
		// Not joined since it started: the manager was never given a
		// share, so it already probes every target and decides alone.
		// Said once it has waited as long as a partition would.
		v.c.log.Warn("cluster: not connected to etcd since start; this node probes every target and its own results decide until it joins",
			"stale", v.c.Stale().Round(time.Millisecond))
		next.alone = true
		v.metrics.alone.Set(1)
		return next
	}
	if next == last || !next.joined {
		return next
	}
	s := health.Sharing{Alone: next.alone, Grace: v.opts.Grace}
	if !next.alone {
		nodes := strings.Split(next.nodes, ",")
		s.Runs = rendezvous(v.c.self.Name, nodes, next.probers)
		s.Probers = probersOf(nodes, next.probers)
	}
	v.h.SetSharing(s)
	v.metrics.alone.Set(b2f(next.alone))
	return next
}

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

// rendezvous returns whether self is one of the k nodes with the highest
// score for a probe (highest random weight hashing): the same on every
// node for the same list, and a node's leaving moves only its own probes.
// The score is a hash every node computes alike (no per-process seed).
func rendezvous(self string, nodes []string, k int) func(id string) bool {
	if k >= len(nodes) {
		return func(string) bool { return true }
	}
	return func(id string) bool {
		mine := score(self, id)
		above := 0
		for _, n := range nodes {
			if n == self {
				continue
			}
			if s := score(n, id); s > mine || (s == mine && n < self) {
				if above++; above >= k {
					return false
				}
			}
		}
		return true
	}
}

// probersOf returns the k nodes rendezvous picks for a probe (all of
// them when there are no more than k), as rendezvous decides it on each.
func probersOf(nodes []string, k int) func(id string) []string {
	return func(id string) []string {
		if k >= len(nodes) {
			return slices.Clone(nodes)
		}
		type scored struct {
			name  string
			score uint64
		}
		all := make([]scored, len(nodes))
		for i, n := range nodes {
			all[i] = scored{n, score(n, id)}
		}
		slices.SortFunc(all, func(a, b scored) int {
			switch {
			case a.score != b.score:
				return -cmp.Compare(a.score, b.score) // highest first
			default:
				return compareStrings(a.name, b.name) // a tie to the first name, as in rendezvous
			}
		})
		out := make([]string, k)
		for i := range out {
			out[i] = all[i].name
		}
		return out
	}
}

// probesHash is a hash of the vote ids of every probe of set that votes
// (all but static checks), sorted: the same on two nodes with the same
// probes, whatever else differs.
func probesHash(set *zones.Set) string {
	ids := map[string]struct{}{}
	for _, z := range set.Zones() {
		for _, svc := range z.Services {
			for _, ep := range svc.Endpoints {
				if ep.Probe != nil && ep.Probe.Check.Type != "static" {
					ids[health.VoteID(ep.Probe.Key)] = struct{}{}
				}
			}
		}
	}
	h := sha256.New()
	for _, id := range slices.Sorted(maps.Keys(ids)) {
		h.Write([]byte(id))
		h.Write([]byte{0})
	}
	return hex.EncodeToString(h.Sum(nil)[:16])
}

// score is FNV-1a of node, a zero byte and id, finished with a
// SplitMix64 step so that similar names spread.
func score(node, id string) uint64 {
	h := uint64(14695981039346656037)
	for i := 0; i < len(node); i++ {
		h = (h ^ uint64(node[i])) * 1099511628211
	}
	h = (h ^ 0) * 1099511628211
	for i := 0; i < len(id); i++ {
		h = (h ^ uint64(id[i])) * 1099511628211
	}
	h ^= h >> 30
	h *= 0xbf58476d1ce4e5b9
	h ^= h >> 27
	h *= 0x94d049bb133111eb
	return h ^ (h >> 31)
}

// maxOps is the most operations in one transaction: etcd's default
// --max-txn-ops is 128.
const maxOps = 128

// write puts (or deletes) votes under the lease; false: not all written.
func (v *Votes) write(ctx context.Context, lease clientv3.LeaseID, votes map[string]*health.Vote) bool {
	ops := make([]clientv3.Op, 0, len(votes))
	for _, id := range slices.Sorted(maps.Keys(votes)) {
		key := v.c.Key("votes/" + v.c.self.Name + "/" + id)
		if vote := votes[id]; vote != nil {
			ops = append(ops, clientv3.OpPut(key, encodeVote(*vote), clientv3.WithLease(lease)))
		} else {
			ops = append(ops, clientv3.OpDelete(key))
		}
	}
	return v.commit(ctx, ops)
}

func (v *Votes) commit(ctx context.Context, ops []clientv3.Op) bool {
	for len(ops) > 0 {
		n := min(len(ops), maxOps)
		tctx, cancel := context.WithTimeout(ctx, v.c.opts.Timeout)
		_, err := v.c.cli.Txn(tctx).Then(ops[:n]...).Commit()
		cancel()
		if err != nil {
			if ctx.Err() == nil {
				v.c.log.Debug("cluster: votes not written", "error", err)
			}
			return false
		}
		v.c.touch()
		v.metrics.txns.Inc()
		v.metrics.written.Add(float64(n))
		ops = ops[n:]
	}
	return true
}

// resync writes all of this node's votes under a new lease and deletes
// any other it finds (from a lease not yet expired); false: try again.
func (v *Votes) resync(ctx context.Context, lease clientv3.LeaseID) bool {
	mine := v.h.LocalVotes()
	prefix := v.c.Key("votes/" + v.c.self.Name + "/")
	gctx, cancel := context.WithTimeout(ctx, v.c.opts.Timeout)
	r, err := v.c.cli.Get(gctx, prefix, clientv3.WithPrefix(), clientv3.WithKeysOnly())
	cancel()
	if err != nil {
		return false
	}
	all := make(map[string]*health.Vote, len(mine))
	for _, kv := range r.Kvs {
		all[strings.TrimPrefix(string(kv.Key), prefix)] = nil
	}
	for id, vote := range mine {
		all[id] = &vote
	}
	if !v.write(ctx, lease, all) {
		// Whatever was not written is written in full under the next try.
		return false
	}
	v.c.log.Debug("cluster: votes written under a new lease", "votes", len(mine), "lease", int64(lease))
	return true
}

// encodeVote is a vote's value: u or d, then since and back in unix
// milliseconds (0: never).
func encodeVote(x health.Vote) string {
	b := make([]byte, 0, 32)
	if x.Up {
		b = append(b, 'u')
	} else {
		b = append(b, 'd')
	}
	b = append(b, ' ')
	b = strconv.AppendInt(b, ms(x.Since), 10)
	b = append(b, ' ')
	b = strconv.AppendInt(b, ms(x.Back), 10)
	return string(b)
}

func ms(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixMilli()
}

func fromMS(v int64) time.Time {
	if v == 0 {
		return time.Time{}
	}
	return time.UnixMilli(v)
}

func decodeVote(b []byte) (health.Vote, bool) {
	f := strings.Fields(string(b))
	if len(f) != 3 || (f[0] != "u" && f[0] != "d") {
		return health.Vote{}, false
	}
	since, err1 := strconv.ParseInt(f[1], 10, 64)
	back, err2 := strconv.ParseInt(f[2], 10, 64)
	if err1 != nil || err2 != nil {
		return health.Vote{}, false
	}
	return health.Vote{Up: f[0] == "u", Since: fromMS(since), Back: fromMS(back)}, true
}

type voteMetrics struct {
	written prometheus.Counter
	txns    prometheus.Counter
	alone   prometheus.Gauge
}

func newVoteMetrics(reg prometheus.Registerer) *voteMetrics {
	m := &voteMetrics{
		written: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "geodns_cluster_votes_written_total",
			Help: "Health votes this node wrote to etcd (puts and deletes: its transitions, and all its votes under each new lease).",
		}),
		txns: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "geodns_cluster_vote_txns_total",
			Help: "etcd transactions that wrote this node's health votes.",
		}),
		alone: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "geodns_cluster_health_alone",
			Help: "1 while this node, cut off from etcd past the partition grace, decides health from its own probes; 0 while the NS set's votes decide.",
		}),
	}
	if reg != nil {
		reg.MustRegister(m.written, m.txns, m.alone)
	}
	return m
}
