package zones

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"runtime/debug"
	"slices"
	"sort"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/fsnotify/fsnotify"
)

// Watcher keeps a zone set in step with a directory of <zone>.yaml files.
//
// Each zone loads on its own goroutine (at most Workers at once; a load
// past bigLoad records moves to a lane of Workers/2 of its own: moveBig)
// and is swapped in as soon as it compiles, so a big zone never holds up an
// edit of a small one. A file that fails to load is logged, counted and not served,
// while the version loaded before it keeps serving. A file is loaded only
// once it is complete: one renamed into place after Debounce, one written in
// place only after it stayed unchanged for Settle. A zone whose file
// disappears keeps serving (WARN, geodns_zone_file_missing) until a SIGHUP,
// or MissingGrace, removes it. Two files for one zone are an error naming
// both; neither loads until one is gone.
type Watcher struct {
	dir     string
	set     *atomic.Pointer[Set]
	log     *slog.Logger
	metrics *Metrics
	// Poll is the safety rescan interval, for changes fsnotify misses
	// (network filesystems, imports outside the watched directories).
	// Default 30s.
	Poll time.Duration
	// Debounce is how long a zone waits after an event that brings a whole
	// file (a rename or create into place, a removal) before it loads; every
	// later event restarts the wait. Default 100ms.
	Debounce time.Duration
	// Settle is how long a file written in place (a write event: cat >, cp,
	// scp, rsync --inplace) must stay unchanged in size, mtime and inode
	// before it loads; every later event restarts the wait. On Linux the
	// wait starts only when the writer closes the file (IN_CLOSE_WRITE), so
	// a writer pausing mid-file is waited for; elsewhere one pausing longer
	// than Settle can be read half-done. Rename into place is the safe
	// deploy. Default 2s.
	Settle time.Duration
	// OpenWait is how long a file still open for writing (Linux) must be
	// quiet before it loads all the same. Default 1m.
	OpenWait time.Duration
	// Workers is how many zones load at once (and half as many more past
	// bigLoad records). Default 4.
	Workers int
	// MissingGrace, if positive, removes a zone whose file has been gone
	// this long (checked every Poll). Default 0: it serves until SIGHUP.
	MissingGrace time.Duration
	// Limits bounds what a load reads. Default: the zero Limits (the zone
	// directory only, DefaultMaxFileSize).
	Limits Limits
	// Serials, if set, numbers automatic serials: for a set of servers
	// (cluster.Serials: one content, one serial on every server), or for
	// one server across its restarts (SerialFile).
	Serials SerialSource
	// OnChange, if set, is called with the new set after each change
	// (health checking follows the served endpoints this way).
	OnChange func(*Set)

	once    sync.Once
	running atomic.Bool   // Run is serving the pending queue
	polls   atomic.Int64  // looks at every zone's files (poll), for tests
	closes  bool          // Run sees writers close files (writeWatcher)
	sem     chan struct{} // a slot per running load
	bigSem  chan struct{} // a slot per running load past bigLoad records: moveBig
	wake    chan struct{} // pending changed off the Run goroutine
	mu      sync.Mutex    // guards the fields below and publishing
	zones   map[string]*zoneState
	pending map[string]*pend
}

// zoneState is what the watcher knows of one zone's file.
type zoneState struct {
	path        string      // its file at the last attempt
	seen        fingerprint // the files at the last finished attempt
	loading     bool
	again       bool // a change came during the load: load once more after it
	againForce  bool
	againSettle bool      // and that change was a write in place
	missing     time.Time // when its file was found gone; zero while there
}

// pend is a zone waiting for its files to be complete.
type pend struct {
	due    time.Time
	settle bool            // written in place: load only once last stays equal
	last   fingerprint     // the files as last seen
	paths  map[string]bool // zone files named by its events
	open   bool            // written, and the writer has not closed it yet
	since  time.Time       // its last event
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
	return &Watcher{dir: filepath.Clean(dir), set: set, log: log, metrics: m, Poll: 30 * time.Second,
		Debounce: 100 * time.Millisecond, Settle: 2 * time.Second, OpenWait: time.Minute, Workers: 4,
		zones: map[string]*zoneState{}, pending: map[string]*pend{}}
}

func (w *Watcher) init() {
	w.once.Do(func() {
		n := w.Workers
		if n <= 0 {
			n = 4
		}
		w.sem = make(chan struct{}, n)
		w.bigSem = make(chan struct{}, max(n/2, 1))
		w.wake = make(chan struct{}, 1)
	})
}

// Scan loads every zone file that changed since the last scan (all of them
// with force) and waits for those loads. Without force a zone whose file is
// gone keeps serving (and is reported); with force (SIGHUP) it is removed.
// It returns the errors of the files that failed; the zones that loaded are
// served either way. Every error is also logged.
func (w *Watcher) Scan(force bool) error { return w.scan(force, force) }

// ReloadAll loads every zone file again, changed or not, like SIGHUP, but
// keeps serving a zone whose file is gone: for reloads the operator did
// not ask for (a node of an NS set numbering its zones from etcd again),
// which must not remove zones as only SIGHUP and zone_missing_grace do.
func (w *Watcher) ReloadAll() error { return w.scan(true, false) }

func (w *Watcher) scan(all, removeGone bool) error {
	w.init()
	files, err := w.list()
	if files == nil {
		return err
	}
	var errs []error
	errs = append(errs, err)
	var emu sync.Mutex
	report := func(err error) { emu.Lock(); errs = append(errs, err); emu.Unlock() }
	var wg sync.WaitGroup
	w.mu.Lock()
	for _, origin := range sortedKeys(files) {
		paths := files[origin]
		if len(paths) > 1 {
			continue // list reported it; whatever serves keeps serving
		}
		st := w.zones[origin]
		if !all && st != nil && st.missing.IsZero() && stamp(paths[0], st.seen).equal(st.seen) {
			continue
		}
		delete(w.pending, origin)
		w.startLocked(origin, paths[0], all, false, fingerprint{}, &wg, report)
	}
	w.goneLocked(files, removeGone)
	w.mu.Unlock()
	wg.Wait()
	return errors.Join(errs...)
}

// list reads the directory: zone name → its files (sorted). Every problem,
// two files for one zone among them, is logged and returned.
func (w *Watcher) list() (map[string][]string, error) {
	files, err := ZoneFiles(w.dir)
	for _, e := range Errors(err) {
		if e.File == "" {
			e.File = w.dir
		}
		w.log.Error("zone directory", "error", e.Error())
	}
	for origin, paths := range files {
		if len(paths) > 1 {
			w.metrics.failed(origin)
		}
	}
	return files, err
}

// ZoneFiles maps each zone name to its files in dir: more than one is an
// error (reported in err, naming every file), and none of them should load.
func ZoneFiles(dir string) (map[string][]string, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, &PosError{File: dir, Msg: err.Error()}
	}
	out := map[string][]string{}
	for _, e := range entries { // sorted by name
		if e.IsDir() {
			continue
		}
		origin, ok := OriginFromFile(e.Name())
		if !ok {
			continue
		}
		out[origin] = append(out[origin], filepath.Join(dir, e.Name()))
	}
	var errs []error
	for _, origin := range sortedKeys(out) {
		if paths := out[origin]; len(paths) > 1 {
			for _, p := range paths[1:] {
				errs = append(errs, &PosError{File: p, Msg: fmt.Sprintf(
					"zone %s is also defined by %s: neither file loads until one is removed (the version being served keeps serving)", origin, paths[0])})
			}
		}
	}
	return out, errors.Join(errs...)
}

// goneLocked deals with the zones known or served whose file is not in
// files: removed with force, else kept serving and reported missing.
func (w *Watcher) goneLocked(files map[string][]string, force bool) {
	cur := w.set.Load()
	var removed []string
	origins := map[string]bool{}
	for o := range w.zones {
		origins[o] = true
	}
	for _, z := range cur.Zones() {
		origins[z.Origin] = true
	}
	for _, o := range sortedKeys(origins) {
		if len(files[o]) > 0 {
			if st := w.zones[o]; st != nil && !st.missing.IsZero() {
				// Back (if broken, not loaded: the old version serves
				// on), so no grace runs out for it any more.
				st.missing = time.Time{}
				w.metrics.fileBack(o)
			}
			continue
		}
		st := w.zones[o]
		if st != nil && st.loading {
			continue // its load will find the file gone
		}
		if cur.Zone(o) == nil {
			delete(w.zones, o)
			w.metrics.removed(o) // a zone that never loaded: its failure series go with its file
			continue
		}
		if st == nil {
			st = &zoneState{}
			w.zones[o] = st
		}
		expired := w.MissingGrace > 0 && !st.missing.IsZero() && time.Since(st.missing) >= w.MissingGrace
		if force || expired {
			removed = append(removed, o)
			delete(w.zones, o)
			delete(w.pending, o)
			w.metrics.removed(o)
			w.log.Info("zone removed: its file is gone", "zone", o, "by", map[bool]string{true: "SIGHUP", false: "zone_missing_grace"}[force])
			continue
		}
		w.missingLocked(o, st)
	}
	if len(removed) > 0 {
		w.publishLocked(nil, removed)
	}
}

// missingLocked notes, once, that a served zone's file is gone.
// graceEndLocked is when the first zone whose file is gone has been so for
// MissingGrace; zero if none (or no grace).
func (w *Watcher) graceEndLocked() time.Time {
	var at time.Time
	if w.MissingGrace <= 0 {
		return at
	}
	for _, st := range w.zones {
		if st.missing.IsZero() || st.loading {
			continue // a load in progress finds the file gone, or not
		}
		if end := st.missing.Add(w.MissingGrace); at.IsZero() || end.Before(at) {
			at = end
		}
	}
	return at
}

func (w *Watcher) missingLocked(origin string, st *zoneState) {
	if !st.missing.IsZero() {
		return
	}
	st.missing = time.Now()
	w.metrics.fileMissing(origin)
	w.log.Warn("zone file is gone; the loaded version keeps serving until SIGHUP removes it (or zone_missing_grace passes)",
		"zone", origin, "dir", w.dir)
}

// startLocked loads origin from path on a goroutine of its own, or, if it
// is loading already, queues one more load after that one. settle says the
// change was a write in place: the queued load then waits for the file to
// settle again, as the writer may be mid-file by the time the first is done.
//
// want, if set, is the files as found stable: a load that finds them
// otherwise (a rewrite began in between) is dropped and queued again.
func (w *Watcher) startLocked(origin, path string, force, settle bool, want fingerprint, wg *sync.WaitGroup, report func(error)) {
	st := w.zones[origin]
	if st == nil {
		st = &zoneState{}
		w.zones[origin] = st
	}
	if st.loading {
		st.again = true
		st.againForce = st.againForce || force
		st.againSettle = st.againSettle || settle
		return
	}
	st.loading = true
	st.path = path
	if wg != nil {
		wg.Add(1)
	}
	go func() {
		if wg != nil {
			defer wg.Done()
		}
		for {
			w.sem <- struct{}{}
			var big atomic.Bool
			res := w.loadOne(origin, path, force, want, func() { w.moveBig(); big.Store(true) })
			want = fingerprint{}
			if big.Load() {
				<-w.bigSem
			} else {
				<-w.sem
			}
			w.mu.Lock()
			if err := w.finishLocked(res); err != nil && report != nil {
				report(err)
			}
			st := w.zones[origin]
			if st == nil || !st.again {
				if st != nil {
					st.loading = false
				}
				w.mu.Unlock()
				return
			}
			again, settle := st.againForce, st.againSettle
			st.again, st.againForce, st.againSettle = false, false, false
			if w.running.Load() {
				// Through the queue: it loads once its files are stable.
				st.loading = false
				w.pendLocked(origin, path, settle, time.Now())
				w.poke()
				w.mu.Unlock()
				return
			}
			force = again
			w.mu.Unlock()
		}
	}()
}

// loadResult is one finished load.
type loadResult struct {
	origin, path string
	z            *Zone
	err          error
	pre          fingerprint // the files just before the load
	post         fingerprint // after it: the zone file and the imports read
	force        bool
	missing      bool // the zone file is gone
	changed      bool // a file changed while it was read: result dropped
}

// moveBig moves a load that has passed bigLoad records from its slot to
// one of the fewer slots of big loads, waiting for one: a few zones that
// load millions of records (big ones, or a few lines of $GENERATE made to
// fill zone_max_records) then never hold every slot, and an edit of any
// other zone loads at once. (An attack run: four such zones held the four
// slots for 16 s, and the big loads' memory together grew to 3.3 GB.)
func (w *Watcher) moveBig() {
	<-w.sem
	w.bigSem <- struct{}{}
}

func (w *Watcher) loadOne(origin, path string, force bool, want fingerprint, big func()) (res loadResult) {
	res = loadResult{origin: origin, path: path, force: force}
	w.mu.Lock()
	var last fingerprint
	if st := w.zones[origin]; st != nil {
		last = st.seen
	}
	w.mu.Unlock()
	res.pre = stamp(path, last)
	if !want.sameAs(res.pre) {
		res.changed = true
		return res
	}
	defer func() {
		// One bad file must never take the server down.
		if p := recover(); p != nil {
			w.log.Error("zone load panicked", "zone", origin, "file", path, "panic", p, "stack", string(debug.Stack()))
			res.z, res.err = nil, &PosError{File: path, Msg: fmt.Sprintf("internal error loading the zone: %v", p)}
		}
	}()
	l := w.Limits
	l.serials, l.big = w.Serials, big
	z, err := l.Load(path, w.set.Load().Zone(origin))
	if err != nil {
		if _, lerr := os.Lstat(path); errors.Is(lerr, fs.ErrNotExist) {
			res.missing = true
			return res
		}
	}
	res.z, res.err = z, err
	res.post = fingerprint{files: []fileStamp{statStamp(path)}}
	if z != nil {
		res.post.files = append(res.post.files, importStamps(z)...)
	}
	// A file rewritten while it was read may have been read half-done:
	// drop the result; the rewrite's own events load it when it settles.
	res.changed = !res.pre.sameAs(res.post)
	return res
}

// maxLoggedWarnings caps the warnings logged for one load.
const maxLoggedWarnings = 20

// finishLocked publishes one load's outcome and returns its error.
func (w *Watcher) finishLocked(res loadResult) error {
	o := res.origin
	st := w.zones[o]
	if st == nil {
		st = &zoneState{}
		w.zones[o] = st
	}
	switch {
	case res.missing:
		if w.set.Load().Zone(o) == nil {
			return nil
		}
		w.missingLocked(o, st)
		return nil
	case res.changed:
		w.log.Debug("zone file changed while it was read; loading it when it settles", "zone", o, "file", res.path)
		w.pendLocked(o, res.path, true, time.Now())
		w.poke()
		return nil
	case res.err != nil:
		st.seen = res.pre
		w.metrics.failed(o)
		msg := "zone not loaded; previous version keeps serving"
		if w.set.Load().Zone(o) == nil {
			msg = "zone not loaded; not served until its file loads" // there is no previous version
		}
		for _, e := range Errors(res.err) {
			w.log.Error(msg, "zone", o, "error", e.Error())
		}
		return res.err
	}
	z := res.z
	prev := w.set.Load().Zone(o)
	st.seen = res.post
	if !st.missing.IsZero() {
		st.missing = time.Time{}
		w.log.Info("zone file is back", "zone", o, "file", res.path)
	}
	w.metrics.loaded(z)
	if prev == nil || prev.Serial != z.Serial || res.force {
		attrs := []any{"zone", o, "serial", z.Serial, "records", z.Len()}
		if z.Presigned() {
			attrs = append(attrs, "signed", "pre-signed (the file's signatures and proofs)")
		}
		w.log.Info("zone loaded", attrs...)
	}
	// Warnings once per load of new content (not per query, nor for a
	// touch that changed nothing); the gauge keeps their count.
	if prev == nil || prev.Hash != z.Hash || res.force {
		for i, e := range z.Warnings {
			if i == maxLoggedWarnings {
				// A zone of a million occluded names must not log a million
				// lines per load; geodns check lists them all.
				w.log.Warn("zone loaded with more warnings; geodns check lists them", "zone", o, "more", len(z.Warnings)-i)
				break
			}
			w.log.Warn("zone loaded with a warning", "zone", o, "warning", e.Error())
		}
	}
	if prev != nil && prev.Hash != z.Hash && prev.Serial == z.Serial {
		w.metrics.serialUnchanged(o)
	}
	w.publishLocked([]*Zone{z}, nil)
	if z.Len() >= bigLoad {
		// The load's garbage, and a replaced zone, would otherwise stay
		// resident for minutes: a million records leave ~0.5 GB. In the
		// background: the new zone serves meanwhile.
		go debug.FreeOSMemory()
	}
	return nil
}

// poke tells Run that the pending queue changed.
func (w *Watcher) poke() {
	select {
	case w.wake <- struct{}{}:
	default:
	}
}

// publishLocked swaps in a new set; w.mu orders the swaps.
func (w *Watcher) publishLocked(added []*Zone, removed []string) {
	next := w.set.Load().Update(added, removed)
	w.set.Store(next)
	if w.OnChange != nil {
		w.OnChange(next)
	}
}

// bigLoad is the number of records loaded at once after which the
// watcher hands freed memory back to the system.
const bigLoad = 100_000

// Run watches the directory (and Limits.ImportDirs) until ctx is done: it
// loads zones as their files settle after events, reloads everything on a
// signal from hup (SIGHUP, which also removes zones whose file is gone), and
// rescans every Poll. Loads run beside it: it never waits for one.
func (w *Watcher) Run(ctx context.Context, hup <-chan os.Signal) error {
	w.init()
	fw, err := fsnotify.NewWatcher()
	if err != nil {
		return err
	}
	defer fw.Close()
	if err := fw.Add(w.dir); err != nil {
		return fmt.Errorf("watch %s: %w", w.dir, err)
	}
	for _, d := range w.Limits.ImportDirs {
		if err := fw.Add(d); err != nil {
			w.log.Warn("cannot watch an import directory; its changes are seen every poll", "dir", d, "error", err)
		}
	}
	// The zones directory is watched from its parent too: a symlink to a
	// release switched with mv -T, or a directory renamed over it (mv
	// zones.new zones), replaces it there, and the watch on the old one
	// sees nothing of it.
	parent := filepath.Dir(w.dir)
	if parent == w.dir {
		parent = "" // the root has no parent
	} else if err := fw.Add(parent); err != nil {
		w.log.Warn("cannot watch the directory holding the zones directory; a replacement of the zones directory is seen every poll or at SIGHUP", "dir", parent, "error", err)
		parent = ""
	}
	var writes <-chan struct{}
	takeWrites := func() {}
	rewatchWrites := func() error { return nil }
	if ww, err := newWriteWatcher(append([]string{w.dir}, w.Limits.ImportDirs...)); err == nil {
		defer ww.Close()
		writes = ww.ready
		rewatchWrites = func() error { return ww.rewatch(w.dir) }
		takeWrites = func() {
			for _, we := range ww.take() {
				kind := evWrite
				if we.closed {
					kind = evClosed
				}
				w.event(we.path, kind)
			}
		}
		w.mu.Lock()
		w.closes = true
		w.mu.Unlock()
	} else if seesCloses {
		w.log.Warn("cannot see writers close zone files; a file written in place loads once quiet for the settle time", "error", err)
	}
	// rewatch watches the directory the zones path names now, in place of
	// the one it named when watched.
	rewatch := func() {
		fw.Remove(w.dir) // the old directory's watch, if it still exists
		if err := errors.Join(fw.Add(w.dir), rewatchWrites()); err != nil {
			w.log.Warn("cannot watch the zones directory after it was replaced; changes are seen every poll", "dir", w.dir, "error", err)
		}
	}
	// Catch what changed between the caller's first Scan and the watch.
	w.poll()
	poll := time.NewTicker(w.Poll)
	defer poll.Stop()
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	// A look at every zone's files, soon: after a switch that renames no
	// zone file (a directory or a symlink appearing), and at most once per
	// Debounce however many such events come.
	var repoll <-chan time.Time
	pollSoon := func() {
		if repoll == nil {
			repoll = time.After(w.Debounce)
		}
	}
	rearm := func() {
		w.mu.Lock()
		var next time.Time
		for _, p := range w.pending {
			if next.IsZero() || p.due.Before(next) {
				next = p.due
			}
		}
		// A zone whose file is gone goes when zone_missing_grace has
		// passed, not at the next poll after that (up to 30 s later).
		if at := w.graceEndLocked(); !at.IsZero() && (next.IsZero() || at.Before(next)) {
			next = at
		}
		w.mu.Unlock()
		if next.IsZero() {
			next = time.Now().Add(time.Hour)
		}
		timer.Reset(time.Until(next))
	}
	rearm()
	w.running.Store(true)
	defer w.running.Store(false)
	for {
		select {
		case <-ctx.Done():
			return nil
		case ev, ok := <-fw.Events:
			if !ok {
				return errors.New("file watcher closed")
			}
			name := filepath.Clean(ev.Name)
			whole := ev.Has(fsnotify.Create) || ev.Has(fsnotify.Remove) || ev.Has(fsnotify.Rename)
			if parent != "" && filepath.Dir(name) == parent {
				if name == w.dir && ev.Has(fsnotify.Create) {
					// Another directory has the name (or the symlink names
					// another release): watch that one.
					rewatch()
					pollSoon()
				}
				if name == w.dir || !w.watchesDir(parent) {
					continue
				}
			}
			if whole && filepath.Dir(name) == w.dir && linkOrDir(name) {
				pollSoon() // a ConfigMap's ..data switched, say: the zone files' names saw nothing
			}
			switch {
			case whole:
				w.event(name, evWhole)
			case ev.Has(fsnotify.Write) && writes == nil:
				w.event(name, evWrite)
			default:
				continue // a chmod; or a write, which writes reports in order with its close
			}
			rearm()
		case <-writes:
			takeWrites()
			rearm()
		case err := <-fw.Errors:
			w.log.Warn("file watcher", "error", err)
		case <-timer.C:
			// Every write made so far must count before a file is judged
			// settled, even one whose event is still in the kernel's queue.
			takeWrites()
			now := time.Now()
			w.due(now)
			w.mu.Lock()
			at := w.graceEndLocked()
			w.mu.Unlock()
			if !at.IsZero() && !at.After(now) {
				w.poll() // it removes the zones whose grace is over
			}
			rearm()
		case <-w.wake:
			rearm()
		case <-hup:
			w.log.Info("SIGHUP: reloading all zones; zones whose file is gone are removed")
			rewatch() // the directory may have been replaced unseen
			go w.Scan(true)
		case <-poll.C:
			w.poll()
			rearm()
		case <-repoll:
			repoll = nil
			w.poll()
			rearm()
		}
	}
}

// watchesDir tells whether dir is one the watcher watches for itself (the
// zones directory or an import directory), not only for a symlink in it.
func (w *Watcher) watchesDir(dir string) bool {
	return dir == w.dir || slices.Contains(w.Limits.ImportDirs, dir)
}

// linkOrDir tells whether path is a symlink or a directory (not followed).
func linkOrDir(path string) bool {
	fi, err := os.Lstat(path)
	return err == nil && (fi.Mode()&os.ModeSymlink != 0 || fi.IsDir())
}

// Kinds of file event.
const (
	evWhole  = iota // created, renamed or removed: the file is whole or gone
	evWrite         // written in place
	evClosed        // its writer closed it
)

// event notes a file event on path for every zone it belongs to.
func (w *Watcher) event(path string, kind int) {
	w.mu.Lock()
	defer w.mu.Unlock()
	now := time.Now()
	note := func(origin, zonePath string) {
		w.pendLocked(origin, zonePath, kind != evWhole, now)
		switch p := w.pending[origin]; {
		case kind == evWrite && w.closes:
			p.open = true
		case kind == evClosed:
			p.open = false
		}
	}
	if filepath.Dir(path) == w.dir {
		if origin, ok := OriginFromFile(path); ok {
			note(origin, path)
		}
	}
	for o, st := range w.zones {
		if len(st.seen.files) > 1 && st.seen.touched(path) {
			note(o, "")
		}
	}
}

// pendLocked (re)starts origin's wait: Settle once it was written in
// place, else Debounce. The file is stamped now, so that it loads once a
// stamp a full wait later is equal.
func (w *Watcher) pendLocked(origin, path string, settle bool, now time.Time) {
	p := w.pending[origin]
	if p == nil {
		p = &pend{paths: map[string]bool{}}
		w.pending[origin] = p
	}
	if path != "" {
		p.paths[path] = true
	}
	p.settle = p.settle || settle
	wait := w.Debounce
	if p.settle {
		wait = w.Settle
	}
	p.due, p.since = now.Add(wait), now
	p.last = w.stampLocked(origin, p)
}

// stampLocked fingerprints origin's files: those its events named, the one
// it was loaded from, and the imports of its last load. A few stats: this
// runs on every event.
func (w *Watcher) stampLocked(origin string, p *pend) fingerprint {
	paths := map[string]bool{}
	for path := range p.paths {
		paths[path] = true
	}
	var fp fingerprint
	st := w.zones[origin]
	if st != nil && st.path != "" {
		paths[st.path] = true
	}
	for _, path := range sortedKeys(paths) {
		fp.files = append(fp.files, statStamp(path))
	}
	if st != nil {
		for _, f := range st.seen.files[min(1, len(st.seen.files)):] {
			fp.files = append(fp.files, statStamp(f.path))
		}
	}
	return fp
}

// due starts the loads whose wait is over and whose files are stable.
func (w *Watcher) due(now time.Time) {
	w.mu.Lock()
	var ready []string
	settled := map[string]bool{}
	stable := map[string]fingerprint{}
	for o, p := range w.pending {
		if p.due.After(now) {
			continue
		}
		if p.open {
			if quiet := p.since.Add(w.OpenWait); now.Before(quiet) {
				p.due = quiet // until its writer closes it
				continue
			}
			w.log.Warn("zone file still open for writing but unchanged; loading it", "zone", o, "quiet", w.OpenWait)
			p.open = false
		}
		if p.settle {
			if fp := w.stampLocked(o, p); !fp.equal(p.last) {
				p.last, p.due = fp, now.Add(w.Settle) // still being written
				continue
			}
		}
		delete(w.pending, o)
		ready = append(ready, o)
		settled[o] = p.settle
		stable[o] = p.last
	}
	w.mu.Unlock()
	if len(ready) == 0 {
		return
	}
	files, _ := w.list()
	w.mu.Lock()
	defer w.mu.Unlock()
	sort.Strings(ready)
	for _, o := range ready {
		settle := settled[o]
		switch paths := files[o]; len(paths) {
		case 0:
			st := w.zones[o]
			switch {
			case st != nil && st.loading:
				st.again = true // its load finds the file gone
			case w.set.Load().Zone(o) != nil:
				if st == nil {
					st = &zoneState{}
					w.zones[o] = st
				}
				w.missingLocked(o, st)
			}
		case 1:
			w.startLocked(o, paths[0], false, settle, stable[o], nil, nil)
		}
		// Two or more: list reported it, and nothing loads.
	}
}

// poll queues every zone whose files differ from the last load, and deals
// with the zones whose file is gone.
func (w *Watcher) poll() {
	w.polls.Add(1)
	files, _ := w.list()
	if files == nil {
		return
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	now := time.Now()
	for o, paths := range files {
		if len(paths) != 1 {
			continue
		}
		if _, waiting := w.pending[o]; waiting {
			continue
		}
		st := w.zones[o]
		if st != nil && (st.loading || stamp(paths[0], st.seen).equal(st.seen)) {
			continue
		}
		// Not known to be whole: it must settle like a file written in place.
		w.pendLocked(o, paths[0], true, now)
	}
	w.goneLocked(files, false)
}

// stamp fingerprints a zone file and the imports it had last time.
func stamp(path string, last fingerprint) fingerprint {
	fp := fingerprint{files: []fileStamp{statStamp(path)}}
	for _, f := range last.files[min(1, len(last.files)):] {
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

// sameAs tells whether every file stamped in both is unchanged (a load may
// read imports f did not know of yet).
func (f fingerprint) sameAs(o fingerprint) bool {
	for _, a := range f.files {
		for _, b := range o.files {
			if a.path == b.path && a != b {
				return false
			}
		}
	}
	return true
}

func (f fingerprint) touched(path string) bool {
	return slices.ContainsFunc(f.files, func(s fileStamp) bool { return s.path == path })
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
