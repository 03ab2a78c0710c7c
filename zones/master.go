package zones

import (
	"bytes"
	"crypto/sha256"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"

	"github.com/miekg/dns"
)

// Master files are read by miekg's parser, with three things of our own
// around it:
//
//   - $INCLUDE: the parser opens included files through includeFS, so they
//     are confined, capped and hashed like the import itself. A relative
//     path is taken relative to the including file (BIND takes it relative
//     to its working directory, the "directory" option; NSD to its zones
//     directory; Knot, like us, to the including file).
//   - TTLs: the parser gives generated records without a TTL of their own
//     its built-in default (3600); BIND gives them the TTL a record line
//     would get there ($TTL, or the last TTL given). And the parser forgets
//     a $TTL (or a last TTL) set in an included file when the include
//     ends; BIND keeps it (its TTL state is the load's, only the origin and
//     the current owner are the include's). fixTTLs rewrites such records
//     from a scan of the files.
//   - Positions: the parser tells no record's line. A problem found after
//     the parse (a warning, a zone-wide error) is placed by the same scan,
//     made only when there is something to place.

// includeFS opens the files a master file's $INCLUDE directives name.
// miekg's parser joins a relative name to the including file's directory
// and strips the leading slash (fs.FS names are relative): the top file is
// given to it by its absolute path, so a name is absolute once the slash
// is back.
type includeFS struct {
	limits  Limits
	left    *int64                   // bytes the import and its includes may still read
	display func(name string) string // a file's name in errors
	dir     string                   // the zone file's directory, allowed besides limits.ImportDirs
	sum     io.Writer                // the zone's content hash: included bytes count too
	detect  *directiveDetector

	mu     sync.Mutex // Open runs on the parser's goroutine
	opened []string
	capped []*capReader
	tokens []*tokenReader
	breaks map[string]*breakReader // by the file's name in errors
}

func (f *includeFS) Open(name string) (fs.File, error) {
	path := string(filepath.Separator) + filepath.FromSlash(name)
	file, _, err := f.limits.openConfined(path, f.dir)
	if err != nil {
		return nil, includeErr{fileMsg(path, err)}
	}
	capped := &capReader{r: file, left: f.left}
	f.mu.Lock()
	f.opened = append(f.opened, path)
	tokens := &tokenReader{r: capped, file: f.display(path), line: 1, col: 1}
	f.capped = append(f.capped, capped)
	f.tokens = append(f.tokens, tokens)
	breaks := newBreakReader(io.TeeReader(tokens, io.MultiWriter(f.sum, f.detect)))
	f.breaks[tokens.file] = breaks // a file included twice: the later, which the parser reads last
	f.mu.Unlock()
	return &includedFile{File: file, r: breaks}, nil
}

// includeErr is a refused $INCLUDE, worded without the parser's repetition.
type includeErr struct{ msg string }

func (e includeErr) Error() string { return e.msg }

// includedFile reads an included file through its cap and the hash.
type includedFile struct {
	*os.File
	r io.Reader
}

func (f *includedFile) Read(p []byte) (int, error) { return f.r.Read(p) }

// directiveDetector notes whether the bytes written to it hold a $GENERATE
// directive (in any letter case): only then is there something to fix.
// '$' is rare in zone data, so the search costs next to nothing.
type directiveDetector struct {
	tail     []byte // the end of the previous write, for a word split between writes
	generate bool
}

func (d *directiveDetector) Write(p []byte) (int, error) {
	if d.generate {
		return len(p), nil
	}
	buf := p
	if len(d.tail) > 0 {
		buf = append(d.tail, p[:min(len(p), 16)]...)
		if d.find(buf) {
			return len(p), nil
		}
		buf = p
	}
	d.find(buf)
	d.tail = append(d.tail[:0], p[max(0, len(p)-9):]...)
	return len(p), nil
}

func (d *directiveDetector) find(b []byte) bool {
	for {
		i := bytes.IndexByte(b, '$')
		if i < 0 || len(b)-i < 9 {
			return false
		}
		if strings.EqualFold(string(b[i:i+9]), "$generate") {
			d.generate = true
			return true
		}
		b = b[i+1:]
	}
}

// recPos is where one record of a master file was written.
type recPos struct {
	file      string
	line, col int
	fixTTL    int64 // for a record without a TTL of its own that the parser gives another TTL than BIND: BIND's; else -1
}

// ttlState is a default TTL: set by $TTL, or else by the last TTL a record
// gave.
type ttlState struct {
	ttl         uint32
	byDirective bool
}

// scanMaster lists the records of the master file at path, in the order
// miekg's parser makes them, with where each was written: it splits the
// file into entries as the parser does (comments, quotes, parentheses),
// follows $INCLUDE (confined as includeFS is) and counts $GENERATE ranges.
// display is the name errors use for path.
//
// mk is the parser's default TTL, which an include starts from and leaves
// behind; bind is BIND's, one for the whole load.
func (c *compiler) scanMaster(path, display string, mk ttlState, bind *ttlState, depth int, out []recPos) []recPos {
	if depth > 7 {
		return out
	}
	f, _, err := c.limits.openConfined(path, filepath.Dir(c.spec.file))
	if err != nil {
		return out
	}
	if c.scanLeft == nil {
		left := c.limits.maxSize() // one budget for the files together, as when they were parsed
		c.scanLeft = &left
	}
	data, err := io.ReadAll(&capReader{r: f, left: c.scanLeft})
	f.Close()
	if err != nil {
		return out
	}
	forEntry(data, func(toks []token, blankOwner bool) {
		first := toks[0]
		pos := recPos{file: display, line: first.line, col: first.col, fixTTL: -1}
		if !blankOwner {
			switch strings.ToUpper(first.text) {
			case "$TTL":
				if len(toks) > 1 {
					if t, ok := parseTTL(toks[1].text); ok {
						mk, *bind = ttlState{t, true}, ttlState{t, true}
					}
				}
				return
			case "$ORIGIN":
				return
			case "$INCLUDE":
				if len(toks) > 1 {
					inc := toks[1].text
					if !filepath.IsAbs(inc) {
						inc = filepath.Join(filepath.Dir(path), inc)
					}
					out = c.scanMaster(inc, c.displayFile(inc), mk, bind, depth+1, out)
				}
				return
			case "$GENERATE":
				n := generateCount(toks)
				// $GENERATE range lhs [ttl] [class] type rhs
				explicit := false
				for _, t := range toks[min(3, len(toks)):min(5, len(toks))] {
					if _, ok := parseTTL(t.text); ok {
						explicit = true
					}
				}
				if !explicit {
					pos.fixTTL = int64(bind.ttl)
				}
				for range n {
					out = append(out, pos)
				}
				return
			}
			toks = toks[1:]
		}
		// [ttl] [class] type rdata, ttl and class in either order; without
		// a type there is no record.
		explicit, typed := false, false
		var ttl uint32
		for _, t := range toks[:min(3, len(toks))] {
			if v, ok := parseTTL(t.text); ok && !explicit {
				ttl, explicit = v, true
				continue
			}
			if isClass(t.text) {
				continue
			}
			typed = true
			break
		}
		if !typed {
			return
		}
		if explicit {
			if !mk.byDirective {
				mk = ttlState{ttl, false}
			}
			if !bind.byDirective {
				*bind = ttlState{ttl, false}
			}
		}
		if !explicit && bind.ttl != mk.ttl {
			pos.fixTTL = int64(bind.ttl)
		}
		out = append(out, pos)
	})
	return out
}

// isClass tells whether a field is a class (IN, CH, CLASS3, ...).
func isClass(s string) bool {
	u := strings.ToUpper(s)
	_, ok := dns.StringToClass[u]
	return ok || strings.HasPrefix(u, "CLASS")
}

// generateCount is how many records a $GENERATE entry makes.
func generateCount(toks []token) int {
	if len(toks) < 4 { // $GENERATE range lhs [ttl] [class] type rhs
		return 0
	}
	rng, step := toks[1].text, int64(1)
	if i := strings.IndexByte(rng, '/'); i >= 0 {
		step, _ = strconv.ParseInt(rng[i+1:], 10, 64)
		rng = rng[:i]
	}
	a, b, _ := strings.Cut(rng, "-")
	start, err1 := strconv.ParseInt(a, 10, 64)
	end, err2 := strconv.ParseInt(b, 10, 64)
	if err1 != nil || err2 != nil || step <= 0 || end < start {
		return 0
	}
	return int((end-start)/step + 1)
}

// parseTTL reads a TTL as the parser does: seconds, or a number of units
// (1h30m).
func parseTTL(s string) (uint32, bool) {
	if s == "" || s[0] < '0' || s[0] > '9' {
		return 0, false
	}
	var total, cur uint64
	digits := false
	for _, ch := range []byte(strings.ToLower(s)) {
		mult := uint64(0)
		switch ch {
		case 's':
			mult = 1
		case 'm':
			mult = 60
		case 'h':
			mult = 3600
		case 'd':
			mult = 86400
		case 'w':
			mult = 604800
		default:
			if ch < '0' || ch > '9' {
				return 0, false
			}
			cur = cur*10 + uint64(ch-'0')
			digits = true
			if cur > 1<<32 {
				return 0, false
			}
			continue
		}
		if !digits {
			return 0, false
		}
		total += cur * mult
		cur, digits = 0, false
	}
	total += cur
	return uint32(total), total < 1<<32
}

// token is one field of a master-file entry and where it starts.
type token struct {
	text      string
	line, col int
}

// forEntry calls fn with the fields of each entry (a line, or lines joined
// by parentheses) of a master file that has any; blankOwner is set when
// the entry starts with a blank (it reuses the previous owner).
func forEntry(data []byte, fn func(toks []token, blankOwner bool)) {
	line, col := 1, 1
	var toks []token
	var cur []byte
	inTok, quoted, escaped := false, false, false
	depth := 0
	blank := false
	startLine := true
	flush := func() {
		if inTok {
			toks[len(toks)-1].text = string(cur)
			cur, inTok = cur[:0], false
		}
	}
	end := func() {
		flush()
		if len(toks) > 0 {
			fn(toks, blank)
		}
		toks = toks[:0]
	}
	for i := 0; i < len(data); i++ {
		ch := data[i]
		if startLine {
			blank = ch == ' ' || ch == '\t'
			startLine = false
		}
		switch {
		case escaped:
			cur = append(cur, ch)
			escaped = false
		case ch == '\\':
			if !inTok {
				toks, inTok = append(toks, token{line: line, col: col}), true
			}
			cur = append(cur, ch)
			escaped = true
		case quoted:
			cur = append(cur, ch)
			if ch == '"' {
				quoted = false
			}
		case ch == '"':
			if !inTok {
				toks, inTok = append(toks, token{line: line, col: col}), true
			}
			cur = append(cur, ch)
			quoted = true
		case ch == ';':
			for i+1 < len(data) && data[i+1] != '\n' {
				i++
			}
		case ch == '(':
			flush()
			depth++
		case ch == ')':
			flush()
			depth = max(0, depth-1)
		case ch == '\n':
			if depth == 0 {
				end()
				startLine = true
			} else {
				flush()
			}
		case ch == ' ' || ch == '\t' || ch == '\r':
			flush()
		default:
			if !inTok {
				toks, inTok = append(toks, token{line: line, col: col}), true
			}
			cur = append(cur, ch)
		}
		if ch == '\n' {
			line, col = line+1, 1
		} else {
			col++
		}
	}
	end()
}

// importPositions returns where each imported record was written, in
// parse order, scanning the files once (at the first need).
func (c *compiler) importPositions() []recPos {
	if c.positions == nil && c.importPath != "" {
		c.positions = c.scanMaster(c.importPath, c.importDisplay, ttlState{c.spec.ttl, false}, &ttlState{c.spec.ttl, false}, 0, []recPos{})
	}
	return c.positions
}

// fixTTLs gives the records the parser gave another TTL than BIND gives
// them ($GENERATE's, and those after an include that set a TTL) BIND's
// TTL, and their sets one TTL again. recs are the imported records in
// parse order.
func (c *compiler) fixTTLs(recs []placed) {
	pos := c.importPositions()
	if len(pos) != len(recs) {
		return // the scan and the parse disagree (a parse error): nothing to trust
	}
	type key struct {
		name  string
		rtype uint16
	}
	touched := map[key]bool{}
	for i, p := range pos {
		if p.fixTTL < 0 {
			continue
		}
		h := recs[i].rr.Header()
		h.Ttl = uint32(p.fixTTL)
		touched[key{h.Name, h.Rrtype}] = true
	}
	for k := range touched {
		n := c.z.nodes[k.name]
		if n == nil {
			continue
		}
		for i := range n.sets {
			if s := &n.sets[i]; s.rtype == k.rtype && len(s.all) > 0 {
				ttl := s.all[0].Header().Ttl // RFC 2181 5.2: one TTL per set, the lowest (addRecords)
				for _, rr := range s.all {
					ttl = min(ttl, rr.Header().Ttl)
				}
				for _, rr := range s.all {
					rr.Header().Ttl = ttl
				}
			}
		}
	}
}

// displayFile maps a file name from a parse error back to the name the
// operator gave: the parser knows included files by their absolute path
// without its leading slash.
func (c *compiler) displayFile(name string) string {
	switch {
	case name == "" || name == c.importPath:
		return c.importDisplay
	case !filepath.IsAbs(name):
		name = string(filepath.Separator) + name
	}
	// Beside the import (or below it): shown as the import is shown.
	if rel, err := filepath.Rel(filepath.Dir(c.importPath), name); err == nil && filepath.IsLocal(rel) {
		return filepath.Join(filepath.Dir(c.importDisplay), rel)
	}
	return name
}

// masterRecords are the records of a compiled zone, for ImportFile.
func (z *Zone) masterRecords() []dns.RR {
	var out []dns.RR
	z.Records(func(rr dns.RR) { out = append(out, rr) })
	return out
}

// importPos is where the imported record rr was written. It searches the
// records parsed so far from the last (errors come as records are added,
// batch by batch) and gives up after a few errors: a file of a million
// bad records is reported without the search growing with it.
func (c *compiler) importPos(rr dns.RR) (recPos, bool) {
	if c.parsed == nil || c.importPath == "" || len(c.errs) > 100 {
		return recPos{}, false
	}
	recs := *c.parsed
	for i := len(recs) - 1; i >= 0; i-- {
		if recs[i].rr == rr {
			if pos := c.importPositions(); i < len(pos) {
				return pos[i], true
			}
			return recPos{}, false
		}
	}
	return recPos{}, false
}

var (
	parseErrRE   = regexp.MustCompile(`^(?:(.*): )?dns: (.*) at line: (\d+):(\d+)$`)
	includeErrRE = regexp.MustCompile("^failed to open `([^']*)'(?: as `[^']*')?: (.*): \"[^\"]*\"$")
	typeTokenRE  = regexp.MustCompile(`^(?:not a TTL|unknown RR type): "([^"]*)"$`)
)

// unreadTypes are the IANA types whose text form the master-file parser
// does not read (obsolete ones NSD still does), with their numbers.
var unreadTypes = map[string]uint16{"WKS": 11, "NSAP": 22, "A6": 38, "SINK": 40}

// importFile reads the master file named by import:, relative to the zone
// file, and hands its records to add in batches, in file order. The file
// is parsed on a goroutine of its own while add runs on the caller's.
func (c *compiler) importFile(add func([]placed)) {
	s := c.spec
	path := s.importFile
	if !filepath.IsAbs(path) {
		path = filepath.Join(filepath.Dir(s.file), path)
	}
	path = filepath.Clean(path)
	c.z.Imports = append(c.z.Imports, path)
	c.importDisplay, c.importPath = path, path
	if abs, err := filepath.Abs(path); err == nil {
		c.importPath = abs
	}
	// Confined, non-blocking and capped: an import of /etc/passwd, a FIFO
	// or /dev/zero is refused before a byte of it is read or quoted.
	f, st, err := c.limits.openConfined(path, filepath.Dir(s.file))
	if err != nil {
		c.errAt(s.importNode, "import: %s", fileMsg(path, err))
		return
	}
	defer f.Close()
	if len(c.z.nodes) == 0 {
		// Big files: size the node map once rather than rehash it as it
		// fills (a record line is rarely under 24 bytes), up to a million
		// names: a file of garbage would otherwise get a map of its size
		// (300 MB of NULs: 460 MB) before its first byte is read.
		c.z.nodes = make(map[string]*node, min(st.Size()/24, 1<<20))
	}
	// The bytes the parser reads are hashed as it reads them (the
	// zone's content hash stands on them: hash).
	sum := sha256.New()
	detect := &directiveDetector{}
	left := c.limits.maxSize()
	capped := &capReader{r: f, left: &left}
	tokens := &tokenReader{r: capped, file: path, line: 1, col: 1}
	breaks := newBreakReader(io.TeeReader(tokens, io.MultiWriter(sum, detect)))
	zp := dns.NewZoneParser(breaks, s.origin, c.importPath)
	zp.SetDefaultTTL(s.ttl)
	// $INCLUDE: relative to the including file, confined as the import.
	incs := &includeFS{limits: c.limits, left: &left, display: c.displayFile, dir: filepath.Dir(s.file), sum: sum, detect: detect,
		breaks: map[string]*breakReader{c.importDisplay: breaks}}
	zp.SetIncludeAllowed(true)
	zp.SetIncludeFS(incs)
	const batchSize = 2048
	batches := make(chan []placed, 4)
	maxRecords, records := c.limits.maxRecords(), 0
	go func() {
		defer close(batches)
		batch := make([]placed, 0, batchSize)
		for rr, ok := zp.Next(); ok; rr, ok = zp.Next() {
			if records++; records > maxRecords {
				break // the parser is left as it is: nothing more is read
			}
			if records == bigLoad && c.limits.big != nil {
				c.limits.big()
			}
			batch = append(batch, placed{rr, nil})
			if len(batch) == batchSize {
				batches <- batch
				batch = make([]placed, 0, batchSize)
			}
		}
		if len(batch) > 0 {
			batches <- batch
		}
	}()
	for b := range batches {
		add(b)
	}
	// The channel is closed: the parser is done, and its error final.
	sum.Sum(c.imported[:0])
	c.z.Imports = append(c.z.Imports, incs.opened...)
	if records > maxRecords {
		c.errAt(s.importNode, "import: %s: more than %d records, with its $INCLUDEs and $GENERATEs (zone_max_records); not loaded", path, maxRecords)
		return
	}
	if capped.over {
		c.errAt(s.importNode, "import: %s %v", path, capped.err())
		return
	}
	for i, cr := range incs.capped {
		if cr.over {
			c.errAt(s.importNode, "import: %s: $INCLUDE %s %v", path, incs.opened[i], cr.err())
			return
		}
	}
	// Before the parser's error, which would quote the token cut short.
	for _, t := range append([]*tokenReader{tokens}, incs.tokens...) {
		if t.long != nil {
			c.errs.add(t.long.File, t.long.Line, t.long.Col, "%s", t.long.msg())
			return
		}
	}
	if err := zp.Err(); err != nil {
		if m := parseErrRE.FindStringSubmatch(err.Error()); m != nil {
			line, _ := strconv.Atoi(m[3])
			col, _ := strconv.Atoi(m[4])
			msg := m[2]
			if k := includeErrRE.FindStringSubmatch(msg); k != nil {
				msg = "$INCLUDE " + k[1] + ": " + k[2] // the parser's wording says the path thrice
			} else if k := typeTokenRE.FindStringSubmatch(msg); k != nil && unreadTypes[k[1]] != 0 {
				// A type the parser does not know (taken for a TTL when no TTL or class comes first).
				msg = fmt.Sprintf("record type %s is not read in its text form; write it as TYPE%d \\# <length> <hex> (RFC 3597)", k[1], unreadTypes[k[1]])
			}
			file := c.displayFile(m[1])
			if b := incs.breaks[file]; b != nil {
				line = b.fileLine(line)
			}
			c.errs.add(file, line, col, "%s", msg)
		} else {
			c.errAt(s.importNode, "import %s: %v", s.importFile, err)
		}
		return
	}
	// Only a whole import is scanned again: the scan makes a position for
	// each record a $GENERATE makes, and a refused one may make millions.
	c.needTTLFix = detect.generate || len(incs.opened) > 0
}
