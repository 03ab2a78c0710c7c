//go:build linux

package zones

import (
	"bytes"
	"os"
	"path/filepath"
	"unsafe"

	"golang.org/x/sys/unix"
)

// writeWatcher reports writes to files and the close that ends each
// writer's turn (IN_CLOSE_WRITE, which fsnotify does not offer), in the
// order they happened, so a file written in place loads only when its
// writer has closed it, however long it paused in the middle.
type writeWatcher struct {
	f      *os.File
	dirs   map[int32]string
	events chan writeEvent
	done   chan struct{}
}

// writeEvent is a write to path, or the close of a writer (closed).
type writeEvent struct {
	path   string
	closed bool
}

// seesCloses tells whether this system reports the close of a writer.
const seesCloses = true

func newWriteWatcher(dirs []string) (*writeWatcher, error) {
	fd, err := unix.InotifyInit1(unix.IN_CLOEXEC | unix.IN_NONBLOCK)
	if err != nil {
		return nil, err
	}
	// Non-blocking under the runtime's poller: Close ends a pending Read.
	w := &writeWatcher{f: os.NewFile(uintptr(fd), "inotify"), dirs: map[int32]string{},
		events: make(chan writeEvent, 256), done: make(chan struct{})}
	for i, d := range dirs {
		wd, err := unix.InotifyAddWatch(fd, d, unix.IN_MODIFY|unix.IN_CLOSE_WRITE|unix.IN_ONLYDIR)
		if err != nil {
			if i > 0 {
				continue // an import directory: polled, as with fsnotify
			}
			w.f.Close()
			return nil, &os.PathError{Op: "inotify_add_watch", Path: d, Err: err}
		}
		w.dirs[int32(wd)] = filepath.Clean(d)
	}
	go w.read()
	return w, nil
}

func (w *writeWatcher) read() {
	defer close(w.events)
	buf := make([]byte, 64<<10)
	for {
		n, err := w.f.Read(buf)
		if err != nil {
			return // closed (or broken: the poll still catches changes)
		}
		for off := 0; off+unix.SizeofInotifyEvent <= n; {
			ev := (*unix.InotifyEvent)(unsafe.Pointer(&buf[off]))
			name := buf[off+unix.SizeofInotifyEvent : off+unix.SizeofInotifyEvent+int(ev.Len)]
			off += unix.SizeofInotifyEvent + int(ev.Len)
			dir, ok := w.dirs[ev.Wd]
			if !ok || ev.Len == 0 {
				continue
			}
			if i := bytes.IndexByte(name, 0); i >= 0 {
				name = name[:i]
			}
			we := writeEvent{path: filepath.Join(dir, string(name)), closed: ev.Mask&unix.IN_CLOSE_WRITE != 0}
			select {
			case w.events <- we:
			case <-w.done:
				return
			}
		}
	}
}

func (w *writeWatcher) Close() {
	close(w.done)
	w.f.Close()
}
