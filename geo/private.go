package geo

import (
	"io"
	"os"
	"syscall"

	"golang.org/x/sys/unix"
)

// readPrivate returns a read-only mapping of a copy of the file that is
// ours alone: no later write to the file (cp new.mmdb city.mmdb overwrites
// in place) can reach the pages under lookups in flight, and a truncation
// cannot fault them (SIGBUS).
//
// The copy is an unlinked temporary file (O_TMPFILE in $TMPDIR, else
// /tmp) that nobody else can open, mapped shared: its pages are page
// cache, read in as lookups touch them and reclaimable when memory is
// short, as a server that maps the database file itself (gdnsd, Knot's
// mod-geoip) has it, where an anonymous copy held all 130 MB of a City
// database resident for good. Where O_TMPFILE is refused, the copy is
// anonymous memory as before. Neither is on the Go heap, where 100+ MB of
// live bytes would let the collector grow the heap by as much again.
func readPrivate(path string) (buf []byte, shared bool, err error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, false, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, false, err
	}
	size := int(st.Size())
	if size == 0 {
		return nil, false, io.ErrUnexpectedEOF
	}
	if buf, ok := mapCopy(f, size); ok {
		return buf, true, nil
	}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return nil, false, err
	}
	buf, err = syscall.Mmap(-1, 0, size, syscall.PROT_READ|syscall.PROT_WRITE, syscall.MAP_ANON|syscall.MAP_PRIVATE)
	if err != nil {
		return nil, false, err
	}
	if _, err := io.ReadFull(f, buf); err != nil {
		syscall.Munmap(buf)
		return nil, false, err
	}
	if err := syscall.Mprotect(buf, syscall.PROT_READ); err != nil {
		syscall.Munmap(buf)
		return nil, false, err
	}
	return buf, false, nil
}

// dropPages unmaps the pages of a shared copy (mapCopy's) from the
// process, which keeps the data: a lookup faults the page it reads back
// in from the page cache. For after a walk over the whole database
// (Spans), which would otherwise leave all of it resident. An anonymous
// copy has nowhere else to keep its data, so it is left alone.
func dropPages(buf []byte, shared bool) {
	if shared && len(buf) > 0 {
		unix.Madvise(buf, unix.MADV_DONTNEED)
	}
}

// mapCopy copies size bytes of f into an unlinked temporary file and maps
// it read-only; ok is false when that cannot be done (no O_TMPFILE on the
// temporary directory's file system, no space), and nothing is left
// behind.
func mapCopy(f *os.File, size int) ([]byte, bool) {
	fd, err := unix.Open(os.TempDir(), unix.O_TMPFILE|unix.O_RDWR|unix.O_CLOEXEC, 0o600)
	if err != nil {
		return nil, false
	}
	tmp := os.NewFile(uintptr(fd), "geoip copy")
	defer tmp.Close() // the mapping keeps the file; with no name, it goes with the mapping
	if n, err := io.Copy(tmp, io.LimitReader(f, int64(size))); err != nil || n != int64(size) {
		return nil, false
	}
	buf, err := syscall.Mmap(fd, 0, size, syscall.PROT_READ, syscall.MAP_SHARED)
	if err != nil {
		return nil, false
	}
	return buf, true
}

func releasePrivate(buf []byte) {
	if buf != nil {
		syscall.Munmap(buf)
	}
}
