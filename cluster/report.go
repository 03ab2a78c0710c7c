package cluster

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/geodns/geodns/zones"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// Report is what one node serves, as it publishes it under its lease at
// P/report/<node>: the source of drift.
type Report struct {
	Node    string `json:"node"`
	Region  string `json:"region,omitempty"`
	Version string `json:"version,omitempty"`
	// OperatorRevision is the etcd mod revision of the operator state
	// the node has applied.
	OperatorRevision int64                 `json:"operator_revision"`
	Zones            map[string]ZoneReport `json:"zones"`
	// ZonesOmitted is how many zones the node serves but left out of
	// Zones: the whole report was larger than etcd takes in one request
	// (--max-request-bytes). They count for no drift.
	ZonesOmitted int               `json:"zones_omitted,omitempty"`
	GeoIP        map[string]string `json:"geoip"` // database file name -> sha256
	// Probes is a hash of the vote ids of the probes the node has (see
	// probesHash): nodes with the same one have the same probes, and
	// share them among themselves (Votes). "": not known (an older node).
	Probes string `json:"probes,omitempty"`
}

// ZoneReport is one zone as a node serves it.
type ZoneReport struct {
	Serial uint32 `json:"serial"`
	Hash   string `json:"hash"` // sha256 of the content, without the serial
}

// Sources are what a node's report is made of.
type Sources struct {
	Zones    func() *zones.Set
	GeoIP    func() []string // paths of the GeoIP databases in use
	Operator *OperatorStore  // nil: none
}

// Reports publishes this node's report and mirrors every node's, to show
// drift: a node that serves a zone content, serial or GeoIP database
// other than most live nodes do.
type Reports struct {
	c    *Cluster
	src  Sources
	kick chan struct{}

	others  atomic.Pointer[map[string]Report] // live nodes' published reports
	updated chan struct{}                     // closed at the next change of others; under mu
	gone    atomic.Pointer[map[string]Gone]   // nodes lost or left, by name (P/gone/)
	mods    map[string]int64                  // the mod revision of each report in others; the mirror's own

	mu     sync.Mutex
	hashes map[string]fileHash // GeoIP path -> its hash, while its stamp holds
	probes struct {            // probesHash of the last zone set seen
		set  *zones.Set
		hash string
	}
}

type fileHash struct {
	mtime time.Time
	size  int64
	sum   string
}

// NewReports makes c's reports; call before c.Run, then run Run.
func NewReports(c *Cluster, src Sources) *Reports {
	r := &Reports{c: c, src: src, kick: make(chan struct{}, 1), hashes: map[string]fileHash{}, mods: map[string]int64{},
		updated: make(chan struct{})}
	empty := map[string]Report{}
	r.others.Store(&empty)
	noneGone := map[string]Gone{}
	r.gone.Store(&noneGone)
	c.OnSession(r.publish)
	c.OnLeave(r.leave)
	return r
}

// Gone is a node that was part of the set and is no longer live, as kept
// at P/gone/<node> for GoneFor: its last report and when it went.
type Gone struct {
	Report
	// State is "lost" (its lease lapsed: it died, or was cut off from
	// etcd and may still be serving its last view) or "left" (it stopped
	// and revoked its lease).
	State string    `json:"state"`
	Since time.Time `json:"since"`
}

// GoneFor is how long a node lost or left stays listed (unless it comes
// back): its key's own lease, never kept alive, takes it away.
const GoneFor = 24 * time.Hour

// Node states in a View.
const (
	StateLive = "live"
	StateLost = "lost"
	StateLeft = "left"
)

// Changed has the report published again now (zones or operator state
// changed); it never blocks.
func (r *Reports) Changed() {
	select {
	case r.kick <- struct{}{}:
	default:
	}
}

// Run mirrors every node's report, and the nodes gone, until ctx ends. A
// report deleted with its lease is a node lost: the first node to see it
// records its last report under P/gone/ (a node that left said so first).
func (r *Reports) Run(ctx context.Context) error {
	done := make(chan struct{})
	go func() {
		defer close(done)
		r.c.Mirror(ctx, "gone/", r.applyGone)
	}()
	r.c.Mirror(ctx, "report/", func(u Update) {
		prev := *r.others.Load()
		next := map[string]Report{}
		if !u.Reset {
			next = maps.Clone(prev)
		}
		for k, v := range u.Puts {
			var rep Report
			if json.Unmarshal(v, &rep) == nil && rep.Node == k {
				next[k] = rep
			}
		}
		for _, k := range u.Deletes {
			delete(next, k)
		}
		r.others.Store(&next)
		r.mu.Lock()
		close(r.updated)
		r.updated = make(chan struct{})
		r.mu.Unlock()
		r.updateMetrics()
		now := time.Now().UTC()
		for name, rep := range prev {
			if _, ok := next[name]; !ok && name != r.c.self.Name {
				go r.record(ctx, Gone{Report: rep, State: StateLost, Since: now}, r.mods[name])
				delete(r.mods, name)
			}
		}
		maps.Copy(r.mods, u.Mods)
	})
	<-done
	return nil
}

func (r *Reports) applyGone(u Update) {
	next := map[string]Gone{}
	if !u.Reset {
		next = maps.Clone(*r.gone.Load())
	}
	for k, v := range u.Puts {
		var g Gone
		if json.Unmarshal(v, &g) == nil && g.Node == k {
			next[k] = g
		}
	}
	for _, k := range u.Deletes {
		delete(next, k)
	}
	r.gone.Store(&next)
}

// record puts g at P/gone/<node> under a lease of GoneFor, unless a newer
// record is there (written after the node's last report, mod: another
// node was first, or the node said it left) or the node is back.
func (r *Reports) record(ctx context.Context, g Gone, mod int64) {
	if !r.c.Connected() {
		return // a node cut off cannot tell a loss from its own partition
	}
	b, _ := json.Marshal(g)
	tctx, cancel := context.WithTimeout(ctx, r.c.opts.Timeout)
	defer cancel()
	lease, err := r.c.cli.Grant(tctx, int64(GoneFor/time.Second))
	if err != nil {
		return
	}
	key := r.c.Key("gone/" + g.Node)
	t, err := r.c.cli.Txn(tctx).If(
		clientv3.Compare(clientv3.ModRevision(key), "<", mod),
		clientv3.Compare(clientv3.CreateRevision(r.c.Key("nodes/"+g.Node)), "=", 0),
		clientv3.Compare(clientv3.CreateRevision(r.c.Key("report/"+g.Node)), "=", 0),
	).Then(clientv3.OpPut(key, string(b), clientv3.WithLease(lease.ID))).Commit()
	if err != nil || !t.Succeeded {
		r.c.cli.Revoke(tctx, lease.ID) // unused; it would lapse in GoneFor anyway
		return
	}
	r.c.log.Warn("cluster: a node's lease lapsed; listed as lost", "node", g.Node, "for", GoneFor)
}

// leave records this node as left, as it stops.
func (r *Reports) leave(ctx context.Context) {
	g := Gone{Report: r.Self(), State: StateLeft, Since: time.Now().UTC()}
	b, _ := json.Marshal(g)
	lease, err := r.c.cli.Grant(ctx, int64(GoneFor/time.Second))
	if err != nil {
		return
	}
	r.c.cli.Put(ctx, r.c.Key("gone/"+g.Node), string(b), clientv3.WithLease(lease.ID))
}

// publishEvery is how often the report is rebuilt without a Changed
// (GeoIP databases reload on their own).
const publishEvery = time.Second

// publish keeps this node's report under the lease current.
func (r *Reports) publish(ctx context.Context, lease clientv3.LeaseID) error {
	t := time.NewTicker(publishEvery)
	defer t.Stop()
	last, back := "", false
	tooLarge := 0 // the size of the smallest report etcd refused as too large; 0: none
	put := func(b []byte) error {
		pctx, cancel := context.WithTimeout(ctx, r.c.opts.Timeout)
		defer cancel()
		_, err := r.c.cli.Put(pctx, r.c.Key("report/"+r.c.self.Name), string(b), clientv3.WithLease(lease))
		return err
	}
	for {
		rep := r.Self()
		b, _ := json.Marshal(rep)
		if tooLarge > 0 && len(b) >= tooLarge {
			b = withoutZones(rep)
		}
		if string(b) != last {
			err := put(b)
			if tooLargeErr(err) && rep.ZonesOmitted == 0 && len(rep.Zones) > 0 {
				// Published without its zones rather than not at all: the
				// node stays in every view, its operator revision and GeoIP
				// files in drift, and it is no longer listed as gone.
				if tooLarge == 0 || len(b) < tooLarge {
					tooLarge = len(b)
				}
				r.c.log.Warn("cluster: this node's report is larger than etcd takes in one request; published without its zones, which show in no drift",
					"bytes", len(b), "zones", len(rep.Zones))
				b = withoutZones(rep)
				err = put(b)
			}
			if err != nil {
				return err
			}
			last = string(b)
		}
		if !back {
			// Back: no longer lost or left. After the report is put, so
			// that a node recording this one as lost (its last report
			// deleted with the old lease) either sees the new report or
			// is undone here.
			dctx, cancel := context.WithTimeout(ctx, r.c.opts.Timeout)
			_, err := r.c.cli.Delete(dctx, r.c.Key("gone/"+r.c.self.Name))
			cancel()
			if err != nil {
				return err
			}
			back = true
		}
		r.updateMetrics()
		select {
		case <-ctx.Done():
			return nil
		case <-r.kick:
		case <-t.C:
		}
	}
}

// withoutZones is rep published without its zones (they are counted).
func withoutZones(rep Report) []byte {
	rep.ZonesOmitted, rep.Zones = len(rep.Zones), map[string]ZoneReport{}
	b, _ := json.Marshal(rep)
	return b
}

// Self returns this node's report as of now.
func (r *Reports) Self() Report {
	rep := Report{Node: r.c.self.Name, Region: r.c.self.Region, Version: r.c.self.Version,
		Zones: map[string]ZoneReport{}, GeoIP: map[string]string{}}
	if r.src.Operator != nil {
		rep.OperatorRevision = r.src.Operator.Revision()
	}
	if r.src.Zones != nil {
		if set := r.src.Zones(); set != nil {
			for _, z := range set.Zones() {
				rep.Zones[z.Origin] = ZoneReport{Serial: z.Serial, Hash: hex.EncodeToString(z.Hash[:])}
			}
			rep.Probes = r.probesOf(set)
		}
	}
	if r.src.GeoIP != nil {
		for _, p := range r.src.GeoIP() {
			if sum := r.fileHash(p); sum != "" {
				rep.GeoIP[filepath.Base(p)] = sum
			}
		}
	}
	return rep
}

// probesOf returns probesHash(set), computed once per set.
func (r *Reports) probesOf(set *zones.Set) string {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.probes.set != set {
		r.probes.set, r.probes.hash = set, probesHash(set)
	}
	return r.probes.hash
}

// Updated returns a channel closed at the next change of the other
// nodes' reports.
func (r *Reports) Updated() <-chan struct{} {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.updated
}

// probeSets returns this node's Probes and every other live node's, by
// name (those whose report is not known yet are left out).
func (r *Reports) probeSets() (self string, others map[string]string) {
	if r.src.Zones != nil {
		if set := r.src.Zones(); set != nil {
			self = r.probesOf(set)
		}
	}
	others = map[string]string{}
	for name, rep := range *r.others.Load() {
		if name != r.c.self.Name {
			others[name] = rep.Probes
		}
	}
	return self, others
}

// fileHash returns the sha256 of a file, hashed again only when its
// modification time or size change.
func (r *Reports) fileHash(path string) string {
	st, err := os.Stat(path)
	if err != nil {
		return ""
	}
	r.mu.Lock()
	h, ok := r.hashes[path]
	r.mu.Unlock()
	if ok && h.mtime.Equal(st.ModTime()) && h.size == st.Size() {
		return h.sum
	}
	f, err := os.Open(path)
	if err != nil {
		return ""
	}
	defer f.Close()
	sum := sha256.New()
	if _, err := io.Copy(sum, f); err != nil {
		return ""
	}
	h = fileHash{st.ModTime(), st.Size(), hex.EncodeToString(sum.Sum(nil))}
	r.mu.Lock()
	r.hashes[path] = h
	r.mu.Unlock()
	return h.sum
}

// View is the NS set as one node sees it: GET /api/v1/cluster.
type View struct {
	Node         string     `json:"node"`
	Connected    bool       `json:"connected"`
	StaleSeconds float64    `json:"stale_seconds"`
	Drift        bool       `json:"drift"` // some node serves something the others do not
	Nodes        []NodeView `json:"nodes"`
}

// NodeView is one node in a View: its registration and report, and what
// of it differs from most live nodes. A node lost or left shows its last
// report, for GoneFor or until it comes back.
type NodeView struct {
	Report
	Self      bool      `json:"self,omitempty"`
	State     string    `json:"state"`          // live, lost (its lease lapsed) or left (it stopped)
	Since     time.Time `json:"since,omitzero"` // when it was lost or left
	Connected bool      `json:"connected"`      // holds a lease (self: etcd answers)
	Address   string    `json:"address,omitempty"`
	Started   time.Time `json:"started,omitzero"`
	Drift     []string  `json:"drift,omitempty"` // live nodes only
}

// View returns the NS set as this node sees it: itself (as of now),
// every live node's last report, then the nodes lost or left.
func (r *Reports) View() View {
	v := View{Node: r.c.self.Name, Connected: r.c.Connected(), StaleSeconds: r.c.Stale().Seconds()}
	reports := r.all()
	live := map[string]Node{}
	for _, n := range r.c.Nodes() {
		live[n.Name] = n
	}
	drift := Drift(reports)
	shown := map[string]bool{}
	for _, rep := range reports {
		nv := NodeView{Report: rep, State: StateLive, Drift: drift[rep.Node]}
		if rep.Node == r.c.self.Name {
			nv.Self, nv.Connected, nv.Address, nv.Started = true, v.Connected, r.c.self.Address, r.c.self.Started
		} else if n, ok := live[rep.Node]; ok {
			nv.Connected, nv.Address, nv.Started = true, n.Address, n.Started
		}
		v.Drift = v.Drift || len(nv.Drift) > 0
		v.Nodes = append(v.Nodes, nv)
		shown[rep.Node] = true
	}
	for _, g := range *r.gone.Load() {
		if shown[g.Node] || time.Since(g.Since) > GoneFor {
			continue // back (or its key outlived a lease renewed by an etcd leader change)
		}
		v.Nodes = append(v.Nodes, NodeView{Report: g.Report, State: g.State, Since: g.Since})
	}
	slices.SortStableFunc(v.Nodes, func(a, b NodeView) int { return compareStrings(a.Node, b.Node) })
	return v
}

// all returns this node's report and every other node's, by node name.
func (r *Reports) all() []Report {
	others := *r.others.Load()
	out := []Report{r.Self()}
	for name, rep := range others {
		if name != r.c.self.Name {
			out = append(out, rep)
		}
	}
	slices.SortFunc(out, func(a, b Report) int { return compareStrings(a.Node, b.Node) })
	return out
}

// Drift returns, by node, what it serves that differs from what most
// nodes serve (a tie goes to the first node by name holding the value):
// a zone's content or serial, a zone missing or extra, a GeoIP database,
// the applied operator state.
func Drift(reports []Report) map[string][]string {
	out := map[string][]string{}
	if len(reports) < 2 {
		return out
	}
	// Each aspect: a key (zone origin, database name), and the value each
	// node has for it ("" when it has none).
	check := func(reports []Report, kind string, keys []string, val func(Report, string) string) {
		for _, k := range keys {
			count := map[string]int{}
			for _, rep := range reports {
				count[val(rep, k)]++
			}
			best, bestN := "", -1
			for _, rep := range reports {
				if v := val(rep, k); count[v] > bestN {
					best, bestN = v, count[v]
				}
			}
			for _, rep := range reports {
				if v := val(rep, k); v != best {
					out[rep.Node] = append(out[rep.Node], describe(kind, k, v, best))
				}
			}
		}
	}
	var zoneKeys, dbKeys []string
	for _, rep := range reports {
		zoneKeys = append(zoneKeys, slices.Collect(maps.Keys(rep.Zones))...)
		dbKeys = append(dbKeys, slices.Collect(maps.Keys(rep.GeoIP))...)
	}
	// A report whose zones were left out (too large for etcd) says
	// nothing of them: not "every zone missing".
	withZones := slices.DeleteFunc(slices.Clone(reports), func(rep Report) bool { return rep.ZonesOmitted > 0 })
	slices.Sort(zoneKeys)
	slices.Sort(dbKeys)
	check(withZones, "zone", slices.Compact(zoneKeys), func(rep Report, k string) string {
		z, ok := rep.Zones[k]
		if !ok {
			return ""
		}
		return fmt.Sprintf("serial %d hash %.12s", z.Serial, z.Hash)
	})
	check(reports, "geoip", slices.Compact(dbKeys), func(rep Report, k string) string {
		if s, ok := rep.GeoIP[k]; ok {
			return fmt.Sprintf("sha256 %.12s", s)
		}
		return ""
	})
	check(reports, "operator", []string{"state"}, func(rep Report, _ string) string {
		return fmt.Sprintf("revision %d", rep.OperatorRevision)
	})
	return out
}

func describe(kind, key, have, want string) string {
	if have == "" {
		have = "none"
	}
	if want == "" {
		want = "none"
	}
	return fmt.Sprintf("%s %s: %s, most nodes %s", kind, key, have, want)
}

// DriftKind returns the kind (zone, geoip, operator) of a Drift line.
func DriftKind(line string) string {
	for i := range len(line) {
		if line[i] == ' ' {
			return line[:i]
		}
	}
	return line
}

// updateMetrics sets geodns_cluster_drift: how many nodes drift, by kind.
func (r *Reports) updateMetrics() {
	counts := map[string]int{"zone": 0, "geoip": 0, "operator": 0}
	for _, lines := range Drift(r.all()) {
		seen := map[string]bool{}
		for _, l := range lines {
			if k := DriftKind(l); !seen[k] {
				seen[k] = true
				counts[k]++
			}
		}
	}
	for k, n := range counts {
		r.c.metrics.drift.WithLabelValues(k).Set(float64(n))
	}
}

// tooLargeErr tells an error of a request too large for etcd: the
// member's --max-request-bytes (ErrRequestTooLarge), or the client's own
// limit on a message it sends (2 MiB; gRPC's ResourceExhausted, which
// the client does not translate), reached first once the members'
// limit is raised past it.
func tooLargeErr(err error) bool {
	return errors.Is(err, rpctypes.ErrRequestTooLarge) || status.Code(err) == codes.ResourceExhausted
}
