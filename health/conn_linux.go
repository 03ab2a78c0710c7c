//go:build linux

package health

import (
	"io"
	"net"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

// rawConn reads and writes a probe's non-blocking socket with raw system
// calls, waiting for readiness through the runtime's poller as net.Conn
// does (deadlines included). A non-blocking read or write never blocks,
// so the usual system call bookkeeping buys nothing here and costs much:
// on loopback a write runs the receiver's TCP stack too, long enough for
// the runtime's monitor to hand the thread's P to another thread, and at
// thousands of probes a second those hand-offs cost more CPU than the
// probes themselves.
type rawConn struct {
	*net.TCPConn
	rc syscall.RawConn
}

func wrapConn(c *net.TCPConn) net.Conn {
	rc, err := c.SyscallConn()
	if err != nil {
		return c
	}
	return &rawConn{TCPConn: c, rc: rc}
}

func (c *rawConn) Read(b []byte) (int, error) {
	if len(b) == 0 {
		return 0, nil
	}
	var n int
	var errno syscall.Errno
	err := c.rc.Read(func(fd uintptr) bool {
		r, _, e := unix.RawSyscall(unix.SYS_READ, fd, uintptr(unsafe.Pointer(&b[0])), uintptr(len(b)))
		n, errno = int(r), e
		return e != unix.EAGAIN
	})
	return result("read", n, errno, err)
}

func (c *rawConn) Write(b []byte) (int, error) {
	written := 0
	for written < len(b) {
		var n int
		var errno syscall.Errno
		err := c.rc.Write(func(fd uintptr) bool {
			p := b[written:]
			r, _, e := unix.RawSyscall(unix.SYS_WRITE, fd, uintptr(unsafe.Pointer(&p[0])), uintptr(len(p)))
			n, errno = int(r), e
			return e != unix.EAGAIN
		})
		if _, err := result("write", n, errno, err); err != nil {
			return written, err
		}
		written += n
	}
	return written, nil
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
