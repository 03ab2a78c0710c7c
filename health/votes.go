package health

import (
	"cmp"
	"crypto/sha256"
	"encoding/hex"
	"slices"
	"time"

	"github.com/geodns/geodns/zones"
)

// Health votes (cluster mode). Every node of an NS set publishes its own
// state of the probes it runs (its votes); the cluster package carries
// them through etcd and hands every node's votes back here, where each
// probe's state is decided from all of them by its check's quorum rule.
// Every node applies the same rule to the same votes, so every node
// decides the same. The decision lands in the same Table the router
// reads: the query path never sees a vote.
//
// Probes are named across nodes by VoteID, not by number (numbers are
// per process) nor by key (keys are long).

// Vote is one node's state of one probe.
type Vote struct {
	Node  string
	Up    bool
	Since time.Time // when the node's state last changed (or its first result)
	Back  time.Time // when the node last saw it go from down to up; zero: never
}

// VoteID names a probe in the NS set: its target, readable, and a hash of
// its whole key (check settings and quorum rule), so that nodes running
// different versions of a zone never mix votes on different checks.
func VoteID(key string) string {
	target, _, _ := cutByte(key, '|')
	sum := sha256.Sum256([]byte(key))
	return target + "|" + hex.EncodeToString(sum[:8])
}

func cutByte(s string, b byte) (string, string, bool) {
	for i := 0; i < len(s); i++ {
		if s[i] == b {
			return s[:i], s[i+1:], true
		}
	}
	return s, "", false
}

// decide is the state of a probe from its votes (at least one) under q:
// the same votes give the same state on every node, whatever their order.
//
//   - majority (the default): up unless more than half of the votes say
//     down. A tie stays up: one node's broken path never takes a target
//     down for the whole set, which two probers could not tell otherwise.
//   - min_up N: up while at least N votes say up; all of them, when fewer
//     than N nodes voted.
//   - up_ratio R: up while more than R of the votes say up.
//
// Back, when up, is the moment the N-th earliest up vote returned, N
// being the number of up votes the rule needs: the set's return, on
// every node the same.
func decide(q zones.Quorum, votes []Vote) State {
	n, up := len(votes), 0
	for _, v := range votes {
		if v.Up {
			up++
		}
	}
	need := (n + 1) / 2 // majority: down needs more than n/2 downs
	switch {
	case q.MinUp > 0:
		need = min(q.MinUp, n)
	case q.UpRatio > 0:
		need = int(q.UpRatio*float64(n)) + 1 // more than R*n
	}
	need = max(need, 1)
	if up < need {
		return State{}
	}
	var backs []time.Time
	for _, v := range votes {
		if v.Up && !v.Back.IsZero() {
			backs = append(backs, v.Back)
		}
	}
	if len(backs) == 0 {
		return State{Up: true}
	}
	slices.SortFunc(backs, func(a, b time.Time) int { return a.Compare(b) })
	return State{Up: true, Back: backs[min(need, len(backs))-1]}
}

// Sharing is how a node takes part in the NS set's health, set by the
// cluster package with SetSharing.
type Sharing struct {
	// Runs says whether this node probes the probe with a VoteID; nil:
	// every probe (a node alone, or before it first joined). It is called
	// with the manager's lock held: a pure function, no I/O.
	Runs func(id string) bool
	// Alone is set when the node has been cut off from the set for longer
	// than its grace period: its own results decide the probes it has run
	// since, the last agreed votes the rest.
	Alone bool
	// Probers names the nodes that probe the probe with a VoteID (Runs
	// says whether this node is one). With it, a probe this node stops
	// running (another node joined) is handed over: this node runs it
	// and keeps its vote until each of them has voted. nil: it stops at
	// once. Called with the manager's lock held.
	Probers func(id string) []string
	// Grace is how long a probe this node has but does not run may go
	// without any vote before this node probes it too (the partition
	// grace, applied to one probe): its probers may not have it (they run
	// another version of the zone). It probes it until one of its Probers
	// votes. 0: never.
	Grace time.Duration
}

// SetSharing makes the manager share its health with an NS set (from the
// first call on): probes Runs rejects are not sent, and states come from
// the votes (UpdateVotes). A probe this node starts running starts from
// the set's state, so its rise/fall counts from what the set decided, and
// is sent at once (takeOverLocked): its last prober may be dead.
func (m *Manager) SetSharing(s Sharing) {
	m.mu.Lock()
	defer m.mu.Unlock()
	// A member whose probers change hands over; a node that joins (or
	// rejoins after deciding alone) stops at once: the set's probers
	// have voted on everything it does not run all along.
	member := m.sharing && m.runs != nil && !m.alone
	m.sharing, m.alone, m.runs, m.probers = true, s.Alone, s.Runs, nil
	m.chosen, m.grace = s.Probers, s.Grace
	if member {
		m.probers = s.Probers
	}
	now := time.Now()
	if !member { // votes count from the join: none yet is no orphan
		clear(m.adopted)
		clear(m.emptied)
	}
	var taken []*probe
	for _, p := range m.probes {
		if !member {
			p.adopted, p.watched = false, now
		}
		if m.applyRunsLocked(p) {
			taken = append(taken, p)
		}
	}
	m.takeOverLocked(taken)
	m.markDirtyLocked()
}

// takeOverSpread bounds how long the first runs of probes taken over
// together are spread over (less for a probe of a shorter interval).
const takeOverSpread = 500 * time.Millisecond

// takeOverLocked runs the probes this node has just taken over now
// rather than at their next turn, which is up to an interval away: a
// node's lease lapses a TTL after its death, and until its targets' new
// prober sends them nobody does (or, with probers: 1, nobody votes on
// them and the set's last decision stands). They start spread, probe i
// of n at i/n of min(its interval, 500 ms, n ms): a node that takes
// 30,000 targets over starts them at 60 a millisecond, not in one burst
// against the in-flight cap, while a handful start within milliseconds.
// Each keeps its interval from its new start.
func (m *Manager) takeOverLocked(taken []*probe) {
	if len(taken) == 0 {
		return
	}
	// In a stable order, so the spread does not depend on map order.
	slices.SortFunc(taken, func(a, b *probe) int { return int(a.num - b.num) })
	now := time.Since(m.epoch)
	n := time.Duration(len(taken))
	for i, p := range taken {
		iv := p.spec.Check.Interval
		window := min(iv, takeOverSpread, n*time.Millisecond)
		p.turn++ // its entry in the queue is dropped when it comes up
		m.queue.push(queued{at: now + window*time.Duration(i)/n, every: iv, p: p, turn: p.turn})
	}
	select {
	case m.wake <- struct{}{}:
	default:
	}
}

// applyRunsLocked sets whether this node runs p, from m.runs; true when
// it has just taken p over.
func (m *Manager) applyRunsLocked(p *probe) bool {
	runs := m.wantsRunLocked(p)
	if runs {
		if p.handing { // wanted back while handed over: it never stopped
			p.handing, p.heirs = false, nil
			delete(m.handing, p)
		}
		if p.runs {
			return false
		}
		p.runs = true
		p.fresh = 0
		if p.decided {
			p.up, p.back = p.verdict.Up, p.verdict.Back
		}
		p.succ, p.fail = 0, 0
		return true
	}
	if !p.runs {
		return false
	}
	if m.probers != nil && p.fresh > 0 {
		m.handOverLocked(p)
		return false
	}
	m.stopRunLocked(p)
	return false
}

// handOverBound is how long a probe is handed over at most past its
// interval twice and its timeout: the heirs' first votes (a node that just
// started probes each target within an interval, and writes its votes
// within 100 ms) are long in by then, unless an heir is cut off.
const handOverBound = 2 * time.Second

// handOverLocked has this node keep running p, and its vote standing,
// until every node that now probes p has voted on it: a node that joins
// takes its share of the targets over from the nodes that probed them,
// and until its first result is in etcd the old prober's vote is the
// live one (with probers: 1, the only one).
func (m *Manager) handOverLocked(p *probe) {
	if !p.handing {
		p.handing = true
		p.handEnd = time.Now().Add(2*p.spec.Check.Interval + p.spec.Check.Timeout + handOverBound)
		m.handing[p] = struct{}{}
	}
	p.heirs = m.probers(p.vid)
	if m.handedLocked(p, time.Now()) {
		m.stopRunLocked(p)
	}
}

// handedLocked says whether p's handover is over: each heir has voted on
// it (this node's own vote aside), or its time is up.
func (m *Manager) handedLocked(p *probe, now time.Time) bool {
	if now.After(p.handEnd) {
		return true
	}
	votes := m.votes[p.vid]
	for _, h := range p.heirs {
		if !slices.ContainsFunc(votes, func(v Vote) bool { return v.Node == h }) {
			return false
		}
	}
	return true
}

// stopRunLocked stops running p here and withdraws this node's vote.
func (m *Manager) stopRunLocked(p *probe) {
	p.runs, p.fresh, p.handing, p.heirs = false, 0, false, nil
	delete(m.handing, p)
	if !p.inflight {
		m.prober.release(p.conn)
		p.conn = nil
	}
	m.voteChangedLocked(p) // its vote is withdrawn
}

// wantsRunLocked says whether this node runs p.
func (m *Manager) wantsRunLocked(p *probe) bool {
	return !m.sharing || m.runs == nil || p.spec.Check.Type == "static" || p.adopted || m.runs(p.vid)
}

// orphanLocked says whether p, which this node has and does not run, has
// gone without any vote for the grace: its probers do not have it (nodes
// on another version of its zone, or a view of them not current yet).
// Its last decision would otherwise stand for as long as that lasts.
func (m *Manager) orphanLocked(p *probe, now time.Time) bool {
	if !m.sharing || m.alone || m.runs == nil || m.grace <= 0 || p.runs || p.removed ||
		p.spec.Check.Type == "static" || len(m.votes[p.vid]) > 0 {
		return false
	}
	since := p.watched // none since it was set up, or since its votes went
	if t := m.emptied[p.vid]; t.After(since) {
		since = t
	}
	return now.Sub(since) >= m.grace
}

// adoptLocked has this node run p, an orphan, until one of its probers
// votes; true when it has just taken p over.
func (m *Manager) adoptLocked(p *probe) bool {
	p.adopted = true
	m.adopted[p] = struct{}{}
	return m.applyRunsLocked(p)
}

// unadoptLocked ends the adoption of p once one of its probers voted on
// it: it is probed where it should be again.
func (m *Manager) unadoptLocked(p *probe) {
	if !p.adopted || m.chosen == nil {
		return
	}
	chosen := m.chosen(p.vid)
	if slices.ContainsFunc(m.votes[p.vid], func(v Vote) bool { return slices.Contains(chosen, v.Node) }) {
		p.adopted = false
		delete(m.adopted, p)
		m.applyRunsLocked(p)
	}
}

// UpdateVotes applies the NS set's votes: by VoteID, by node, a vote or
// nil for a withdrawn one. reset: these are all the votes there are.
func (m *Manager) UpdateVotes(reset bool, votes map[string]map[string]*Vote) {
	m.mu.Lock()
	defer m.mu.Unlock()
	now := time.Now()
	had := make(map[string]bool, len(votes)) // the ids updated that had votes before
	for id := range votes {
		had[id] = len(m.votes[id]) > 0
	}
	old := m.votes
	if reset || m.votes == nil {
		m.votes = map[string][]Vote{}
	}
	for id, byNode := range votes {
		cur := m.votes[id]
		for node, v := range byNode {
			cur = slices.DeleteFunc(cur, func(x Vote) bool { return x.Node == node })
			if v != nil {
				x := *v
				x.Node = node
				cur = append(cur, x)
			}
		}
		if len(cur) == 0 {
			delete(m.votes, id)
		} else {
			m.votes[id] = cur
		}
	}
	// When an id's votes went to none, for orphanLocked: the ids updated,
	// and on a reset every id that had votes.
	emptied := func(id string, had bool) {
		switch {
		case len(m.votes[id]) > 0:
			delete(m.emptied, id)
		case had:
			m.emptied[id] = now
		}
	}
	for id := range votes {
		emptied(id, had[id] || reset && len(old[id]) > 0)
	}
	if reset {
		for id, vs := range old {
			emptied(id, len(vs) > 0)
		}
	}
	for p := range m.adopted {
		m.unadoptLocked(p)
	}
	for p := range m.handing {
		if m.handedLocked(p, now) {
			m.stopRunLocked(p)
		}
	}
	m.markDirtyLocked()
}

// VotesChanged returns a channel that receives when this node's own votes
// changed (DrainVotes has news). One reader.
func (m *Manager) VotesChanged() <-chan struct{} { return m.voteCh }

// LocalVotes returns this node's votes, by VoteID: the probes it runs
// and has a result of since it started running them.
func (m *Manager) LocalVotes() map[string]Vote {
	m.mu.Lock()
	defer m.mu.Unlock()
	clear(m.voteDirty)
	out := make(map[string]Vote, len(m.probes))
	for _, p := range m.probes {
		if v, ok := m.voteLocked(p); ok {
			out[p.vid] = v
		}
	}
	return out
}

// DrainVotes returns this node's votes changed since the last call (or
// LocalVotes): a vote, or nil where it was withdrawn.
func (m *Manager) DrainVotes() map[string]*Vote {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make(map[string]*Vote, len(m.voteDirty))
	for id := range m.voteDirty {
		out[id] = nil
	}
	for _, p := range m.probes {
		if _, ok := m.voteDirty[p.vid]; !ok {
			continue
		}
		if v, ok := m.voteLocked(p); ok {
			out[p.vid] = &v
		}
	}
	clear(m.voteDirty)
	return out
}

func (m *Manager) voteLocked(p *probe) (Vote, bool) {
	if !p.runs || p.fresh == 0 || p.spec.Check.Type == "static" {
		return Vote{}, false
	}
	return Vote{Up: p.up, Since: p.since, Back: p.back}, true
}

// voteChangedLocked notes that p's vote changed (or went).
func (m *Manager) voteChangedLocked(p *probe) {
	if !m.sharing {
		return
	}
	m.voteDirty[p.vid] = struct{}{}
	select {
	case m.voteCh <- struct{}{}:
	default:
	}
}

// effectiveLocked is p's state in the next table: in an NS set, the
// set's decision from the votes (the last one, while no votes are left);
// the node's own where nothing was decided, and, once cut off past the
// grace period, for the probes it has run since.
// It records in p.voted which of the two it is.
func (m *Manager) effectiveLocked(p *probe) State {
	own := State{Up: p.up, Back: p.back}
	p.voted = false
	if !m.sharing || p.spec.Check.Type == "static" {
		return own
	}
	if votes := m.votes[p.vid]; len(votes) > 0 {
		p.verdict, p.decided = decide(p.spec.Check.Quorum, votes), true
	}
	if !p.decided || (m.alone && p.runs && p.fresh > 0) {
		return own
	}
	p.voted = true
	return p.verdict
}

// VoteStatus is what the set decided for one probe, for status pages.
type VoteStatus struct {
	Votes   []Vote `json:"votes"`
	Up      bool   `json:"up"`
	Decided bool   `json:"decided"` // false: no vote yet, the node's own state stands
	Runs    bool   `json:"runs"`    // this node probes it
}

// Votes returns the votes on every shared probe, by probe key, ordered by
// node; nil when the node is not in an NS set.
func (m *Manager) Votes() map[string]VoteStatus {
	m.mu.Lock()
	defer m.mu.Unlock()
	if !m.sharing {
		return nil
	}
	out := make(map[string]VoteStatus, len(m.probes))
	for k, p := range m.probes {
		if p.spec.Check.Type == "static" {
			continue
		}
		vs := slices.Clone(m.votes[p.vid])
		slices.SortFunc(vs, func(a, b Vote) int { return cmp.Compare(a.Node, b.Node) })
		out[k] = VoteStatus{Votes: vs, Up: p.verdict.Up, Decided: p.decided, Runs: p.runs}
	}
	return out
}

// markDirtyLocked has the next table published (now, without Run's
// publisher).
func (m *Manager) markDirtyLocked() {
	if !m.async {
		m.publishLocked()
		return
	}
	select {
	case m.dirty <- struct{}{}:
	default:
	}
}
