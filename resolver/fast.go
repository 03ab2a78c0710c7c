package resolver

import (
	"encoding/binary"
	"hash/maphash"
	"net/netip"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"time"

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
// variants (one per distinct answer). Response rate limiting accounts the
// packed response (its class is computed once, when packed). Everything
// else — other options (NSID, malformed cookies), CHAOS, CNAME chains into
// services, responses that need truncation — takes the full path, which
// is the reference: a cached response is what the full path answered to
// the same question. A question the fast path refuses is remembered as
// refused, so it goes to the full path at once.

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
	wire []byte
	// optLast: the response ends with its OPT record, whose options are
	// at most an EDE (which the full path puts first): a cookie and ECS
	// can be appended. opt is where the OPT record starts.
	optLast bool
	opt     int
	queries prometheus.Counter
	answers prometheus.Counter // service variants: the answer's service and site
	rrl     rrlClass           // the response's RRL class, when limiting is on
}

// refused is the variant the fast path does not answer (it must be
// truncated): the full path does.
var refused = &packed{}

// entry is the fast path's knowledge of one question.
type entry struct {
	static *packed // the answer, when it does not depend on the client
	// refuse: the fast path does not answer this question (a CNAME into a
	// service, an answer that is truncated); the full path does, at once,
	// without trying first.
	refuse bool
	// A service name: the decision is made per query and picks a variant.
	svc      *zones.Service
	origin   string
	mu       sync.RWMutex
	variants map[string]*packed

	key  string       // the cache key
	size atomic.Int64 // bytes charged to the cache, variants included
	ref  atomic.Bool  // CLOCK: used since the hand last passed
	slot int          // index in the shard's ring; guarded by the shard's lock
	// evicted: no longer in the cache, so its variants are not charged;
	// guarded by mu.
	evicted bool
}

// DefaultCacheBytes is the answer cache's budget when Config.CacheBytes is 0.
const DefaultCacheBytes = 64 << 20

const (
	maxVariants = 64
	fastShards  = 64
	// entryOverhead is what an entry costs besides its key and responses:
	// the entry, its packed response and the map slot (an estimate on the
	// high side, so the budget bounds the heap).
	entryOverhead = 320
)

// fastCache holds the entries of one zone set, at most a budget of bytes:
// keys, packed responses and overhead. Misses (NXDOMAIN, NODATA, REFUSED)
// and refusals are entries too. Each shard evicts with CLOCK: a hit sets
// the entry's bit (one atomic load when already set); the hand clears
// set bits and evicts the first entry it finds clear.
//
// A full shard admits a question only when it is asked a second time
// (TinyLFU's doorkeeper): a flood of random names, each asked once, is
// answered by the full path without filling and evicting entries for
// names nobody asks again, so it neither costs an insertion per query
// nor pushes out the answers that are asked for.
type fastCache struct {
	set    *zones.Set
	seed   maphash.Seed
	budget int64 // per shard
	shards [fastShards]cacheShard
	// door remembers a tag of the questions a full shard last turned away,
	// one per slot; a colliding question takes the slot.
	door [doorSlots]atomic.Uint32
}

// doorSlots is the size of the doorkeeper: 256 KiB.
const doorSlots = 1 << 16

type cacheShard struct {
	mu    sync.RWMutex
	m     map[string]*entry
	ring  []*entry // every entry once, in no order; the hand walks it
	hand  int
	bytes atomic.Int64 // written under mu, but variants add while only reading
	_     [64]byte     // shards on their own cache lines
}

func newFastCache(set *zones.Set, budget int64) *fastCache {
	c := &fastCache{set: set, seed: maphash.MakeSeed(), budget: budget / fastShards}
	for i := range c.shards {
		c.shards[i].m = map[string]*entry{}
	}
	return c
}

func (c *fastCache) shard(key []byte) *cacheShard {
	return &c.shards[maphash.Bytes(c.seed, key)%fastShards] // AES-based: a few ns, where FNV took 1 ns a byte
}

// admit tells whether a question the cache does not hold is to be filled
// and kept: always while its shard has room, else only when the
// doorkeeper saw it before.
func (c *fastCache) admit(key []byte) bool {
	h := maphash.Bytes(c.seed, key)
	if c.shards[h%fastShards].bytes.Load() < c.budget-c.budget/16 {
		return true
	}
	slot := &c.door[(h/fastShards)%doorSlots]
	tag := uint32(h>>32) | 1 // never 0, the empty slot
	if slot.Load() == tag {
		slot.Store(0)
		return true
	}
	slot.Store(tag)
	return false
}

func (c *fastCache) get(key []byte) *entry {
	s := c.shard(key)
	s.mu.RLock()
	e := s.m[string(key)] // no allocation: the compiler looks up the bytes
	s.mu.RUnlock()
	if e != nil && !e.ref.Load() {
		e.ref.Store(true) // written once per pass of the hand, not per hit
	}
	return e
}

// put adds e under key, evicting until it fits, and returns the entry the
// cache holds for key (another query's, if it came first). An entry
// larger than a shard's budget is not kept: a refusal is, in its place.
func (c *fastCache) put(key []byte, e *entry) *entry {
	size := int64(entryOverhead + 2*len(key))
	if e.static != nil {
		size += int64(cap(e.static.wire))
	}
	if size > c.budget {
		e = &entry{refuse: true}
		size = int64(entryOverhead + 2*len(key))
	}
	e.size.Store(size)
	s := c.shard(key)
	s.mu.Lock()
	defer s.mu.Unlock()
	if old := s.m[string(key)]; old != nil {
		return old
	}
	for s.bytes.Load()+size > c.budget && len(s.ring) > 0 {
		s.evict()
	}
	e.key = string(key)
	e.slot = len(s.ring)
	s.ring = append(s.ring, e)
	s.m[e.key] = e
	s.bytes.Add(size)
	return e
}

// evict removes one entry: the first the hand finds unused since it last
// passed. Called with s.mu held and the ring not empty.
func (s *cacheShard) evict() {
	for {
		if s.hand >= len(s.ring) {
			s.hand = 0
		}
		e := s.ring[s.hand]
		if e.ref.Load() {
			e.ref.Store(false)
			s.hand++
			continue
		}
		last := len(s.ring) - 1
		s.ring[s.hand] = s.ring[last]
		s.ring[s.hand].slot = s.hand
		s.ring[last] = nil
		s.ring = s.ring[:last]
		delete(s.m, e.key)
		e.mu.Lock() // a variant being added sees the entry gone, and charges nothing
		e.evicted = true
		size := e.size.Load()
		e.mu.Unlock()
		s.bytes.Add(-size)
		return
	}
}

// bytes returns what the cache holds, in bytes as budgeted.
func (c *fastCache) bytes() int64 {
	var n int64
	for i := range c.shards {
		n += c.shards[i].bytes.Load()
	}
	return n
}

// cache returns the fast cache of the current zone set.
func (h *Handler) cache(set *zones.Set) *fastCache {
	c := h.fast.Load()
	if c == nil || c.set != set {
		n := newFastCache(set, h.cfg.CacheBytes)
		if h.fast.CompareAndSwap(c, n) {
			return n
		}
		return h.fast.Load()
	}
	return c
}

// ServeWire answers the query q from remote into out and returns the
// response; nil means no response (dropped). out is reused storage. It is
// the entry of every query from the network: a panic while answering is
// recovered here, counted, and answered SERVFAIL.
func (h *Handler) ServeWire(q []byte, remote netip.Addr, tcp bool, out []byte) (resp []byte) {
	defer func() {
		if p := recover(); p != nil {
			h.panicked(p)
			resp = servfailWire(q, out, h.cfg.MaxUDPSize)
		}
	}()
	var fq query
	if parseQuery(q, &fq) {
		if resp, ok := h.fastAnswer(&fq, remote, tcp, out); ok {
			return resp
		}
	}
	return h.slowWire(q, remote, tcp, out)
}

// panicked counts a panic, and logs it at most once a second: a query
// that makes the handler panic may come in a flood.
func (h *Handler) panicked(p any) {
	h.panics.Add(1)
	if h.cfg.Metrics != nil {
		h.cfg.Metrics.panics.Inc()
	}
	now := time.Now().Unix()
	if last := h.panicLogged.Load(); now > last && h.panicLogged.CompareAndSwap(last, now) {
		h.log.Error("panic answering a query; answered SERVFAIL", "panic", p, "stack", string(debug.Stack()))
	}
}

// servfailWire answers q with SERVFAIL, built from its bytes alone: the
// header, the question if there is one to copy, and an OPT record if the
// query had one. Nil when q is not a query with a header.
func servfailWire(q, out []byte, udpSize uint16) []byte {
	if len(q) < 12 || q[2]&0x80 != 0 {
		return nil
	}
	resp := append(out[:0], q[:12]...)
	resp[2] = 0x80 | q[2]&0x79 // QR, opcode, RD
	resp[3] = q[3]&0x10 | dns.RcodeServerFailure
	clear(resp[4:12])
	if binary.BigEndian.Uint16(q[4:]) != 1 {
		return resp
	}
	off := 12
	for off < len(q) && q[off] != 0 && q[off] <= 63 {
		off += int(q[off]) + 1
	}
	if off+5 > len(q) || q[off] != 0 {
		return resp // a name we cannot copy as is (a pointer, cut short)
	}
	off += 5
	resp = append(resp, q[12:off]...)
	resp[5] = 1
	if off+11 <= len(q) && q[off] == 0 && binary.BigEndian.Uint16(q[off+1:]) == dns.TypeOPT {
		// An OPT record with EDE 0 (Other), no text (RFC 8914): the
		// client sees the failure is ours, not its resolver's.
		resp = append(resp, 0, 0, 41, byte(udpSize>>8), byte(udpSize), 0, 0, 0, 0, 0, 6,
			0, 15, 0, 2, 0, 0)
		resp[11] = 1
	}
	return resp
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

// fastAnswer answers from the cache, filling it on a miss. ok false means
// the full path answers; a nil response with ok true is dropped (RRL).
func (h *Handler) fastAnswer(fq *query, remote netip.Addr, tcp bool, out []byte) (resp []byte, ok bool) {
	set := h.zones.Load()
	if set == nil {
		return nil, false
	}
	c := h.cache(set)
	var kb [255 + 3]byte
	key := fq.key(&kb, tcp)
	e := c.get(key)
	if e == nil {
		if !c.admit(key) {
			return nil, false // asked once while the cache is full: the full path answers
		}
		e = c.put(key, h.fill(set, fq, tcp))
	}
	if e.refuse {
		return nil, false
	}
	p, scope := e.static, 0
	if e.svc != nil {
		client := netip.PrefixFrom(remote, remote.BitLen())
		if fq.ecs != nil && fq.subnet.usable() {
			client = fq.subnet.prefix
		}
		d := h.router.Route(e.origin, e.svc, client, fq.qtype == dns.TypeAAAA)
		p = h.variant(c, key, e, fq, tcp, d)
		if p == refused {
			return nil, false
		}
		scope = d.Scope
		if fq.ecs != nil && !fq.subnet.usable() {
			scope = 0
		}
	}
	if (fq.ecs != nil || fq.cookie != nil) && !p.optLast {
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
		return nil, false // the full path truncates (this client asks for less than the cached response)
	}
	limited := h.rrl != nil && !tcp
	if limited && fq.edns && !p.optLast {
		return nil, false // a slipped response keeps the OPT record: the full path finds it
	}
	var now time.Time
	if fq.cookie != nil {
		now = h.clock()
	}
	resp = append(out[:0], p.wire...)
	binary.BigEndian.PutUint16(resp, fq.id)
	resp[2] = resp[2]&^0x01 | fq.rd
	resp[3] = resp[3]&^0x10 | fq.cd
	copy(resp[12:], fq.name) // the client's letter case (0x20)
	// Options go at the end of the OPT record, which ends the response, in
	// the full path's order: COOKIE, then ECS.
	opts := len(resp)
	if fq.cookie != nil {
		var co [cookieReplyLen]byte
		if h.cookies.reply(&co, fq.cookie, remote, now) == cookieValid {
			limited = false // a query with our cookie does not come from a spoofed address
		}
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
		// The OPT's RDLENGTH grows by what was appended.
		rdlen := resp[p.opt+9:]
		binary.BigEndian.PutUint16(rdlen, binary.BigEndian.Uint16(rdlen)+uint16(len(resp)-opts))
	}
	if p.queries != nil {
		p.queries.Inc()
	}
	if p.answers != nil {
		p.answers.Inc()
	}
	if limited {
		var act rrlAction
		if fq.cookie != nil {
			act = h.rrl.check(remote, p.rrl, now) // the clock is read already
		} else {
			act = h.rrl.checkLazy(remote, p.rrl, h.clock, fq.id&63 == 0)
		}
		switch act {
		case rrlDrop:
			return nil, true
		case rrlSlip:
			opt := -1
			if fq.edns {
				opt = p.opt
			}
			return slipWire(resp, 12+len(fq.name)+4, opt), true
		}
	}
	return resp, true
}

// canonical is the query the cached responses are made for: lower case,
// ID 0, no RD/CD, EDNS without options and with room for any size.
func canonical(fq *query) *dns.Msg {
	req := new(dns.Msg)
	// The full path's own spelling of the name (its canonical form), so a
	// label with any octet in it is looked up as the full path looks it up.
	req.Question = []dns.Question{{Name: zones.NameFromWire(fq.lower[:len(fq.name)]), Qtype: fq.qtype, Qclass: dns.ClassINET}}
	if fq.edns {
		req.SetEdns0(65535, fq.do)
	}
	return req
}

// fill runs the full path on the canonical query and keeps its response if
// it is the same for every client, or notes the service if one decides;
// anything else is a refusal, remembered so the full path answers it at
// once next time.
func (h *Handler) fill(set *zones.Set, fq *query, tcp bool) *entry {
	req := canonical(fq)
	var tr trace
	m, _ := h.answerTraced(req, netip.IPv4Unspecified(), tcp, &tr)
	if m.Truncated || tr.services > 1 || (tr.services == 1 && tr.owner != req.Question[0].Name) {
		return &entry{refuse: true}
	}
	if tr.services == 1 {
		return &entry{svc: tr.svc, origin: tr.zone, variants: map[string]*packed{}}
	}
	p := h.pack(m, tr.zone, fq.qtype)
	if p == nil {
		return &entry{refuse: true}
	}
	return &entry{static: p}
}

// variant returns the packed response for one routing decision, or
// refused. A new one is kept while the cache's shard has room.
func (h *Handler) variant(c *fastCache, key []byte, e *entry, fq *query, tcp bool, d route.Decision) *packed {
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
	p = refused
	if !m.Truncated && tr.services == 1 {
		if p = h.pack(m, tr.zone, fq.qtype); p == nil {
			p = refused
		}
	}
	if p != refused && h.cfg.Metrics != nil {
		switch {
		case d.AllDown:
			p.answers = h.cfg.Metrics.answers.WithLabelValues(e.svc.Name, "all-down")
		case len(d.Sites) > 0:
			p.answers = h.cfg.Metrics.answers.WithLabelValues(e.svc.Name, d.Sites[0])
		}
	}
	size := int64(len(k) + cap(p.wire) + entryOverhead/2)
	s := c.shard(key)
	if s.bytes.Load()+size > c.budget {
		// Make room as put does, or a full shard (a flood of new names)
		// would keep every new decision uncached.
		s.mu.Lock()
		for s.bytes.Load()+size > c.budget && len(s.ring) > 1 {
			s.evict()
		}
		s.mu.Unlock()
	}
	e.mu.Lock()
	if !e.evicted && len(e.variants) < maxVariants && s.bytes.Load()+size <= c.budget {
		if _, ok := e.variants[string(k)]; !ok {
			e.variants[string(k)] = p
			e.size.Add(size)
			s.bytes.Add(size) // the next put in the shard evicts to make room
		}
	}
	e.mu.Unlock()
	return p
}

// onlyEDE reports whether o's options are at most one Extended DNS Error.
func onlyEDE(o *dns.OPT) bool {
	switch len(o.Option) {
	case 0:
		return true
	case 1:
		_, ok := o.Option[0].(*dns.EDNS0_EDE)
		return ok
	}
	return false
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
	p := &packed{wire: append([]byte(nil), wire...)} // cap: the size class allocated, which the cache budgets
	if o := m.IsEdns0(); o != nil && onlyEDE(o) {
		n, l := len(wire), 11 // the OPT's length packed: root owner, fixed fields, options
		if len(o.Option) == 1 {
			l += 4 + 2 + len(o.Option[0].(*dns.EDNS0_EDE).ExtraText)
		}
		if start := n - l; start >= 12 && wire[start] == 0 && binary.BigEndian.Uint16(wire[start+1:]) == dns.TypeOPT &&
			int(binary.BigEndian.Uint16(wire[start+9:])) == l-11 {
			p.optLast, p.opt = true, start
		}
	}
	if h.cfg.Metrics != nil {
		p.queries = h.cfg.Metrics.counter(zone, qtype, m.Rcode)
	}
	if h.rrl != nil {
		p.rrl = h.rrl.class(m)
	}
	return p
}
