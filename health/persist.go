package health

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"time"
)

// errBadOverride rejects an override that is not drain, up or down.
var errBadOverride = errors.New(`override must be "drain", "up" or "down"`)

var errBadDial = errors.New("dial weight must be from 0 to 100 percent")

// state is what the state file holds.
type state struct {
	Version   int                   `json:"version"`
	Probes    map[string]savedProbe `json:"probes"`
	Sites     map[string]Override   `json:"site_overrides"`
	Endpoints map[string]Override   `json:"endpoint_overrides"`
	Lifted    map[string]time.Time  `json:"overrides_lifted,omitempty"`
	Dials     []Dial                `json:"dials,omitempty"`
}

type savedProbe struct {
	Up     bool      `json:"up"`
	Since  time.Time `json:"since"`
	Reason string    `json:"reason"`
	Back   time.Time `json:"back,omitzero"` // last down-to-up transition
}

// Dial is a dial set through the API: the share (0-1) of its own clients
// a site of a service keeps.
type Dial struct {
	Service string  `json:"service"`
	Site    string  `json:"site"`
	Weight  float64 `json:"weight"`
}

// stateLocked is the state to persist; its maps are copies, so it may be
// marshalled (and changed) after m.mu is released.
func (m *Manager) stateLocked() state {
	st := state{Version: 1, Probes: make(map[string]savedProbe, len(m.probes)), Sites: maps.Clone(m.sites),
		Endpoints: maps.Clone(m.endpoints), Lifted: maps.Clone(m.lifted)}
	for k, p := range m.probes {
		if p.known {
			st.Probes[k] = savedProbe{p.up, p.since, p.reason, p.back}
		}
	}
	st.Dials = m.dialsLocked()
	return st
}

// dialsLocked lists the dials by service and site.
func (m *Manager) dialsLocked() []Dial {
	var out []Dial
	for k, w := range m.dials {
		out = append(out, Dial{k.Service, k.Site, w})
	}
	slices.SortFunc(out, func(a, b Dial) int {
		return cmp.Or(cmp.Compare(a.Service, b.Service), cmp.Compare(a.Site, b.Site))
	})
	return out
}

// maxStateFile bounds the state file read at start: far above what 30,000
// probes and their overrides take (a few MB), so a bigger one is not ours.
const maxStateFile = 64 << 20

// errCorrupt marks a state file that exists but cannot be used: not JSON,
// truncated, too big or not a regular file.
var errCorrupt = errors.New("corrupt state file")

// load reads a state file; a missing file is an empty state.
func load(path string) (state, error) {
	st := state{Probes: map[string]savedProbe{}}
	fi, err := os.Stat(path)
	if errors.Is(err, os.ErrNotExist) {
		return st, nil
	}
	if err != nil {
		return st, err
	}
	if !fi.Mode().IsRegular() || fi.Size() > maxStateFile {
		return st, fmt.Errorf("%s: %w: not a regular file of at most %d bytes", path, errCorrupt, maxStateFile)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return st, err
	}
	if err := json.Unmarshal(data, &st); err != nil {
		return state{Probes: map[string]savedProbe{}}, fmt.Errorf("%s: %w: %v", path, errCorrupt, err)
	}
	if st.Probes == nil {
		st.Probes = map[string]savedProbe{}
	}
	for name, o := range st.Sites {
		if !o.valid() {
			delete(st.Sites, name)
		}
	}
	for name, o := range st.Endpoints {
		if !o.valid() {
			delete(st.Endpoints, name)
		}
	}
	st.Dials = slices.DeleteFunc(st.Dials, func(d Dial) bool { return !(d.Weight >= 0 && d.Weight <= 1) })
	return st, nil
}

// prevSuffix names the copy of the state file kept from before its last
// replacement: the last good state when the file itself is damaged.
const prevSuffix = ".prev"

// loadState reads the state file at start. A corrupt file is renamed aside
// (path.corrupt-<time>), logged and counted, and the previous copy is read
// instead, so a damaged file never silently loses the drains: the next
// write would otherwise replace it with a state that has none.
func (m *Manager) loadState(path string) state {
	st, err := load(path)
	if err == nil {
		return st
	}
	m.log.Error("health state file not loaded", "file", path, "error", err)
	if !errors.Is(err, errCorrupt) {
		// Unreadable (permissions, I/O): leave it alone; writes will fail
		// too and say so on /readyz.
		return st
	}
	m.metrics.stateCorrupt.Inc()
	aside := path + ".corrupt-" + time.Now().UTC().Format("20060102T150405.000Z")
	if err := os.Rename(path, aside); err != nil {
		m.log.Error("corrupt health state file not moved aside", "file", path, "error", err)
	} else {
		m.log.Error("corrupt health state file kept aside", "file", aside)
	}
	prev, err := load(path + prevSuffix)
	if err != nil {
		m.log.Error("previous health state not loaded either; starting with no overrides and every endpoint up",
			"file", path+prevSuffix, "error", err)
		return prev
	}
	m.log.Warn("health state loaded from the previous copy", "file", path+prevSuffix,
		"site_overrides", len(prev.Sites), "endpoint_overrides", len(prev.Endpoints), "dials", len(prev.Dials))
	return prev
}

// ErrNotSaved wraps a failure to write the state file: the change asked
// for was not made, since it would not survive a restart.
var ErrNotSaved = errors.New("state file not written")

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

// writeState writes st to the state file and records the outcome: a
// failure counts, logs and turns /readyz (StateError) to not ready until a
// write succeeds again. Callers hold saveMu.
func (m *Manager) writeState(st state) error {
	data, err := json.MarshalIndent(st, "", " ")
	if err == nil {
		err = writeAtomic(m.stateFile, data)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if err != nil {
		m.metrics.stateWriteErrors.Inc()
		if m.stateErr == nil {
			m.log.Error("health state not saved; not ready until it is", "file", m.stateFile, "error", err)
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

// writeAtomic replaces path with data so that a crash leaves the old file
// or the new one, never a mix: temp file, fsync, rename, fsync the folder.
// The file replaced stays as path.prev (a hard link), the last good copy
// for loadState.
func writeAtomic(path string, data []byte) error {
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".*")
	if err != nil {
		return err
	}
	tmp := f.Name()
	defer os.Remove(tmp) // after a successful rename there is nothing to remove
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	if fi, err := os.Lstat(path); err == nil && fi.Mode().IsRegular() {
		prev := path + prevSuffix
		if err := os.Remove(prev); err != nil && !errors.Is(err, os.ErrNotExist) {
			return err
		}
		if err := os.Link(path, prev); err != nil {
			// No hard links on this file system: a copy does.
			old, err := os.ReadFile(path)
			if err != nil {
				return err
			}
			if err := os.WriteFile(prev, old, 0o644); err != nil {
				return err
			}
		}
	}
	if err := os.Rename(tmp, path); err != nil {
		return err
	}
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}
