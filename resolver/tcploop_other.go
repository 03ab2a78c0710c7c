//go:build !linux

package resolver

import (
	"log/slog"
	"net"
	"time"
)

// Elsewhere each TCP connection has a goroutine: no event loops
// (tcploop_linux.go).

type tcpLoops struct{}

type tcpLoop struct{}

func newTCPLoops(int, *slog.Logger) *tcpLoops { return nil }
func (*tcpLoops) count() int                  { return 0 }
func (*tcpLoops) pick() *tcpLoop              { return nil }
func (*tcpLoops) stop()                       {}
func adopt(net.Conn) int                      { return -1 }
func closeFD(int)                             {}
func (*tcpLoop) add(*tcpConnLoop, time.Time)  {}
func (*tcpLoop) wake()                        {}
func (*tcpLoop) due(time.Time)                {}
func (*tcpConnLoop) push() bool               { return false }
