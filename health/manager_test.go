package health

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"os"
	"path/filepath"
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
			return m.Snapshot().EndpointUp(&ep)
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
	require.False(t, m.Snapshot().Ready(), "no zones yet")
	m.SetZones(set)
	p := probeFor(t, m, e1)
	ok, bad := Result{OK: true, Reason: "HTTP 200"}, Result{Reason: "connection refused"}

	require.True(t, upOf(m, set, e1), "up before any result")
	require.False(t, m.Snapshot().Ready())
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

	require.False(t, m.Snapshot().Ready(), "west has had no result yet")
	m.record(probeFor(t, m, w1), ok, nil)
	require.True(t, m.Snapshot().Ready(), "every probe has run once")

	st := m.Status()
	require.Len(t, st, 2)
	require.Equal(t, e1, st[0].Target)
	require.Equal(t, "HTTP 200", st[0].Reason)
	require.Equal(t, []string{"192.0.2.1"}, st[0].Endpoints)
}

func TestOverrides(t *testing.T) {
	set := compile(t, zoneYAML("{type: static}", []string{e1}, []string{w1}))
	m := NewManager(Options{Allow: loopback, Log: quiet})
	m.SetZones(set)
	eps := set.Zone("example.net.").Services["web"].Endpoints
	east, west := &eps[0], &eps[1]
	if east.Site != "east" {
		east, west = west, east
	}
	require.True(t, m.Snapshot().EndpointUp(east))

	require.NoError(t, m.SetSite("east", Drain))
	require.False(t, m.Snapshot().EndpointUp(east), "drained")
	require.True(t, m.Snapshot().EndpointUp(west))

	require.NoError(t, m.SetEndpoint(east.ID, ForceUp))
	require.True(t, m.Snapshot().EndpointUp(east), "the endpoint's override beats its site's")

	require.NoError(t, m.SetEndpoint(east.ID, ""))
	require.NoError(t, m.SetSite("east", ""))
	require.True(t, m.Snapshot().EndpointUp(east), "cleared")
	require.Error(t, m.SetSite("east", "sideways"))
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

func TestPersistence(t *testing.T) {
	file := filepath.Join(t.TempDir(), "health.json")
	set := compile(t, zoneYAML("{type: http, port: 8080}", []string{e1}, []string{w1}))
	m, stop := savingManager(file, set)
	p := probeFor(t, m, e1)
	m.record(p, Result{Reason: "connection refused"}, nil)
	m.record(p, Result{Reason: "connection refused"}, nil)
	require.NoError(t, m.SetSite("west", Drain))
	require.Eventually(t, func() bool {
		st, err := load(file)
		return err == nil && len(st.Probes) == 1 && !st.Probes[p.key].Up && st.Sites["west"] == Drain
	}, 5*time.Second, 10*time.Millisecond)
	stop()

	// A new process: the state is there before any probe runs.
	m2 := NewManager(Options{Allow: loopback, Log: quiet, StateFile: file})
	m2.SetZones(set)
	require.False(t, upOf(m2, set, e1), "down from the first query after a restart")
	require.False(t, upOf(m2, set, w1), "the drain survived")
	st := m2.Status()
	require.Contains(t, st[0].Reason, "(before restart)")

	// The state must come back up through rise successes, as any down endpoint.
	p2 := probeFor(t, m2, e1)
	m2.record(p2, Result{OK: true}, nil)
	require.False(t, upOf(m2, set, e1))
}

// TestCorruptStateFileKeepsDrains: a truncated state file at start is kept
// aside, counted, and the previous copy is loaded: the drain survives (it
// used to be lost, and the file rewritten without it).
func TestCorruptStateFileKeepsDrains(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "health.json")
	set := compile(t, zoneYAML("{type: http, port: 8080}", []string{e1}, []string{w1}))
	m := NewManager(Options{Allow: loopback, Log: quiet, StateFile: file})
	m.SetZones(set)
	require.NoError(t, m.SetSite("west", Drain))
	require.NoError(t, m.SetDial("web", "east", 0.5)) // a second write: the first is now the previous copy
	data, err := os.ReadFile(file)
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(file, data[:len(data)/2], 0o644)) // a torn write, a full disk

	reg := prometheus.NewRegistry()
	m2 := NewManager(Options{Allow: loopback, Log: quiet, StateFile: file, Registerer: reg})
	m2.SetZones(set)
	require.False(t, upOf(m2, set, w1), "the drain survived a corrupt state file")
	aside, _ := filepath.Glob(file + ".corrupt-*")
	require.Len(t, aside, 1, "the corrupt file is kept for a post-mortem")
	got, err := os.ReadFile(aside[0])
	require.NoError(t, err)
	require.Equal(t, data[:len(data)/2], got)
	require.Equal(t, 1.0, testutil.ToFloat64(m2.metrics.stateCorrupt))

	// The next write starts a good file again; the drain is in it.
	require.NoError(t, m2.SetSite("east", Drain))
	st, err := load(file)
	require.NoError(t, err)
	require.Equal(t, map[string]Override{"east": Drain, "west": Drain}, st.Sites)
}

// TestOverrideNotSavedIsNotMade: when the state file cannot be written,
// an override fails, is not in effect, and StateError says why until a
// write succeeds again. (It used to be applied and acknowledged, and
// forgotten at the next restart.)
func TestOverrideNotSavedIsNotMade(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "state")
	require.NoError(t, os.Mkdir(dir, 0o755))
	file := filepath.Join(dir, "health.json")
	set := compile(t, zoneYAML("{type: http, port: 8080}", []string{e1}, []string{w1}))
	m := NewManager(Options{Allow: loopback, Log: quiet, StateFile: file})
	m.SetZones(set)
	// A file where the directory was: every write fails (read-only
	// permissions do not stop root, which the tests may run as).
	require.NoError(t, os.RemoveAll(dir))
	require.NoError(t, os.WriteFile(dir, nil, 0o644))

	err := m.SetSite("west", Drain)
	require.ErrorIs(t, err, ErrNotSaved)
	require.True(t, upOf(m, set, w1), "a drain that is not on disk is not made")
	sites, _ := m.Overrides()
	require.Empty(t, sites)
	require.ErrorIs(t, m.SetDial("web", "east", 0.5), ErrNotSaved)
	_, ok := m.Dial("web", "east")
	require.False(t, ok)
	require.Error(t, m.StateError())

	// Writable again: the next write clears the error.
	require.NoError(t, os.Remove(dir))
	require.NoError(t, os.Mkdir(dir, 0o755))
	require.NoError(t, m.SetSite("west", Drain))
	require.NoError(t, m.StateError())
	require.False(t, upOf(m, set, w1))
	st, err := load(file)
	require.NoError(t, err)
	require.Equal(t, Drain, st.Sites["west"])
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

// TestReturnsAndDials: what the return ramp and dials read — when an
// endpoint came back (a probe's down-to-up, a lifted drain) and the API's
// dials — is published and survives a restart.
func TestReturnsAndDials(t *testing.T) {
	file := filepath.Join(t.TempDir(), "health.json")
	set := compile(t, zoneYAML("{type: http, port: 8080, rise: 2, fall: 1}", []string{e1}, []string{w1}))
	eps := set.Zone("example.net.").Services["web"].Endpoints
	east, west := &eps[0], &eps[1]
	m, stop := savingManager(file, set)

	p := probeFor(t, m, e1)
	m.record(p, Result{OK: true}, nil)
	require.True(t, m.Snapshot().Returned(east).IsZero(), "up from the start is no return")
	m.record(p, Result{Reason: "refused"}, nil)
	m.record(p, Result{OK: true}, nil)
	require.True(t, m.Snapshot().Returned(east).IsZero(), "one success of rise 2: still down")
	before := time.Now()
	m.record(p, Result{OK: true}, nil)
	back := m.Snapshot().Returned(east)
	require.False(t, back.Before(before), "came back up: %v", back)

	require.True(t, m.Snapshot().Returned(west).IsZero())
	require.NoError(t, m.SetSite("west", Drain))
	require.True(t, m.Snapshot().Returned(west).IsZero(), "a drain is no return")
	require.NoError(t, m.SetSite("west", ""))
	lifted := m.Snapshot().Returned(west)
	require.False(t, lifted.IsZero(), "undrained: a return")

	require.NoError(t, m.SetDial("web", "east", 0.25))
	w, ok := m.Dial("web", "east")
	require.True(t, ok)
	require.Equal(t, 0.25, w)
	require.Error(t, m.SetDial("web", "east", 1.5))
	require.NoError(t, m.SetDial("web", "west", 0.5))
	require.NoError(t, m.SetDial("web", "west", -1))
	_, ok = m.Dial("web", "west")
	require.False(t, ok, "cleared")

	require.Eventually(t, func() bool {
		st, err := load(file)
		return err == nil && len(st.Dials) == 1 && len(st.Lifted) == 1
	}, 5*time.Second, 10*time.Millisecond)
	stop()

	m2 := NewManager(Options{Allow: loopback, Log: quiet, StateFile: file})
	m2.SetZones(set)
	w, ok = m2.Dial("web", "east")
	require.True(t, ok, "the dial survived a restart")
	require.Equal(t, 0.25, w)
	require.True(t, m2.Snapshot().Returned(east).Equal(back), "the return time survived a restart")
	require.True(t, m2.Snapshot().Returned(west).Equal(lifted))
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
