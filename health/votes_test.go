package health

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/geodns/geodns/zones"
	"github.com/stretchr/testify/require"
)

func votes(ups ...bool) []Vote {
	var out []Vote
	for i, u := range ups {
		out = append(out, Vote{Node: string(rune('a' + i)), Up: u})
	}
	return out
}

func TestDecide(t *testing.T) {
	majority, min2, r18 := zones.Quorum{}, zones.Quorum{MinUp: 2}, zones.Quorum{UpRatio: 0.18}
	for _, tc := range []struct {
		name string
		q    zones.Quorum
		v    []Vote
		up   bool
	}{
		{"majority 3 up", majority, votes(true, true, true), true},
		{"majority one broken path", majority, votes(false, true, true), true},
		{"majority two down", majority, votes(false, false, true), false},
		{"majority tie stays up", majority, votes(false, true), true},
		{"majority both down", majority, votes(false, false), false},
		{"majority one vote", majority, votes(false), false},
		{"min_up 2 of 3", min2, votes(false, true, true), true},
		{"min_up 2 one up", min2, votes(false, false, true), false},
		{"min_up 2 one voter up", min2, votes(true), true},
		{"up_ratio 1 of 5 is 20%", r18, votes(true, false, false, false, false), true},
		{"up_ratio 1 of 6 is 16%", r18, votes(true, false, false, false, false, false), false},
		{"up_ratio none", r18, votes(false, false, false), false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			require.Equal(t, tc.up, decide(tc.q, tc.v).Up)
			// Order never matters: every node decides the same.
			rev := append([]Vote(nil), tc.v...)
			for i, j := 0, len(rev)-1; i < j; i, j = i+1, j-1 {
				rev[i], rev[j] = rev[j], rev[i]
			}
			require.Equal(t, decide(tc.q, tc.v), decide(tc.q, rev))
		})
	}
	// The set's return is when the rule was first met: the second of
	// three up votes to come back, under a majority.
	t0 := time.Unix(1000, 0)
	v := []Vote{{Node: "a", Up: true, Back: t0.Add(3 * time.Second)}, {Node: "b", Up: true, Back: t0.Add(time.Second)}, {Node: "c", Up: true, Back: t0.Add(2 * time.Second)}}
	require.Equal(t, t0.Add(2*time.Second), decide(majority, v).Back)
}

// TestSharing: in an NS set the table follows the votes, a probe another
// node runs is not sent, a probe this node starts running starts from the
// set's state, and once cut off past the grace period the node's own
// results win for the probes it runs.
func TestSharing(t *testing.T) {
	set := compile(t, zoneYAML("{type: http, port: 8080, rise: 2, fall: 2}", []string{e1}, []string{w1}))
	m := NewManager(Options{Allow: loopback, Log: quiet})
	m.SetZones(set)
	pe, pw := probeFor(t, m, e1), probeFor(t, m, w1)
	ok, bad := Result{OK: true}, Result{Reason: "refused"}

	// This node runs east only.
	m.SetSharing(Sharing{Runs: func(id string) bool { return id == pe.vid }})
	require.True(t, pe.runs)
	require.False(t, pw.runs)
	require.Empty(t, m.LocalVotes(), "no result yet, no vote")

	// Its path to east is broken: its own vote goes down...
	m.record(pe, bad, nil)
	m.record(pe, bad, nil)
	require.Equal(t, map[string]*Vote{pe.vid: {Up: false, Since: pe.since}}, m.DrainVotes())
	require.False(t, upOf(m, set, e1), "no other vote yet: its own state stands")
	// ... but two other nodes see east up: the set says up.
	m.UpdateVotes(false, map[string]map[string]*Vote{pe.vid: {"me": {Up: false}, "ns2": {Up: true}, "ns3": {Up: true}}})
	require.True(t, upOf(m, set, e1), "one vote of three down is not a majority")
	require.True(t, m.Table().Ready() == false, "west has neither a result nor a decision")

	// West is decided by the others' votes alone.
	m.UpdateVotes(false, map[string]map[string]*Vote{pw.vid: {"ns2": {Up: false}, "ns3": {Up: false}}})
	require.False(t, upOf(m, set, w1))
	require.True(t, m.Table().Ready())
	// The votes go (the nodes died): the last decision holds, never "up".
	m.UpdateVotes(false, map[string]map[string]*Vote{pw.vid: {"ns2": nil, "ns3": nil}})
	require.False(t, upOf(m, set, w1))

	// This node takes west over: it starts from the set's state (down), so
	// rise counts from there, and its vote follows its first result.
	m.SetSharing(Sharing{Runs: func(string) bool { return true }})
	require.True(t, pw.runs)
	require.False(t, pw.up, "seeded from the set's decision")
	m.record(pw, ok, nil)
	require.Equal(t, false, m.DrainVotes()[pw.vid].Up, "one success is not rise 2")
	m.record(pw, ok, nil)
	require.True(t, m.DrainVotes()[pw.vid].Up)

	// Cut off past the grace period, its own results decide: east (its
	// broken path) goes down, west (its two successes) up.
	m.UpdateVotes(false, map[string]map[string]*Vote{pw.vid: {"ns2": {Up: false}, "ns3": {Up: false}}})
	require.False(t, upOf(m, set, w1), "the others say down")
	m.SetSharing(Sharing{Alone: true})
	require.False(t, upOf(m, set, e1), "alone, its own probe decides")
	require.True(t, upOf(m, set, w1), "alone, its own probe decides")
}

// TestTakeOverProbesAtOnce: a probe this node takes over (its prober's
// lease lapsed) is sent at once, not at its next turn up to an interval
// later; until then nobody probes it. 50 targets probed every 5 s: at
// their next turns they would come over 5 s.
func TestTakeOverProbesAtOnce(t *testing.T) {
	const n = 50
	var mu sync.Mutex
	first := map[string]time.Time{}
	var targets []string
	for range n {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			mu.Lock()
			if _, ok := first[r.Host]; !ok {
				first[r.Host] = time.Now()
			}
			mu.Unlock()
			w.Write([]byte("ok"))
		}))
		t.Cleanup(srv.Close)
		targets = append(targets, hostPort(t, srv.URL))
	}
	set := compile(t, zoneYAML("{type: http, port: 80, interval: 5s, timeout: 1s}", targets, nil))
	m := NewManager(Options{Allow: loopback, Log: quiet})
	m.SetZones(set)
	m.SetSharing(Sharing{Runs: func(string) bool { return false }}) // another node probes them all
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go m.Run(ctx)

	// The other node's lease lapses: this one takes everything over.
	took := time.Now()
	m.SetSharing(Sharing{Runs: func(string) bool { return true }})
	require.Eventually(t, func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(first) == n
	}, 10*time.Second, 10*time.Millisecond)
	mu.Lock()
	defer mu.Unlock()
	var last time.Duration
	for _, at := range first {
		last = max(last, at.Sub(took))
	}
	t.Logf("%d targets taken over: every one probed within %v (interval 5 s)", n, last.Round(time.Millisecond))
	// Spread over 50 ms (n x 1 ms), started in rounds of the batch window
	// (50 ms at 5 s): the rest is a loaded machine's slack. At their next
	// turns, all 50 within 1.5 s of 5 s has a chance of 0.3^50.
	require.Less(t, last, 1500*time.Millisecond)
}

// TestTakeOverSpread: thousands of probes taken over together are not
// sent in one burst: their first runs are spread over 500 ms (less for a
// probe of a shorter interval), each then keeps its interval.
func TestTakeOverSpread(t *testing.T) {
	const n = 2000
	var b strings.Builder
	b.WriteString("soa: {ns: ns1.example.net., mbox: h.example.net.}\nrecords:\n  \"@\": {NS: [ns1.example.net.]}\n  www: {service: web}\n")
	b.WriteString("sites:\n  east: {lat: 39, lon: -77}\n  west: {lat: 37, lon: -122}\n")
	b.WriteString("checks:\n  hc: {type: http, port: 80}\n  fast: {type: http, port: 80, interval: 200ms, timeout: 100ms}\n")
	b.WriteString("services:\n  web:\n    endpoints:\n")
	b.WriteString("      - {site: west, address: 198.51.100.1, check: fast, target: \"127.0.99.1:80\"}\n")
	for i := range n {
		fmt.Fprintf(&b, "      - {site: east, address: 198.18.%d.%d, check: hc, target: \"127.0.%d.%d:80\"}\n", i/250, i%250+1, i/250, i%250+1)
	}
	set := compile(t, b.String())
	m := NewManager(Options{Allow: loopback, Log: quiet})
	m.SetZones(set)
	m.SetSharing(Sharing{Runs: func(string) bool { return false }})
	before := time.Since(m.epoch)
	m.SetSharing(Sharing{Runs: func(string) bool { return true }})
	after := time.Since(m.epoch)

	m.mu.Lock()
	defer m.mu.Unlock()
	perMS := map[time.Duration]int{}
	var lo, hi time.Duration = time.Hour, 0
	var fast []time.Duration
	for _, q := range m.queue {
		if q.turn != q.p.turn {
			continue // the entry replaced
		}
		require.Equal(t, uint32(1), q.turn, "every probe was taken over once")
		if q.p.spec.Target == "127.0.99.1:80" {
			fast = append(fast, q.at)
			require.Equal(t, 200*time.Millisecond, q.every)
			continue
		}
		require.Equal(t, time.Second, q.every, "it keeps its interval")
		lo, hi = min(lo, q.at), max(hi, q.at)
		perMS[q.at.Truncate(time.Millisecond)]++
	}
	require.Len(t, fast, 1)
	require.GreaterOrEqual(t, lo, before)
	require.LessOrEqual(t, lo, after, "the first starts at once")
	require.GreaterOrEqual(t, hi-lo, 490*time.Millisecond, "spread over 500 ms")
	require.Less(t, hi-after, 500*time.Millisecond)
	require.Less(t, fast[0]-after, 200*time.Millisecond, "within its own interval")
	busiest := 0
	for _, c := range perMS {
		busiest = max(busiest, c)
	}
	require.LessOrEqual(t, busiest, (n+1)/500+1, "about n/500 a millisecond: %d", busiest)
}

// TestHandOver: a probe this node stops running because another node
// joined is handed over: it keeps running it and its vote stands until
// the new prober has voted, then withdraws; a node that joins the set, or
// a probe it has no vote on, stops at once.
func TestHandOver(t *testing.T) {
	set := compile(t, zoneYAML("{type: http, port: 8080, rise: 1, fall: 1}", []string{e1}, []string{w1}))
	m := NewManager(Options{Allow: loopback, Log: quiet})
	m.SetZones(set)
	pe, pw := probeFor(t, m, e1), probeFor(t, m, w1)
	ok := Result{OK: true}
	m.record(pe, ok, nil)
	m.record(pw, ok, nil)

	// Joining (from running everything): what it does not run stops at once.
	m.SetSharing(Sharing{Runs: func(id string) bool { return id == pe.vid }, Probers: func(string) []string { return []string{"ns2"} }})
	require.True(t, pe.runs)
	require.False(t, pw.runs, "a node joining the set hands nothing over")
	m.DrainVotes()

	// ns3 joins and takes east over: this node keeps probing it and its
	// vote stands until ns3 voted.
	m.SetSharing(Sharing{Runs: func(string) bool { return false }, Probers: func(string) []string { return []string{"ns3"} }})
	require.True(t, pe.runs, "handed over, not dropped")
	require.True(t, pe.handing)
	require.Contains(t, m.LocalVotes(), pe.vid, "its vote stands")
	m.UpdateVotes(false, map[string]map[string]*Vote{pe.vid: {"ns2": {Up: true}}})
	require.True(t, pe.runs, "ns2 is not the heir")
	m.UpdateVotes(false, map[string]map[string]*Vote{pe.vid: {"ns3": {Up: true}}})
	require.False(t, pe.runs, "the heir voted: handed over")
	require.False(t, pe.handing)
	v, withdrawn := m.DrainVotes()[pe.vid]
	require.True(t, withdrawn)
	require.Nil(t, v, "its vote is withdrawn")

	// Handed over and wanted back before the heir voted: it never stopped.
	m.SetSharing(Sharing{Runs: func(string) bool { return true }, Probers: func(string) []string { return []string{"me"} }})
	m.record(pe, ok, nil)
	m.SetSharing(Sharing{Runs: func(string) bool { return false }, Probers: func(string) []string { return []string{"ns4"} }})
	require.True(t, pe.handing)
	m.SetSharing(Sharing{Runs: func(string) bool { return true }, Probers: func(string) []string { return []string{"me"} }})
	require.True(t, pe.runs)
	require.False(t, pe.handing)
	require.Empty(t, m.handing)

	// An heir that never votes: the handover ends after 2 intervals +
	// timeout + 2 s, when the scheduler comes to the probe.
	m.SetSharing(Sharing{Runs: func(string) bool { return false }, Probers: func(string) []string { return []string{"ns5"} }})
	require.True(t, pe.handing)
	require.False(t, m.handedLocked(pe, time.Now()))
	require.True(t, m.handedLocked(pe, time.Now().Add(2*time.Second+800*time.Millisecond+2*time.Second+time.Second)))
}

// TestOrphanAdopted: a probe this node has, which its probers do not run
// (they have another version of the zone), and which nobody votes on for
// the grace, is probed here until one of its probers votes; before, its
// last decision stood for as long as that lasted.
func TestOrphanAdopted(t *testing.T) {
	set := compile(t, zoneYAML("{type: http, port: 8080, rise: 1, fall: 1}", []string{e1}, []string{w1}))
	m := NewManager(Options{Allow: loopback, Log: quiet})
	m.SetZones(set)
	pe, pw := probeFor(t, m, e1), probeFor(t, m, w1)
	m.SetSharing(Sharing{Runs: func(string) bool { return false }, Probers: func(string) []string { return []string{"ns3"} }, Grace: time.Second})
	now := time.Now()
	require.False(t, m.orphanLocked(pw, now), "within the grace")
	m.UpdateVotes(false, map[string]map[string]*Vote{pe.vid: {"ns3": {Up: true}}})
	later := time.Now().Add(2 * time.Second)
	require.False(t, m.orphanLocked(pe, later), "voted on")
	require.True(t, m.orphanLocked(pw, later), "no vote for the grace")
	m.UpdateVotes(false, map[string]map[string]*Vote{pe.vid: {"ns3": nil}})
	require.False(t, m.orphanLocked(pe, time.Now().Add(500*time.Millisecond)), "the grace counts from its last vote")

	m.DrainVotes() // the withdrawals of the join
	require.True(t, m.adoptLocked(pw))
	require.True(t, pw.runs)
	m.record(pw, Result{Reason: "refused"}, nil)
	require.Equal(t, map[string]*Vote{pw.vid: {Up: false, Since: pw.since}}, m.DrainVotes(), "its vote counts")
	m.UpdateVotes(false, map[string]map[string]*Vote{pw.vid: {"ns2": {Up: false}}})
	require.True(t, pw.runs, "ns2 (another node that adopted it) is not its prober")
	m.UpdateVotes(false, map[string]map[string]*Vote{pw.vid: {"ns3": {Up: false}}})
	require.False(t, pw.runs, "its prober voted")
	require.False(t, pw.adopted)
	require.False(t, m.orphanLocked(pw, time.Now().Add(time.Hour)), "voted on")
}
