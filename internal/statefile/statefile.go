// Package statefile reads and writes the small JSON files geodns keeps
// across restarts (probe states, operator state): replaced atomically and
// durably, with the last good copy kept beside, and a corrupt file moved
// aside rather than overwritten.
package statefile

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// MaxSize bounds a state file read: far above what 30,000 probes and
// their overrides take (a few MB), so a bigger one is not ours.
const MaxSize = 64 << 20

// PrevSuffix names the copy of a state file kept from before its last
// replacement: the last good state when the file itself is damaged.
const PrevSuffix = ".prev"

// ErrCorrupt marks a state file that exists but cannot be used: not
// JSON, truncated, too big or not a regular file.
var ErrCorrupt = errors.New("corrupt state file")

// Read returns a state file's content; nil and no error when it does not
// exist. A file that is not regular or bigger than MaxSize is ErrCorrupt.
func Read(path string) ([]byte, error) {
	fi, err := os.Stat(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	if !fi.Mode().IsRegular() || fi.Size() > MaxSize {
		return nil, fmt.Errorf("%s: %w: not a regular file of at most %d bytes", path, ErrCorrupt, MaxSize)
	}
	return os.ReadFile(path)
}

// Load reads path with decode (which must leave its target empty when it
// fails with ErrCorrupt). A corrupt file is renamed aside
// (path.corrupt-<time>), logged, and the previous copy (path.prev) is
// decoded instead, so a damaged file never silently loses state: the next
// write would otherwise replace it with an empty one. corrupt reports that
// the file was corrupt (for a metric). what names the file in logs.
func Load(path, what string, log *slog.Logger, decode func([]byte) error) (corrupt bool) {
	removeTemps(path)
	err := decodeFile(path, decode)
	if err == nil {
		return false
	}
	log.Error(what+" file not loaded", "file", path, "error", err)
	if !errors.Is(err, ErrCorrupt) {
		// Unreadable (permissions, I/O): leave it alone; writes will fail
		// too and say so on /readyz.
		return false
	}
	aside := path + ".corrupt-" + time.Now().UTC().Format("20060102T150405.000Z")
	if err := os.Rename(path, aside); err != nil {
		log.Error("corrupt "+what+" file not moved aside", "file", path, "error", err)
	} else {
		log.Error("corrupt "+what+" file kept aside", "file", aside)
	}
	prev := path + PrevSuffix
	data, err := Read(prev)
	if err == nil && data != nil {
		if err = decode(data); err != nil {
			err = fmt.Errorf("%s: %w: %v", prev, ErrCorrupt, err)
		}
	}
	if err != nil {
		log.Error("previous "+what+" not loaded either; starting without it", "file", prev, "error", err)
		return true
	}
	if data == nil {
		log.Warn("no previous "+what+" copy; starting without it", "file", prev)
		return true
	}
	// The copy becomes the file again: the file is otherwise written only
	// when the state next changes, and a restart before that would find
	// none and start empty, losing what was just recovered.
	if err := Write(path, data); err != nil {
		log.Error("previous "+what+" loaded but not written back; it is lost at the next restart unless the state changes first", "file", path, "error", err)
	} else {
		log.Warn(what+" restored from the previous copy", "file", prev)
	}
	return true
}

// decodeFile reads path and decodes it; a missing file decodes nothing.
// removeTemps removes the temporary files of Write a process stopped
// mid-write left beside path (".<name>.<digits>"): nothing else reads
// them, and each start would otherwise add to them.
func removeTemps(path string) {
	prefix := "." + filepath.Base(path) + "."
	entries, _ := os.ReadDir(filepath.Dir(path))
	for _, e := range entries {
		digits, ok := strings.CutPrefix(e.Name(), prefix)
		if ok && digits != "" && strings.Trim(digits, "0123456789") == "" && e.Type().IsRegular() {
			os.Remove(filepath.Join(filepath.Dir(path), e.Name()))
		}
	}
}

func decodeFile(path string, decode func([]byte) error) error {
	data, err := Read(path)
	if err != nil || data == nil {
		return err
	}
	if err := decode(data); err != nil {
		return fmt.Errorf("%s: %w: %v", path, ErrCorrupt, err)
	}
	return nil
}

// Write replaces path with data so that a crash leaves the old file or
// the new one, never a mix: temp file, fsync, rename, fsync the folder.
// The file replaced stays as path.prev (a hard link), the last good copy
// for Load.
func Write(path string, data []byte) error {
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".*")
	if err != nil {
		return err
	}
	tmp := f.Name()
	defer os.Remove(tmp) // after a successful rename there is nothing to remove
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	if fi, err := os.Lstat(path); err == nil && fi.Mode().IsRegular() {
		prev := path + PrevSuffix
		if err := os.Remove(prev); err != nil && !errors.Is(err, os.ErrNotExist) {
			return err
		}
		if err := os.Link(path, prev); err != nil {
			// No hard links on this file system: a copy does.
			old, err := os.ReadFile(path)
			if err != nil {
				return err
			}
			if err := os.WriteFile(prev, old, 0o644); err != nil {
				return err
			}
		}
	}
	if err := os.Rename(tmp, path); err != nil {
		return err
	}
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}
