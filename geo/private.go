package geo

import (
	"io"
	"os"
	"syscall"
)

// readPrivate copies a file into an anonymous mapping and makes it
// read-only: memory of our own, outside the Go heap, that no later write to
// the file can reach.
func readPrivate(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, err
	}
	size := int(st.Size())
	if size == 0 {
		return nil, io.ErrUnexpectedEOF
	}
	buf, err := syscall.Mmap(-1, 0, size, syscall.PROT_READ|syscall.PROT_WRITE, syscall.MAP_ANON|syscall.MAP_PRIVATE)
	if err != nil {
		return nil, err
	}
	if _, err := io.ReadFull(f, buf); err != nil {
		syscall.Munmap(buf)
		return nil, err
	}
	if err := syscall.Mprotect(buf, syscall.PROT_READ); err != nil {
		syscall.Munmap(buf)
		return nil, err
	}
	return buf, nil
}

func releasePrivate(buf []byte) {
	if buf != nil {
		syscall.Munmap(buf)
	}
}
