package rawconn

import (
	"context"
	"errors"
	"io"
	"net"
	"os"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// pair returns the two ends of a loopback TCP connection, the first wrapped.
func pair(t *testing.T) (wrapped, peer net.Conn) { return pairWith(t, nil) }

// pairWith is pair with control applied to both sockets before they
// connect (nil: none).
func pairWith(t *testing.T, control func(network, address string, c syscall.RawConn) error) (wrapped, peer net.Conn) {
	t.Helper()
	ln, err := (&net.ListenConfig{Control: control}).Listen(context.Background(), "tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer ln.Close()
	peer, err = (&net.Dialer{Control: control}).Dial("tcp", ln.Addr().String())
	require.NoError(t, err)
	c, err := ln.Accept()
	require.NoError(t, err)
	wrapped = Wrap(c)
	t.Cleanup(func() { wrapped.Close(); peer.Close() })
	return wrapped, peer
}

// TestWriteWithinLeavesNoDeadline: a write that had to wait completes, and
// a write made after its timeout would have passed is not failed by it.
func TestWriteWithinLeavesNoDeadline(t *testing.T) {
	c, peer := pair(t)
	go io.Copy(io.Discard, peer)
	big := make([]byte, 8<<20) // more than the socket buffers: it waits
	require.NoError(t, WriteWithin(c, big, 500*time.Millisecond))
	time.Sleep(600 * time.Millisecond) // past the deadline the first write set
	require.NoError(t, WriteWithin(c, big, 500*time.Millisecond))
	_, err := c.Write([]byte("plain writes too"))
	require.NoError(t, err)
}

// TestWriteWithinTimesOut: a peer that does not read fails the write after
// about the timeout, counted from when it first had to wait.
func TestWriteWithinTimesOut(t *testing.T) {
	c, _ := pair(t)
	start := time.Now()
	err := WriteWithin(c, make([]byte, 64<<20), 200*time.Millisecond)
	took := time.Since(start)
	require.True(t, errors.Is(err, os.ErrDeadlineExceeded), "got %v", err)
	require.GreaterOrEqual(t, took, 200*time.Millisecond)
	require.Less(t, took, 5*time.Second)
}
