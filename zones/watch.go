package zones

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"runtime/debug"
	"slices"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/fsnotify/fsnotify"
)

// Watcher keeps a zone set in step with a directory of <zone>.yaml files.
// Each zone is reloaded on its own and swapped in atomically; a file that
// fails to load is logged, counted and not served, while the version loaded
// before it keeps serving.
type Watcher struct {
	dir     string
	set     *atomic.Pointer[Set]
	log     *slog.Logger
	metrics *Metrics
	// Poll is the safety rescan interval, for changes fsnotify misses
	// (network filesystems, imports outside the directory). Default 30s.
	Poll time.Duration
	// Debounce coalesces bursts of file events (editors write in steps).
	// Default 100ms.
	Debounce time.Duration
	// OnChange, if set, is called with the new set after a scan changed it
	// (health checking follows the served endpoints this way).
	OnChange func(*Set)

	seen map[string]fingerprint // last attempted version of each file
}

type fingerprint struct {
	files []fileStamp // the zone file, then its imports
}

// fileStamp tells whether a file changed. The inode catches a file replaced
// by rename within one timestamp tick; file events force a reload anyway.
type fileStamp struct {
	path  string
	mtime time.Time
	size  int64
	inode uint64
}

// NewWatcher returns a watcher of dir that publishes zones through set.
func NewWatcher(dir string, set *atomic.Pointer[Set], m *Metrics, log *slog.Logger) *Watcher {
	if log == nil {
		log = slog.Default()
	}
	if m == nil {
		m = NewMetrics(nil)
	}
	if set.Load() == nil {
		set.Store(NewSet())
	}
	return &Watcher{dir: dir, set: set, log: log, metrics: m, Poll: 30 * time.Second,
		Debounce: 100 * time.Millisecond, seen: map[string]fingerprint{}}
}

// Scan loads every zone file that changed since the last scan (all of them
// with force) and drops zones whose file is gone. It returns the errors of
// the files that failed; the zones that loaded are served either way.
func (w *Watcher) Scan(force bool) error { return w.scan(force, nil) }

// scan is Scan that also reloads the zones whose file, or an import of it,
// is in touched (paths named by file events).
func (w *Watcher) scan(force bool, touched map[string]bool) error {
	files, err := zoneFiles(w.dir)
	if files == nil {
		return err
	}
	errs := []error{err}
	present := map[string]bool{}
	cur := w.set.Load()
	var added []*Zone
	var removed []string
	for origin, path := range files {
		present[path] = true
		fp := stamp(path, w.seen[path])
		if !force && fp.equal(w.seen[path]) && !fp.touched(touched) {
			continue
		}
		prev := cur.Zone(origin)
		z, err := LoadFile(path, prev)
		if err != nil {
			w.seen[path] = fp
			w.metrics.failed(origin)
			for _, e := range Errors(err) {
				w.log.Error("zone not loaded; previous version keeps serving", "zone", origin, "error", e.Error())
			}
			errs = append(errs, err)
			continue
		}
		w.seen[path] = fingerprint{files: append(fp.files[:1:1], importStamps(z)...)}
		added = append(added, z)
		w.metrics.loaded(z)
		if prev == nil || prev.Serial != z.Serial || force {
			w.log.Info("zone loaded", "zone", origin, "serial", z.Serial, "records", z.Len())
		}
	}
	for path := range w.seen {
		if present[path] {
			continue
		}
		delete(w.seen, path)
		if origin, ok := OriginFromFile(path); ok && files[origin] == "" {
			removed = append(removed, origin)
			w.metrics.removed(origin)
			w.log.Info("zone removed: its file is gone", "zone", origin, "file", path)
		}
	}
	if len(added) > 0 || len(removed) > 0 {
		next := cur.Update(added, removed)
		w.set.Store(next)
		if w.OnChange != nil {
			w.OnChange(next)
		}
		records := 0
		for _, z := range added {
			records += z.Len()
		}
		if records >= bigLoad {
			// The load's garbage, and a replaced zone, would otherwise stay
			// resident for minutes: a million records leave ~0.5 GB. In the
			// background: the new zones serve meanwhile.
			go debug.FreeOSMemory()
		}
	}
	return errors.Join(errs...)
}

// bigLoad is the number of records loaded at once after which the
// watcher hands freed memory back to the system.
const bigLoad = 100_000

// Run watches the directory until ctx is done: it rescans on file events,
// on a signal from hup (SIGHUP: reload everything) and every Poll.
func (w *Watcher) Run(ctx context.Context, hup <-chan os.Signal) error {
	fw, err := fsnotify.NewWatcher()
	if err != nil {
		return err
	}
	defer fw.Close()
	if err := fw.Add(w.dir); err != nil {
		return fmt.Errorf("watch %s: %w", w.dir, err)
	}
	// Catch what changed between the caller's first Scan and the watch.
	w.Scan(false)
	poll := time.NewTicker(w.Poll)
	defer poll.Stop()
	var debounce <-chan time.Time
	touched := map[string]bool{}
	for {
		select {
		case <-ctx.Done():
			return nil
		case ev, ok := <-fw.Events:
			if !ok {
				return errors.New("file watcher closed")
			}
			if ev.Op == fsnotify.Chmod {
				continue
			}
			touched[filepath.Clean(ev.Name)] = true
			if debounce == nil {
				debounce = time.After(w.Debounce)
			}
		case err := <-fw.Errors:
			w.log.Warn("file watcher", "error", err)
		case <-debounce:
			debounce = nil
			w.scan(false, touched)
			touched = map[string]bool{}
		case <-hup:
			w.log.Info("SIGHUP: reloading all zones")
			w.Scan(true)
		case <-poll.C:
			w.Scan(false)
		}
	}
}

// zoneFiles maps each zone name to its file in dir.
func zoneFiles(dir string) (map[string]string, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	out := map[string]string{}
	// sorted by name, so which of two clashing files wins is stable
	var errs []error
	for _, e := range entries {
		if e.IsDir() {
			continue
		}
		origin, ok := OriginFromFile(e.Name())
		if !ok {
			continue
		}
		path := filepath.Join(dir, e.Name())
		if other, dup := out[origin]; dup {
			errs = append(errs, &PosError{File: path, Msg: fmt.Sprintf("zone %s is also defined by %s", origin, other)})
			continue
		}
		out[origin] = path
	}
	return out, errors.Join(errs...)
}

// stamp fingerprints a zone file and the imports it had last time.
func stamp(path string, last fingerprint) fingerprint {
	fp := fingerprint{files: []fileStamp{statStamp(path)}}
	for _, f := range last.files {
		if f.path != path {
			fp.files = append(fp.files, statStamp(f.path))
		}
	}
	return fp
}

func importStamps(z *Zone) []fileStamp {
	var out []fileStamp
	for _, p := range z.Imports {
		out = append(out, statStamp(p))
	}
	return out
}

func statStamp(path string) fileStamp {
	st, err := os.Stat(path)
	if err != nil {
		return fileStamp{path: path}
	}
	fs := fileStamp{path: path, mtime: st.ModTime(), size: st.Size()}
	if sys, ok := st.Sys().(*syscall.Stat_t); ok {
		fs.inode = sys.Ino
	}
	return fs
}

func (f fingerprint) equal(o fingerprint) bool { return slices.Equal(f.files, o.files) }

func (f fingerprint) touched(paths map[string]bool) bool {
	return slices.ContainsFunc(f.files, func(s fileStamp) bool { return paths[s.path] })
}
