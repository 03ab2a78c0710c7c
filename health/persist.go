package health

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"sync"
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

func (m *Manager) stateLocked() state {
	st := state{Version: 1, Probes: make(map[string]savedProbe, len(m.probes)), Sites: m.sites, Endpoints: m.endpoints,
		Lifted: m.lifted}
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

// load reads a state file; a missing file is an empty state.
func load(path string) (state, error) {
	st := state{Probes: map[string]savedProbe{}}
	data, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return st, nil
	}
	if err != nil {
		return st, err
	}
	if err := json.Unmarshal(data, &st); err != nil {
		return state{Probes: map[string]savedProbe{}}, fmt.Errorf("%s: %w", path, err)
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

// saver writes the state file off the caller's path: the newest state wins,
// at most one write at a time.
type saver struct {
	path string
	log  *slog.Logger

	mu      sync.Mutex
	pending []byte
	kick    chan struct{}
}

func newSaver(path string, log *slog.Logger) *saver {
	return &saver{path: path, log: log, kick: make(chan struct{}, 1)}
}

// save queues st; the marshalling happens here so st may change afterwards.
func (s *saver) save(st state) {
	data, err := json.MarshalIndent(st, "", " ")
	if err != nil {
		s.log.Error("health state not saved", "error", err)
		return
	}
	s.mu.Lock()
	s.pending = data
	s.mu.Unlock()
	select {
	case s.kick <- struct{}{}:
	default:
	}
}

func (s *saver) run(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			s.flush() // the last state reaches the disk on shutdown
			return
		case <-s.kick:
			s.flush()
		}
	}
}

func (s *saver) flush() {
	s.mu.Lock()
	data := s.pending
	s.pending = nil
	s.mu.Unlock()
	if data == nil {
		return
	}
	if err := writeAtomic(s.path, data); err != nil {
		s.log.Error("health state not saved", "file", s.path, "error", err)
	}
}

// writeAtomic replaces path with data so that a crash leaves the old file
// or the new one, never a mix: temp file, fsync, rename, fsync the folder.
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
