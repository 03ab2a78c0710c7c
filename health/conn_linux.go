//go:build linux

package health

import (
	"net/netip"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

// The raw system calls of the event loop (reads and writes are rawconn's).

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
