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
// /tmp; Linux only) that nobody else can open, mapped shared: its pages are page
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
	if err := unix.Mprotect(buf, unix.PROT_READ); err != nil {
		syscall.Munmap(buf)
		return nil, false, err
	}
	return buf, false, nil
}

func releasePrivate(buf []byte) {
	if buf != nil {
		syscall.Munmap(buf)
	}
}
