//go:build linux

package rawconn

import (
	"errors"
	"io"
	"net"
	"os"
	"sync"
	"syscall"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// conn reads and writes a non-blocking TCP socket with raw system calls,
// waiting for readiness through the runtime's poller as net.Conn does
// (deadlines included). Such a call never blocks, so the bookkeeping of a
// blocking call buys nothing and costs much: entering one wakes sysmon when
// the process was idle (and sysmon then polls every 20 us for a while), and
// on loopback a write runs the receiver's TCP input too, long enough for
// sysmon to hand the thread's P to another thread. At 10k DNS queries a
// second over TCP that was 1.4 of 3 context switches per query; in health
// checks, more CPU than the probes' own system calls.
//
// A call allocates nothing: its arguments and outcome live in the conn (one
// op per direction) and the function the poller calls is bound once, in
// Wrap. (A closure per call, with the variables it sets, was three
// allocations per read or write.)
type conn struct {
	*net.TCPConn
	rc   syscall.RawConn
	r, w op
}

// op is one raw read or write at a time; mu serializes callers, as the
// poller's own lock would.
type op struct {
	mu    sync.Mutex
	b     []byte
	n     int
	errno syscall.Errno
	// backOff makes the call return on EAGAIN rather than wait (the write
	// deadline is to be set first); backedOff reports it did.
	backOff, backedOff bool
	fn                 func(fd uintptr) bool
}

// Wrap returns c reading and writing through raw system calls if it is a
// TCP connection, else c.
func Wrap(c net.Conn) net.Conn {
	tc, ok := c.(*net.TCPConn)
	if !ok {
		return c
	}
	rc, err := tc.SyscallConn()
	if err != nil {
		return c
	}
	rw := &conn{TCPConn: tc, rc: rc}
	rw.r.fn = func(fd uintptr) bool {
		rw.r.n, rw.r.errno = Read(int(fd), rw.r.b)
		return rw.r.errno != unix.EAGAIN
	}
	rw.w.fn = func(fd uintptr) bool {
		rw.w.n, rw.w.errno = Write(int(fd), rw.w.b)
		if rw.w.errno == unix.EAGAIN && rw.w.backOff {
			rw.w.backedOff = true
			return true
		}
		return rw.w.errno != unix.EAGAIN
	}
	return rw
}

func (c *conn) Read(b []byte) (int, error) {
	if len(b) == 0 {
		return 0, nil
	}
	c.r.mu.Lock()
	defer c.r.mu.Unlock()
	c.r.b = b
	err := c.rc.Read(c.r.fn)
	c.r.b = nil
	return result("read", c.r.n, c.r.errno, err)
}

func (c *conn) Write(b []byte) (int, error) {
	c.w.mu.Lock()
	defer c.w.mu.Unlock()
	written, err := c.write(b, false)
	return written, err
}

// write writes b; with backOff it returns early, having written less,
// when the socket cannot take more without waiting. Under c.w.mu.
func (c *conn) write(b []byte, backOff bool) (int, error) {
	c.w.backOff, c.w.backedOff = backOff, false
	defer func() { c.w.b = nil }()
	written := 0
	for written < len(b) {
		c.w.b = b[written:]
		err := c.rc.Write(c.w.fn)
		if c.w.backedOff {
			return written, nil
		}
		if _, err := result("write", c.w.n, c.w.errno, err); err != nil {
			return written, err
		}
		written += c.w.n
	}
	return written, nil
}

// WriteWithin writes all of b to c. A write that has to wait for the peer
// to take data fails when the peer takes less than MinProgress bytes in a
// whole timeout, counted from when it first has to wait; a peer that keeps
// reading, however slowly its link is, keeps the write going. The deadline
// is set only then, and cleared once b is written: a write the socket takes
// at once (nearly all) costs no timer, and no write ever meets a deadline
// left over from an earlier one.
//
// Progress is what the peer acknowledged (TCP_INFO's bytes_acked), not
// what the write got into the socket: the kernel reports a full socket
// writable again only once a third of it has drained, and loopback's
// send buffers grow to 4 MB, so a client reading 360 KB a second, steadily,
// met a plain deadline of 2 s before its socket woke the writer.
func WriteWithin(c net.Conn, b []byte, timeout time.Duration) error {
	rc, ok := c.(*conn)
	if !ok {
		return writeWithin(c, b, timeout)
	}
	rc.w.mu.Lock()
	defer rc.w.mu.Unlock()
	n, err := rc.write(b, true)
	if err != nil || n == len(b) {
		return err
	}
	acked, known := rc.acked()
	for {
		if err := c.SetWriteDeadline(time.Now().Add(timeout)); err != nil {
			return err
		}
		m, err := rc.write(b[n:], false)
		n += m
		if err == nil {
			break
		}
		was := acked
		if acked, known = rc.acked(); !known || acked-was < MinProgress || !errors.Is(err, os.ErrDeadlineExceeded) {
			return err
		}
	}
	return c.SetWriteDeadline(time.Time{})
}

// MinProgress is the least a peer must take in one timeout of WriteWithin's
// for a waiting write to go on: 16 KB, 8 KB a second at the server's 2 s.
// A reader of a byte now and then (a client holding a connection open
// without taking its answers) does not.
const MinProgress = 16 << 10

// acked returns the bytes the peer has acknowledged; false if the kernel
// does not say.
func (c *conn) acked() (uint64, bool) {
	var n uint64
	var err error
	if cerr := c.rc.Control(func(fd uintptr) {
		var info *unix.TCPInfo
		if info, err = unix.GetsockoptTCPInfo(int(fd), unix.IPPROTO_TCP, unix.TCP_INFO); err == nil {
			n = info.Bytes_acked
		}
	}); cerr != nil || err != nil {
		return 0, false
	}
	return n, true
}

// result turns the outcome of a raw read or write (op) into what net.Conn
// returns.
func result(op string, n int, errno syscall.Errno, err error) (int, error) {
	switch {
	case err != nil: // a deadline, or the connection closed
		return 0, err
	case errno != 0:
		return 0, &net.OpError{Op: op, Net: "tcp", Err: errno}
	case op == "read" && n == 0:
		return 0, io.EOF
	}
	return n, nil
}

// ReadResult turns what Read returned into what net.Conn's Read returns:
// io.EOF for an end of stream, an error for an errno.
func ReadResult(n int, errno syscall.Errno) (int, error) {
	return result("read", n, errno, nil)
}

// Read is read(2) on a non-blocking descriptor, made raw.
func Read(fd int, b []byte) (int, syscall.Errno) {
	if len(b) == 0 {
		return 0, 0
	}
	n, _, errno := unix.RawSyscall(unix.SYS_READ, uintptr(fd), uintptr(unsafe.Pointer(&b[0])), uintptr(len(b)))
	return int(n), errno
}

// Write is write(2) on a non-blocking descriptor, made raw.
func Write(fd int, b []byte) (int, syscall.Errno) {
	n, _, errno := unix.RawSyscall(unix.SYS_WRITE, uintptr(fd), uintptr(unsafe.Pointer(&b[0])), uintptr(len(b)))
	return int(n), errno
}

// rawReadLoop runs ReadLoop on c if it is a raw connection (Wrap's), and
// says whether it did.
func rawReadLoop(c net.Conn, room func() []byte, got func(n int, err error) (more, drained bool)) bool {
	rc, ok := c.(*conn)
	if ok {
		rc.readLoop(room, got)
	}
	return ok
}

// readLoop is ReadLoop for a raw connection.
//
// A read that returns less than it asked for drained the socket, unless it
// also took the peer's FIN: a read that reaches the FIN takes it with the
// data before it, and no readiness follows, so a loop that then waited sat
// until its deadline with the peer gone (a DNS client half-closing after
// its last query: 10 s). So reads are recvmsg with TCP_INQ, whose count of
// bytes left is 1 once the FIN has come (Linux 4.18): the loop waits only
// when it is 0. Without TCP_INQ it reads again after every read instead.
func (c *conn) readLoop(room func() []byte, got func(n int, err error) (more, drained bool)) {
	c.r.mu.Lock()
	defer c.r.mu.Unlock()
	inq := false
	c.rc.Control(func(fd uintptr) { inq = unix.SetsockoptInt(int(fd), unix.SOL_TCP, unix.TCP_INQ, 1) == nil })
	var (
		iov unix.Iovec
		cm  [4]uint64 // one control message of 4 bytes, aligned
	)
	msg := unix.Msghdr{Iov: &iov, Iovlen: 1, Control: (*byte)(unsafe.Pointer(&cm[0]))}
	stop := false
	fn := func(fd uintptr) bool {
		b := room()
		var n int
		var errno syscall.Errno
		left := -1 // not known
		if inq {
			iov.Base = &b[0]
			iov.SetLen(len(b))
			msg.SetControllen(int(unsafe.Sizeof(cm))) // the kernel sets it to what it wrote
			r, _, e := unix.RawSyscall(unix.SYS_RECVMSG, fd, uintptr(unsafe.Pointer(&msg)), 0)
			n, errno = int(r), e
			if e == 0 {
				left = inqLeft(&msg, &cm)
			}
		} else {
			n, errno = Read(int(fd), b)
		}
		if errno == unix.EAGAIN {
			return false // wait for data
		}
		n, err := ReadResult(n, errno)
		more, drained := got(n, err)
		switch {
		case !more || err != nil:
			stop = true
			return true
		case !drained || left != 0:
			return true // round again through RawConn.Read: more to read, or the FIN
		}
		return false // drained: wait for more before reading, within this call
	}
	for !stop {
		if err := c.rc.Read(fn); err != nil && !stop {
			got(0, err)
			return
		}
	}
}

// inqLeft returns the TCP_CM_INQ count a recvmsg wrote into cm; -1 if it
// wrote none.
func inqLeft(msg *unix.Msghdr, cm *[4]uint64) int {
	if int(msg.Controllen) < unix.CmsgLen(4) {
		return -1
	}
	h := (*unix.Cmsghdr)(unsafe.Pointer(cm))
	if h.Level != unix.SOL_TCP || h.Type != unix.TCP_CM_INQ {
		return -1
	}
	return int(*(*int32)(unsafe.Add(unsafe.Pointer(cm), unix.CmsgLen(0))))
}
