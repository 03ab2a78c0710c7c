package rawconn

import (
	"io"
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
