//go:build !linux

package resolver

import (
	"log/slog"
	"net"
	"sync/atomic"
)

// serveUDP answers queries on c until c is closed.
func serveUDP(c *net.UDPConn, h WireHandler, log *slog.Logger, _ *atomic.Bool) {
	servePolled(c, h, log)
}
