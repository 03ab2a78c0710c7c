package zones

import (
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// TestWriterPausingPastSettle: on Linux the watcher sees the writer close
// the file, so a writer that pauses mid-file for three times Settle (the
// issue's slow cat >, scp, rsync --inplace) is waited for, not served half.
func TestWriterPausingPastSettle(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "slow.example.yaml")
	writeZone(t, dir, "slow.example.yaml", versionZone(1, 40))
	var set atomic.Pointer[Set]
	log, _ := newLog()
	w := NewWatcher(dir, &set, nil, log)
	w.Poll, w.Debounce, w.Settle = time.Hour, 10*time.Millisecond, 100*time.Millisecond
	var pub published
	w.OnChange = pub.add
	require.NoError(t, w.Scan(true))
	runWatcher(t, w, nil)

	body := versionZone(2, 40)
	half := strings.Index(body, "  r20:")
	rewriteInPlace(t, path, body, []int{half, len(body)}, func(int) { time.Sleep(3 * w.Settle) })
	require.Eventually(t, func() bool {
		v, _, err := wholeVersion(set.Load().Zone("slow.example."))
		return err == nil && v == 2
	}, 10*time.Second, 10*time.Millisecond)
	for _, s := range pub.all() {
		_, _, err := wholeVersion(s.Zone("slow.example."))
		require.NoError(t, err, "a half-written file was served")
	}
}
