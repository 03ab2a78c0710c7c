package zones

import (
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// TestWatcherSeesConfigMapSwap: a Kubernetes ConfigMap volume holds each
// file as a symlink through "..data", itself a symlink to a timestamped
// directory that an update replaces with one rename. Nothing happens to the
// zone file's name, so the watcher must look again when a link or a
// directory appears in the zones directory, not wait for its poll.
func TestWatcherSeesConfigMapSwap(t *testing.T) {
	dir := t.TempDir()
	version := func(n, addr string) {
		require.NoError(t, os.Mkdir(filepath.Join(dir, "..v"+n), 0o755))
		require.NoError(t, os.WriteFile(filepath.Join(dir, "..v"+n, "c.example.yaml"), []byte(zoneWithA(addr)), 0o644))
		require.NoError(t, os.Symlink("..v"+n, filepath.Join(dir, "..data_tmp")))
		require.NoError(t, os.Rename(filepath.Join(dir, "..data_tmp"), filepath.Join(dir, "..data")))
	}
	version("1", "192.0.2.1")
	require.NoError(t, os.Symlink("..data/c.example.yaml", filepath.Join(dir, "c.example.yaml")))

	var set atomic.Pointer[Set]
	log, _ := newLog()
	w := NewWatcher(dir, &set, nil, log)
	w.Poll = time.Hour // the swap itself must be seen
	require.NoError(t, w.Scan(true))
	require.Equal(t, "192.0.2.1", answerA(&set, "c.example."))
	runWatcher(t, w, nil)

	version("2", "192.0.2.2")
	require.Eventually(t, func() bool { return answerA(&set, "c.example.") == "192.0.2.2" }, 10*time.Second, 20*time.Millisecond)
}

// TestWatcherSeesSymlinkedDirSwap: a zones directory that is a symlink to a
// release (zones -> releases/1), switched with ln -sfn and mv -T. The
// watch on the old release sees nothing of it; the new release is watched
// from then on, edits in place included.
func TestWatcherSeesSymlinkedDirSwap(t *testing.T) {
	root := t.TempDir()
	release := func(n, addr string) {
		d := filepath.Join(root, "releases", n)
		require.NoError(t, os.MkdirAll(d, 0o755))
		writeZone(t, d, "s.example.yaml", zoneWithA(addr))
		require.NoError(t, os.Symlink(d, filepath.Join(root, "zones.tmp")))
		require.NoError(t, os.Rename(filepath.Join(root, "zones.tmp"), filepath.Join(root, "zones")))
	}
	release("1", "192.0.2.1")
	dir := filepath.Join(root, "zones")

	var set atomic.Pointer[Set]
	log, _ := newLog()
	w := NewWatcher(dir, &set, nil, log)
	w.Poll = time.Hour
	require.NoError(t, w.Scan(true))
	require.Equal(t, "192.0.2.1", answerA(&set, "s.example."))
	runWatcher(t, w, nil)

	release("2", "192.0.2.2")
	require.Eventually(t, func() bool { return answerA(&set, "s.example.") == "192.0.2.2" }, 10*time.Second, 20*time.Millisecond)

	// The new release is watched: a rename into place there is seen.
	writeZone(t, filepath.Join(root, "releases", "2"), "s.example.yaml", zoneWithA("192.0.2.3"))
	require.Eventually(t, func() bool { return answerA(&set, "s.example.") == "192.0.2.3" }, 10*time.Second, 20*time.Millisecond)
	// And so is a write in place, through its writer's close.
	require.NoError(t, os.WriteFile(filepath.Join(root, "releases", "2", "s.example.yaml"), []byte(zoneWithA("192.0.2.4")), 0o644))
	require.Eventually(t, func() bool { return answerA(&set, "s.example.") == "192.0.2.4" }, 10*time.Second, 20*time.Millisecond)
}

// TestWatcherSeesDirRenamedOver: a zones directory (no symlink) replaced
// whole (cp -a zones zones.new, edit, mv zones zones.old, mv zones.new
// zones). The watch on the old directory sees nothing of it: the switch
// must be seen from the parent and the new directory watched from then
// on. Before, the swap and every edit after it waited for the poll (17-27
// s in the review's run). (SIGHUP's rewatch is for a parent that cannot
// be watched; not tested here.)
func TestWatcherSeesDirRenamedOver(t *testing.T) {
	root := t.TempDir()
	dir := filepath.Join(root, "zones")
	require.NoError(t, os.Mkdir(dir, 0o755))
	writeZone(t, dir, "r.example.yaml", zoneWithA("192.0.2.1"))

	var set atomic.Pointer[Set]
	log, _ := newLog()
	w := NewWatcher(dir, &set, nil, log)
	w.Poll = time.Hour // the swap itself must be seen
	require.NoError(t, w.Scan(true))
	require.Equal(t, "192.0.2.1", answerA(&set, "r.example."))
	runWatcher(t, w, nil)

	swap := func(n, addr string) {
		next := filepath.Join(root, "zones.new")
		require.NoError(t, os.Mkdir(next, 0o755))
		writeZone(t, next, "r.example.yaml", zoneWithA(addr))
		require.NoError(t, os.Rename(dir, filepath.Join(root, "zones.old"+n)))
		require.NoError(t, os.Rename(next, dir))
	}
	swap("1", "192.0.2.2")
	require.Eventually(t, func() bool { return answerA(&set, "r.example.") == "192.0.2.2" }, 10*time.Second, 20*time.Millisecond)
	// The new directory is watched: a rename into place, then a write in place.
	writeZone(t, dir, "r.example.yaml", zoneWithA("192.0.2.3"))
	require.Eventually(t, func() bool { return answerA(&set, "r.example.") == "192.0.2.3" }, 10*time.Second, 20*time.Millisecond)
	require.NoError(t, os.WriteFile(filepath.Join(dir, "r.example.yaml"), []byte(zoneWithA("192.0.2.4")), 0o644))
	require.Eventually(t, func() bool { return answerA(&set, "r.example.") == "192.0.2.4" }, 10*time.Second, 20*time.Millisecond)
	// Twice: the watch follows every switch, not only the first.
	swap("2", "192.0.2.5")
	require.Eventually(t, func() bool { return answerA(&set, "r.example.") == "192.0.2.5" }, 10*time.Second, 20*time.Millisecond)
	writeZone(t, dir, "r.example.yaml", zoneWithA("192.0.2.6"))
	require.Eventually(t, func() bool { return answerA(&set, "r.example.") == "192.0.2.6" }, 10*time.Second, 20*time.Millisecond)
}
