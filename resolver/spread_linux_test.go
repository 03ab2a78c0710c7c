package resolver

import (
	"net"
	"runtime"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// TestUDPSpreadOneClient: the datagrams of one client address and port
// reach every socket of the listener's SO_REUSEPORT group, each a fair
// share. The kernel's hash alone sends them all to one socket.
func TestUDPSpreadOneClient(t *testing.T) {
	const sockets, sent = 3, 600
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(sockets)) // Listen opens one socket per P
	l, err := Listen("127.0.0.1:0")
	require.NoError(t, err)
	defer l.Close()
	socks := l.udpSockets()
	require.Len(t, socks, sockets)

	c, err := net.Dial("udp", l.Addr())
	require.NoError(t, err)
	defer c.Close()
	for i := range sent {
		_, err := c.Write([]byte{byte(i >> 8), byte(i)})
		require.NoError(t, err)
	}
	got := make([]int, len(socks))
	total := 0
	buf := make([]byte, 64)
	for deadline := time.Now().Add(10 * time.Second); total < sent && time.Now().Before(deadline); {
		for i, pc := range socks {
			require.NoError(t, pc.SetReadDeadline(time.Now().Add(20*time.Millisecond)))
			for {
				if _, _, err := pc.ReadFrom(buf); err != nil {
					break // this socket is empty for now
				}
				got[i]++
				total++
			}
		}
	}
	require.Equal(t, sent, total, "per socket: %v", got)
	for i, n := range got {
		// A fair share is 200; below 100 happens by chance with odds
		// far below one in a billion.
		require.Greater(t, n, sent/sockets/2, "socket %d of %v", i, got)
	}
}
