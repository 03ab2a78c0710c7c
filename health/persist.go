package health

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/geodns/geodns/internal/statefile"
)

// state is what the state file holds: probe states. Up to format 1 it
// also held the operator's overrides and dials; those are package
// opstate's now, in their own file, which migrates them from here (and
// this package ignores them when it reads an old file).
type state struct {
	Version int                   `json:"version"`
	Probes  map[string]savedProbe `json:"probes"`
}

// stateVersion is the state file's format: 2 has probes only.
const stateVersion = 2

type savedProbe struct {
	Up     bool      `json:"up"`
	Since  time.Time `json:"since"`
	Reason string    `json:"reason"`
	Back   time.Time `json:"back,omitzero"` // last down-to-up transition
}

// stateLocked is the state to persist; its maps are copies, so it may be
// marshalled after m.mu is released.
func (m *Manager) stateLocked() state {
	st := state{Version: stateVersion, Probes: make(map[string]savedProbe, len(m.probes))}
	for k, p := range m.probes {
		switch {
		case m.sharing && p.decided:
			// In an NS set the state to start from is the set's.
			st.Probes[k] = savedProbe{p.eff.Up, p.since, p.reason, p.eff.Back}
		case p.known:
			st.Probes[k] = savedProbe{p.up, p.since, p.reason, p.back}
		}
	}
	return st
}

// load reads a state file; a missing file is an empty state.
func load(path string) (state, error) {
	var st state
	data, err := statefile.Read(path)
	if err == nil && data != nil {
		if err = json.Unmarshal(data, &st); err != nil {
			st, err = state{}, fmt.Errorf("%s: %w: %v", path, statefile.ErrCorrupt, err)
		}
	}
	if st.Probes == nil {
		st.Probes = map[string]savedProbe{}
	}
	return st, err
}

// loadState reads the state file at start. A corrupt file is renamed aside
// (path.corrupt-<time>), logged and counted, and the previous copy is read
// instead (statefile.Load).
func (m *Manager) loadState(path string) state {
	st := state{Probes: map[string]savedProbe{}}
	if statefile.Load(path, "health state", m.log, func(b []byte) error {
		var x state
		if err := json.Unmarshal(b, &x); err != nil {
			return err
		}
		st = x
		return nil
	}) {
		m.metrics.stateCorrupt.Inc()
	}
	if st.Probes == nil {
		st.Probes = map[string]savedProbe{}
	}
	return st
}

// saver writes probe states to the state file off the caller's path: at
// most one write at a time, each of the newest state.
type saver struct {
	m    *Manager
	kick chan struct{}
}

func newSaver(m *Manager) *saver {
	return &saver{m: m, kick: make(chan struct{}, 1)}
}

// save asks for a write of the current state.
func (s *saver) save() {
	select {
	case s.kick <- struct{}{}:
	default:
	}
}

func (s *saver) run(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			s.m.flush() // the last state reaches the disk on shutdown
			return
		case <-s.kick:
			s.m.flush()
		}
	}
}

// flush writes the current state. Writes are serialized by saveMu and each
// takes the state when it starts, so the newest write has the newest state.
func (m *Manager) flush() {
	m.saveMu.Lock()
	defer m.saveMu.Unlock()
	m.mu.Lock()
	st := m.stateLocked()
	m.mu.Unlock()
	m.writeState(st)
}

// stateLogEvery is how often a state file that keeps failing is logged
// again: not silently, not on every write.
const stateLogEvery = time.Minute

// writeState writes st to the state file and records the outcome: a
// failure counts, logs and turns /readyz (StateError) to not ready until a
// write succeeds again. Callers hold saveMu.
func (m *Manager) writeState(st state) error {
	data, err := json.MarshalIndent(st, "", " ")
	if err == nil {
		err = statefile.Write(m.stateFile, data)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if err != nil {
		m.metrics.stateWriteErrors.Inc()
		if now := time.Now(); m.stateErr == nil || now.Sub(m.stateLog) >= stateLogEvery {
			m.log.Error("health state not saved; not ready until it is", "file", m.stateFile, "error", err)
			m.stateLog = now
		}
		m.stateErr = err
		return err
	}
	if m.stateErr != nil {
		m.log.Info("health state saved again", "file", m.stateFile)
	}
	m.stateErr = nil
	return nil
}

// StateError returns why the last write of the state file failed, or nil
// when it succeeded (or there is no state file).
func (m *Manager) StateError() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.stateErr
}
