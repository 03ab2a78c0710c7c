package rawconn

import (
	"net"
	"time"
)

// writeWithin is WriteWithin for a connection written through the
// runtime: a fresh deadline before each write, a timer update each time.
func writeWithin(c net.Conn, b []byte, timeout time.Duration) error {
	if err := c.SetWriteDeadline(time.Now().Add(timeout)); err != nil {
		return err
	}
	_, err := c.Write(b)
	return err
}
