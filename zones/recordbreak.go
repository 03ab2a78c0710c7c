package zones

import (
	"io"
	"sort"
)

// miekg/dns (v1.1.73) parses an IPSECKEY record's key through the end of
// its line and then reads one token more, which must end the record: the
// first token of the next line ("garbage after rdata"). So any IPSECKEY
// record but a file's last failed to load, where NSD and Knot load it. An
// empty line after the record gives that read the line end it wants, so
// breakReader adds one after each record that holds an IPSECKEY token,
// and numbers lines as the file does when an error names one.
//
// It follows the lexer's rules far enough to know where a record ends: a
// line break outside quotes and parentheses (escaped or not, as the lexer
// has it); a comment from ';' to the line's end. An empty line between records changes nothing else
// (the owner of a line that starts blank is still the previous record's).
type breakReader struct {
	r     io.Reader
	buf   []byte
	out   []byte // bytes read and not yet handed on
	quote bool
	esc   bool
	commt bool
	brace int
	tok   [len("IPSECKEY") + 1]byte // the token being read, upper-cased, while short
	tokN  int
	ipsec bool  // the record holds an IPSECKEY token
	line  int   // lines handed on, counting added ones
	added []int // the added empty lines, by their line numbers as handed on
}

func newBreakReader(r io.Reader) *breakReader { return &breakReader{r: r, line: 1} }

func (b *breakReader) Read(p []byte) (int, error) {
	if len(b.out) == 0 {
		if cap(b.buf) < len(p) {
			b.buf = make([]byte, len(p))
		}
		n, err := b.r.Read(b.buf[:len(p)])
		b.out = b.out[:0]
		b.scan(b.buf[:n])
		if len(b.out) == 0 {
			return 0, err
		}
	}
	n := copy(p, b.out)
	b.out = b.out[n:]
	return n, nil
}

// scan appends in to out, with an empty line after each IPSECKEY record.
func (b *breakReader) scan(in []byte) {
	for _, c := range in {
		b.out = append(b.out, c)
		switch {
		case b.esc && c == '\n' && !b.quote:
			// The lexer does not escape a line break: it ends the
			// record, after a backslash as anywhere.
			b.esc = false
			b.tokEnd()
			b.lineEnd()
			continue
		case b.esc:
			b.esc = false
			if c == '\n' {
				b.line++ // in quotes: part of the string
			}
			b.tokByte(c)
			continue
		case b.commt:
			if c == '\n' {
				b.commt = false
				b.lineEnd()
			}
			continue
		case c == '\\':
			b.esc = true
			b.tokByte(c)
			continue
		case c == '"':
			b.tokEnd()
			b.quote = !b.quote
			continue
		case b.quote:
			if c == '\n' {
				b.line++
			}
			continue
		}
		switch c {
		case ';':
			b.tokEnd()
			b.commt = true
		case '(':
			b.tokEnd()
			b.brace++
		case ')':
			b.tokEnd()
			if b.brace > 0 {
				b.brace--
			}
		case ' ', '\t', '\r':
			b.tokEnd()
		case '\n':
			b.tokEnd()
			b.lineEnd()
		default:
			b.tokByte(c)
		}
	}
}

func (b *breakReader) tokByte(c byte) {
	if b.tokN < len(b.tok) {
		if 'a' <= c && c <= 'z' {
			c -= 'a' - 'A'
		}
		b.tok[b.tokN] = c
	}
	b.tokN++
}

func (b *breakReader) tokEnd() {
	if b.tokN == len("IPSECKEY") && string(b.tok[:b.tokN]) == "IPSECKEY" {
		b.ipsec = true
	}
	b.tokN = 0
}

// lineEnd is a line break outside quotes; it ends the record outside
// parentheses.
func (b *breakReader) lineEnd() {
	b.line++
	if b.brace > 0 || !b.ipsec {
		return
	}
	b.ipsec = false
	b.out = append(b.out, '\n')
	b.added = append(b.added, b.line)
	b.line++
}

// fileLine is the line of the file that the parser numbered line.
func (b *breakReader) fileLine(line int) int {
	return line - sort.SearchInts(b.added, line)
}
