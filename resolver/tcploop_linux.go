//go:build linux

package resolver

import (
	"encoding/binary"
	"log/slog"
	"net"
	"os"
	"runtime"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/geodns/geodns/internal/rawconn"
	"golang.org/x/sys/unix"
)

// On Linux TCP connections are served as C servers serve theirs: event
// loops, one per core, each a goroutine that waits in epoll_wait on the
// connections it was given and answers whatever is readable in place
// (tcpConnLoop.got), with raw reads and writes.
//
// A goroutine per connection, waiting in the runtime's poller, cost a trip
// through the scheduler per query (the runtime's poll, its ready list, the
// search for work between queries); the system calls were already the
// three a query that a loop makes. A loop waiting in its own epoll set
// wakes straight into its work: 5 % more queries per core, 5 % less CPU at
// 10k queries a second on one connection (issue 23; benchmarks/RESULTS.md).
// At that rate behind a NIC-like link a loop's core is busy 0.94-0.96x
// as long as Knot's (0.98-1.06x counting the processes' CPU time only);
// on loopback 1.3x, as gdnsd, which also answers at once: there the
// answer's send wakes the client (benchmarks/RESULTS.md, eleventh
// session). Like a UDP reader a loop waits in a system call and holds a
// P of its own (ServeOptions.ReaderProcs), and passes through the
// scheduler every yieldEvery. It is not locked to its thread: a locked
// goroutine's yield hands its P to another thread and waits to be handed
// it back (two wake-ups, 200 times a second), where an unlocked one
// mostly goes on where it was. CPU at 10k queries a second over TCP,
// against the locked loop in the same rounds: 0.89-0.97 on loopback,
// 0.90-1.01 over the NIC-like link (four runs; benchmarks/RESULTS.md,
// tenth session).
//
// Accepting stays with the server's goroutine (rare next to queries), which
// takes the socket out of the runtime's poller (adopt) and hands it to a
// loop. The loop keeps each connection's read deadline itself (a sweep at
// the earliest one: no timer per connection). What would make a loop wait
// goes back to a goroutine of its own, with the socket as a net.Conn
// (handOff, then tcpServer.resume): answers a slow client does not take at
// once, and zone transfers.

// tcpLoops are the event loops the TCP servers share.
type tcpLoops struct {
	all  []*tcpLoop
	next atomic.Uint32
	wg   sync.WaitGroup
}

// tcpLoop is one event loop.
type tcpLoop struct {
	ep, ev int // the epoll set and the eventfd that wakes the loop
	log    *slog.Logger

	mu       sync.Mutex
	queue    []*tcpConnLoop // connections given, not yet registered
	look     bool           // a connection was evicted, or a server shuts down
	stopping bool

	// Owned by run.
	conns map[int]*tcpConnLoop // by descriptor
	next  time.Time            // the earliest read deadline: when to sweep
}

// newTCPLoops starts n loops; nil (connections get goroutines) if they
// cannot be made.
func newTCPLoops(n int, log *slog.Logger) *tcpLoops {
	ls := &tcpLoops{}
	for range n {
		l, err := newTCPLoop(log)
		if err != nil {
			log.Error("TCP: serving connections from goroutines", "error", err)
			ls.stop()
			return nil
		}
		ls.all = append(ls.all, l)
		ls.wg.Go(l.run)
	}
	return ls
}

func newTCPLoop(log *slog.Logger) (*tcpLoop, error) {
	ep, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
	if err != nil {
		return nil, os.NewSyscallError("epoll_create1", err)
	}
	ev, err := unix.Eventfd(0, unix.EFD_CLOEXEC|unix.EFD_NONBLOCK)
	if err != nil {
		unix.Close(ep)
		return nil, os.NewSyscallError("eventfd", err)
	}
	if err := unix.EpollCtl(ep, unix.EPOLL_CTL_ADD, ev, &unix.EpollEvent{Events: unix.EPOLLIN, Fd: int32(ev)}); err != nil {
		unix.Close(ep)
		unix.Close(ev)
		return nil, os.NewSyscallError("epoll_ctl", err)
	}
	return &tcpLoop{ep: ep, ev: ev, log: log, conns: map[int]*tcpConnLoop{}}, nil
}

// count is how many loops there are (each holds a P while it waits).
func (ls *tcpLoops) count() int {
	if ls == nil {
		return 0
	}
	return len(ls.all)
}

// pick returns the loop for a new connection, in turn; nil without loops.
func (ls *tcpLoops) pick() *tcpLoop {
	if ls == nil || len(ls.all) == 0 {
		return nil
	}
	return ls.all[int(ls.next.Add(1))%len(ls.all)]
}

// stop ends the loops once the servers have shut down (their connections
// are gone) and waits for them.
func (ls *tcpLoops) stop() {
	if ls == nil {
		return
	}
	for _, l := range ls.all {
		l.mu.Lock()
		l.stopping = true
		l.mu.Unlock()
		l.poke()
	}
	ls.wg.Wait()
	for _, l := range ls.all {
		unix.Close(l.ep)
		unix.Close(l.ev)
	}
}

// adopt takes a connection's socket out of the runtime: a descriptor of its
// own, with the Go connection closed (so its poller no longer wakes for the
// socket's data). -1, and the connection left as it was, if it cannot.
func adopt(nc net.Conn) int {
	sc, ok := nc.(syscall.Conn)
	if !ok {
		return -1
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return -1
	}
	fd := -1
	cerr := rc.Control(func(f uintptr) { fd, err = unix.FcntlInt(f, unix.F_DUPFD_CLOEXEC, 0) })
	if cerr != nil || err != nil {
		return -1
	}
	nc.Close()
	return fd
}

func closeFD(fd int) { unix.Close(fd) }

// add gives the loop a connection, to read until by.
func (l *tcpLoop) add(k *tcpConnLoop, by time.Time) {
	k.readBy = by
	l.mu.Lock()
	l.queue = append(l.queue, k)
	l.mu.Unlock()
	l.poke()
}

// poke wakes the loop to take the connections given to it. Any goroutine.
func (l *tcpLoop) poke() {
	var one [8]byte
	binary.NativeEndian.PutUint64(one[:], 1)
	unix.Write(l.ev, one[:])
}

// wake wakes the loop to look at every connection: one was evicted, or the
// server shuts down. Any goroutine.
func (l *tcpLoop) wake() {
	l.mu.Lock()
	l.look = true
	l.mu.Unlock()
	l.poke()
}

// due notes a read deadline set on one of the loop's connections.
func (l *tcpLoop) due(t time.Time) {
	if t.Before(l.next) {
		l.next = t
	}
}

func (l *tcpLoop) run() {
	var events [128]unix.EpollEvent
	yielded := time.Now()
	for {
		wait := -1
		if len(l.conns) > 0 {
			d := time.Until(l.next)
			wait = int(min(max(d+time.Millisecond-1, 0), time.Minute) / time.Millisecond)
		}
		n, err := unix.EpollWait(l.ep, events[:], wait)
		if err != nil {
			if err != unix.EINTR {
				l.log.Error("TCP: epoll_wait failed", "error", err)
				time.Sleep(10 * time.Millisecond)
			}
			n = 0
		}
		now := time.Now()
		sweep := !now.Before(l.next)
		for _, e := range events[:n] {
			fd := int(e.Fd)
			if fd == l.ev {
				stop, look := l.take()
				if stop {
					return
				}
				sweep = sweep || look
				continue
			}
			if k := l.conns[fd]; k != nil {
				l.serve(k)
			}
		}
		if sweep {
			l.sweep(now)
		}
		if now.Sub(yielded) > yieldEvery {
			runtime.Gosched() // see serveUDP
			yielded = now
		}
	}
}

// take registers the connections given to the loop. It says whether the
// loop is to end, and whether to look at every connection (wake).
func (l *tcpLoop) take() (stop, look bool) {
	var b [8]byte
	unix.Read(l.ev, b[:])
	l.mu.Lock()
	queue, stopping, look := l.queue, l.stopping, l.look
	l.queue, l.look = nil, false
	l.mu.Unlock()
	for _, k := range queue {
		c := k.c
		if k.ended() {
			k.s.release(c)
			continue
		}
		err := unix.EpollCtl(l.ep, unix.EPOLL_CTL_ADD, c.fd, &unix.EpollEvent{Events: unix.EPOLLIN | unix.EPOLLRDHUP, Fd: int32(c.fd)})
		if err != nil {
			l.log.Warn("TCP: cannot poll a connection", "error", err)
			k.s.release(c)
			continue
		}
		l.conns[c.fd] = k
		l.due(k.readBy)
	}
	return stopping && len(l.conns) == 0, look
}

// ended says whether a connection of the loop's is to close without
// waiting for its deadline: it was evicted, or its server shuts down.
func (k *tcpConnLoop) ended() bool {
	return k.c.idle.Load() == evicted || k.s.closing.Load()
}

// sweep closes the connections whose read deadline has passed, or which
// were evicted or shut down, and finds the next deadline.
func (l *tcpLoop) sweep(now time.Time) {
	l.next = now.Add(time.Hour)
	for _, k := range l.conns {
		if k.ended() || !now.Before(k.readBy) {
			l.drop(k)
			continue
		}
		l.due(k.readBy)
	}
}

// serve reads a readable connection and answers it. After a few reads
// that filled the buffer it returns: the other connections get their
// turn, and the poll, level-triggered, reports this one again.
func (l *tcpLoop) serve(k *tcpConnLoop) {
	for range 8 {
		n, errno := rawconn.Read(k.c.fd, k.room())
		switch errno {
		case unix.EAGAIN:
			return
		case unix.EINTR:
			continue
		}
		more, drained := k.got(rawconn.ReadResult(n, errno))
		if len(k.pending) > 0 || k.handOff {
			l.handOff(k, more)
			return
		}
		if !more {
			l.drop(k)
			return
		}
		if drained {
			return
		}
	}
}

// push writes k.out without waiting: what the socket does not take now
// is kept in k.pending, for resume to write. False when the connection is
// to close (reset: see tcpConn.write).
func (k *tcpConnLoop) push() bool {
	if len(k.pending) > 0 {
		k.pending = append(k.pending, k.out...) // behind what waits already
		return true
	}
	for b := k.out; len(b) > 0; {
		n, errno := rawconn.Write(k.c.fd, b)
		switch errno {
		case 0:
			b = b[n:]
		case unix.EINTR:
		case unix.EAGAIN:
			k.pending = append(k.pending, b...)
			return true
		default:
			unix.SetsockoptLinger(k.c.fd, unix.SOL_SOCKET, unix.SO_LINGER, &unix.Linger{Onoff: 1, Linger: 0})
			return false
		}
	}
	return true
}

// drop closes a connection of the loop's.
func (l *tcpLoop) drop(k *tcpConnLoop) {
	unix.EpollCtl(l.ep, unix.EPOLL_CTL_DEL, k.c.fd, nil)
	delete(l.conns, k.c.fd)
	k.s.release(k.c)
}

// handOff gives a connection to a goroutine of its own (tcpServer.resume),
// to finish writing or answering what would hold the loop up; more is
// got's verdict on going on after that.
func (l *tcpLoop) handOff(k *tcpConnLoop, more bool) {
	c, s := k.c, k.s
	unix.EpollCtl(l.ep, unix.EPOLL_CTL_DEL, c.fd, nil)
	delete(l.conns, c.fd)
	f := os.NewFile(uintptr(c.fd), "tcp")
	nc, err := net.FileConn(f) // its own descriptor, in the runtime's poller
	f.Close()
	s.mu.Lock()
	c.fd = -1 // closed: the goroutine's descriptor is nc's
	if err == nil {
		// Only now a goroutine's: until release, a failed hand-over
		// stays the loop's (stopLocked wakes it; it has no Conn to stop).
		c.loop, c.Conn = nil, rawconn.Wrap(nc)
	}
	s.mu.Unlock()
	if err != nil {
		l.log.Warn("TCP: cannot hand a connection over", "error", err)
		s.release(c)
		return
	}
	go s.resume(k, more)
}
