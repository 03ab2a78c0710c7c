package procs

import (
	"runtime"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestReaderProcs: each UDP reader adds a P on top of the program's own
// setting while it runs; when the last stops, the setting is back.
func TestReaderProcs(t *testing.T) {
	base := runtime.GOMAXPROCS(0)
	done1 := AddReaderProcs(2)
	require.Equal(t, base+2, runtime.GOMAXPROCS(0))
	done2 := AddReaderProcs(3)
	require.Equal(t, base+5, runtime.GOMAXPROCS(0))
	done1()
	require.Equal(t, base+3, runtime.GOMAXPROCS(0))
	done2()
	require.Equal(t, base, runtime.GOMAXPROCS(0))
}
