//go:build linux

package health

import (
	"bufio"
	"bytes"
	"container/heap"
	"errors"
	"io"
	"net/netip"
	"os"
	"slices"
	"sync"
	"syscall"
	"time"
	"unsafe"

	"github.com/geodns/geodns/internal/rawconn"
	"github.com/geodns/geodns/zones"
	"golang.org/x/sys/unix"
)

// evloop runs tcp and http probes without a goroutine each: their
// non-blocking sockets wait on a private epoll instance, and one goroutine
// connects, writes, reads and parses for all of them, a batch of ready
// sockets per wake-up. With a goroutine per probe, parking each one on its
// read and waking it from the runtime's poller cost more CPU than the
// probe's own system calls (27 % against 24 % for the write, at 3,000
// probes a second).
//
// Its system calls are raw: none of them blocks but epoll_wait, and on
// loopback a write or connect runs the peer's TCP input too, long enough
// for the runtime to hand the thread's P to another thread if told the
// call might block.
type evloop struct {
	pr    *prober
	owner loopOwner
	ep    int // the epoll instance
	epf   *os.File
	eprc  syscall.RawConn
	wake  int // an eventfd: submissions and stop wake the loop

	mu      sync.Mutex
	jobs    []job // submitted, not yet begun
	stopped bool
	exited  chan struct{}

	// The loop's goroutine alone uses these.
	byFD    []*task  // the running task of each socket
	gen     []uint32 // each socket's registrations: an event of an earlier socket with the same number is ignored
	due     taskHeap // running tasks by deadline
	free    []*task  // finished tasks, for the next ones: no allocation per probe
	scratch []byte   // what a read returns, while a response fits one read
	reqBuf  []byte   // where requests are made: one is written whole before the next is made
	src     tail
	br      *bufio.Reader
}

type job struct {
	p      *probe
	spec   *zones.Probe
	target netip.AddrPort // spec.Target, parsed
	kept   *conn          // the connection the last run kept, or nil
}

// task is a running probe.
type task struct {
	job
	fd       int // -1: none open; an http check's is counted in prober.kept
	state    uint8
	keep     bool   // the request asks to keep the connection
	req      []byte // the request, once decided; in reqBuf unless a write stopped short
	sent     int    // bytes of it written
	resp     []byte // the response so far, when it took more than one read
	start    time.Time
	deadline time.Time
	index    int // in due
}

const (
	connecting = iota
	sending
	reading
)

// maxResponse bounds what is read of a response before it is parsed: the
// head and the body read (maxHeader, maxBody) with room for chunk lines.
const maxResponse = 1 << 20

// errMore: the response goes on in bytes not received yet.
var errMore = errors.New("response incomplete")

// wakeFD marks the eventfd's epoll events; sockets are never negative.
const wakeFD = -1

// newEvloop starts an event loop. Its probes go through pr (allowlist,
// kept-connection budget); their results to owner, on the loop's goroutine.
func newEvloop(pr *prober, owner loopOwner) (looper, error) {
	ep, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
	if err != nil {
		return nil, err
	}
	wake, err := unix.Eventfd(0, unix.EFD_NONBLOCK|unix.EFD_CLOEXEC)
	if err != nil {
		unix.Close(ep)
		return nil, err
	}
	fail := func(err error) (looper, error) {
		unix.Close(ep)
		unix.Close(wake)
		return nil, err
	}
	if err := unix.EpollCtl(ep, unix.EPOLL_CTL_ADD, wake, &unix.EpollEvent{Events: unix.EPOLLIN, Fd: wakeFD}); err != nil {
		return fail(err)
	}
	// The loop waits for its epoll instance in the runtime's poller, as a
	// goroutine waits for a socket: a thread blocked in epoll_wait would
	// hold its P, and the runtime's monitor, seeing a long system call,
	// hands the P to another thread and then polls every 20 us, backing
	// off over about a second: with a batch of probes every 10 ms it never
	// backed off, and cost more than the probes' reads.
	if err := unix.SetNonblock(ep, true); err != nil {
		return fail(err)
	}
	f := os.NewFile(uintptr(ep), "health-epoll")
	rc, err := f.SyscallConn()
	if err != nil {
		return fail(err)
	}
	l := &evloop{pr: pr, owner: owner, ep: ep, epf: f, eprc: rc, wake: wake, exited: make(chan struct{}),
		scratch: make([]byte, 16<<10), br: bufio.NewReaderSize(nil, 2048)}
	go l.run()
	return l, nil
}

// submit starts a probe. kept is the connection its last run kept, or
// nil; the probe owns it from here. Not to be called after stop.
func (l *evloop) submit(p *probe, spec *zones.Probe, target netip.AddrPort, kept *conn) {
	l.mu.Lock()
	first := len(l.jobs) == 0
	l.jobs = append(l.jobs, job{p, spec, target, kept})
	l.mu.Unlock()
	if first { // else the wake-up for the first is still pending
		l.poke()
	}
}

// stop ends the loop: running probes are abandoned and their connections
// closed. It returns when the loop has exited.
func (l *evloop) stop() {
	l.mu.Lock()
	l.stopped = true
	l.mu.Unlock()
	l.poke()
	<-l.exited
}

// poke wakes the loop. The write is raw, as the loop's own calls are: a
// system call made through the runtime's bookkeeping wakes sysmon from
// its deep sleep (the process idle between batches), and sysmon then polls
// every 20 us while the batch runs.
func (l *evloop) poke() {
	one := [8]byte{1} // eventfd counts in a native uint64: 1 on little-endian machines, some non-zero value on others
	unix.RawSyscall(unix.SYS_WRITE, uintptr(l.wake), uintptr(unsafe.Pointer(&one[0])), 8)
}

func (l *evloop) run() {
	defer close(l.exited)
	events := make([]unix.EpollEvent, 256)
	var jobs []job
	for {
		l.mu.Lock()
		jobs, l.jobs = l.jobs, jobs[:0]
		stopped := l.stopped
		l.mu.Unlock()
		if stopped {
			l.shut(jobs)
			return
		}
		for _, j := range jobs {
			l.begin(j)
		}
		clear(jobs)            // hold no probe until the next batch
		var deadline time.Time // none
		if len(l.due) > 0 {
			deadline = l.due[0].deadline
		}
		l.epf.SetReadDeadline(deadline)
		n := 0
		l.eprc.Read(func(fd uintptr) bool { // returns at once if an event came, else at the deadline
			r, _, errno := unix.RawSyscall6(unix.SYS_EPOLL_PWAIT, fd, uintptr(unsafe.Pointer(&events[0])), uintptr(len(events)), 0, 0, 0)
			if errno != 0 {
				return errno != unix.EINTR && errno != unix.EAGAIN
			}
			n = int(r)
			return n > 0 // none: wait for the instance to turn readable
		})
		for _, ev := range events[:n] {
			if ev.Fd == wakeFD {
				var b [8]byte
				rawconn.Read(l.wake, b[:])
				continue
			}
			if fd := int(ev.Fd); l.byFD[fd] != nil && l.gen[fd] == uint32(ev.Pad) {
				l.step(l.byFD[fd], ev.Events)
			}
		}
		now := time.Now()
		for len(l.due) > 0 && !l.due[0].deadline.After(now) {
			t := l.due[0]
			why := "timeout"
			if t.state == reading {
				why = "timeout waiting for response"
			}
			l.end(t, Result{Reason: why})
		}
	}
}

// shut abandons the jobs not begun and the tasks running.
func (l *evloop) shut(jobs []job) {
	for _, j := range jobs {
		l.pr.release(j.kept)
		l.owner.abandoned(j.p)
	}
	for len(l.due) > 0 {
		t := heap.Pop(&l.due).(*task)
		l.closeConn(t)
		l.owner.abandoned(t.p)
	}
	l.epf.Close() // the idle kept connections leave it as their owners close them
	unix.Close(l.wake)
}

func (l *evloop) begin(j job) {
	if !l.pr.allowedAddr(j.target) {
		l.pr.release(j.kept)
		l.owner.finished(j.p, Result{Reason: "target not allowed"}, nil)
		return
	}
	var t *task
	if n := len(l.free); n > 0 {
		t, l.free = l.free[n-1], l.free[:n-1]
	} else {
		t = new(task)
	}
	*t = task{job: j, fd: -1, start: time.Now()}
	t.deadline = t.start.Add(j.spec.Check.Timeout)
	heap.Push(&l.due, t)
	if k := j.kept; k != nil { // t.kept, while t uses it
		t.fd = k.fd
		l.byFD[k.fd] = t
		l.send(t)
		return
	}
	l.dial(t)
}

// dial opens a new connection for t. Like the goroutine's probes it closes
// with a reset (linger 0): no TIME_WAIT sockets at thousands of probes a
// second.
func (l *evloop) dial(t *task) {
	ap := t.target
	family := unix.AF_INET
	if !ap.Addr().Unmap().Is4() {
		family = unix.AF_INET6
	}
	fd, errno := rawSocket(family)
	if errno != 0 {
		l.end(t, Result{Reason: reason(errno)})
		return
	}
	t.fd = fd
	if t.spec.Check.Type == "http" {
		l.pr.kept.Add(1) // as the goroutine's probes count their connections
	}
	if errno := rawConnect(fd, family, ap); errno != 0 && errno != unix.EINPROGRESS {
		l.end(t, Result{Reason: reason(errno)})
		return
	}
	for fd >= len(l.byFD) {
		l.byFD = append(l.byFD, nil)
		l.gen = append(l.gen, 0)
	}
	l.gen[fd]++
	l.byFD[fd] = t
	// Edge-triggered: a socket's events are read to the end when they
	// come, and an idle kept connection raises none worth a wake-up.
	ev := unix.EpollEvent{Events: unix.EPOLLIN | unix.EPOLLOUT | unix.EPOLLET, Fd: int32(fd), Pad: int32(l.gen[fd])}
	if _, _, errno := unix.RawSyscall6(unix.SYS_EPOLL_CTL, uintptr(l.ep), unix.EPOLL_CTL_ADD, uintptr(fd), uintptr(unsafe.Pointer(&ev)), 0, 0); errno != 0 {
		l.end(t, Result{Reason: reason(errno)})
		return
	}
	t.state = connecting
}

// step moves t on after its socket reported events.
func (l *evloop) step(t *task, events uint32) {
	switch t.state {
	case connecting:
		if events&(unix.EPOLLERR|unix.EPOLLHUP) != 0 { // refused, unreachable, reset: the socket says which
			errno := soError(t.fd)
			if errno == 0 {
				errno = unix.ECONNRESET
			}
			l.end(t, Result{Reason: reason(errno)})
			return
		}
		if events&unix.EPOLLOUT == 0 {
			return // still connecting
		}
		if t.spec.Check.Type == "tcp" {
			l.end(t, Result{OK: true, Reason: "connected"})
			return
		}
		l.send(t)
	case sending:
		l.send(t)
	case reading:
		l.read(t)
	}
}

// send writes t's request, or as much as the socket takes.
func (l *evloop) send(t *task) {
	if t.req == nil {
		c := t.spec.Check
		t.keep = c.KeepAlive && l.pr.kept.Load() <= l.pr.maxKept
		l.reqBuf = appendRequest(l.reqBuf[:0], t.spec.Target, c, t.keep)
		t.req = l.reqBuf
	}
	for t.sent < len(t.req) {
		n, errno := rawconn.Write(t.fd, t.req[t.sent:])
		if errno == unix.EAGAIN {
			t.state = sending // on until the socket is writable again
			if &t.req[0] == &l.reqBuf[0] {
				t.req = bytes.Clone(t.req) // the next request will be made in reqBuf
			}
			return
		}
		if errno != 0 {
			l.broken(t, errno, Result{Reason: reason(errno)})
			return
		}
		t.sent += n
	}
	t.state = reading
	t.req = nil // reqBuf's next contents are another's
}

// read takes what the socket has of t's response and finishes t when the
// response is complete.
func (l *evloop) read(t *task) {
	acc := t.resp
	if acc == nil {
		acc = l.scratch[:0]
	}
	var end error = errMore // why no more bytes follow acc
	got := false
	for {
		if len(acc) == cap(acc) {
			if len(acc) >= maxResponse {
				break // parse what there is: a head or body this long fails or is cut off
			}
			acc = slices.Grow(acc, len(acc))
		}
		n, errno := rawconn.Read(t.fd, acc[len(acc):cap(acc)])
		if errno == unix.EAGAIN {
			if !got {
				return // nothing new
			}
			break
		}
		if errno != 0 {
			end = errno
			break
		}
		if n == 0 {
			end = io.EOF
			break
		}
		got = true
		acc = acc[:len(acc)+n]
		if len(acc) < cap(acc) {
			break // a short read took all the socket had; more raises a new event
		}
	}
	if end != errMore && len(acc) == 0 {
		l.broken(t, end, Result{Reason: "bad response: " + reason(end)})
		return
	}
	c := t.spec.Check
	l.src = tail{data: acc, end: end}
	l.br.Reset(&l.src)
	resp, err := readResponse(l.br, c.ExpectBody != "", bodyLimit(c, t.keep))
	extra := len(l.src.data) + l.br.Buffered() // bytes past the response
	l.br.Reset(nil)
	l.src = tail{}
	switch {
	case errors.Is(err, errMore):
		if len(acc) >= maxResponse {
			l.end(t, Result{Reason: "bad response: longer than 1 MiB"})
			return
		}
		if t.resp == nil {
			t.resp = bytes.Clone(acc) // the scratch buffer serves the next socket
		} else {
			t.resp = acc
		}
	case err != nil:
		l.end(t, Result{Reason: "bad response: " + reason(err)})
	case t.keep && resp.reusable && extra == 0 && end == errMore:
		l.keepConn(t, judge(resp, c))
	default:
		l.end(t, judge(resp, c))
	}
}

// broken handles a failed write, or a read that ended before any byte of
// the response: t ends with r, unless the connection was kept and the
// server had closed it while idle (its keep-alive timeout, a restart),
// which says nothing of its health: a new connection will.
func (l *evloop) broken(t *task, err error, r Result) {
	if t.kept != nil && closedByPeer(err) {
		l.closeConn(t)
		t.req, t.sent = nil, 0
		l.dial(t)
		return
	}
	l.end(t, r)
}

// keepConn finishes t, handing its connection to the probe's next run.
func (l *evloop) keepConn(t *task, r Result) {
	k := t.kept
	if k == nil {
		k = &conn{}
	}
	k.fd = t.fd
	l.byFD[t.fd] = nil
	t.fd, t.kept = -1, nil // k holds the connection, and its count, now
	l.finish(t, r, k)
}

// end finishes t with r, closing its connection.
func (l *evloop) end(t *task, r Result) {
	l.closeConn(t)
	l.finish(t, r, nil)
}

// finish hands t's result to its owner and keeps t for a next probe.
func (l *evloop) finish(t *task, r Result, kept *conn) {
	heap.Remove(&l.due, t.index)
	r.RTT = time.Since(t.start)
	l.owner.finished(t.p, r, kept)
	*t = task{}
	l.free = append(l.free, t)
}

// closeConn closes t's connection, if open.
func (l *evloop) closeConn(t *task) {
	t.kept, t.resp = nil, nil
	if t.fd < 0 {
		return
	}
	if t.fd < len(l.byFD) {
		l.byFD[t.fd] = nil
	}
	closeFD(t.fd)
	if t.spec.Check.Type == "http" {
		l.pr.kept.Add(-1)
	}
	t.fd = -1
}

// tail reads the bytes of a response received so far, then returns end:
// errMore while the connection is open, else why it is not.
type tail struct {
	data []byte
	end  error
}

func (t *tail) Read(b []byte) (int, error) {
	if len(t.data) == 0 {
		return 0, t.end
	}
	n := copy(b, t.data)
	t.data = t.data[n:]
	return n, nil
}

// taskHeap orders running tasks by deadline.
type taskHeap []*task

func (h taskHeap) Len() int           { return len(h) }
func (h taskHeap) Less(i, j int) bool { return h[i].deadline.Before(h[j].deadline) }
func (h taskHeap) Swap(i, j int) {
	h[i], h[j] = h[j], h[i]
	h[i].index, h[j].index = i, j
}
func (h *taskHeap) Push(x any) {
	t := x.(*task)
	t.index = len(*h)
	*h = append(*h, t)
}
func (h *taskHeap) Pop() any {
	old := *h
	t := old[len(old)-1]
	old[len(old)-1] = nil
	*h = old[:len(old)-1]
	return t
}
