package zones

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"net/netip"
	"path/filepath"
	"regexp"
	"runtime"
	"runtime/debug"
	"slices"
	"strconv"
	"strings"
	"sync"
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
	defer loadingGC()()
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
	z.soa, z.Transfer = soa, s.transfer
	if s.soa != nil {
		recs = append(recs, placed{soa, s.soaNode})
	}
	c.addRecords(recs[imported:])
	c.finishNodes()
	c.services(uses)
	c.validate(recs)
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

// nameTarget returns the domain name in the data of a record that names
// another host or name (NS, MX, SRV, CNAME, DNAME, PTR); "" for others.
func nameTarget(rr dns.RR) string {
	switch x := rr.(type) {
	case *dns.NS:
		return x.Ns
	case *dns.MX:
		return x.Mx
	case *dns.SRV:
		return x.Target
	case *dns.CNAME:
		return x.Target
	case *dns.DNAME:
		return x.Target
	case *dns.PTR:
		return x.Ptr
	}
	return ""
}

// maxExtra caps the additional records kept for one set: more than any
// response carries (they go first when a response is too big).
const maxExtra = 256

// link points each name at its wildcard child and gathers, for NS, MX and
// SRV sets, the in-zone addresses of their targets, so lookups do not
// search for them.
func (c *compiler) link() {
	z := c.z
	for _, n := range c.wilds {
		parent := n.name[2:]
		if parent == "" {
			parent = "."
		}
		z.nodes[parent].wild = n
	}
	for _, ref := range c.targets {
		n := ref.n
		if i := slices.IndexFunc(n.sets, func(s rrset) bool { return s.rtype == ref.rtype }); i >= 0 {
			s := &n.sets[i]
			var seen map[string]bool // made at the first target: most sets have none
			for _, rr := range s.records() {
				target := nameTarget(rr)
				if target == "" {
					continue
				}
				// Each target once: many records naming one host with many
				// addresses must not multiply into millions of extras.
				target = CanonicalName(target)
				if seen[target] || len(s.extra()) >= maxExtra {
					continue
				}
				if seen == nil {
					seen = map[string]bool{}
				}
				seen[target] = true
				if t := z.nodes[target]; t != nil {
					s.all = append(s.all, t.get(dns.TypeA)...)
					s.all = append(s.all, t.get(dns.TypeAAAA)...)
				}
			}
			if end := int(s.n) + maxExtra; len(s.all) > end {
				s.all = s.all[:end:end]
			}
		}
	}
}

var (
	parseErrRE   = regexp.MustCompile(`^(?:(.*): )?dns: (.*) at line: (\d+):(\d+)$`)
	includeErrRE = regexp.MustCompile("^failed to open `([^']*)'(?: as `[^']*')?: (.*): \"[^\"]*\"$")
)

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
		// fills (a record line is rarely under 24 bytes).
		c.z.nodes = make(map[string]*node, st.Size()/24)
	}
	// The bytes the parser reads are hashed as it reads them (the
	// zone's content hash stands on them: hash).
	sum := sha256.New()
	detect := &directiveDetector{}
	capped := &capReader{r: f, left: c.limits.maxSize()}
	zp := dns.NewZoneParser(io.TeeReader(capped, io.MultiWriter(sum, detect)), s.origin, c.importPath)
	zp.SetDefaultTTL(s.ttl)
	// $INCLUDE: relative to the including file, confined as the import.
	incs := &includeFS{limits: c.limits, dir: filepath.Dir(s.file), sum: sum, detect: detect}
	zp.SetIncludeAllowed(true)
	zp.SetIncludeFS(incs)
	const batchSize = 2048
	batches := make(chan []placed, 4)
	go func() {
		defer close(batches)
		batch := make([]placed, 0, batchSize)
		for rr, ok := zp.Next(); ok; rr, ok = zp.Next() {
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
	c.needTTLFix = detect.generate || len(incs.opened) > 0
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
	if err := zp.Err(); err != nil {
		if m := parseErrRE.FindStringSubmatch(err.Error()); m != nil {
			line, _ := strconv.Atoi(m[3])
			col, _ := strconv.Atoi(m[4])
			msg := m[2]
			if k := includeErrRE.FindStringSubmatch(msg); k != nil {
				msg = "$INCLUDE " + k[1] + ": " + k[2] // the parser's wording says the path thrice
			}
			c.errs.add(c.displayFile(m[1]), line, col, "%s", msg)
		} else {
			c.errAt(s.importNode, "import %s: %v", s.importFile, err)
		}
	}
}

// parseRecord turns one YAML value into a record. Addresses, the bulk of big
// zones, skip the master-file parser.
func (c *compiler) parseRecord(r recSpec) dns.RR {
	hdr := dns.RR_Header{Name: r.owner, Class: dns.ClassINET, Ttl: r.ttl}
	switch r.rtype {
	case "A":
		ip := net.ParseIP(r.value).To4()
		if ip == nil || strings.Contains(r.value, ":") {
			c.errAt(r.node, "name %q A: %q is not an IPv4 address", c.rel(r.owner), r.value)
			return nil
		}
		hdr.Rrtype = dns.TypeA
		return &dns.A{Hdr: hdr, A: ip}
	case "AAAA":
		ip := net.ParseIP(r.value)
		if ip == nil || !strings.Contains(r.value, ":") {
			c.errAt(r.node, "name %q AAAA: %q is not an IPv6 address", c.rel(r.owner), r.value)
			return nil
		}
		hdr.Rrtype = dns.TypeAAAA
		return &dns.AAAA{Hdr: hdr, AAAA: ip}
	}
	value := r.value
	if (r.rtype == "TXT" || r.rtype == "SPF") && !strings.HasPrefix(value, `"`) {
		value = quoteTXT(value)
	}
	line := fmt.Sprintf("%s %d IN %s %s\n", r.owner, r.ttl, r.rtype, value)
	zp := dns.NewZoneParser(strings.NewReader(line), c.spec.origin, "")
	rr, ok := zp.Next()
	if err := zp.Err(); err != nil || !ok {
		msg := "empty value"
		if err != nil {
			msg = err.Error()
			if m := parseErrRE.FindStringSubmatch(msg); m != nil {
				msg = m[2]
			}
		}
		c.errAt(r.node, "name %q %s: bad value %q: %s", c.rel(r.owner), r.rtype, r.value, msg)
		return nil
	}
	if _, extra := zp.Next(); extra {
		c.errAt(r.node, "name %q %s: value %q holds more than one record", c.rel(r.owner), r.rtype, r.value)
		return nil
	}
	return rr
}

// quoteTXT turns plain text into TXT presentation format: one string, split
// into the 255-byte pieces the wire format allows.
func quoteTXT(s string) string {
	var b strings.Builder
	for len(s) > 0 || b.Len() == 0 {
		n := min(len(s), 255)
		if b.Len() > 0 {
			b.WriteByte(' ')
		}
		b.WriteByte('"')
		for _, ch := range []byte(s[:n]) {
			if ch == '"' || ch == '\\' {
				b.WriteByte('\\')
			}
			if ch < ' ' || ch > '~' {
				fmt.Fprintf(&b, "\\%03d", ch)
				continue
			}
			b.WriteByte(ch)
		}
		b.WriteByte('"')
		s = s[n:]
	}
	return b.String()
}

// rel shows a name relative to the origin, as the operator wrote it.
func (c *compiler) rel(name string) string { return relName(name, c.spec.origin) }

// relName writes name relative to origin: "@" for the origin itself, the
// absolute name if it is outside.
func relName(name, origin string) string {
	if name == origin {
		return "@"
	}
	if k := len(name) - len(origin); k > 1 && name[k-1] == '.' && name[k:] == origin {
		return name[:k-1]
	}
	return name
}

// addRecords puts records into the zone's nodes, in the order given.
func (c *compiler) addRecords(recs []placed) {
	z := c.z
	for _, p := range recs {
		rr := p.rr
		h := rr.Header()
		h.Name = CanonicalName(h.Name) // one spelling per name: see CanonicalName
		if nameWireLen(h.Name) > 255 {
			c.placeErr(p, "name %s is longer than 255 octets", h.Name)
			continue
		}
		if !dns.IsSubDomain(z.Origin, h.Name) {
			c.placeErr(p, "name %s is outside the zone %s", h.Name, z.Origin)
			continue
		}
		if h.Class != dns.ClassINET {
			c.placeErr(p, "name %q: class %s is not served (only IN)", c.rel(h.Name), dns.Class(h.Class))
			continue
		}
		n := c.node(h.Name)
		i := slices.IndexFunc(n.sets, func(s rrset) bool { return s.rtype == h.Rrtype })
		if i < 0 {
			n.sets = append(n.sets, rrset{rtype: h.Rrtype})
			i = len(n.sets) - 1
			switch h.Rrtype {
			case dns.TypeNS, dns.TypeMX, dns.TypeSRV:
				c.targets = append(c.targets, setRef{n, h.Rrtype})
			case dns.TypeDNAME:
				c.dnames++
			}
		}
		set := &n.sets[i]
		if len(set.all) > 0 {
			h.Ttl = set.all[0].Header().Ttl // RFC 2181 5.2: one TTL per set
		}
		set.all = append(set.all, rr) // records only until finishNodes counts them
	}
}

// finishNodes dedupes and orders each node's sets once all are added.
func (c *compiler) finishNodes() {
	z := c.z
	counts := c.shares(func(nodes []*node) (count [2]uint64) {
		for _, n := range nodes {
			for i := range n.sets {
				s := &n.sets[i]
				s.all = dedupe(s.all)
				s.n = uint32(len(s.all))
				count[0] += uint64(s.n)
			}
			slices.SortFunc(n.sets, func(a, b rrset) int { return int(a.rtype) - int(b.rtype) })
			n.cut = n.name != z.Origin && n.get(dns.TypeNS) != nil
			n.dname = n.get(dns.TypeDNAME) != nil
		}
		return count
	})
	z.count = int(counts[0])
}

// dedupe keeps each record of a set once (RFC 2181 5), in the order given.
// Small sets compare pairwise; large ones (a $GENERATE can make 65,535
// records at one name) group by a normalized text first, so a zone cannot
// make a reload quadratic.
func dedupe(rrs []dns.RR) []dns.RR {
	out := rrs[:0:0]
	if len(rrs) <= 16 {
		for _, rr := range rrs {
			if !slices.ContainsFunc(out, func(o dns.RR) bool { return dns.IsDuplicate(o, rr) }) {
				out = append(out, rr)
			}
		}
		return out
	}
	// Duplicates compare names without case, so they share this key;
	// records that share it are told apart by IsDuplicate itself.
	groups := make(map[string][]dns.RR, len(rrs))
	for _, rr := range rrs {
		key := strings.ToLower(rdata(rr))
		if slices.ContainsFunc(groups[key], func(o dns.RR) bool { return dns.IsDuplicate(o, rr) }) {
			continue
		}
		groups[key] = append(groups[key], rr)
		out = append(out, rr)
	}
	return out
}

func (c *compiler) placeErr(p placed, format string, args ...any) {
	if p.node != nil {
		c.errAt(p.node, format, args...)
		return
	}
	if pos, ok := c.importPos(p.rr); ok {
		c.errs.add(pos.file, pos.line, pos.col, format, args...)
		return
	}
	c.errAt(c.spec.importNode, "import %s: "+format, append([]any{c.spec.importFile}, args...)...)
}

// node returns the node for name, creating it and its empty ancestors.
func (c *compiler) node(name string) *node {
	z := c.z
	n, ok := z.nodes[name]
	if ok {
		return n
	}
	n = c.newNode(name)
	for p := name; p != z.Origin; {
		off, end := dns.NextLabel(p, 0)
		if end {
			break
		}
		p = p[off:]
		if _, ok := z.nodes[p]; ok {
			break
		}
		c.newNode(p)
	}
	return n
}

func (c *compiler) newNode(name string) *node {
	n := &node{name: name}
	c.z.nodes[name] = n
	c.all = append(c.all, n)
	if strings.HasPrefix(name, "*.") {
		c.wilds = append(c.wilds, n)
	}
	return n
}

func (c *compiler) services(uses []serviceUse) {
	s, z := c.spec, c.z
	for _, site := range s.sites {
		z.Sites[site.Name] = site
		z.SiteList = append(z.SiteList, site)
	}
	for _, ch := range s.checks {
		z.Checks[ch.Name] = ch
	}
	for _, svc := range s.services {
		for _, r := range svc.siteRefs {
			if z.Sites[r.name] == nil {
				c.errAt(r.node, "service %q: unknown site %q", svc.Name, r.name)
			}
		}
		for _, r := range svc.checkRef {
			if z.Checks[r.name] == nil {
				c.errAt(r.node, "service %q: unknown check %q", svc.Name, r.name)
			}
		}
		if len(svc.SiteOrder) == 0 {
			for _, site := range z.SiteList {
				svc.SiteOrder = append(svc.SiteOrder, site.Name)
			}
		}
		// The published copy gets probes and sites; the spec stays as
		// decoded, so the content hash prints no pointers.
		sv := svc.Service
		sv.Endpoints = slices.Clone(svc.Endpoints)
		for i := range sv.Endpoints {
			ep := &sv.Endpoints[i]
			c.probe(ep, svc)
			if ep.ID = ep.CNAME; ep.Address.IsValid() {
				ep.ID = ep.Address.String()
			}
		}
		for _, site := range z.SiteList {
			if slices.ContainsFunc(sv.Endpoints, func(ep Endpoint) bool { return ep.Site == site.Name }) {
				sv.Sites = append(sv.Sites, site)
			}
		}
		z.Services[svc.Name] = &sv
	}
	for _, u := range uses {
		svc := z.Services[u.name]
		if svc == nil {
			c.errAt(u.node, "name %q: unknown service %q", c.rel(u.owner), u.name)
			continue
		}
		c.node(u.owner).service = svc
	}
}

// probe sets the endpoint's probe from its check and target.
func (c *compiler) probe(ep *Endpoint, svc *serviceSpec) {
	if ep.Check == "" {
		return
	}
	ch := c.z.Checks[ep.Check]
	if ch == nil {
		return // reported as an unknown check
	}
	p := &Probe{Check: ch}
	if ch.Type != "static" {
		host, port := ep.Address, ch.Port
		if ep.Target != "" {
			if ap, err := netip.ParseAddrPort(ep.Target); err == nil {
				host, port = ap.Addr().Unmap(), int(ap.Port())
			} else if a, err := netip.ParseAddr(ep.Target); err == nil {
				host = a.Unmap()
			}
		}
		if !host.IsValid() {
			c.errAt(svc.node, "service %q: endpoint %s at site %s has check %q but nothing to probe: give it a target",
				svc.Name, ep.CNAME, ep.Site, ep.Check)
			return
		}
		if port == 0 {
			c.errAt(svc.node, "service %q: check %q needs a port (in the check or the endpoint's target)", svc.Name, ep.Check)
			return
		}
		p.Target = netip.AddrPortFrom(host, uint16(port)).String()
	}
	p.Key = fmt.Sprintf("%s|%s|%d|%s|%s|%v|%q|%v|%v|%d|%d|%v|%v|%s|%d|%v", p.Target, ch.Type, ch.Port, ch.Path, ch.Host,
		ch.ExpectStatus, ch.ExpectBody, ch.Interval, ch.Timeout, ch.Rise, ch.Fall, ch.Insecure, ch.Up, ch.Query, ch.QType, ch.KeepAlive)
	ep.Probe = p
}

// validate checks what only the whole zone can tell.
func (c *compiler) validate(recs []placed) {
	z := c.z
	// at reports a problem with the records of name, warn one that does
	// not stop the load (warnings.go: reporter).
	at, warn := c.reporters(recs)
	apex := z.nodes[z.Origin]
	if apex == nil || apex.get(dns.TypeNS) == nil {
		c.errAt(c.spec.names[z.Origin], "zone %s: no NS records at the apex", z.Origin)
	}
	c.shares(func(nodes []*node) [2]uint64 {
		for _, n := range nodes {
			c.validateNode(n, at, warn)
		}
		return [2]uint64{}
	})
	c.checkTargets()
}

// validateNode checks one name against the rest of the zone; at reports,
// warn warns.
func (c *compiler) validateNode(n *node, at, warn func(name, format string, args ...any)) {
	z, name := c.z, n.name
	if n.get(dns.TypeSOA) != nil && name != z.Origin {
		at(name, "SOA record below the apex")
	}
	if cn := n.get(dns.TypeCNAME); cn != nil {
		if len(cn) > 1 {
			at(name, "more than one CNAME")
		}
		for _, s := range n.sets {
			if s.rtype != dns.TypeCNAME && s.rtype != dns.TypeRRSIG && s.rtype != dns.TypeNSEC {
				at(name, "CNAME beside other data (%s)", dns.TypeToString[s.rtype])
				break
			}
		}
		if n.service != nil {
			at(name, "CNAME beside a service")
		}
	}
	if dn := n.get(dns.TypeDNAME); len(dn) > 1 {
		at(name, "more than one DNAME (RFC 6672 2.4: one substitution per name)")
	}
	if c.dnames > 0 && (len(n.sets) > 0 || n.service != nil) {
		if d := c.dnameAbove(name); d != "" {
			at(name, "data below the DNAME at %s (RFC 6672 2.4: a DNAME's owner has no descendants; NSD and Knot refuse it too)", c.rel(d))
		}
	}
	if n.service != nil && (n.get(dns.TypeA) != nil || n.get(dns.TypeAAAA) != nil) {
		at(name, "A/AAAA records beside a service (the service answers those)")
	}
	if n.service != nil && n.service.CNAME && len(n.sets) > 0 {
		at(name, "service %q answers with a CNAME, which cannot stand beside other data (%s)",
			n.service.Name, dns.TypeToString[n.sets[0].rtype])
	}
	if n.get(dns.TypeDS) != nil && !n.cut {
		at(name, "DS record without a delegation (NS) at the same name")
	}
	if n.cut {
		if strings.HasPrefix(name, "*.") {
			at(name, "wildcard delegations are not supported")
		}
		if n.service != nil {
			at(name, "a service at a delegation point")
		}
		for _, s := range n.sets {
			switch s.rtype {
			case dns.TypeNS, dns.TypeDS, dns.TypeA, dns.TypeAAAA, dns.TypeRRSIG, dns.TypeNSEC:
			default:
				// Occluded (RFC 2181 6): loaded, never served, as NSD,
				// Knot and BIND do.
				c.warnRR(s.all[0], name, "%s record at a delegation point is occluded: never served (only NS, DS and glue belong there)", dns.TypeToString[s.rtype])
			}
		}
	}
	c.checkBelow(n, at, warn)
}

// dnameAbove returns the owner of a DNAME strictly above name, if any.
func (c *compiler) dnameAbove(name string) string {
	for p := name; p != c.z.Origin; {
		off, end := dns.NextLabel(p, 0)
		if end {
			break
		}
		p = p[off:]
		if n := c.z.nodes[p]; n != nil && n.get(dns.TypeDNAME) != nil {
			return p
		}
	}
	return ""
}

// hash digests the zone's content, ignoring the serial, so a reload of
// unchanged content keeps its serial. An imported file counts by its bytes,
// hashed as the parser read them: on a big zone, walking a million records
// again cost more than the rest of the load after the parse. So an edit of
// it that changes no record (a comment) moves the serial too. The YAML's
// own records and service names are digested one by one and the digests
// summed, which needs no canonical order.
func (c *compiler) hash(recs []placed, uses []serviceUse) [32]byte {
	var sum digest
	buf := make([]byte, 512)
	for _, p := range recs {
		buf = sum.addRR(buf, p.rr)
	}
	for _, u := range uses {
		sum.add([]byte(u.owner + " service " + u.name))
	}
	var b bytes.Buffer
	b.Write(c.imported[:])
	binary.Write(&b, binary.BigEndian, c.spec.ttl) // the imported records' default TTL
	binary.Write(&b, binary.BigEndian, sum)
	for _, site := range c.z.SiteList {
		fmt.Fprintf(&b, "%+v\n", *site)
	}
	for _, svc := range c.spec.services {
		fmt.Fprintf(&b, "%+v\n", svc.Service)
	}
	for _, ch := range c.spec.checks {
		fmt.Fprintf(&b, "%+v\n", *ch)
	}
	return sha256.Sum256(b.Bytes())
}

// digest is a sum of sha256 digests: the same for the same items in any order.
type digest [2]uint64

func (d *digest) add(b []byte) {
	h := sha256.Sum256(b)
	d[0] += binary.BigEndian.Uint64(h[:8])
	d[1] += binary.BigEndian.Uint64(h[8:16])
}

// addRR adds rr, with its serial zeroed if it is an SOA, in wire form; buf
// is scratch space, returned for the next call.
func (d *digest) addRR(buf []byte, rr dns.RR) []byte {
	if soa, ok := rr.(*dns.SOA); ok {
		x := *soa
		x.Serial = 0
		rr = &x
	}
	if b, ok := addressKey(buf[:0], rr); ok {
		d.add(b)
		return buf
	}
	off, err := dns.PackRR(rr, buf, 0, nil, false)
	if err != nil && len(buf) < dns.MaxMsgSize {
		buf = make([]byte, dns.MaxMsgSize) // a record this size: retry with room
		off, err = dns.PackRR(rr, buf, 0, nil, false)
	}
	if err != nil {
		d.add([]byte(rr.String())) // cannot pack: its text still identifies it
		return buf
	}
	d.add(buf[:off])
	return buf
}

// addressKey encodes an A or AAAA record for the hash without packing it
// (packing was most of the hash's time on a big zone). The 0xFF it starts
// with begins no packed record, whose name starts with a label length.
func addressKey(b []byte, rr dns.RR) ([]byte, bool) {
	var ip []byte
	switch x := rr.(type) {
	case *dns.A:
		ip = x.A.To4()
	case *dns.AAAA:
		ip = x.AAAA.To16()
	}
	if ip == nil {
		return nil, false
	}
	h := rr.Header()
	b = append(append(append(b, 0xFF), h.Name...), 0)
	b = binary.BigEndian.AppendUint16(b, h.Rrtype)
	b = binary.BigEndian.AppendUint16(b, h.Class)
	b = binary.BigEndian.AppendUint32(b, h.Ttl)
	return append(b, ip...), true
}

// shares runs f on shares of the zone's nodes, one per core for big zones,
// and returns the sum of what it returns.
func (c *compiler) shares(f func([]*node) [2]uint64) [2]uint64 {
	nodes := c.all
	workers := min(runtime.GOMAXPROCS(0), 1+len(nodes)/10000)
	sums := make([][2]uint64, workers)
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() { sums[w] = f(nodes[w*len(nodes)/workers : (w+1)*len(nodes)/workers]) })
	}
	wg.Wait()
	var sum [2]uint64
	for _, s := range sums {
		sum[0] += s[0]
		sum[1] += s[1]
	}
	return sum
}

// serial sets an automatic serial unless the zone gives one: the file's
// modification time in seconds (stable across restarts), moved past the
// previous serial whenever the content changed (RFC 1982 arithmetic).
func (c *compiler) serial(mtime time.Time, prev *Zone) {
	z := c.z
	if c.spec.serialSet {
		z.Serial = z.soa.Serial
		return
	}
	serial := uint32(mtime.Unix())
	if prev != nil {
		switch {
		case prev.Hash == z.Hash:
			serial = prev.Serial
		case !serialAfter(serial, prev.Serial):
			serial = prev.Serial + 1
		}
	}
	soa := dns.Copy(z.soa).(*dns.SOA)
	soa.Serial = serial
	z.soa, z.Serial = soa, serial
	z.nodes[z.Origin].sets[slices.IndexFunc(z.nodes[z.Origin].sets, func(s rrset) bool { return s.rtype == dns.TypeSOA })].all[0] = soa
}

// serialAfter reports whether a comes after b in RFC 1982 serial arithmetic.
func serialAfter(a, b uint32) bool {
	return a != b && a-b < 1<<31
}

// yamlError converts a yaml.v3 syntax error into a positioned error.
// yaml.v3 reports only a line, so the error points at its first column.
func yamlError(file string, err error) *PosError {
	msg := strings.TrimPrefix(err.Error(), "yaml: ")
	if m := yamlLineRE.FindStringSubmatch(msg); m != nil {
		line, _ := strconv.Atoi(m[1])
		return &PosError{File: file, Line: line, Col: 1, Msg: "yaml: " + m[2]}
	}
	return &PosError{File: file, Line: 1, Col: 1, Msg: "yaml: " + msg}
}

var yamlLineRE = regexp.MustCompile(`^line (\d+): (.*)$`)

// loadGCPercent is the collector's GOGC while zones compile. A compile
// allocates its result while the heap grows under it, so at GOGC 100 the
// collector runs again at each doubling and marks everything built so
// far: a third of a million-record load. At 200 that load takes 25 %
// less time for 5 % more peak heap; the setting returns when the last
// compile ends.
const loadGCPercent = 200

var loadGC struct {
	sync.Mutex
	n    int // compiles running
	prev int // the setting before the first of them
}

// raises tells whether loadingGC changes a setting: it never lowers a
// higher one nor turns a collector that is off back on.
func raises(setting int) bool { return setting >= 0 && setting < loadGCPercent }

// loadingGC raises GOGC for a compile and returns what lowers it again.
func loadingGC() (done func()) {
	loadGC.Lock()
	defer loadGC.Unlock()
	if loadGC.n == 0 {
		if loadGC.prev = debug.SetGCPercent(loadGCPercent); !raises(loadGC.prev) {
			debug.SetGCPercent(loadGC.prev)
		}
	}
	loadGC.n++
	return func() {
		loadGC.Lock()
		defer loadGC.Unlock()
		if loadGC.n--; loadGC.n == 0 && raises(loadGC.prev) {
			debug.SetGCPercent(loadGC.prev)
		}
	}
}
