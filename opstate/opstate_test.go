package opstate

import (
	"encoding/json"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/stretchr/testify/require"
)

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

func mustApply(t *testing.T, s Store, c Change) *State {
	t.Helper()
	st, err := s.Apply(c)
	require.NoError(t, err)
	return st
}

func TestOverrides(t *testing.T) {
	s := OpenFile(FileOptions{Log: quiet})
	up := func(site, id string) bool {
		o, ok := s.Load().Override(site, id)
		return !ok || o == ForceUp
	}
	require.True(t, up("east", "192.0.2.1"))
	mustApply(t, s, Site("east", Drain))
	require.False(t, up("east", "192.0.2.1"), "drained")
	require.True(t, up("west", "192.0.2.2"))
	mustApply(t, s, Endpoint("192.0.2.1", ForceUp))
	require.True(t, up("east", "192.0.2.1"), "the endpoint's override beats its site's")
	mustApply(t, s, Endpoint("192.0.2.1", ""))
	mustApply(t, s, Site("east", ""))
	require.True(t, up("east", "192.0.2.1"), "cleared")
	_, err := s.Apply(Site("east", "sideways"))
	require.ErrorIs(t, err, ErrBadOverride)
	_, err = s.Apply(DialOf("web", "east", 1.5))
	require.ErrorIs(t, err, ErrBadDial)
}

// TestWatch: a watcher sees every new state, after it is current.
func TestWatch(t *testing.T) {
	s := OpenFile(FileOptions{Log: quiet})
	var seen []uint64
	s.Watch(func(st *State) {
		require.Same(t, st, s.Load())
		seen = append(seen, st.Version())
	})
	v0 := s.Load().Version()
	mustApply(t, s, Site("east", Drain))
	mustApply(t, s, DialOf("web", "east", 0.5))
	require.Equal(t, []uint64{v0 + 1, v0 + 2}, seen)
}

// TestLiftsAndDials: a lifted drain is a return (the ramp reads it), a
// drain is not; dials set and clear; both survive a restart.
func TestLiftsAndDials(t *testing.T) {
	file := filepath.Join(t.TempDir(), "operator.json")
	s := OpenFile(FileOptions{Path: file, Log: quiet})
	require.True(t, mustApply(t, s, Site("west", Drain)).Lifted("west", "x").IsZero(), "a drain is no return")
	before := time.Now()
	st := mustApply(t, s, Site("west", ""))
	lifted := st.Lifted("west", "x")
	require.False(t, lifted.Before(before), "undrained: a return")
	require.True(t, st.LastLift().Equal(lifted))

	mustApply(t, s, DialOf("web", "east", 0.25))
	w, ok := s.Load().Dial("web", "east")
	require.True(t, ok)
	require.Equal(t, 0.25, w)
	mustApply(t, s, DialOf("web", "west", 0.5))
	mustApply(t, s, DialOf("web", "west", -1))
	_, ok = s.Load().Dial("web", "west")
	require.False(t, ok, "cleared")

	s2 := OpenFile(FileOptions{Path: file, Log: quiet})
	w, ok = s2.Load().Dial("web", "east")
	require.True(t, ok, "the dial survived a restart")
	require.Equal(t, 0.25, w)
	require.True(t, s2.Load().Lifted("west", "x").Equal(lifted), "the lift survived a restart")
}

// TestCorruptStateFileKeepsDrains: a truncated state file at start is kept
// aside, counted, and the previous copy is loaded: the drain survives (it
// used to be lost, and the file rewritten without it).
func TestCorruptStateFileKeepsDrains(t *testing.T) {
	file := filepath.Join(t.TempDir(), "operator.json")
	s := OpenFile(FileOptions{Path: file, Log: quiet})
	mustApply(t, s, Site("west", Drain))
	mustApply(t, s, DialOf("web", "east", 0.5)) // a second write: the first is now the previous copy
	data, err := os.ReadFile(file)
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(file, data[:len(data)/2], 0o644)) // a torn write, a full disk

	reg := prometheus.NewRegistry()
	s2 := OpenFile(FileOptions{Path: file, Log: quiet, Registerer: reg})
	require.Equal(t, map[string]Override{"west": Drain}, s2.Load().Sites(), "the drain survived a corrupt state file")
	aside, _ := filepath.Glob(file + ".corrupt-*")
	require.Len(t, aside, 1, "the corrupt file is kept for a post-mortem")
	got, err := os.ReadFile(aside[0])
	require.NoError(t, err)
	require.Equal(t, data[:len(data)/2], got)
	require.Equal(t, 1.0, testutil.ToFloat64(s2.metrics.corrupt))

	// The next write starts a good file again; the drain is in it.
	mustApply(t, s2, Site("east", Drain))
	s3 := OpenFile(FileOptions{Path: file, Log: quiet})
	require.Equal(t, map[string]Override{"east": Drain, "west": Drain}, s3.Load().Sites())
}

// TestChangeNotSavedIsNotMade: when the state file cannot be written, a
// change fails, is not in effect, and Err says why until a write succeeds
// again. (It used to be applied and acknowledged, and forgotten at the
// next restart.)
func TestChangeNotSavedIsNotMade(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "state")
	require.NoError(t, os.Mkdir(dir, 0o755))
	file := filepath.Join(dir, "operator.json")
	s := OpenFile(FileOptions{Path: file, Log: quiet})
	// A file where the directory was: every write fails (read-only
	// permissions do not stop root, which the tests may run as).
	require.NoError(t, os.RemoveAll(dir))
	require.NoError(t, os.WriteFile(dir, nil, 0o644))

	_, err := s.Apply(Site("west", Drain))
	require.ErrorIs(t, err, ErrNotSaved)
	require.Empty(t, s.Load().Sites(), "a drain that is not on disk is not made")
	_, err = s.Apply(DialOf("web", "east", 0.5))
	require.ErrorIs(t, err, ErrNotSaved)
	_, ok := s.Load().Dial("web", "east")
	require.False(t, ok)
	require.Error(t, s.Err())

	// Writable again: the next write clears the error.
	require.NoError(t, os.Remove(dir))
	require.NoError(t, os.Mkdir(dir, 0o755))
	mustApply(t, s, Site("west", Drain))
	require.NoError(t, s.Err())
	require.Equal(t, Drain, OpenFile(FileOptions{Path: file, Log: quiet}).Load().Sites()["west"])
}

// legacyFile is a health state file of format 1, which held the operator
// state beside probe states.
const legacyFile = `{
 "version": 1,
 "probes": {"127.0.0.2:8080|http|8080||||\"\"|1s|1s|3|2|false|false||0|true": {"up": false, "since": "2026-11-30T10:00:00Z", "reason": "refused"}},
 "site_overrides": {"west": "drain"},
 "endpoint_overrides": {"192.0.2.7": "down"},
 "overrides_lifted": {"site:east": "2026-11-30T10:00:00Z"},
 "dials": [{"service": "web", "site": "east", "weight": 0.5}]
}`

// TestMigrateLegacyStateFile: an upgrade keeps its drains. With no state
// file yet, the old health state file's overrides, lifts and dials are
// loaded and written to the new file at once, before health rewrites the
// old one without them.
func TestMigrateLegacyStateFile(t *testing.T) {
	dir := t.TempDir()
	legacy, file := filepath.Join(dir, "health.json"), filepath.Join(dir, "operator.json")
	require.NoError(t, os.WriteFile(legacy, []byte(legacyFile), 0o644))
	check := func(st *State) {
		t.Helper()
		require.Equal(t, map[string]Override{"west": Drain}, st.Sites())
		require.Equal(t, map[string]Override{"192.0.2.7": ForceDown}, st.Endpoints())
		w, ok := st.Dial("web", "east")
		require.True(t, ok)
		require.Equal(t, 0.5, w)
		require.True(t, st.Lifted("east", "x").Equal(time.Date(2026, 11, 30, 10, 0, 0, 0, time.UTC)))
	}
	s := OpenFile(FileOptions{Path: file, Legacy: legacy, Log: quiet})
	check(s.Load())

	// The new file holds them; the old one is no longer read, so health
	// may rewrite it with probes only.
	var d data
	b, err := os.ReadFile(file)
	require.NoError(t, err)
	require.NoError(t, json.Unmarshal(b, &d))
	require.Equal(t, fileVersion, d.Version)
	require.NoError(t, os.WriteFile(legacy, []byte(`{"version": 2, "probes": {}}`), 0o644))
	check(OpenFile(FileOptions{Path: file, Legacy: legacy, Log: quiet}).Load())

	// A later undrain is not undone by the legacy file at the next start.
	mustApply(t, s, Site("west", ""))
	require.NoError(t, os.WriteFile(legacy, []byte(legacyFile), 0o644))
	require.Empty(t, OpenFile(FileOptions{Path: file, Legacy: legacy, Log: quiet}).Load().Sites())
}

// TestMigrateCorruptLegacyFile: a corrupt legacy file's last good copy
// (.prev) is migrated.
func TestMigrateCorruptLegacyFile(t *testing.T) {
	dir := t.TempDir()
	legacy, file := filepath.Join(dir, "health.json"), filepath.Join(dir, "operator.json")
	require.NoError(t, os.WriteFile(legacy, []byte(legacyFile[:40]), 0o644))
	require.NoError(t, os.WriteFile(legacy+".prev", []byte(legacyFile), 0o644))
	s := OpenFile(FileOptions{Path: file, Legacy: legacy, Log: quiet})
	require.Equal(t, map[string]Override{"west": Drain}, s.Load().Sites())
}

// TestMeta: who made an override or a dial, when and why, is kept while it
// is set, survives a restart, and goes with it.
func TestMeta(t *testing.T) {
	file := filepath.Join(t.TempDir(), "operator.json")
	at := time.Date(2026, 12, 2, 10, 0, 0, 0, time.UTC)
	s := OpenFile(FileOptions{Path: file, Log: quiet, Now: func() time.Time { return at }})
	c := Site("east", Drain)
	c.Meta = Meta{From: "127.0.0.1:4242", Call: "POST /api/v1/sites/east/drain", Reason: "kernel upgrade"}
	mustApply(t, s, c)
	d := DialOf("web", "west", 0.5)
	d.Meta = Meta{From: "127.0.0.1:4243", Call: "POST /api/v1/services/web/sites/west/dial"}
	mustApply(t, s, d)

	st := OpenFile(FileOptions{Path: file, Log: quiet}).Load()
	want := c.Meta
	want.At = at
	require.Equal(t, want, st.SiteMeta("east"), "kept across a restart, dated by the store")
	require.Equal(t, "127.0.0.1:4243", st.DialMeta("web", "west").From)
	require.Zero(t, st.SiteMeta("west"))
	require.Zero(t, st.EndpointMeta("east"), "a site's meta is not an endpoint's")

	mustApply(t, s, Site("east", ""))
	mustApply(t, s, DialOf("web", "west", -1))
	require.Empty(t, s.Load().Metas(), "lifted: its meta goes with it")

	st = NewStateMeta(nil, map[string]Override{"192.0.2.1": ForceDown}, nil, nil,
		map[string]Meta{"endpoint:192.0.2.1": {Reason: "bad disk"}, "site:gone": {Reason: "stale"}}, 1)
	require.Equal(t, "bad disk", st.EndpointMeta("192.0.2.1").Reason)
	require.Len(t, st.Metas(), 1, "meta of nothing set is dropped")
}
