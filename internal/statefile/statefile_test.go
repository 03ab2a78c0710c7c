package statefile

import (
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestLoadRemovesTemps: the temporary files of writes a stopped process
// left (".health.json.<digits>"; four kill cycles left two) go at the next
// Load; nothing else beside the file does.
func TestLoadRemovesTemps(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "health.json")
	require.NoError(t, Write(path, []byte(`{"a":1}`)))
	require.NoError(t, Write(path, []byte(`{"a":2}`)))
	for _, name := range []string{".health.json.120771739", ".health.json.2835262131", ".health.json.keep", ".other.json.123", "health.json.corrupt-x"} {
		require.NoError(t, os.WriteFile(filepath.Join(dir, name), []byte("{"), 0o644))
	}
	var got []byte
	corrupt := Load(path, "test state", slog.New(slog.NewTextHandler(io.Discard, nil)), func(b []byte) error { got = b; return nil })
	require.False(t, corrupt)
	require.Equal(t, `{"a":2}`, string(got))
	var names []string
	entries, err := os.ReadDir(dir)
	require.NoError(t, err)
	for _, e := range entries {
		names = append(names, e.Name())
	}
	require.ElementsMatch(t, []string{"health.json", "health.json.prev", ".health.json.keep", ".other.json.123", "health.json.corrupt-x"}, names)
}
