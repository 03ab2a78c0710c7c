package health

import (
	"context"
	"crypto/x509"
	"log/slog"
	"maps"
	"math"
	"math/rand/v2"
	"net/netip"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/geodns/geodns/zones"
	"github.com/prometheus/client_golang/prometheus"
)

// Options configure a Manager; the zero value works.
type Options struct {
	// Allow lists the networks probes may connect to (probe_allow); a
	// target outside is not probed and is down with "target not allowed".
	// Empty: any.
	Allow []netip.Prefix
	// StateFile persists probe states across restarts. "": none. (Operator
	// state — drains, forces, dials — is package opstate's, in its own file.)
	StateFile string
	// MaxInFlight caps probes running at once. Default 4096: far above what
	// hung targets can hold (one per target for at most its timeout).
	MaxInFlight int
	// MaxKept caps the http(s) connections kept open between probes.
	// 0: the open-file limit less 4,096 for the rest of the server (DNS
	// over TCP, zone files, the API). Negative: none are kept.
	MaxKept int
	// RootCAs verifies https checks. nil: the system's roots.
	RootCAs *x509.CertPool
	Log     *slog.Logger
	// Registerer receives the health metrics. nil: not registered.
	Registerer prometheus.Registerer
	// OnChange is called after each new snapshot is published, with the
	// manager's lock held: it must only note the change (the router's
	// plan loop rebuilds from it). nil: none.
	OnChange func()
}

// Manager runs the probes of the served zones and publishes their state.
// Its methods are safe for concurrent use.
type Manager struct {
	prober  prober
	log     *slog.Logger
	metrics *metrics
	saver   *saver
	sem     chan struct{}

	// saveMu serializes writes of the state file.
	saveMu    sync.Mutex
	stateFile string

	epoch time.Time // the origin of the queue's times

	mu        sync.Mutex
	probes    map[string]*probe
	queue     probeHeap
	wake      chan struct{}
	zones     *zones.Set
	nums      map[*zones.Probe]int32 // the set's probes, numbered: index of their state in a Table
	byKey     map[string]int32       // the numbers by probe key
	numbering uint64                 // bumped when nums changes
	saved     map[string]savedProbe  // persisted states not yet claimed by a probe
	stateErr  error                  // the last state file write failed: not ready
	stateLog  time.Time              // when a failing write was last logged: once a minute while it fails
	onChange  func()
	gen       uint64 // the last snapshot's Version
	everReady bool
	batch     time.Duration // batchWindow of the probes' shortest interval
	async     bool          // Run's publisher is running: results publish through it
	dirty     chan struct{} // results changed the state since the last publish

	// NS set (votes.go): off until SetSharing.
	sharing   bool
	alone     bool                 // cut off past the grace period
	runs      func(id string) bool // which probes this node runs; nil: all
	probers   func(id string) []string
	chosen    func(id string) []string // Sharing.Probers, also outside a handover
	grace     time.Duration            // Sharing.Grace
	handing   map[*probe]struct{}      // probes this node hands over (handover)
	adopted   map[*probe]struct{}      // probes this node runs as orphans (adoptLocked)
	emptied   map[string]time.Time     // when an id's votes last went to none, while it has none
	votes     map[string][]Vote        // every node's votes, by VoteID
	voteDirty map[string]struct{}      // own votes changed since DrainVotes
	voteCh    chan struct{}

	table atomic.Pointer[Table]
}

// probe is one scheduled probe and its state machine.
type probe struct {
	key   string
	vid   string // VoteID(key)
	num   int32  // its index in the published Table
	spec  *zones.Probe
	check string // the check's name, for logs and metrics
	site  string // a site it serves, for logs and metrics
	ids   []string
	// eps are its endpoints as site and ID ("east 192.0.2.1"): an address
	// at two sites is two endpoints, each with its own probe and state.
	eps []string

	removed  bool           // no endpoint uses it any more; its queue entry is dropped when it comes up
	turn     uint32         // its queue entry's; an entry of an older turn (rescheduled) is dropped when it comes up
	target   netip.AddrPort // spec.Target parsed, if the event loop runs it (loopTarget)
	inflight bool
	conn     *conn // kept open for the next run; the running probe owns it while inflight
	series   series

	up      bool
	known   bool // has had a result (or a persisted state)
	results int  // results since it started here
	succ    int
	fail    int
	since   time.Time
	reason  string
	back    time.Time // when it last went from down to up; zero: never seen

	runs    bool      // this node sends it (always, outside an NS set)
	handing bool      // this node hands it over (handOverLocked): it runs it until its heirs voted
	heirs   []string  // the nodes that take it over
	handEnd time.Time // when the handover ends whatever the heirs did
	adopted bool      // run here, not by rendezvous: nobody voted on it for the grace (orphanLocked)
	watched time.Time // when it was set up, or the node joined: its votes count from then
	fresh   int       // results since it started running here (its vote counts from the first)
	verdict State     // the NS set's last decision
	decided bool      // verdict holds one
	eff     State     // its state in the last table
	voted   bool      // eff is the set's decision, not this node's own state
	// last is the latest result; lastErr and lastErrAt the latest failure
	// (kept while it passes again, so a status page can say why it flapped).
	last      string
	lastErr   string
	lastErrAt time.Time
}

// NewManager returns a manager with the persisted state, if any, loaded.
func NewManager(opts Options) *Manager {
	if opts.MaxInFlight <= 0 {
		opts.MaxInFlight = 4096
	}
	if opts.Log == nil {
		opts.Log = slog.Default()
	}
	if opts.MaxKept == 0 {
		var lim syscall.Rlimit
		if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err == nil && lim.Cur > 4096 {
			opts.MaxKept = int(min(lim.Cur-4096, math.MaxInt32))
		}
	}
	m := &Manager{
		prober:    prober{allow: opts.Allow, rootCAs: opts.RootCAs, maxKept: int64(opts.MaxKept)},
		log:       opts.Log,
		metrics:   newMetrics(opts.Registerer),
		epoch:     time.Now(),
		sem:       make(chan struct{}, opts.MaxInFlight),
		probes:    map[string]*probe{},
		wake:      make(chan struct{}, 1),
		dirty:     make(chan struct{}, 1),
		saved:     map[string]savedProbe{},
		voteDirty: map[string]struct{}{},
		handing:   map[*probe]struct{}{},
		adopted:   map[*probe]struct{}{},
		emptied:   map[string]time.Time{},
		voteCh:    make(chan struct{}, 1),
		onChange:  opts.OnChange,
	}
	if opts.StateFile != "" {
		m.saver, m.stateFile = newSaver(m), opts.StateFile
		m.saved = m.loadState(opts.StateFile).Probes
	}
	m.publishLocked()
	return m
}

// Table returns the current state table. It is immutable: a reader loads
// it once and reads every probe of a decision from it.
func (m *Manager) Table() *Table { return m.table.Load() }

// SetZones makes the probes match the zones' endpoints: new probes start
// (from their persisted state, else up), probes no endpoint uses stop at
// once, and unchanged ones keep their state and schedule.
func (m *Manager) SetZones(set *zones.Set) {
	want := map[string]*probe{}
	var specs []*zones.Probe // every endpoint's, to be numbered
	for _, z := range set.Zones() {
		for _, svc := range z.Services {
			for _, ep := range svc.Endpoints {
				if ep.Probe == nil {
					continue
				}
				specs = append(specs, ep.Probe)
				p := want[ep.Probe.Key]
				if p == nil {
					p = &probe{key: ep.Probe.Key, vid: VoteID(ep.Probe.Key), spec: ep.Probe, check: ep.Probe.Check.Name, site: ep.Site}
					p.target = loopTarget(ep.Probe)
					want[p.key] = p
				}
				p.ids = append(p.ids, ep.ID)
				p.eps = append(p.eps, ep.Site+" "+ep.ID)
			}
		}
	}
	// Number the distinct probes (by key, for a stable order): a Table is
	// a slice indexed by these numbers, and nums gives each endpoint's.
	keys := slices.Sorted(maps.Keys(want))
	for i, k := range keys {
		want[k].num = int32(i)
	}
	nums := make(map[*zones.Probe]int32, len(specs))
	for _, sp := range specs {
		nums[sp] = want[sp.Key].num
	}
	byKey := make(map[string]int32, len(want))
	for k, p := range want {
		byKey[k] = p.num
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	m.zones, m.nums, m.byKey = set, nums, byKey
	m.numbering++
	shortest := time.Duration(0)
	for _, w := range want {
		if iv := w.spec.Check.Interval; shortest == 0 || iv < shortest {
			shortest = iv
		}
	}
	m.batch = batchWindow(shortest)
	now := time.Now()
	// The state of the probes that go, by endpoint (site and ID): a check whose settings
	// change (a timeout, a path) is a new probe for the same endpoints,
	// which starts from what the old one knew, as from a persisted state.
	// Started up instead, a known-dead site was answered at the full TTL
	// until the new probe had failed fall times.
	left := map[string]*probe{}
	for key, p := range m.probes {
		if _, keep := want[key]; keep || !p.known {
			continue
		}
		for _, ep := range p.eps {
			if q := left[ep]; q == nil || q.up && !p.up {
				left[ep] = p // a down one wins: the safer guess
			}
		}
	}
	for key, p := range m.probes {
		if _, keep := want[key]; !keep {
			p.removed = true
			if !p.inflight { // else its run closes the connection when it sees the removal
				m.prober.release(p.conn)
				p.conn = nil
			}
			delete(m.probes, key)
			delete(m.handing, p)
			delete(m.adopted, p)
			delete(m.emptied, p.vid)
			m.metrics.forget(p)
			if p.runs {
				m.voteChangedLocked(p) // its vote is withdrawn
			}
		}
	}
	for key, w := range want {
		if p, ok := m.probes[key]; ok {
			p.spec, p.check, p.site, p.ids, p.eps, p.target, p.num = w.spec, w.check, w.site, w.ids, w.eps, w.target, w.num
			m.metrics.set(p) // its series follows a new check name or site
			continue
		}
		w.up = true
		if s, ok := m.saved[key]; ok {
			w.up, w.known, w.since, w.reason, w.back = s.Up, true, s.Since, marked(s.Reason, beforeRestart), s.Back
		} else {
			var from *probe
			for _, ep := range w.eps {
				if q := left[ep]; q != nil && (from == nil || from.up && !q.up) {
					from = q
				}
			}
			if from != nil {
				w.up, w.known, w.since, w.reason, w.back = from.up, true, from.since, marked(from.reason, beforeChange), from.back
			}
		}
		// A random first run spreads probes over the interval, so they do
		// not fire in lockstep.
		next := now.Add(time.Duration(rand.Int64N(int64(w.spec.Check.Interval))))
		if w.spec.Check.Type == "static" {
			next = now
		}
		m.probes[key] = w
		w.watched = now
		w.runs = m.wantsRunLocked(w)
		m.queue.push(queued{at: next.Sub(m.epoch), every: w.spec.Check.Interval, p: w})
		m.metrics.set(w)
	}
	checks := map[string]bool{}
	for _, p := range m.probes {
		checks[p.check] = true
	}
	m.metrics.prune(checks)
	m.publishLocked()
	select {
	case m.wake <- struct{}{}:
	default:
	}
}

// Static records the result of every static check now, without running
// the scheduler: for a manager that never runs (geodns explain offline),
// whose table then holds what the zone files decide and every other
// probe up.
func (m *Manager) Static() {
	m.mu.Lock()
	var static []*probe
	for _, p := range m.probes {
		if p.spec.Check.Type == "static" {
			static = append(static, p)
		}
	}
	m.mu.Unlock()
	for _, p := range static {
		res, _ := m.prober.probe(context.Background(), p.spec, nil)
		m.record(p, res, nil)
	}
}

// publishEvery bounds how often probe results rebuild the snapshot: when a
// datacenter dies, thousands of transitions arrive within a second, and
// each rebuild is O(endpoints).
const publishEvery = 10 * time.Millisecond

// batchWindow is the shortest time between two rounds of starting probes,
// for probes whose shortest interval is shortest. Probes due in between
// start together, at most this late: one wake-up of the scheduler, and of
// the event loop, serves a batch where thousands of endpoints would
// otherwise wake them thousands of times a second; and a bigger batch gets
// its answers back several to a wake-up rather than one by one. A probe
// starts at most 1 % of its interval late, and never more than 100 ms:
// 10 ms at the default 1 s interval, 100 ms at 10 s.
func batchWindow(shortest time.Duration) time.Duration {
	return min(max(shortest/100, 10*time.Millisecond), 100*time.Millisecond)
}

// Run probes until ctx is done.
func (m *Manager) Run(ctx context.Context) error {
	if m.saver != nil {
		go m.saver.run(ctx)
	}
	m.mu.Lock()
	m.async = true
	m.mu.Unlock()
	go m.publisher(ctx)
	loop, err := newEvloop(&m.prober, m)
	if err != nil {
		m.log.Warn("health checks run without an event loop", "error", err)
	}
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	var adopted []*probe
	for {
		m.mu.Lock()
		now := time.Since(m.epoch)
		adopted = adopted[:0]
		for len(m.queue) > 0 && m.queue[0].at <= now {
			q := &m.queue[0]
			p := q.p
			if p.removed || q.turn != p.turn {
				m.queue.pop()
				continue
			}
			iv := q.every
			q.at += iv
			if q.at < now { // fell behind (a suspended process): no burst of catch-up probes
				q.at = now + iv
			}
			m.queue.down(0)
			if p.handing && m.handedLocked(p, time.Now()) {
				m.stopRunLocked(p)
			}
			if m.orphanLocked(p, time.Now()) && m.adoptLocked(p) {
				adopted = append(adopted, p)
				continue
			}
			if p.inflight || !p.runs {
				continue // the last one has not returned (timeout <= interval makes this rare), or another node probes it
			}
			select {
			case m.sem <- struct{}{}:
				p.inflight = true
				if loop != nil && p.target.IsValid() {
					loop.submit(p, p.spec, p.target, p.conn)
					p.conn = nil
				} else {
					go m.run(ctx, p, p.spec)
				}
			default:
				m.metrics.skipped.Inc()
			}
		}
		if len(adopted) > 0 {
			m.log.Warn("cluster: no node of the NS set voted on probes this node has for the partition grace; probing them here until their probers vote",
				"probes", len(adopted), "target", adopted[0].spec.Target, "grace", m.grace)
			m.takeOverLocked(adopted)
		}
		wait := time.Hour
		if len(m.queue) > 0 {
			wait = max(m.queue[0].at-time.Since(m.epoch), m.batch-(time.Since(m.epoch)-now))
		}
		m.mu.Unlock()
		timer.Reset(wait)
		select {
		case <-ctx.Done():
			if loop != nil {
				loop.stop()
			}
			m.closeKept()
			return nil
		case <-timer.C:
		case <-m.wake:
		}
	}
}

// closeKept closes the connections kept by idle probes; running ones close
// theirs when they see the context done.
func (m *Manager) closeKept() {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, p := range m.probes {
		if !p.inflight {
			m.prober.release(p.conn)
			p.conn = nil
		}
	}
}

// publisher rebuilds the snapshot when results changed it, at most every
// publishEvery: the first change of a burst is published at once.
func (m *Manager) publisher(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-m.dirty:
		}
		m.mu.Lock()
		m.publishLocked()
		m.mu.Unlock()
		select {
		case <-ctx.Done():
			return
		case <-time.After(publishEvery):
		}
	}
}

func (m *Manager) run(ctx context.Context, p *probe, spec *zones.Probe) {
	res, kept := m.prober.probe(ctx, spec, p.conn)
	p.conn = nil
	if ctx.Err() != nil {
		m.prober.release(kept)
		m.abandoned(p)
		return
	}
	m.finished(p, res, kept)
}

// finished implements loopOwner: a probe's result, from the loop or run.
func (m *Manager) finished(p *probe, r Result, kept *conn) {
	<-m.sem
	m.record(p, r, kept)
}

// abandoned implements loopOwner: a probe stopped before its result.
func (m *Manager) abandoned(p *probe) {
	<-m.sem
	m.mu.Lock()
	p.inflight = false
	m.mu.Unlock()
}

// record feeds one result to a probe's state machine: down after Fall
// consecutive failures, up after Rise consecutive successes.
func (m *Manager) record(p *probe, res Result, kept *conn) {
	m.mu.Lock()
	defer m.mu.Unlock()
	p.inflight = false
	if p.removed {
		m.prober.release(kept)
		return // removed while it ran
	}
	p.conn = kept
	c := p.spec.Check
	m.metrics.observe(p, res)
	first := !p.known
	p.known = true
	p.results++
	p.fresh++
	was := p.up
	rise, fall := c.Rise, c.Fall
	if c.Type == "static" {
		rise, fall = 1, 1 // the zone file's word: nothing to confirm
	}
	if res.OK {
		p.succ, p.fail = p.succ+1, 0
		if !p.up && p.succ >= rise {
			p.up = true
		}
	} else {
		p.fail, p.succ = p.fail+1, 0
		if p.up && p.fail >= fall {
			p.up = false
		}
	}
	p.last = res.Reason
	if !res.OK {
		p.lastErr, p.lastErrAt = res.Reason, time.Now()
	}
	changed := p.up != was
	if changed || first {
		p.since, p.reason = time.Now(), res.Reason
	}
	if changed && p.up {
		p.back = p.since // a return: the service's ramp starts here
	}
	if changed {
		state := "down"
		if p.up {
			state = "up"
		}
		m.log.Warn("endpoint "+state, "check", p.check, "target", p.spec.Target, "site", p.site,
			"endpoints", p.ids, "reason", res.Reason)
		m.metrics.transition(p, state)
	}
	m.metrics.set(p)
	if changed || p.fresh == 1 {
		m.voteChangedLocked(p)
	}
	if !changed && p.results != 1 && !(m.sharing && p.fresh == 1) {
		return
	}
	if !m.async {
		m.publishLocked() // no publisher: callers (tests) see the change at once
		return
	}
	select {
	case m.dirty <- struct{}{}:
	default:
	}
}

// publishLocked builds and stores a new snapshot and has the state saved.
func (m *Manager) publishLocked() { m.publish(true) }

// publish builds and stores a new table, and has the state saved if save.
func (m *Manager) publish(save bool) {
	t := &Table{
		States:    make([]State, len(m.probes)),
		nums:      m.nums,
		byKey:     m.byKey,
		numbering: m.numbering,
		ready:     m.zones != nil, // and every probe has run once (below)
	}
	for _, p := range m.probes {
		// A probe without a result (nor a persisted state) is up: p.up
		// starts true.
		st := m.effectiveLocked(p)
		p.eff = st
		t.States[p.num] = st
		t.last = latest(t.last, st.Back)
		if p.results == 0 && (p.runs || !p.decided) { // another node's probe is ready with the set's decision
			t.ready = false
		}
	}
	m.everReady = m.everReady || t.ready
	t.ready = m.everReady
	m.gen++
	t.gen = m.gen
	m.table.Store(t)
	if m.saver != nil && save {
		m.saver.save()
	}
	if m.onChange != nil {
		m.onChange()
	}
}

// ProbeStatus is one probe's state, for status pages.
type ProbeStatus struct {
	Key       string    `json:"-"`
	Check     string    `json:"check"`
	Target    string    `json:"target,omitempty"`
	Site      string    `json:"site"`
	Endpoints []string  `json:"endpoints"`
	Up        bool      `json:"up"`
	Since     time.Time `json:"since"`
	Reason    string    `json:"reason"` // what was seen when it last changed state
	// Last is the latest result ("HTTP 200", "connection refused"; "" before
	// the first); LastError the latest failure and LastErrorAt its time
	// (zero: none since the start).
	Last        string    `json:"last"`
	LastError   string    `json:"last_error,omitempty"`
	LastErrorAt time.Time `json:"last_error_at,omitzero"`
	// Voted is set when Up is the NS set's decision from the votes rather
	// than this node's own state; Own is then this node's own state, and
	// Runs whether it probes the target (Since, Reason and Last are its
	// own results, stale when it does not).
	Voted bool `json:"voted,omitempty"`
	Own   bool `json:"own"`
	Runs  bool `json:"runs"`
}

// Status returns every probe's state, ordered by check and target.
func (m *Manager) Status() []ProbeStatus {
	m.mu.Lock()
	out := make([]ProbeStatus, 0, len(m.probes))
	for _, p := range m.probes {
		up := p.up
		if m.sharing {
			up = p.eff.Up // in an NS set the state shown is the set's (Votes has this node's)
		}
		out = append(out, ProbeStatus{p.key, p.check, p.spec.Target, p.site, slices.Clone(p.ids), up, p.since, p.reason,
			p.last, p.lastErr, p.lastErrAt, p.voted, p.up, p.runs})
	}
	m.mu.Unlock() // sorted without the lock: probe results wait for no status page
	sort.Slice(out, func(i, j int) bool {
		if out[i].Check != out[j].Check {
			return out[i].Check < out[j].Check
		}
		return out[i].Target < out[j].Target
	})
	return out
}

// probeHeap orders probes by their next run: a binary heap of times and
// probes, sifted by the times alone, so that ordering thirty thousand
// probes reads no probe (each one a cache miss). A removed probe keeps its
// entry until the entry comes up.
type probeHeap []queued

// queued is a probe, when it runs next (since the manager's epoch), and
// its interval (part of the probe's key: it never changes), kept here so
// that requeueing it reads neither its spec nor its check.
type queued struct {
	at    time.Duration
	every time.Duration
	p     *probe
	turn  uint32 // p.turn when queued
}

func (h *probeHeap) push(q queued) {
	*h = append(*h, q)
	h.up(len(*h) - 1)
}

// pop removes the first entry.
func (h *probeHeap) pop() {
	old := *h
	n := len(old) - 1
	old[0], old[n] = old[n], queued{}
	*h = old[:n]
	h.down(0)
}

func (h probeHeap) up(i int) {
	for i > 0 {
		parent := (i - 1) / 2
		if h[parent].at <= h[i].at {
			return
		}
		h[parent], h[i] = h[i], h[parent]
		i = parent
	}
}

// down moves entry i down to its place, after its time grew.
func (h probeHeap) down(i int) {
	for {
		c := 2*i + 1
		if c >= len(h) {
			return
		}
		if r := c + 1; r < len(h) && h[r].at < h[c].at {
			c = r
		}
		if h[i].at <= h[c].at {
			return
		}
		h[i], h[c] = h[c], h[i]
		i = c
	}
}

// Marks on a reason carried over from before a restart or a check change.
const (
	beforeRestart = " (before restart)"
	beforeChange  = " (before the check changed)"
)

// marked returns reason with mark, once: the marks a reason already has
// (it was saved marked, and went through more restarts or changes) go.
func marked(reason, mark string) string {
	for {
		r := strings.TrimSuffix(strings.TrimSuffix(reason, beforeRestart), beforeChange)
		if r == reason {
			return reason + mark
		}
		reason = r
	}
}
