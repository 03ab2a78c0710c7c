package zones

import (
	"path/filepath"
	"strings"
	"time"

	"github.com/miekg/dns"
	"gopkg.in/yaml.v3"
)

// OriginFromFile returns the zone name a file name stands for:
// "example.com.yaml" serves "example.com.".
func OriginFromFile(path string) (string, bool) {
	base := filepath.Base(path)
	ext := filepath.Ext(base)
	if ext != ".yaml" && ext != ".yml" {
		return "", false
	}
	name := strings.TrimSuffix(base, ext)
	if name == "" || strings.HasPrefix(name, ".") {
		return "", false
	}
	o, err := absName(name+".", ".")
	return o, err == nil
}

// LoadFile reads, validates and compiles one zone file. prev is the version
// being served (nil if none); an automatic serial moves forward from it.
// The error, if any, lists every problem found, each with file:line:col.
// It reads within the zero Limits: see Limits.Load.
func LoadFile(path string, prev *Zone) (*Zone, error) { return Limits{}.Load(path, prev) }

// Load is LoadFile within l: the zone file and its import must be regular
// files (symlinks to them are followed) in the zone file's directory or
// l.ImportDirs, each at most l.MaxFileSize bytes. A file refused is not
// read, so no error quotes it.
func (l Limits) Load(path string, prev *Zone) (*Zone, error) {
	origin, ok := OriginFromFile(path)
	if !ok {
		return nil, &PosError{File: path, Msg: "zone files are named <zone>.yaml"}
	}
	data, st, err := l.readConfined(path, filepath.Dir(path))
	if err != nil {
		// The position names the file: the refusal need not again.
		return nil, &PosError{File: path, Msg: strings.TrimPrefix(fileMsg(path, err), path+" ")}
	}
	return l.compile(path, data, origin, st.ModTime(), prev)
}

// Compile builds a zone from YAML bytes. file names the source in errors and
// anchors relative import paths; mtime seeds an automatic serial. An import
// is read within the zero Limits.
func Compile(file string, data []byte, origin string, mtime time.Time, prev *Zone) (*Zone, error) {
	return Limits{}.compile(file, data, origin, mtime, prev)
}

func (l Limits) compile(file string, data []byte, origin string, mtime time.Time, prev *Zone) (*Zone, error) {
	defer compiling()()
	s, uses, errs := decodeSpec(file, data, origin)
	if s == nil {
		return nil, errs.err()
	}
	c := &compiler{spec: s, errs: errs, limits: l}
	z := c.build(uses, mtime, prev)
	if err := c.errs.err(); err != nil {
		return nil, err
	}
	z.Warnings = c.warns.sorted()
	return z, nil
}

// compiler turns one decoded zone file into a Zone. Its stages live in a
// file each: files.go and master.go read (the YAML's bytes, an imported
// master file), records.go parses and places records, nodes.go links
// names (CNAME targets, additional data), service.go compiles services and
// their probes, validate.go and warnings.go check, and hash.go digests the
// content and picks the serial; build, below, runs them in order.
type compiler struct {
	spec   *spec
	errs   errList
	z      *Zone
	limits Limits

	all []*node // every node, in the order made: shares walks them without the map

	// What link must visit, noted as nodes and sets are made, so that it
	// does not walk a million names for the few that need it.
	wilds    []*node  // nodes named "*.<parent>"
	targets  []setRef // NS, MX and SRV sets
	dnames   int      // DNAME sets: names below them are checked when there are any
	imported [32]byte // sha256 of the import file's bytes

	warns         errList   // problems that do not stop the load (warnings.go)
	importPath    string    // the import's absolute path, as the master-file parser knows it
	importDisplay string    // the import's path as errors show it
	needTTLFix    bool      // the import holds a $GENERATE or an $INCLUDE: master.go, fixTTLs
	scanLeft      *int64    // bytes scanMaster may still read, over all the files it scans
	signerOwned   []dns.RR  // records of a signed zone its signer makes itself, dropped: signerOwns
	presigned     bool      // a record only a signed zone has was read: the zone is pre-signed (presigned.go)
	nsec3         []dns.RR  // a pre-signed zone's NSEC3 records and their RRSIGs, kept out of the name tree
	bigTTLs       []bigTTL  // records given a TTL above maxTTL, served with 0
	positions     []recPos  // where each imported record was written: importPositions
	rep           *reporter // places validate's errors and warnings (warnings.go)
	parsed        *[]placed // build's records, imported ones first in parse order: importPos
}

// setRef names the set of type rtype at n.
type setRef struct {
	n     *node
	rtype uint16
}

// errAt records an error at n; whole-zone errors (n == nil) point at the
// top of the file so every error has a line and column.
func (c *compiler) errAt(n *yaml.Node, format string, args ...any) {
	if n == nil {
		c.errs.add(c.spec.file, 1, 1, format, args...)
		return
	}
	c.errs.add(c.spec.file, n.Line, n.Column, format, args...)
}

// placed is a record with the YAML node it came from (nil for imported ones).
type placed struct {
	rr   dns.RR
	node *yaml.Node
}

func (c *compiler) build(uses []serviceUse, mtime time.Time, prev *Zone) *Zone {
	s := c.spec
	z := &Zone{
		Origin: s.origin, File: s.file, nodes: map[string]*node{},
		Sites: map[string]*Site{}, Services: map[string]*Service{}, Checks: map[string]*Check{},
	}
	z.originWire = string(appendWire(nil, z.Origin))
	z.originHash = WireHash([]byte(z.originWire))
	c.z = z
	var recs []placed
	c.parsed = &recs
	if s.importFile != "" {
		// Imported records go into nodes as they are parsed: on a big file
		// the parse and the node building, each a third of the load, run on
		// two cores side by side.
		c.importFile(func(batch []placed) {
			recs = append(recs, batch...)
			c.addRecords(batch)
		})
	}
	imported := len(recs)
	if c.needTTLFix {
		c.fixTTLs(recs)
	}
	for _, r := range s.recs {
		if rr := c.parseRecord(r); rr != nil {
			recs = append(recs, placed{rr, r.node})
		}
	}
	soa := s.soa
	for _, p := range recs {
		if x, ok := p.rr.(*dns.SOA); ok {
			if soa != nil {
				c.errAt(s.soaNode, "SOA given twice: here and in %s", s.importFile)
				continue
			}
			if x.Hdr.Name != s.origin {
				c.errAt(s.importNode, "%s: SOA for %s, not at the zone apex %s", s.importFile, x.Hdr.Name, s.origin)
				continue
			}
			soa, s.serialSet = x, true
		}
	}
	if soa == nil {
		c.errAt(nil, "zone %s: missing SOA (add a soa: key)", s.origin)
		return nil
	}
	z.soa, z.Transfer, z.DNSSEC = soa, s.transfer, s.dnssec
	if s.soa != nil {
		recs = append(recs, placed{soa, s.soaNode})
	}
	c.addRecords(recs[imported:])
	c.finishNodes()
	c.services(uses)
	if c.presigned {
		c.presign()
	}
	c.indexWire()
	c.validate(recs)
	c.checkWire(recs)
	if len(c.errs) > 0 {
		return nil
	}
	z.Hash = c.hash(recs[imported:], uses)
	c.serial(mtime, prev)
	c.checkSerial(recs, prev)
	neg := dns.Copy(z.soa).(*dns.SOA)
	neg.Hdr.Ttl = min(neg.Hdr.Ttl, neg.Minttl)
	z.negSOA = []dns.RR{neg}
	c.link()
	return z
}
