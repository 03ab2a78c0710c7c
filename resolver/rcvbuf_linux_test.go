package resolver

import (
	"os"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestUDPReadBuffer: every UDP socket of a listener asks for udpReadBuffer,
// which the kernel grants up to net.core.rmem_max (and reports doubled).
func TestUDPReadBuffer(t *testing.T) {
	b, err := os.ReadFile("/proc/sys/net/core/rmem_max")
	require.NoError(t, err)
	rmemMax, err := strconv.Atoi(strings.TrimSpace(string(b)))
	require.NoError(t, err)
	want := 2 * min(udpReadBuffer, rmemMax)

	l, err := Listen("127.0.0.1:0")
	require.NoError(t, err)
	defer l.Close()
	for _, got := range sockopts(t, l, syscall.SOL_SOCKET, syscall.SO_RCVBUF) {
		require.Equal(t, want, got)
	}
}
