//go:build !linux

package rawconn

import (
	"net"
	"time"
)

// Wrap returns c: raw system calls are made on Linux only.
func Wrap(c net.Conn) net.Conn { return c }

// WriteWithin writes all of b to c within timeout.
func WriteWithin(c net.Conn, b []byte, timeout time.Duration) error {
	return writeWithin(c, b, timeout)
}
