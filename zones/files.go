package zones

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"syscall"
)

// DefaultMaxFileSize caps each zone or import file when Limits gives none:
// 1 GiB holds a master file of some 20 million records, far beyond any zone
// served from memory here, while /dev/zero or a runaway file still fails
// long before the machine runs out of memory.
const DefaultMaxFileSize = 1 << 30

// DefaultMaxRecords caps the records a zone's master files may make when
// Limits gives none. The byte cap does not bound them: a few $GENERATE
// lines make millions of records, and an $INCLUDE tree with origins of its
// own multiplies its leaves. Twice the 1,000,000-record zone the project
// benchmarks, some 800 MB while it loads.
const DefaultMaxRecords = 2_000_000

// maxToken caps a master file's token (a run of bytes without blank or
// line break): the longest a record needs is the hex of 64 KiB of generic
// rdata. A longer one is a binary or corrupt file, and the parser would
// quote all of it in its error, several times over.
const maxToken = 256 << 10

// Limits bounds what loading a zone may read. The zero value allows the
// zone file's own directory, DefaultMaxFileSize and DefaultMaxRecords.
type Limits struct {
	// MaxFileSize caps each file read (a zone file; an import with its
	// $INCLUDEs together), in bytes. Default (0): DefaultMaxFileSize.
	MaxFileSize int64
	// MaxRecords caps the records an import (with its $INCLUDEs and
	// $GENERATEs) makes. Default (0): DefaultMaxRecords.
	MaxRecords int
	// ImportDirs are directories besides the zone file's own that zone
	// files and their import: targets may be in (or link into). Default none.
	ImportDirs []string

	serials SerialSource // Watcher.Serials
	// big, if set, is called once when an import passes bigLoad records,
	// from the parse: the watcher moves the load to its lane for big ones.
	big func()
}

func (l Limits) maxRecords() int {
	if l.MaxRecords > 0 {
		return l.MaxRecords
	}
	return DefaultMaxRecords
}

func (l Limits) maxSize() int64 {
	if l.MaxFileSize > 0 {
		return l.MaxFileSize
	}
	return DefaultMaxFileSize
}

// errOutside and the others below name the refusal, never the content of
// the file refused: a zone editor must not read files through our errors.
var (
	errOutside    = errors.New("is outside the allowed directories (the zone directory and zone_import_dirs); not read")
	errNotRegular = errors.New("is not a regular file; not read")
)

// openConfined opens path for reading if it is, after following symlinks,
// a regular file inside dir or one of l.ImportDirs. The open never blocks
// (O_NONBLOCK: a FIFO opens at once and is then refused by its fstat), and
// the file is opened through an os.Root so a symlink swapped in between the
// check and the open cannot lead outside. The FileInfo is the opened file's.
func (l Limits) openConfined(path, dir string) (*os.File, os.FileInfo, error) {
	real, err := filepath.EvalSymlinks(path)
	if err != nil {
		return nil, nil, err
	}
	real, err = filepath.Abs(real)
	if err != nil {
		return nil, nil, err
	}
	for _, d := range append([]string{dir}, l.ImportDirs...) {
		root, rel, ok := within(d, real)
		if !ok {
			continue
		}
		r, err := os.OpenRoot(root)
		if err != nil {
			return nil, nil, err
		}
		f, err := r.OpenFile(rel, os.O_RDONLY|syscall.O_NONBLOCK|syscall.O_NOCTTY, 0)
		r.Close()
		if err != nil {
			var pe *os.PathError
			if errors.As(err, &pe) && strings.Contains(pe.Err.Error(), "escapes") {
				return nil, nil, errOutside
			}
			return nil, nil, err
		}
		st, err := f.Stat()
		if err != nil {
			f.Close()
			return nil, nil, err
		}
		if !st.Mode().IsRegular() {
			f.Close()
			return nil, nil, errNotRegular
		}
		if st.Size() > l.maxSize() {
			f.Close()
			return nil, nil, fmt.Errorf("is %d bytes, over the limit of %d (zone_max_file_size); not read", st.Size(), l.maxSize())
		}
		return f, st, nil
	}
	return nil, nil, errOutside
}

// within tells whether real lies inside dir (both made absolute, dir with
// its own symlinks resolved) and returns dir and real's path relative to it.
func within(dir, real string) (string, string, bool) {
	d, err := filepath.EvalSymlinks(dir)
	if err != nil {
		return "", "", false
	}
	if d, err = filepath.Abs(d); err != nil {
		return "", "", false
	}
	rel, err := filepath.Rel(d, real)
	if err != nil || rel == "." || rel == ".." || strings.HasPrefix(rel, ".."+string(filepath.Separator)) || filepath.IsAbs(rel) {
		return "", "", false
	}
	return d, rel, true
}

// readConfined reads a whole file opened by openConfined, failing cleanly
// when it grew past the cap while being read.
func (l Limits) readConfined(path, dir string) ([]byte, os.FileInfo, error) {
	f, st, err := l.openConfined(path, dir)
	if err != nil {
		return nil, nil, err
	}
	defer f.Close()
	left := l.maxSize()
	r := &capReader{r: f, left: &left}
	data, err := io.ReadAll(r)
	if err == nil && r.over {
		err = r.err()
	}
	return data, st, err
}

// capReader reads at most *left bytes, and notes whether there was more.
// Readers may share left: an import and its $INCLUDEs have one budget, so
// a tree of includes cannot read the cap once per file.
type capReader struct {
	r    io.Reader
	left *int64
	over bool
	max  int64
}

func (c *capReader) Read(p []byte) (int, error) {
	if *c.left <= 0 {
		// Probe for one more byte: a file exactly at the cap is fine.
		var b [1]byte
		n, err := c.r.Read(b[:])
		if n > 0 {
			c.over = true
			return 0, io.EOF
		}
		return 0, err
	}
	if int64(len(p)) > *c.left {
		p = p[:*c.left]
	}
	n, err := c.r.Read(p)
	*c.left -= int64(n)
	c.max += int64(n)
	return n, err
}

func (c *capReader) err() error {
	return fmt.Errorf("grew past the limit of %d bytes (zone_max_file_size) while being read; not loaded", c.max)
}

// tokenReader fails a read once a token outgrows maxToken, saying where
// it began: the parser never holds, nor quotes, such a token.
type tokenReader struct {
	r         io.Reader
	file      string // as shown in errors
	line, col int    // where the next byte is (1-based)
	run       int    // bytes of the token being read
	at        [2]int // where it began
	long      *errLongToken
}

// errLongToken is a token over maxToken, at File:Line:Col.
type errLongToken struct {
	File      string
	Line, Col int
}

func (e *errLongToken) Error() string {
	return fmt.Sprintf("%s:%d:%d: %s", e.File, e.Line, e.Col, e.msg())
}

func (e *errLongToken) msg() string {
	return fmt.Sprintf("a token of over %d bytes without a blank or line break: not a master file (binary or corrupt?)", maxToken)
}

func (t *tokenReader) Read(p []byte) (int, error) {
	if t.long != nil {
		return 0, t.long
	}
	n, err := t.r.Read(p)
	for i, b := range p[:n] {
		switch b {
		case '\n':
			t.line, t.col, t.run = t.line+1, 1, 0
			continue
		case ' ', '\t', '\r', '(', ')', ';', '"':
			t.run = 0
		default:
			if t.run == 0 {
				t.at = [2]int{t.line, t.col}
			}
			if t.run++; t.run > maxToken {
				t.long = &errLongToken{File: t.file, Line: t.at[0], Col: t.at[1]}
				return i, t.long
			}
		}
		t.col++
	}
	return n, err
}

// fileMsg says why path was not read: "open <path>: <reason>" as os.Open
// would, or "<path> <refusal>"; never anything read from the file.
func fileMsg(path string, err error) string {
	var pe *os.PathError
	if errors.As(err, &pe) {
		return fmt.Sprintf("open %s: %v", path, pe.Err)
	}
	return fmt.Sprintf("%s %v", path, err)
}
