package health

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/geodns/geodns/zones"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/stretchr/testify/require"
)

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

// zoneYAML builds a zone whose service has one endpoint per target, east
// then west, all probed by check hc.
func zoneYAML(check string, east, west []string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "soa: {ns: ns1.example.net., mbox: h.example.net.}\nrecords:\n  \"@\": {NS: [ns1.example.net.]}\n  www: {service: web}\n")
	fmt.Fprintf(&b, "sites:\n  east: {lat: 39, lon: -77}\n  west: {lat: 37, lon: -122}\nchecks:\n  hc: %s\n", check)
	fmt.Fprintf(&b, "services:\n  web:\n    endpoints:\n")
	n := 0
	for _, s := range []struct {
		site    string
		targets []string
	}{{"east", east}, {"west", west}} {
		site := s.site
		for _, t := range s.targets {
			n++
			fmt.Fprintf(&b, "      - {site: %s, address: 192.0.2.%d, check: hc, target: \"%s\"}\n", site, n, t)
		}
	}
	return b.String()
}

func compile(t testing.TB, src string) *zones.Set {
	t.Helper()
	z, err := zones.Compile("example.net.yaml", []byte(src), "example.net.", time.Now(), nil)
	require.NoError(t, err)
	return zones.NewSet(z)
}

// probeFor returns the manager's probe for a target.
func probeFor(t *testing.T, m *Manager, target string) *probe {
	t.Helper()
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, p := range m.probes {
		if p.spec.Target == target {
			return p
		}
	}
	t.Fatalf("no probe for %s", target)
	return nil
}

func upOf(m *Manager, set *zones.Set, target string) bool {
	for _, ep := range set.Zone("example.net.").Services["web"].Endpoints {
		if ep.Probe.Target == target {
			return m.Table().Probe(ep.Probe).Up
		}
	}
	panic("no endpoint for " + target)
}

const (
	e1 = "127.0.0.2:8080"
	w1 = "127.0.0.3:8080"
)

func TestRiseFall(t *testing.T) {
	set := compile(t, zoneYAML("{type: http, port: 8080, rise: 3, fall: 2}", []string{e1}, []string{w1}))
	m := NewManager(Options{Allow: loopback, Log: quiet})
	require.False(t, m.Table().Ready(), "no zones yet")
	m.SetZones(set)
	p := probeFor(t, m, e1)
	ok, bad := Result{OK: true, Reason: "HTTP 200"}, Result{Reason: "connection refused"}

	require.True(t, upOf(m, set, e1), "up before any result")
	require.False(t, m.Table().Ready())
	m.record(p, ok, nil)
	require.True(t, upOf(m, set, e1))
	m.record(p, bad, nil)
	require.True(t, upOf(m, set, e1), "one failure is not fall=2")
	m.record(p, ok, nil)
	m.record(p, bad, nil)
	require.True(t, upOf(m, set, e1), "failures must be consecutive")
	m.record(p, bad, nil)
	require.False(t, upOf(m, set, e1), "down after 2 consecutive failures")
	m.record(p, ok, nil)
	m.record(p, ok, nil)
	require.False(t, upOf(m, set, e1), "two successes are not rise=3")
	m.record(p, bad, nil)
	m.record(p, ok, nil)
	m.record(p, ok, nil)
	require.False(t, upOf(m, set, e1), "successes must be consecutive")
	m.record(p, ok, nil)
	require.True(t, upOf(m, set, e1), "up after 3 consecutive successes")

	require.False(t, m.Table().Ready(), "west has had no result yet")
	m.record(probeFor(t, m, w1), ok, nil)
	require.True(t, m.Table().Ready(), "every probe has run once")

	st := m.Status()
	require.Len(t, st, 2)
	require.Equal(t, e1, st[0].Target)
	require.Equal(t, "HTTP 200", st[0].Reason)
	require.Equal(t, []string{"192.0.2.1"}, st[0].Endpoints)
	// The latest failure stays for status pages after the probe passes again.
	require.Equal(t, "HTTP 200", st[0].Last)
	require.Equal(t, "connection refused", st[0].LastError)
	require.False(t, st[0].LastErrorAt.IsZero())
	require.Empty(t, st[1].LastError, "west never failed")
	m.record(p, Result{Reason: "HTTP 503"}, nil)
	require.Equal(t, "HTTP 503", m.Status()[0].LastError)
	require.Equal(t, "HTTP 503", m.Status()[0].Last)
}

// TestTableNumbers: each distinct probe gets one number, endpoints that
// share a probe (the same key) share it, and the table is a slice of
// exactly that many states.
func TestTableNumbers(t *testing.T) {
	set := compile(t, zoneYAML("{type: http, port: 8080}", []string{e1, e1}, []string{w1}))
	m := NewManager(Options{Allow: loopback, Log: quiet})
	m.SetZones(set)
	tab := m.Table()
	require.Len(t, tab.States, 2, "two distinct probes")
	eps := set.Zone("example.net.").Services["web"].Endpoints
	require.Equal(t, tab.Num(eps[0].Probe), tab.Num(eps[1].Probe), "one target, one probe")
	require.NotEqual(t, tab.Num(eps[0].Probe), tab.Num(eps[2].Probe))
	require.Equal(t, int32(-1), tab.Num(nil))

	p := probeFor(t, m, e1)
	m.record(p, Result{}, nil)
	m.record(p, Result{}, nil)
	require.False(t, m.Table().States[tab.Num(eps[0].Probe)].Up)
	require.True(t, tab.States[tab.Num(eps[0].Probe)].Up, "a published table never changes")
	require.Equal(t, tab.Numbering(), m.Table().Numbering(), "results keep the numbers")
	m.SetZones(set)
	require.NotEqual(t, tab.Numbering(), m.Table().Numbering(), "a new set numbers anew")
}

// TestTableKnowsANewSetsProbes: a reloaded zone has new probe values with
// the same keys; until the manager learns the new set (the watcher tells
// it after queries can see the set), the table finds them by key, so a
// down endpoint does not come back up for that moment.
func TestTableKnowsANewSetsProbes(t *testing.T) {
	src := zoneYAML("{type: http, port: 8080}", []string{e1}, []string{w1})
	set := compile(t, src)
	m := NewManager(Options{Allow: loopback, Log: quiet})
	m.SetZones(set)
	p := probeFor(t, m, e1)
	m.record(p, Result{}, nil)
	m.record(p, Result{}, nil)
	set2 := compile(t, src)
	require.False(t, upOf(m, set2, e1), "down in the table, before the manager learns the reloaded set")
	require.True(t, upOf(m, set2, w1))
}

// savingManager returns a manager on set that writes its state to file;
// stop returns once its saver has finished.
func savingManager(file string, set *zones.Set) (m *Manager, stop func()) {
	ctx, cancel := context.WithCancel(context.Background())
	m = NewManager(Options{Allow: loopback, Log: quiet, StateFile: file})
	m.SetZones(set)
	done := make(chan struct{})
	go func() { m.saver.run(ctx); close(done) }()
	return m, func() { cancel(); <-done }
}

// savedDown runs a manager that sees e1 fail until its state file says
// so ("connection refused"), and returns the file and the zones.
func savedDown(t *testing.T) (file string, set *zones.Set) {
	file = filepath.Join(t.TempDir(), "health.json")
	set = compile(t, zoneYAML("{type: http, port: 8080}", []string{e1}, []string{w1}))
	m, stop := savingManager(file, set)
	p := probeFor(t, m, e1)
	m.record(p, Result{Reason: "connection refused"}, nil)
	m.record(p, Result{Reason: "connection refused"}, nil)
	require.Eventually(t, func() bool {
		st, err := load(file)
		return err == nil && len(st.Probes) == 1 && !st.Probes[p.key].Up
	}, 5*time.Second, 10*time.Millisecond)
	stop()
	return file, set
}

func TestPersistence(t *testing.T) {
	file, set := savedDown(t)

	// A new process: the state is there before any probe runs.
	m2 := NewManager(Options{Allow: loopback, Log: quiet, StateFile: file})
	m2.SetZones(set)
	require.False(t, upOf(m2, set, e1), "down from the first query after a restart")
	require.True(t, upOf(m2, set, w1))
	st := m2.Status()
	require.Contains(t, st[0].Reason, "(before restart)")

	// The state must come back up through rise successes, as any down endpoint.
	p2 := probeFor(t, m2, e1)
	m2.record(p2, Result{OK: true}, nil)
	require.False(t, upOf(m2, set, e1))
}

// TestPersistenceReasonOnce: a reason restored at start is marked "(before
// restart)" once however many restarts it goes through unchanged. Before,
// each restart saved the mark and added another ("HTTP 200 (before
// restart) (before restart) ...").
func TestPersistenceReasonOnce(t *testing.T) {
	file, set := savedDown(t)
	for restart := range 3 {
		m, stop := savingManager(file, set)
		require.Equal(t, "connection refused (before restart)", reasonOf(m, e1), "restart %d", restart)
		// Another probe's change (down, then up, then down) saves the
		// whole state, e1's restored reason too.
		w := probeFor(t, m, w1)
		up := restart%2 == 1
		for range 3 {
			m.record(w, Result{OK: up, Reason: fmt.Sprintf("result %d", restart)}, nil)
		}
		require.Eventually(t, func() bool {
			st, err := load(file)
			return err == nil && st.Probes[w.key].Up == up && strings.HasPrefix(st.Probes[w.key].Reason, fmt.Sprintf("result %d", restart))
		}, 5*time.Second, 10*time.Millisecond)
		stop()
	}
}

// reasonOf returns the status reason of the endpoint at address addr.
func reasonOf(m *Manager, addr string) string {
	for _, s := range m.Status() {
		if s.Target == addr || slices.Contains(s.Endpoints, addr) {
			return s.Reason
		}
	}
	return ""
}

// TestCorruptStateFileKeepsProbes: a truncated state file at start is
// kept aside, counted, and the previous copy is loaded.
func TestCorruptStateFileKeepsProbes(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "health.json")
	set := compile(t, zoneYAML("{type: http, port: 8080}", []string{e1}, []string{w1}))
	m := NewManager(Options{Allow: loopback, Log: quiet, StateFile: file})
	m.SetZones(set)
	p := probeFor(t, m, e1)
	m.record(p, Result{Reason: "refused"}, nil)
	m.record(p, Result{Reason: "refused"}, nil)
	m.flush()
	m.record(probeFor(t, m, w1), Result{OK: true}, nil)
	m.flush() // a second write: the first is now the previous copy
	data, err := os.ReadFile(file)
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(file, data[:len(data)/2], 0o644)) // a torn write, a full disk

	reg := prometheus.NewRegistry()
	m2 := NewManager(Options{Allow: loopback, Log: quiet, StateFile: file, Registerer: reg})
	m2.SetZones(set)
	require.False(t, upOf(m2, set, e1), "the down state survived a corrupt state file")
	aside, _ := filepath.Glob(file + ".corrupt-*")
	require.Len(t, aside, 1, "the corrupt file is kept for a post-mortem")
	got, err := os.ReadFile(aside[0])
	require.NoError(t, err)
	require.Equal(t, data[:len(data)/2], got)
	require.Equal(t, 1.0, testutil.ToFloat64(m2.metrics.stateCorrupt))
}

// TestStateNotSaved: when the state file cannot be written, StateError
// says why until a write succeeds again.
func TestStateNotSaved(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "state")
	require.NoError(t, os.Mkdir(dir, 0o755))
	file := filepath.Join(dir, "health.json")
	set := compile(t, zoneYAML("{type: http, port: 8080}", []string{e1}, []string{w1}))
	var logs bytes.Buffer
	m := NewManager(Options{Allow: loopback, Log: slog.New(slog.NewTextHandler(&logs, nil)), StateFile: file})
	m.SetZones(set)
	// A file where the directory was: every write fails (read-only
	// permissions do not stop root, which the tests may run as).
	require.NoError(t, os.RemoveAll(dir))
	require.NoError(t, os.WriteFile(dir, nil, 0o644))
	m.flush()
	require.Error(t, m.StateError())
	// Logged once a minute while it keeps failing, not on every write.
	m.flush()
	require.Equal(t, 1, strings.Count(logs.String(), "health state not saved"))
	m.mu.Lock()
	m.stateLog = m.stateLog.Add(-stateLogEvery)
	m.mu.Unlock()
	m.flush()
	require.Equal(t, 2, strings.Count(logs.String(), "health state not saved"), "logged again a minute later")

	require.NoError(t, os.Remove(dir))
	require.NoError(t, os.Mkdir(dir, 0o755))
	m.flush()
	require.NoError(t, m.StateError())
}

// TestLegacyStateFile: a state file of format 1 (probe states beside the
// operator's overrides and dials, which package opstate migrates) loads
// its probe states.
func TestLegacyStateFile(t *testing.T) {
	file := filepath.Join(t.TempDir(), "health.json")
	set := compile(t, zoneYAML("{type: http, port: 8080}", []string{e1}, []string{w1}))
	key := set.Zone("example.net.").Services["web"].Endpoints[0].Probe.Key
	old := fmt.Sprintf(`{"version": 1, "probes": {%q: {"up": false, "since": "2026-11-30T10:00:00Z", "reason": "refused"}},
 "site_overrides": {"west": "drain"}, "endpoint_overrides": {}, "dials": [{"service": "web", "site": "east", "weight": 0.5}]}`, key)
	require.NoError(t, os.WriteFile(file, []byte(old), 0o644))
	m := NewManager(Options{Allow: loopback, Log: quiet, StateFile: file})
	m.SetZones(set)
	require.False(t, upOf(m, set, e1), "the old file's down state is kept")
	require.True(t, upOf(m, set, w1), "health knows nothing of drains")
}

func TestSetZonesReconciles(t *testing.T) {
	set := compile(t, zoneYAML("{type: http, port: 8080}", []string{e1}, []string{w1}))
	m := NewManager(Options{Allow: loopback, Log: quiet})
	m.SetZones(set)
	p := probeFor(t, m, e1)
	m.record(p, Result{}, nil)
	m.record(p, Result{}, nil)
	require.False(t, upOf(m, set, e1))

	// West's endpoint is replaced, east's is unchanged.
	const w2 = "127.0.0.4:8080"
	set2 := compile(t, zoneYAML("{type: http, port: 8080}", []string{e1}, []string{w2}))
	m.SetZones(set2)
	require.False(t, upOf(m, set2, e1), "an unchanged endpoint keeps its state")
	require.True(t, upOf(m, set2, w2), "a new endpoint starts up")
	require.Same(t, p, probeFor(t, m, e1))
	m.mu.Lock()
	require.Len(t, m.probes, 2)
	live := 0
	for _, q := range m.queue {
		if !q.p.removed {
			live++
		}
	}
	require.Equal(t, 2, live, "the replaced probe's entry is dropped when it comes up")
	m.mu.Unlock()

	// A removed probe's late result changes nothing.
	old := probeFor(t, m, w2)
	m.SetZones(compile(t, zoneYAML("{type: http, port: 8080}", []string{e1}, nil)))
	m.record(old, Result{}, nil)
	m.mu.Lock()
	require.Len(t, m.probes, 1)
	m.mu.Unlock()
}

// TestCheckChangeKeepsState: an edit of a check's settings makes new
// probes for its endpoints; they start from the state the old probes had,
// not up. Before, a site known dead was answered at the full TTL until
// the new probe failed fall times.
func TestCheckChangeKeepsState(t *testing.T) {
	set := compile(t, zoneYAML("{type: http, port: 8080}", []string{e1}, []string{w1}))
	m := NewManager(Options{Allow: loopback, Log: quiet})
	m.SetZones(set)
	p := probeFor(t, m, e1)
	m.record(p, Result{Reason: "connection refused"}, nil)
	m.record(p, Result{Reason: "connection refused"}, nil)
	m.record(probeFor(t, m, w1), Result{OK: true}, nil)
	require.False(t, upOf(m, set, e1))

	set2 := compile(t, zoneYAML("{type: http, port: 8080, timeout: 700ms}", []string{e1}, []string{w1}))
	m.SetZones(set2)
	p2 := probeFor(t, m, e1)
	require.NotSame(t, p, p2, "other settings: another probe")
	require.False(t, upOf(m, set2, e1), "still down: the state it had")
	require.True(t, upOf(m, set2, w1))
	require.Contains(t, p2.reason, "connection refused (before the check changed)")

	// It comes back as any down endpoint does: after rise successes.
	m.record(p2, Result{OK: true}, nil)
	require.False(t, upOf(m, set2, e1))
}

// TestReturns: when a probe came back up (its down-to-up, which the
// return ramp reads) is published and survives a restart.
func TestReturns(t *testing.T) {
	file := filepath.Join(t.TempDir(), "health.json")
	set := compile(t, zoneYAML("{type: http, port: 8080, rise: 2, fall: 1}", []string{e1}, []string{w1}))
	eps := set.Zone("example.net.").Services["web"].Endpoints
	east := eps[0].Probe
	m, stop := savingManager(file, set)

	p := probeFor(t, m, e1)
	m.record(p, Result{OK: true}, nil)
	require.True(t, m.Table().Probe(east).Back.IsZero(), "up from the start is no return")
	m.record(p, Result{Reason: "refused"}, nil)
	m.record(p, Result{OK: true}, nil)
	require.True(t, m.Table().Probe(east).Back.IsZero(), "one success of rise 2: still down")
	before := time.Now()
	m.record(p, Result{OK: true}, nil)
	back := m.Table().Probe(east).Back
	require.False(t, back.Before(before), "came back up: %v", back)
	require.True(t, m.Table().LastReturn().Equal(back))

	require.Eventually(t, func() bool {
		st, err := load(file)
		return err == nil && st.Probes[p.key].Back.Equal(back)
	}, 5*time.Second, 10*time.Millisecond)
	stop()

	m2 := NewManager(Options{Allow: loopback, Log: quiet, StateFile: file})
	m2.SetZones(set)
	require.True(t, m2.Table().Probe(east).Back.Equal(back), "the return time survived a restart")
}

// TestProbeHeap: entries come out in time order, also after the first one's
// time grew (a probe run and queued again).
func TestProbeHeap(t *testing.T) {
	var h probeHeap
	r := rand.New(rand.NewPCG(1, 2))
	for range 1000 {
		h.push(queued{at: time.Duration(r.IntN(10000))})
	}
	for range 5000 { // run the first, queue it again later
		h[0].at += time.Duration(r.IntN(10000))
		h.down(0)
	}
	last := time.Duration(-1)
	for len(h) > 0 {
		require.GreaterOrEqual(t, h[0].at, last)
		last = h[0].at
		h.pop()
	}
}

// TestBatchWindow: probes start in batches at most 1 % of the shortest
// check interval late, between 10 ms and 100 ms.
func TestBatchWindow(t *testing.T) {
	for _, tc := range []struct {
		intervals []string // of the zone's checks, each probing its own target
		want      time.Duration
	}{
		{[]string{"1s"}, 10 * time.Millisecond},
		{[]string{"200ms"}, 10 * time.Millisecond},
		{[]string{"5s"}, 50 * time.Millisecond},
		{[]string{"10s"}, 100 * time.Millisecond},
		{[]string{"60s"}, 100 * time.Millisecond},
		{[]string{"10s", "2s"}, 20 * time.Millisecond}, // the shortest decides
	} {
		t.Run(strings.Join(tc.intervals, ","), func(t *testing.T) {
			var b strings.Builder
			b.WriteString("soa: {ns: ns1.example.net., mbox: h.example.net.}\nrecords:\n  \"@\": {NS: [ns1.example.net.]}\n  www: {service: web}\n")
			b.WriteString("sites:\n  east: {lat: 39, lon: -77}\nchecks:\n")
			for i, iv := range tc.intervals {
				fmt.Fprintf(&b, "  c%d: {type: tcp, port: 80, interval: %s, timeout: 100ms}\n", i, iv)
			}
			b.WriteString("services:\n  web:\n    endpoints:\n")
			for i := range tc.intervals {
				fmt.Fprintf(&b, "      - {site: east, address: 192.0.2.%d, check: c%d, target: \"127.0.0.%d\"}\n", i+1, i, i+1)
			}
			m := NewManager(Options{Allow: loopback, Log: quiet})
			m.SetZones(compile(t, b.String()))
			require.Equal(t, tc.want, m.batch)
		})
	}
}

// TestCheckChangeKeepsStatePerSite: an anycast address at two sites, each
// checked at its own target, is two endpoints: after an edit of the shared
// check, each new probe starts from its own site's state. (Keyed by the
// address alone, east's down state went to west too.)
func TestCheckChangeKeepsStatePerSite(t *testing.T) {
	zone := func(check string) *zones.Set {
		return compile(t, `soa: {ns: ns1.example.net., mbox: h.example.net.}
records:
  "@": {NS: [ns1.example.net.]}
  www: {service: web}
sites:
  east: {lat: 39, lon: -77}
  west: {lat: 37, lon: -122}
checks:
  hc: `+check+`
services:
  web:
    endpoints:
      - {site: east, address: 192.0.2.1, check: hc, target: "`+e1+`"}
      - {site: west, address: 192.0.2.1, check: hc, target: "`+w1+`"}
`)
	}
	set := zone("{type: http, port: 8080}")
	m := NewManager(Options{Allow: loopback, Log: quiet})
	m.SetZones(set)
	p := probeFor(t, m, e1)
	m.record(p, Result{Reason: "refused"}, nil)
	m.record(p, Result{Reason: "refused"}, nil)
	m.record(probeFor(t, m, w1), Result{OK: true}, nil)
	require.False(t, upOf(m, set, e1))
	require.True(t, upOf(m, set, w1))

	set2 := zone("{type: http, port: 8080, timeout: 700ms}")
	m.SetZones(set2)
	require.False(t, upOf(m, set2, e1), "east stays down")
	require.True(t, upOf(m, set2, w1), "west stays up: another endpoint, though the same address")
}

// TestStaticDecidesAtOnce: a static check is the zone file's word, so its
// one result decides, without fall or rise runs; Static records them all
// without the scheduler (geodns explain offline).
func TestStaticDecidesAtOnce(t *testing.T) {
	set := compile(t, zoneYAML("{type: static, up: false}", []string{e1}, nil))
	m := NewManager(Options{Log: quiet})
	m.SetZones(set)
	ep := set.Zone("example.net.").Services["web"].Endpoints[0]
	require.True(t, m.Table().Probe(ep.Probe).Up, "nothing recorded yet")
	m.Static()
	require.False(t, m.Table().Probe(ep.Probe).Up, "down at its first result (fall is 2)")
}
