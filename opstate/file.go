package opstate

import (
	"encoding/json"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/geodns/geodns/internal/statefile"
	"github.com/prometheus/client_golang/prometheus"
)

// FileOptions configure a FileStore; the zero value keeps the state in
// memory only.
type FileOptions struct {
	// Path is the state file. "": none, changes take effect at once and
	// are lost at exit.
	Path string
	// Legacy is a state file of an older version (the health state file,
	// which held the overrides and dials beside probe states up to format
	// 1). When Path does not exist yet, the state is read from Legacy
	// (its last good copy if it is corrupt) and written to Path at once,
	// so an upgrade keeps its drains. "": none.
	Legacy string
	Log    *slog.Logger // nil: slog.Default
	// Registerer receives the store's metrics. nil: not registered.
	Registerer prometheus.Registerer
	// Now is the clock that dates lifts. nil: time.Now.
	Now func() time.Time
}

// FileStore is the Store of a single server: a JSON file replaced
// atomically (temp file, fsync, rename, fsync the folder), with the last
// good copy kept as .prev and a corrupt file kept aside as
// .corrupt-<time>.
type FileStore struct {
	opts    FileOptions
	log     *slog.Logger
	metrics *metrics

	mu       sync.Mutex // orders Apply: each applies to the last one's result
	errMu    sync.Mutex
	err      error // the last write failed
	watchers atomic.Pointer[[]func(*State)]
	cur      atomic.Pointer[State]
}

var _ Store = (*FileStore)(nil)

// OpenFile returns a store with the state of opts.Path (or of
// opts.Legacy, migrated) loaded. A corrupt file is kept aside and its
// previous copy loaded; an unreadable one leaves the state empty, and
// writes then fail and say so through Err.
func OpenFile(opts FileOptions) *FileStore {
	if opts.Log == nil {
		opts.Log = slog.Default()
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	s := &FileStore{opts: opts, log: opts.Log, metrics: newMetrics(opts.Registerer)}
	d := data{}
	if opts.Path != "" {
		if s.migrate(&d) {
			s.cur.Store(d.state(1))
			return s
		}
		if statefile.Load(opts.Path, "operator state", s.log, func(b []byte) error { return decode(b, &d) }) {
			s.metrics.corrupt.Inc()
		}
	}
	s.cur.Store(d.state(1))
	return s
}

// decode reads a state file into d; d is left empty when it fails.
func decode(b []byte, d *data) error {
	var x data
	if err := json.Unmarshal(b, &x); err != nil {
		return err
	}
	*d = x
	return nil
}

// migrate reads the legacy file into d when the state file does not
// exist yet, and writes it to the state file. It reports whether it did.
// The legacy file is only read: its owner (health) rewrites it without
// these fields, which is why the state file is written here first.
func (s *FileStore) migrate(d *data) bool {
	if s.opts.Legacy == "" {
		return false
	}
	if b, err := statefile.Read(s.opts.Path); err != nil || b != nil {
		return false // the state file exists (or cannot be read): it is the state
	}
	var old data
	err := decodeLegacy(s.opts.Legacy, &old)
	if err != nil {
		s.log.Error("legacy state file not loaded; its last good copy is tried", "file", s.opts.Legacy, "error", err)
		old = data{}
		if err := decodeLegacy(s.opts.Legacy+statefile.PrevSuffix, &old); err != nil {
			s.log.Error("operator state not migrated", "file", s.opts.Legacy+statefile.PrevSuffix, "error", err)
			return false
		}
	}
	if len(old.Sites)+len(old.Endpoints)+len(old.Dials)+len(old.Lifted) == 0 {
		return false
	}
	*d = old
	st := d.state(1)
	if err := s.write(st); err != nil {
		// In effect anyway: the legacy file still holds them, and the
		// next start migrates again.
		s.log.Error("migrated operator state not written", "file", s.opts.Path, "error", err)
	}
	s.log.Warn("operator state migrated from the health state file", "from", s.opts.Legacy, "to", s.opts.Path,
		"site_overrides", len(st.sites), "endpoint_overrides", len(st.endpoints), "dials", len(st.dials))
	return true
}

func decodeLegacy(path string, d *data) error {
	b, err := statefile.Read(path)
	if err != nil || b == nil {
		return err
	}
	return decode(b, d)
}

// Load implements Store.
func (s *FileStore) Load() *State { return s.cur.Load() }

// Apply implements Store: the state with c is written to the file, and
// only once it is on disk published: a change is never in effect, nor
// acknowledged, unless it survives a restart.
func (s *FileStore) Apply(c Change) (*State, error) {
	if err := c.Check(); err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	cur := s.cur.Load()
	next := cur.With(c, s.opts.Now(), cur.version+1)
	if s.opts.Path != "" {
		if err := s.write(next); err != nil {
			return nil, fmt.Errorf("%w: %v; the change is not made", ErrNotSaved, err)
		}
	}
	s.cur.Store(next)
	logChange(s.log, c)
	if ws := s.watchers.Load(); ws != nil {
		for _, f := range *ws {
			f(next)
		}
	}
	return next, nil
}

func logChange(log *slog.Logger, c Change) {
	switch c.Kind {
	case SiteOverride:
		log.Warn("override site", "site", c.Name, "override", string(c.Override))
	case EndpointOverride:
		log.Warn("override endpoint", "endpoint", c.Name, "override", string(c.Override))
	case SetDial:
		if c.Weight < 0 {
			log.Warn("dial cleared", "service", c.Service, "site", c.Name)
		} else {
			log.Warn("dial set", "service", c.Service, "site", c.Name, "weight", c.Weight)
		}
	}
}

// Watch implements Store.
func (s *FileStore) Watch(f func(*State)) {
	s.mu.Lock() // with Apply's: a watcher added sees every later state
	defer s.mu.Unlock()
	var ws []func(*State)
	if old := s.watchers.Load(); old != nil {
		ws = append(ws, *old...)
	}
	ws = append(ws, f)
	s.watchers.Store(&ws)
}

// write writes st to the file and records the outcome: a failure counts,
// logs and is returned by Err until a write succeeds again.
func (s *FileStore) write(st *State) error {
	b, err := json.MarshalIndent(st.data(), "", " ")
	if err == nil {
		err = statefile.Write(s.opts.Path, b)
	}
	s.errMu.Lock()
	defer s.errMu.Unlock()
	if err != nil {
		s.metrics.writeErrors.Inc()
		if s.err == nil {
			s.log.Error("operator state not saved; not ready until it is", "file", s.opts.Path, "error", err)
		}
		s.err = err
		return err
	}
	if s.err != nil {
		s.log.Info("operator state saved again", "file", s.opts.Path)
	}
	s.err = nil
	return nil
}

// Err implements Store.
func (s *FileStore) Err() error {
	s.errMu.Lock()
	defer s.errMu.Unlock()
	return s.err
}
