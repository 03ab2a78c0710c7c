package resolver

import (
	"encoding/binary"
	"net/netip"
	"slices"
	"sync"
	"sync/atomic"

	"github.com/geodns/geodns/route"
	"github.com/geodns/geodns/zones"
	"github.com/miekg/dns"
	"github.com/prometheus/client_golang/prometheus"
)

// The fast path answers the common query from wire-format responses
// packed once per zone set: a query of one question, class IN, with at
// most an OPT record whose options are ECS and a DNS cookie. Its response
// is copied, and only the ID, the RD and CD bits, the question's letter
// case, the cookie and the ECS option are written per query. Service names
// keep their routing per query: the decision picks one of the packed
// variants (one per distinct answer). Everything else — other options
// (NSID, malformed cookies), CHAOS, CNAME
// chains into services, responses that need truncation, response rate
// limiting — takes the full path, which is the reference: a cached
// response is what the full path answered to the same question.

// query is a parsed fast-path query.
type query struct {
	id      uint16
	rd, cd  byte // the RD bit (of header byte 2) and CD bit (of byte 3), copied to the response
	name    []byte
	lower   [255]byte // the name in lower case
	qtype   uint16
	edns    bool
	do      bool
	udpSize uint16
	ecs     []byte // the ECS option's data (family, prefixes, address), or nil
	subnet  clientSubnet
	cookie  []byte // the COOKIE option's data (client cookie, maybe a server cookie), or nil
}

// parseQuery reads q into fq, which must be zero, as a fast-path query;
// ok is false for anything else.
func parseQuery(q []byte, fq *query) bool {
	if len(q) < 12+5 {
		return false
	}
	// QR=0, opcode 0, TC=0; AA/Z/AD ignored as the full path does; one
	// question, no answers or authority, at most one additional (OPT).
	if q[2]&0xF8 != 0 || q[2]&0x02 != 0 || binary.BigEndian.Uint16(q[4:]) != 1 ||
		binary.BigEndian.Uint16(q[6:]) != 0 || binary.BigEndian.Uint16(q[8:]) != 0 {
		return false
	}
	ar := binary.BigEndian.Uint16(q[10:])
	if ar > 1 {
		return false
	}
	fq.id = binary.BigEndian.Uint16(q)
	fq.rd, fq.cd = q[2]&0x01, q[3]&0x10
	off := 12
	n := 0
	for {
		if off >= len(q) {
			return false
		}
		l := int(q[off])
		if l == 0 {
			off++
			break
		}
		if l > 63 || off+1+l >= len(q) || n+l+1 > 254 {
			return false // pointers, bad lengths, names too long
		}
		fq.lower[n] = byte(l)
		for i := 1; i <= l; i++ {
			c := q[off+i]
			if c >= 'A' && c <= 'Z' {
				c += 'a' - 'A'
			}
			fq.lower[n+i] = c
		}
		n += l + 1
		off += l + 1
	}
	fq.lower[n] = 0
	fq.name = q[12:off]
	if off+4 > len(q) {
		return false
	}
	fq.qtype = binary.BigEndian.Uint16(q[off:])
	if binary.BigEndian.Uint16(q[off+2:]) != dns.ClassINET {
		return false
	}
	switch fq.qtype {
	case dns.TypeAXFR, dns.TypeIXFR, dns.TypeOPT, dns.TypeTSIG, dns.TypeTKEY:
		return false
	}
	off += 4
	if ar == 0 {
		return off == len(q)
	}
	// The OPT record: root owner, type OPT, version 0, options.
	if off+11 > len(q) || q[off] != 0 || binary.BigEndian.Uint16(q[off+1:]) != dns.TypeOPT {
		return false
	}
	fq.edns = true
	fq.udpSize = binary.BigEndian.Uint16(q[off+3:])
	if q[off+5] != 0 || q[off+6] != 0 { // extended rcode, version
		return false
	}
	fq.do = q[off+7]&0x80 != 0
	rdlen := int(binary.BigEndian.Uint16(q[off+9:]))
	off += 11
	if off+rdlen != len(q) {
		return false
	}
	for o := off; o < off+rdlen; {
		if o+4 > off+rdlen {
			return false
		}
		code, l := binary.BigEndian.Uint16(q[o:]), int(binary.BigEndian.Uint16(q[o+2:]))
		if o+4+l > off+rdlen {
			return false
		}
		data := q[o+4 : o+4+l]
		switch {
		case code == dns.EDNS0SUBNET && fq.ecs == nil:
			fq.ecs = data
		case code == dns.EDNS0COOKIE && fq.cookie == nil && cookieLen(l):
			fq.cookie = data // a malformed one gets FORMERR from the full path
		default:
			return false // other options, or one twice
		}
		o += 4 + l
	}
	if fq.ecs != nil {
		// The full path's parser decides validity; the fast one only takes
		// what it understands.
		cs, ok := parseSubnet(fq.ecs)
		if !ok {
			return false // the full path decides what is wrong with it
		}
		fq.subnet = cs
	}
	return true
}

// parseSubnet reads an ECS option's data as parseECS does, without
// allocating; ok is false for anything parseECS would not accept as is.
func parseSubnet(b []byte) (clientSubnet, bool) {
	if len(b) < 4 || b[3] != 0 {
		return clientSubnet{}, false
	}
	family, source, a := binary.BigEndian.Uint16(b), b[2], b[4:]
	if len(a) != (int(source)+7)/8 {
		return clientSubnet{}, false // the address in as many bytes as the prefix needs, as RFC 7871 asks
	}
	var x [16]byte
	if len(a) > len(x) {
		return clientSubnet{}, false
	}
	copy(x[:], a)
	addr := netip.AddrFrom16(x)
	if family == 1 {
		addr = netip.AddrFrom4([4]byte(x[:4])) // longer prefixes newSubnet refuses
	}
	return newSubnet(family, source, addr)
}

// key writes the cache key of the question into b.
func (fq *query) key(b *[255 + 3]byte, tcp bool) []byte {
	n := len(fq.name)
	copy(b[:], fq.lower[:n])
	b[n], b[n+1] = byte(fq.qtype>>8), byte(fq.qtype)
	var f byte
	if fq.edns {
		f |= 1
	}
	if fq.do {
		f |= 2
	}
	if tcp {
		f |= 4
	}
	b[n+2] = f
	return b[:n+3]
}

// packed is a response ready to copy, with what a query must still patch.
type packed struct {
	wire    []byte
	optLast bool // the response ends with an OPT record without options: a cookie and ECS can be appended
	queries prometheus.Counter
	answers prometheus.Counter // service variants: the answer's service and site
}

// entry is the fast path's knowledge of one question.
type entry struct {
	static *packed // the answer, when it does not depend on the client
	// A service name: the decision is made per query and picks a variant.
	svc      *zones.Service
	origin   string
	mu       sync.RWMutex
	variants map[string]*packed
}

const (
	maxEntries  = 100_000 // questions cached per zone set; random names beyond go the full way
	maxVariants = 64
	fastShards  = 64
)

// fastCache holds the entries of one zone set.
type fastCache struct {
	set    *zones.Set
	shards [fastShards]struct {
		mu sync.RWMutex
		m  map[string]*entry
	}
	count atomic.Int64
}

func newFastCache(set *zones.Set) *fastCache {
	c := &fastCache{set: set}
	for i := range c.shards {
		c.shards[i].m = map[string]*entry{}
	}
	return c
}

func (c *fastCache) shard(key []byte) int {
	h := uint32(2166136261)
	for i := 0; i < len(key); i++ {
		h = (h ^ uint32(key[i])) * 16777619
	}
	return int(h % fastShards)
}

func (c *fastCache) get(key []byte) *entry {
	s := &c.shards[c.shard(key)]
	s.mu.RLock()
	e := s.m[string(key)] // no allocation: the compiler looks up the bytes
	s.mu.RUnlock()
	return e
}

func (c *fastCache) put(key []byte, e *entry) {
	if c.count.Load() >= maxEntries {
		return
	}
	s := &c.shards[c.shard(key)]
	s.mu.Lock()
	if _, ok := s.m[string(key)]; !ok {
		s.m[string(key)] = e
		c.count.Add(1)
	}
	s.mu.Unlock()
}

// cache returns the fast cache of the current zone set.
func (h *Handler) cache(set *zones.Set) *fastCache {
	c := h.fast.Load()
	if c == nil || c.set != set {
		n := newFastCache(set)
		if h.fast.CompareAndSwap(c, n) {
			return n
		}
		return h.fast.Load()
	}
	return c
}

// ServeWire answers the query q from remote into out and returns the
// response; nil means no response (dropped). out is reused storage.
func (h *Handler) ServeWire(q []byte, remote netip.Addr, tcp bool, out []byte) []byte {
	var fq query
	if (tcp || h.rrl == nil) && parseQuery(q, &fq) {
		if resp, ok := h.fastAnswer(&fq, remote, tcp, out); ok {
			return resp
		}
	}
	return h.slowWire(q, remote, tcp, out)
}

// slowWire answers through dns.Msg: the full path.
func (h *Handler) slowWire(q []byte, remote netip.Addr, tcp bool, out []byte) []byte {
	req := new(dns.Msg)
	if err := req.Unpack(q); err != nil {
		// A header we can read gets FORMERR, like miekg/dns's server; less
		// than a header (or a response) is dropped.
		if len(q) < 12 || q[2]&0x80 != 0 {
			return nil
		}
		resp := append(out[:0], q[:12]...)
		resp[2] = 0x80 | q[2]&0x79 // QR, opcode, RD
		resp[3] = dns.RcodeFormatError
		clear(resp[4:12])
		return resp
	}
	if req.Response {
		return nil // never answer answers (reflection loops)
	}
	m := h.respond(req, remote, tcp)
	if m == nil {
		return nil
	}
	resp, err := m.PackBuffer(out[:cap(out)])
	if err != nil {
		h.log.Error("cannot pack response", "error", err, "query", queryString(req))
		m = new(dns.Msg)
		m.SetRcode(req, dns.RcodeServerFailure)
		resp, _ = m.PackBuffer(out[:cap(out)])
	}
	return resp
}

// fastAnswer answers from the cache, filling it on a miss.
func (h *Handler) fastAnswer(fq *query, remote netip.Addr, tcp bool, out []byte) ([]byte, bool) {
	set := h.zones.Load()
	if set == nil {
		return nil, false
	}
	c := h.cache(set)
	var kb [255 + 3]byte
	key := fq.key(&kb, tcp)
	e := c.get(key)
	if e == nil {
		e = h.fill(set, fq, tcp)
		if e == nil {
			return nil, false
		}
		c.put(key, e)
	}
	p, scope := e.static, 0
	if e.svc != nil {
		client := netip.PrefixFrom(remote, remote.BitLen())
		if fq.ecs != nil && fq.subnet.usable() {
			client = fq.subnet.prefix
		}
		d := h.router.Route(e.origin, e.svc, client, fq.qtype == dns.TypeAAAA)
		p = h.variant(e, fq, tcp, d)
		if p == nil {
			return nil, false
		}
		scope = d.Scope
		if fq.ecs != nil && !fq.subnet.usable() {
			scope = 0
		}
	}
	if p == nil || ((fq.ecs != nil || fq.cookie != nil) && !p.optLast) {
		return nil, false
	}
	limit := 65535
	if !tcp {
		limit = 512
		if fq.edns {
			limit = max(512, min(int(fq.udpSize), int(h.cfg.MaxUDPSize)))
		}
	}
	n := len(p.wire)
	if fq.cookie != nil {
		n += 4 + cookieReplyLen
	}
	if fq.ecs != nil {
		n += 4 + len(fq.ecs)
	}
	if n > limit {
		return nil, false // the full path truncates
	}
	resp := append(out[:0], p.wire...)
	binary.BigEndian.PutUint16(resp, fq.id)
	resp[2] = resp[2]&^0x01 | fq.rd
	resp[3] = resp[3]&^0x10 | fq.cd
	copy(resp[12:], fq.name) // the client's letter case (0x20)
	// Options go at the end of the OPT record, which ends the response, in
	// the full path's order: COOKIE, then ECS.
	opts := len(resp)
	if fq.cookie != nil {
		var co [cookieReplyLen]byte
		h.cookies.reply(&co, fq.cookie, remote, h.clock())
		resp = binary.BigEndian.AppendUint16(resp, dns.EDNS0COOKIE)
		resp = binary.BigEndian.AppendUint16(resp, cookieReplyLen)
		resp = append(resp, co[:]...)
	}
	if fq.ecs != nil {
		l := len(resp)
		resp = binary.BigEndian.AppendUint16(resp, dns.EDNS0SUBNET)
		resp = binary.BigEndian.AppendUint16(resp, uint16(len(fq.ecs)))
		resp = append(resp, fq.ecs...)
		resp[l+4+3] = byte(scope) // family(2) source(1) scope(1)
	}
	if len(resp) > opts {
		binary.BigEndian.PutUint16(resp[opts-2:], uint16(len(resp)-opts)) // the OPT's RDLENGTH, 0 as packed
	}
	if p.queries != nil {
		p.queries.Inc()
	}
	if p.answers != nil {
		p.answers.Inc()
	}
	return resp, true
}

// canonical is the query the cached responses are made for: lower case,
// ID 0, no RD/CD, EDNS without options and with room for any size.
func canonical(fq *query) *dns.Msg {
	req := new(dns.Msg)
	req.Question = []dns.Question{{Name: wireName(fq.lower[:len(fq.name)]), Qtype: fq.qtype, Qclass: dns.ClassINET}}
	if fq.edns {
		req.SetEdns0(65535, fq.do)
	}
	return req
}

// wireName turns a wire-format name into text (the labels hold no dots or
// escapes that matter for lookups: they are compared as the full path would).
func wireName(w []byte) string {
	if len(w) <= 1 {
		return "."
	}
	var b []byte
	for i := 0; i < len(w) && w[i] != 0; i += int(w[i]) + 1 {
		b = append(b, w[i+1:i+1+int(w[i])]...)
		b = append(b, '.')
	}
	return string(b)
}

// fill runs the full path on the canonical query and keeps its response if
// it is the same for every client, or notes the service if one decides.
func (h *Handler) fill(set *zones.Set, fq *query, tcp bool) *entry {
	w := fq.lower[:len(fq.name)]
	for i := 0; i < len(w) && w[i] != 0; i += int(w[i]) + 1 {
		for _, b := range w[i+1 : i+1+int(w[i])] {
			if b == '.' || b == '\\' || b <= ' ' || b >= 0x7f {
				return nil // names with odd bytes keep the full path's text handling
			}
		}
	}
	req := canonical(fq)
	var tr trace
	m, _ := h.answerTraced(req, netip.IPv4Unspecified(), tcp, &tr)
	if m.Truncated || tr.services > 1 || (tr.services == 1 && tr.owner != req.Question[0].Name) {
		return nil
	}
	if tr.services == 1 {
		return &entry{svc: tr.svc, origin: tr.zone, variants: map[string]*packed{}}
	}
	p := h.pack(m, tr.zone, fq.qtype)
	if p == nil {
		return nil
	}
	return &entry{static: p}
}

// variant returns the packed response for one routing decision.
func (h *Handler) variant(e *entry, fq *query, tcp bool, d route.Decision) *packed {
	var kb [128]byte
	k := decisionKey(kb[:0], d)
	e.mu.RLock()
	p := e.variants[string(k)]
	e.mu.RUnlock()
	if p != nil {
		return p
	}
	req := canonical(fq)
	var tr trace
	tr.fixed = &d
	m, _ := h.answerTraced(req, netip.IPv4Unspecified(), tcp, &tr)
	if m.Truncated || tr.services != 1 {
		return nil
	}
	p = h.pack(m, tr.zone, fq.qtype)
	if p == nil {
		return nil
	}
	if h.cfg.Metrics != nil {
		switch {
		case d.AllDown:
			p.answers = h.cfg.Metrics.answers.WithLabelValues(e.svc.Name, "all-down")
		case len(d.Sites) > 0:
			p.answers = h.cfg.Metrics.answers.WithLabelValues(e.svc.Name, d.Sites[0])
		}
	}
	e.mu.Lock()
	if len(e.variants) < maxVariants {
		e.variants[string(k)] = p
	}
	e.mu.Unlock()
	return p
}

// decisionKey appends to b what names the response a decision makes.
func decisionKey(b []byte, d route.Decision) []byte {
	if d.Degraded {
		b = append(b, 'd')
	}
	if d.AllDown {
		b = append(b, 'x')
	}
	if len(d.Sites) > 0 {
		b = append(b, d.Sites[0]...) // the answers counter's label
	}
	b = append(b, 0)
	for _, a := range d.Addrs {
		b = append(b, a.AsSlice()...)
		b = append(b, '|')
	}
	for _, n := range d.Names[:min(1, len(d.Names))] {
		b = append(b, n...)
	}
	return b
}

// pack packs m for the cache: nil if it cannot be.
func (h *Handler) pack(m *dns.Msg, zone string, qtype uint16) *packed {
	wire, err := m.Pack()
	if err != nil {
		return nil
	}
	p := &packed{wire: slices.Clip(wire)}
	if n := len(wire); n >= 12+11 && m.IsEdns0() != nil && len(m.IsEdns0().Option) == 0 &&
		wire[n-11] == 0 && binary.BigEndian.Uint16(wire[n-10:]) == dns.TypeOPT && binary.BigEndian.Uint16(wire[n-2:]) == 0 {
		p.optLast = true
	}
	if h.cfg.Metrics != nil {
		p.queries = h.cfg.Metrics.counter(zone, qtype, m.Rcode)
	}
	return p
}
