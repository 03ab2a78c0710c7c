package rawconn

import (
	"errors"
	"io"
	"net"
	"os"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// TestNoAllocations: raw reads and writes allocate nothing (a closure per
// call, with the variables it set, was three allocations each).
func TestNoAllocations(t *testing.T) {
	c, peer := pair(t)
	msg := make([]byte, 100)
	buf := make([]byte, 100)
	allocs := testing.AllocsPerRun(200, func() {
		if _, err := c.Write(msg); err != nil {
			t.Fatal(err)
		}
		if _, err := io.ReadFull(peer, buf); err != nil {
			t.Fatal(err)
		}
		if err := WriteWithin(c, msg, time.Second); err != nil {
			t.Fatal(err)
		}
		if _, err := io.ReadFull(peer, buf); err != nil {
			t.Fatal(err)
		}
		if _, err := peer.Write(msg); err != nil {
			t.Fatal(err)
		}
		if _, err := io.ReadFull(c, buf); err != nil {
			t.Fatal(err)
		}
	})
	require.Zero(t, allocs)
}

// TestWriteWithinSlowSteadyReader: a peer that keeps reading, slower than
// the socket wakes a waiting writer (a third of its send buffer drained
// within the timeout), still gets everything; one that takes a few bytes
// now and then does not hold the write open.
func TestWriteWithinSlowSteadyReader(t *testing.T) {
	const timeout = 100 * time.Millisecond
	c, peer := smallSegmentPair(t)
	// A send buffer of 2 MB (the kernel doubles what is asked): the socket
	// wakes a waiting writer once ~700 KB have drained, 440 ms at the
	// reader's 1.6 MB a second.
	require.NoError(t, c.(interface{ SetWriteBuffer(int) error }).SetWriteBuffer(1<<20))
	const size = 3 << 20
	got := make(chan int, 1)
	go func() {
		n := 0
		b := make([]byte, 16<<10)
		for n < size {
			m, err := io.ReadFull(peer, b[:min(len(b), size-n)])
			n += m
			if err != nil {
				break
			}
			time.Sleep(10 * time.Millisecond)
		}
		got <- n
	}()
	require.NoError(t, WriteWithin(c, make([]byte, size), timeout))
	require.Equal(t, size, <-got)

	c, peer = smallSegmentPair(t)
	stop := make(chan struct{})
	defer close(stop)
	go func() {
		b := make([]byte, 100)
		for {
			select {
			case <-stop:
				return
			case <-time.After(20 * time.Millisecond):
			}
			if _, err := peer.Read(b); err != nil {
				return
			}
		}
	}()
	start := time.Now()
	err := WriteWithin(c, make([]byte, 64<<20), timeout)
	require.True(t, errors.Is(err, os.ErrDeadlineExceeded), "got %v", err)
	require.Less(t, time.Since(start), 5*time.Second)
}

// smallSegmentPair is pair with segments of 1,400 bytes, as on an
// Ethernet path, instead of loopback's 64 KB: the flow is as smooth as the
// reader's reads, not a segment per window update.
func smallSegmentPair(t *testing.T) (wrapped, peer net.Conn) {
	t.Helper()
	return pairWith(t, func(_, _ string, rc syscall.RawConn) error {
		var err error
		rc.Control(func(fd uintptr) { err = syscall.SetsockoptInt(int(fd), syscall.IPPROTO_TCP, syscall.TCP_MAXSEG, 1400) })
		return err
	})
}
