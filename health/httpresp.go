package health

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"strconv"
)

// response is what a probe needs of an HTTP/1.x response.
type response struct {
	status int
	body   []byte // its first maxBody bytes, when asked for
	// reusable: the response was read to its end and the server did not
	// ask to close, so the connection may carry the next request.
	reusable bool
}

// maxHeader bounds the status line and headers of a response.
const maxHeader = 16 << 10

var errHeaderTooLong = errors.New("response header too long")

// readResponse reads one response to a GET from br: the status, at most
// limit bytes of the body (kept if wantBody), and whether the connection
// may be reused: only when the response was read to its end. It reads no
// further than that end.
//
// It does what net/http's ReadResponse does for a health check, with no
// allocation but the body kept: a probe every few hundred microseconds
// made that parser the largest cost of checking in user space.
// FuzzReadResponse holds the two to the same results.
func readResponse(br *bufio.Reader, wantBody bool, limit int64) (response, error) {
	for {
		r, err := readHead(br, wantBody, limit)
		if err != nil {
			return r, err
		}
		if r.status >= 100 && r.status < 200 && r.status != 101 {
			continue // interim (100 Continue, 103 Early Hints): the real one follows
		}
		return r, nil
	}
}

// readHead reads a status line and headers, then the body they announce.
func readHead(br *bufio.Reader, wantBody bool, limit int64) (response, error) {
	var r response
	n := 0
	line, err := readLine(br, &n)
	if err != nil {
		return r, err
	}
	proto, rest, ok := bytes.Cut(line, []byte(" "))
	rest = bytes.TrimLeft(rest, " ") // "HTTP/1.0  200": net/http skips the spaces too
	if !ok || len(rest) < 3 || !bytes.HasPrefix(proto, []byte("HTTP/1.")) || len(proto) != len("HTTP/1.x") ||
		proto[7] < '0' || proto[7] > '9' || (len(rest) > 3 && rest[3] != ' ') {
		return r, fmt.Errorf("malformed status line %q", line)
	}
	for _, c := range rest[:3] {
		if c < '0' || c > '9' {
			return r, fmt.Errorf("malformed status code %q", rest[:3])
		}
		r.status = r.status*10 + int(c-'0')
	}
	if r.status < 100 {
		return r, fmt.Errorf("malformed status code %q", rest[:3])
	}
	http10 := proto[7] == '0' // the line is gone after the next read
	closeConn := http10       // HTTP/1.0: closed unless it says keep-alive
	length, chunked := int64(-1), false
	var scratch [256]byte
	for {
		line, err := readLine(br, &n)
		if err != nil {
			return r, err
		}
		if len(line) == 0 {
			break
		}
		// A copy: the Peek below may move the buffer the line is in.
		line = append(scratch[:0], line...)
		for next, _ := br.Peek(1); len(next) == 1 && (next[0] == ' ' || next[0] == '\t'); next, _ = br.Peek(1) {
			// Obsolete line folding: the value goes on in the next line.
			more, err := readLine(br, &n)
			if err != nil {
				return r, err
			}
			line = append(append(line, ' '), bytes.TrimSpace(more)...)
		}
		name, value, ok := bytes.Cut(line, []byte(":"))
		if !ok {
			return r, fmt.Errorf("malformed header line %q", line)
		}
		// The name is not trimmed: whitespace before the colon makes
		// another name (RFC 9112 5.1 forbids it), as net/http reads it;
		// "Content-Length :5" is no length, and the body runs to the close.
		value = bytes.TrimSpace(value)
		switch {
		case bytes.EqualFold(name, []byte("Content-Length")):
			v, err := strconv.ParseInt(string(value), 10, 64)
			if err != nil || v < 0 || (length >= 0 && v != length) {
				return r, fmt.Errorf("bad Content-Length %q", value)
			}
			length = v
		case bytes.EqualFold(name, []byte("Transfer-Encoding")):
			if !bytes.EqualFold(value, []byte("chunked")) {
				return r, fmt.Errorf("unsupported transfer encoding %q", value)
			}
			chunked = true
		case bytes.EqualFold(name, []byte("Connection")):
			for _, tok := range bytes.Split(value, []byte(",")) {
				tok = bytes.TrimSpace(tok)
				if bytes.EqualFold(tok, []byte("close")) {
					closeConn = true
				} else if bytes.EqualFold(tok, []byte("keep-alive")) && http10 {
					closeConn = false
				}
			}
		}
	}
	if r.status < 200 || r.status == 204 || r.status == 304 {
		r.reusable = !closeConn
		return r, nil // no body
	}
	body := &bodySink{keep: wantBody, left: limit}
	switch {
	case chunked:
		err = readChunked(br, body)
	case length >= 0:
		err = body.copyN(br, length)
	default: // delimited by the connection's end
		_, err = io.Copy(body, io.LimitReader(br, body.left))
		closeConn = true
	}
	r.body = body.buf
	if errors.Is(err, errBodyLimit) {
		err, closeConn = nil, true // what was read is the answer; the rest is not read
	}
	r.reusable = !closeConn && err == nil
	return r, err
}

// readLine reads a line without its CRLF (or LF), counting into *n the
// bytes of the head read so far. The line is valid until the next read.
func readLine(br *bufio.Reader, n *int) ([]byte, error) {
	line, err := br.ReadSlice('\n')
	*n += len(line)
	if errors.Is(err, bufio.ErrBufferFull) && *n <= maxHeader {
		// Longer than the buffer (a big cookie, say): gathered in a copy.
		line = bytes.Clone(line)
		for errors.Is(err, bufio.ErrBufferFull) && *n <= maxHeader {
			var more []byte
			more, err = br.ReadSlice('\n')
			*n += len(more)
			line = append(line, more...)
		}
	}
	if *n > maxHeader {
		return nil, errHeaderTooLong
	}
	if err != nil {
		if err == io.EOF && *n > 0 {
			err = io.ErrUnexpectedEOF
		}
		return nil, err
	}
	line = line[:len(line)-1]
	if len(line) > 0 && line[len(line)-1] == '\r' {
		line = line[:len(line)-1]
	}
	return line, nil
}

// readChunked reads a chunked body and its trailer.
func readChunked(br *bufio.Reader, body *bodySink) error {
	n := 0
	for {
		line, err := readLine(br, &n)
		if err != nil {
			return err
		}
		if i := bytes.IndexByte(line, ';'); i >= 0 {
			line = line[:i] // chunk extensions: ignored
		}
		size, err := strconv.ParseUint(string(bytes.TrimSpace(line)), 16, 62)
		if err != nil {
			return fmt.Errorf("bad chunk size %q", line)
		}
		if size == 0 {
			for { // trailer
				line, err := readLine(br, &n)
				if err != nil {
					return err
				}
				if len(line) == 0 {
					return nil
				}
			}
		}
		if err := body.copyN(br, int64(size)); err != nil {
			return err
		}
		if line, err := readLine(br, &n); err != nil || len(line) != 0 {
			if err == nil {
				err = errors.New("chunk not followed by CRLF")
			}
			return err
		}
		n = 0 // the limit is on each chunk's lines, not on the body
	}
}

// errBodyLimit: the body is longer than a probe reads.
var errBodyLimit = errors.New("body longer than read")

// bodySink takes the body's bytes, up to left of them, and keeps the
// first maxBody if keep.
type bodySink struct {
	keep bool
	buf  []byte
	left int64
}

func (b *bodySink) Write(p []byte) (int, error) {
	if b.keep && len(b.buf) < maxBody {
		b.buf = append(b.buf, p[:min(len(p), maxBody-len(b.buf))]...)
	}
	b.left -= int64(len(p))
	return len(p), nil
}

// copyN reads n bytes of body from br, or as many as are left to read
// (then errBodyLimit). It takes them from br's buffer, where io.CopyN
// would allocate a reader and a copy buffer per body.
func (b *bodySink) copyN(br *bufio.Reader, n int64) error {
	want := min(n, b.left)
	cut := want < n
	for want > 0 {
		if br.Buffered() == 0 {
			if _, err := br.Peek(1); err != nil {
				if err == io.EOF {
					err = io.ErrUnexpectedEOF
				}
				return err
			}
		}
		chunk, _ := br.Peek(int(min(want, int64(br.Buffered()))))
		b.Write(chunk)
		br.Discard(len(chunk))
		want -= int64(len(chunk))
	}
	if cut {
		return errBodyLimit
	}
	return nil
}
