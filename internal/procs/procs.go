// Package procs holds GOMAXPROCS for the programs that serve DNS through
// resolver.Serve (geodns, and benchmarks/nullserver, which measures the
// same serving loop without the engine): each UDP reader and TCP event
// loop holds a P of its own while it waits (resolver's udp_linux.go and
// tcploop_linux.go), so GOMAXPROCS is the program's own setting plus them.
package procs

import (
	"runtime"
	"sync"
)

// readers counts the UDP readers and TCP event loops running.
var readers struct {
	sync.Mutex
	base, n int
}

// AddReaderProcs adds n Ps until done is called; it is
// resolver.ServeOptions.ReaderProcs. Calls may overlap (several Serve
// calls): the program's own setting returns when the last is done.
func AddReaderProcs(n int) (done func()) {
	add := func(d int) {
		readers.Lock()
		defer readers.Unlock()
		if readers.n == 0 {
			readers.base = runtime.GOMAXPROCS(0)
		}
		readers.n += d
		runtime.GOMAXPROCS(readers.base + readers.n)
	}
	add(n)
	return func() { add(-n) }
}
