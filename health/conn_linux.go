//go:build linux

package health

import (
	"io"
	"net"
	"net/netip"
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
		n, errno = rawRead(int(fd), b)
		return errno != unix.EAGAIN
	})
	return result("read", n, errno, err)
}

func (c *rawConn) Write(b []byte) (int, error) {
	written := 0
	for written < len(b) {
		var n int
		var errno syscall.Errno
		err := c.rc.Write(func(fd uintptr) bool {
			n, errno = rawWrite(int(fd), b[written:])
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

// The raw system calls of probes, the event loop's and rawConn's.

// closeFD closes a socket; closing it also takes it out of the epoll set.
func closeFD(fd int) {
	unix.RawSyscall(unix.SYS_CLOSE, uintptr(fd), 0, 0)
}

func rawSocket(family int) (int, syscall.Errno) {
	fd, _, errno := unix.RawSyscall(unix.SYS_SOCKET, uintptr(family), unix.SOCK_STREAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0)
	if errno != 0 {
		return -1, errno
	}
	lg := unix.Linger{Onoff: 1, Linger: 0}
	unix.RawSyscall6(unix.SYS_SETSOCKOPT, fd, unix.SOL_SOCKET, unix.SO_LINGER, uintptr(unsafe.Pointer(&lg)), unsafe.Sizeof(lg), 0)
	return int(fd), 0
}

func rawConnect(fd, family int, ap netip.AddrPort) syscall.Errno {
	var sa4 unix.RawSockaddrInet4
	var sa6 unix.RawSockaddrInet6
	sa, size, port := unsafe.Pointer(&sa6), unsafe.Sizeof(sa6), &sa6.Port
	if family == unix.AF_INET {
		sa4.Family, sa4.Addr = unix.AF_INET, ap.Addr().Unmap().As4()
		sa, size, port = unsafe.Pointer(&sa4), unsafe.Sizeof(sa4), &sa4.Port
	} else {
		sa6.Family, sa6.Addr = unix.AF_INET6, ap.Addr().As16()
	}
	p := (*[2]byte)(unsafe.Pointer(port)) // network byte order
	p[0], p[1] = byte(ap.Port()>>8), byte(ap.Port())
	_, _, errno := unix.RawSyscall(unix.SYS_CONNECT, uintptr(fd), uintptr(sa), size)
	return errno
}

// soError is a connecting socket's outcome: 0 once connected (or still
// connecting).
func soError(fd int) syscall.Errno {
	var v int32
	n := uint32(unsafe.Sizeof(v))
	if _, _, errno := unix.RawSyscall6(unix.SYS_GETSOCKOPT, uintptr(fd), unix.SOL_SOCKET, unix.SO_ERROR,
		uintptr(unsafe.Pointer(&v)), uintptr(unsafe.Pointer(&n)), 0); errno != 0 {
		return errno
	}
	return syscall.Errno(v)
}

func rawRead(fd int, b []byte) (int, syscall.Errno) {
	if len(b) == 0 {
		return 0, 0
	}
	n, _, errno := unix.RawSyscall(unix.SYS_READ, uintptr(fd), uintptr(unsafe.Pointer(&b[0])), uintptr(len(b)))
	return int(n), errno
}

func rawWrite(fd int, b []byte) (int, syscall.Errno) {
	n, _, errno := unix.RawSyscall(unix.SYS_WRITE, uintptr(fd), uintptr(unsafe.Pointer(&b[0])), uintptr(len(b)))
	return int(n), errno
}
