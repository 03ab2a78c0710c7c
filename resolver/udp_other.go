//go:build !linux

package resolver

import (
	"log/slog"
	"net"
	"net/netip"
)

// readersHoldProcs: readers wait in the netpoller, without a P.
const readersHoldProcs = false

// serveUDP answers queries on c until c is closed.
func serveUDP(c *net.UDPConn, h WireHandler, log *slog.Logger, _ <-chan struct{}) {
	servePolled(c, h, log)
}

// spread: the kernel's own choice of socket (see spread_linux.go).
func spread(net.PacketConn, int) bool { return false }

func steerable(netip.Addr, int) bool { return false }
