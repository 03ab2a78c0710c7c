package statefile

import (
	"encoding/json"
	"errors"
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

// TestLoadRestoresPrevious: a corrupt file is replaced by its previous
// copy on disk, not only in memory: a second start with no write between
// loads that copy again. Before, the second start found no file and began
// empty (an operator's drain, recovered once, was lost at the next restart).
func TestLoadRestoresPrevious(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "operator.json")
	require.NoError(t, Write(path, []byte(`{"drained":["us-east"]}`)))
	require.NoError(t, Write(path, []byte(`{"drained":["us-east"],"n":2}`)))
	require.NoError(t, os.WriteFile(path, []byte(`{"drained": ["us-`), 0o644)) // torn
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	decodeJSON := func(got *string) func([]byte) error {
		return func(b []byte) error {
			if !json.Valid(b) {
				return errors.New("not JSON")
			}
			*got = string(b)
			return nil
		}
	}
	for start, wantCorrupt := range []bool{true, false, false} {
		var got string
		require.Equal(t, wantCorrupt, Load(path, "operator state", log, decodeJSON(&got)), "start %d", start)
		require.Equal(t, `{"drained":["us-east"]}`, got, "start %d: the last good copy", start)
	}
}
