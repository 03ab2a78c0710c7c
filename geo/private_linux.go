//go:build linux

package geo

import (
	"io"
	"os"
	"syscall"

	"golang.org/x/sys/unix"
)

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
