//go:build linux

package zones

import (
	"bytes"
	"os"
	"path/filepath"
	"sync"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

// writeWatcher reports writes to files and the close that ends each
// writer's turn (IN_CLOSE_WRITE, which fsnotify does not offer), in the
// order they happened, so a file written in place loads only when its
// writer has closed it, however long it paused in the middle.
type writeWatcher struct {
	f     *os.File
	fd    int
	dirs  map[int32]string
	ready chan struct{} // events are queued

	mu    sync.Mutex // orders reads of fd with the queue
	queue []writeEvent
	buf   []byte
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
	w := &writeWatcher{f: os.NewFile(uintptr(fd), "inotify"), fd: fd, dirs: map[int32]string{},
		ready: make(chan struct{}, 1), buf: make([]byte, 64<<10)}
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
	rc, err := w.f.SyscallConn()
	if err != nil {
		w.f.Close()
		return nil, err
	}
	go w.wait(rc)
	return w, nil
}

// wait parks on the runtime's poller until the kernel has events, reads
// them into the queue and signals ready; it ends when the file is closed.
func (w *writeWatcher) wait(rc syscall.RawConn) {
	for {
		err := rc.Read(func(uintptr) bool { return w.readAll() })
		if err != nil {
			return
		}
		select {
		case w.ready <- struct{}{}:
		default:
		}
	}
}

// take returns the events so far, in order, including those the kernel
// holds but wait has not read yet: a caller about to judge a file stable
// must have seen every write made before it looked.
func (w *writeWatcher) take() []writeEvent {
	w.readAll()
	w.mu.Lock()
	defer w.mu.Unlock()
	q := w.queue
	w.queue = nil
	return q
}

// readAll reads every event the kernel holds into the queue and tells
// whether it read any.
func (w *writeWatcher) readAll() bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	read := false
	for {
		n, err := unix.Read(w.fd, w.buf)
		if err != nil || n <= 0 {
			return read
		}
		read = true
		for off := 0; off+unix.SizeofInotifyEvent <= n; {
			ev := (*unix.InotifyEvent)(unsafe.Pointer(&w.buf[off]))
			name := w.buf[off+unix.SizeofInotifyEvent : off+unix.SizeofInotifyEvent+int(ev.Len)]
			off += unix.SizeofInotifyEvent + int(ev.Len)
			dir, ok := w.dirs[ev.Wd]
			if !ok || ev.Len == 0 {
				continue
			}
			if i := bytes.IndexByte(name, 0); i >= 0 {
				name = name[:i]
			}
			w.queue = append(w.queue, writeEvent{path: filepath.Join(dir, string(name)), closed: ev.Mask&unix.IN_CLOSE_WRITE != 0})
		}
	}
}

// rewatch watches dir again, after the path came to name another
// directory (a symlink switched to a new release).
func (w *writeWatcher) rewatch(dir string) error {
	dir = filepath.Clean(dir)
	wd, err := unix.InotifyAddWatch(w.fd, dir, unix.IN_MODIFY|unix.IN_CLOSE_WRITE|unix.IN_ONLYDIR)
	if err != nil {
		return &os.PathError{Op: "inotify_add_watch", Path: dir, Err: err}
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	for old, d := range w.dirs {
		if d == dir && old != int32(wd) {
			unix.InotifyRmWatch(w.fd, uint32(old)) // the old release: its events would name the new one's files
			delete(w.dirs, old)
		}
	}
	w.dirs[int32(wd)] = dir
	return nil
}

// Close stops the watcher; take must not be called after.
func (w *writeWatcher) Close() { w.f.Close() }
