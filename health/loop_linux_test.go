package health

import (
	"testing"

	"github.com/stretchr/testify/require"
)

// TestLoopStop: stopping the loop abandons the probes it runs and those
// not yet begun, and closes their connections.
func TestLoopStop(t *testing.T) {
	p := &prober{allow: loopback, maxKept: 10}
	done := make(chanOwner, 10)
	l, err := newEvloop(p, done)
	require.NoError(t, err)
	hung := probeOf(check("http"), hungListener(t))
	for range 3 {
		l.submit(&probe{}, hung, loopTarget(hung), nil)
	}
	require.Eventually(t, func() bool { return p.kept.Load() == 3 }, 5e9, 1e6, "three connections open, waiting for answers")
	l.stop()
	for range 3 {
		require.True(t, (<-done).abandoned)
	}
	require.EqualValues(t, 0, p.kept.Load())
	require.Empty(t, done)
}
