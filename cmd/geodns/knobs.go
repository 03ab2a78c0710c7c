package main

import (
	"runtime/debug"
	"sync"
)

// Process-wide knobs (GOMAXPROCS, GOGC) are the program's to set: the
// packages say when they would want more (resolver.ServeOptions.ReaderProcs,
// zones.SetCompileHook) and the program decides: a P per UDP reader and
// TCP loop (procs.AddReaderProcs, shared with benchmarks/nullserver), and
// GOGC while zones compile (below).

// loadGCPercent is the collector's GOGC while zones compile. A compile
// allocates its result while the heap grows under it, so at GOGC 100 the
// collector runs again at each doubling and marks everything built so
// far: a third of a million-record load. At 200 that load takes 25 %
// less time for 5 % more peak heap; the setting returns when the last
// compile ends.
const loadGCPercent = 200

var loadGC struct {
	sync.Mutex
	n    int // compiles running
	prev int // the setting before the first of them
}

// raises tells whether loadingGC changes a setting: it never lowers a
// higher one nor turns a collector that is off back on.
func raises(setting int) bool { return setting >= 0 && setting < loadGCPercent }

// loadingGC raises GOGC for a compile and returns what lowers it again.
// It is the zones compile hook.
func loadingGC() (done func()) {
	loadGC.Lock()
	defer loadGC.Unlock()
	if loadGC.n == 0 {
		if loadGC.prev = debug.SetGCPercent(loadGCPercent); !raises(loadGC.prev) {
			debug.SetGCPercent(loadGC.prev)
		}
	}
	loadGC.n++
	return func() {
		loadGC.Lock()
		defer loadGC.Unlock()
		if loadGC.n--; loadGC.n == 0 && raises(loadGC.prev) {
			debug.SetGCPercent(loadGC.prev)
		}
	}
}
