package geo

import (
	"context"
	"errors"
	"log/slog"
	"maps"
	"net/netip"
	"os"
	"sync/atomic"
	"time"
)

// Locator places client addresses using one or more databases, first match
// wins (DB-IP ships one file per address family). It is safe for
// concurrent use; databases are swapped atomically on reload.
type Locator struct {
	paths  []string
	log    *slog.Logger
	dbs    atomic.Pointer[[]*db]
	gen    atomic.Uint64 // bumped on every swap: caches of derived data key on it
	stamps map[string]stamp
	// failing: the paths whose last open failed (for Failing); a file
	// that opens again leaves it.
	failing atomic.Pointer[map[string]bool]
	// Poll is how often files are checked for changes. Default 10s.
	Poll time.Duration
}

type stamp struct {
	mtime time.Time
	size  int64
}

// NewLocator opens the databases at paths. A file that cannot be opened is
// reported in the error but does not stop the others; it is retried when
// it changes. With no paths, every client is unlocated.
func NewLocator(paths []string, log *slog.Logger) (*Locator, error) {
	if log == nil {
		log = slog.Default()
	}
	l := &Locator{paths: paths, log: log, stamps: map[string]stamp{}, Poll: 10 * time.Second}
	empty := []*db{}
	l.dbs.Store(&empty)
	return l, l.reload(true)
}

// Databases returns the paths of the databases in use.
func (l *Locator) Databases() []string {
	var out []string
	for _, d := range *l.dbs.Load() {
		out = append(out, d.path)
	}
	return out
}

// Failing reports whether the database at path failed to open the last
// time it was read (at start, or when its file changed): none of it is in
// use, or only an older version.
func (l *Locator) Failing(path string) bool {
	if f := l.failing.Load(); f != nil {
		return (*f)[path]
	}
	return false
}

// Generation changes whenever the databases in use do.
func (l *Locator) Generation() uint64 { return l.gen.Load() }

// Locate places addr by the first database that does. The Location's
// Network is how far that holds: that database's network, within the
// networks the databases before it leave empty around addr. ok is false
// when no database knows it; Network then still says how far that holds
// (zero when there is no database at all).
func (l *Locator) Locate(addr netip.Addr) (loc Location, ok bool) {
	addr = addr.Unmap()
	for _, d := range *l.dbs.Load() {
		if !d.covers(addr) {
			continue
		}
		got, found, err := d.lookup(addr)
		if err != nil {
			continue // a corrupt record is an unknown location, not a failed query
		}
		if found {
			// The earlier databases place no one in loc.Network, the
			// narrowest of their empty networks here: the location holds
			// where both do. (Else an ECS scope from got.Network claimed
			// addresses an earlier database places elsewhere.)
			if n := loc.Network; n.IsValid() && n.Addr().Is4() == got.Network.Addr().Is4() && n.Bits() > got.Network.Bits() {
				got.Network = n
			}
			return got, true
		}
		if !loc.Network.IsValid() || got.Network.Bits() > loc.Network.Bits() {
			loc = got
		}
	}
	return loc, false
}

// Run reloads databases whose files change until ctx is done.
func (l *Locator) Run(ctx context.Context) error {
	t := time.NewTicker(l.Poll)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
			l.reload(false)
		}
	}
}

// reload reopens every database whose file changed (all with force) and
// swaps the set in; a file that fails to open keeps its previous version.
func (l *Locator) reload(force bool) error {
	old := *l.dbs.Load()
	byPath := map[string]*db{}
	for _, d := range old {
		byPath[d.path] = d
	}
	var (
		next    []*db
		errs    []error
		changed bool
	)
	failing := map[string]bool{}
	if f := l.failing.Load(); f != nil {
		failing = maps.Clone(*f)
	}
	defer l.failing.Store(&failing)
	for _, p := range l.paths {
		st, err := os.Stat(p)
		cur := stamp{}
		if err == nil {
			cur = stamp{st.ModTime(), st.Size()}
		}
		prev := byPath[p]
		if !force && cur == l.stamps[p] {
			if prev != nil {
				next = append(next, prev)
			}
			continue
		}
		l.stamps[p] = cur
		d, err := openDB(p)
		failing[p] = err != nil
		if err != nil {
			errs = append(errs, err)
			l.log.Error("GeoIP database not loaded", "file", p, "error", err, "kept", prev != nil)
			if prev != nil {
				next = append(next, prev)
			}
			continue
		}
		changed = true
		next = append(next, d)
		if prev != nil {
			prev.retire()
		}
		l.log.Info("GeoIP database loaded", "file", p, "type", d.r.Metadata.DatabaseType,
			"built", d.r.Metadata.BuildTime().Format(time.DateOnly))
	}
	if changed || force {
		l.dbs.Store(&next)
		l.gen.Add(1)
	}
	return errors.Join(errs...)
}
