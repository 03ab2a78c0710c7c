package zones

import (
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestSerialFile: a content keeps its serial across a reopen; a new one
// comes after the last even when it wants less; Flush puts what is
// pending on disk at once (the writes are otherwise 200 ms behind).
func TestSerialFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "serials.json")
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	f := OpenSerialFile(path, log)
	a, b := [32]byte{1}, [32]byte{2}
	s, ok := f.Serial("k.example.", a, 1000, 0, false)
	require.True(t, ok)
	require.Equal(t, uint32(1000), s)
	s, _ = f.Serial("k.example.", b, 900, 1000, true)
	require.Equal(t, uint32(1001), s, "after the last, though its file is older")
	f.Flush()
	data, err := os.ReadFile(path)
	require.NoError(t, err)
	require.True(t, strings.Contains(string(data), `"serial":1001`), "flushed: %s", data)

	g := OpenSerialFile(path, log)
	s, _ = g.Serial("k.example.", b, 500, 0, false)
	require.Equal(t, uint32(1001), s, "the same content after a restart")
	s, _ = g.Serial("k.example.", a, 1000, 1001, true)
	require.Equal(t, uint32(1002), s, "a return to older content comes after too")
	g.Flush()
}
