//go:build linux

package rawconn

import (
	"io"
	"net"
	"syscall"
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
type conn struct {
	*net.TCPConn
	rc syscall.RawConn
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
	return &conn{TCPConn: tc, rc: rc}
}

func (c *conn) Read(b []byte) (int, error) {
	if len(b) == 0 {
		return 0, nil
	}
	var n int
	var errno syscall.Errno
	err := c.rc.Read(func(fd uintptr) bool {
		n, errno = Read(int(fd), b)
		return errno != unix.EAGAIN
	})
	return result("read", n, errno, err)
}

func (c *conn) Write(b []byte) (int, error) {
	written := 0
	for written < len(b) {
		var n int
		var errno syscall.Errno
		err := c.rc.Write(func(fd uintptr) bool {
			n, errno = Write(int(fd), b[written:])
			return errno != unix.EAGAIN
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
