//go:build !linux

package rawconn

import (
	"net"
	"time"
)

// Wrap returns c: raw system calls are made on Linux only.
func Wrap(c net.Conn) net.Conn { return c }

// rawReadLoop: no raw connections here; ReadLoop reads through net.Conn.
func rawReadLoop(net.Conn, func() []byte, func(int, error) (bool, bool)) bool { return false }

// WriteWithin writes all of b to c within timeout.
func WriteWithin(c net.Conn, b []byte, timeout time.Duration) error {
	return writeWithin(c, b, timeout)
}
