package resolver

import (
	"maps"
	"slices"
	"sync"
	"sync/atomic"

	"github.com/geodns/geodns/zones"
)

// The answer cache holds the responses the engine wrote, per zone set:
// responses that do not depend on the client under their question's key,
// and for a service name one response per routing decision. It is bounded
// in bytes (keys, responses and overhead), evicts with CLOCK, and keeps
// negative answers like any other.

// entry is the cache's knowledge of one question.
type entry struct {
	static *packed // the answer, when it does not depend on the client
	// absent: under a key of absentKey's, the template of the absent
	// names below an encloser (absent.go).
	absent *template
	// A service name: the decision is made per query and picks a variant,
	// written the first time a query got that decision.
	svc    *zones.Service
	origin string
	v6     bool // the service is routed for AAAA
	// addrs: the answer is the decision's addresses (an address service
	// asked for A or AAAA): a variant is keyed by what the decision makes
	// of the response but its addresses, which deliver writes per query
	// (the router rotates them over the site's endpoints, so a site of
	// many endpoints is still one variant).
	addrs bool
	// variants: the packed responses by decisionKey, copied on write (at
	// most maxVariants, each added once) so that a query reads them with
	// one atomic load. A read lock here was an atomic add on the entry's
	// line per query: 7 % of a service answer, and a line both cores
	// write when they answer the same name.
	variants atomic.Pointer[variantSet]
	mu       sync.Mutex // serializes adding variants, and evicted

	key  string       // the cache key
	hash uint64       // key's hash (keyHash)
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
// are entries too. Each shard evicts with CLOCK: a hit sets
// the entry's bit (one atomic load when already set); the hand clears
// set bits and evicts the first entry it finds clear.
//
// A full shard admits a question only when it is asked a second time
// (TinyLFU's doorkeeper): a flood of random names, each asked once, is
// answered without filling and evicting entries for
// names nobody asks again, so it neither costs an insertion per query
// nor pushes out the answers that are asked for.
type fastCache struct {
	set    *zones.Set
	gen    uint64 // the DNSSEC signer's generation its signed answers were made in
	budget int64  // per shard
	shards [fastShards]cacheShard
	// door remembers a tag of the questions a full shard last turned away,
	// one per slot; a colliding question takes the slot.
	door [doorSlots]uint32 // see knock
}

// doorSlots is the size of the doorkeeper: 256 KiB.
const doorSlots = 1 << 16

type cacheShard struct {
	mu    sync.Mutex            // writers: putH, evict
	tab   atomic.Pointer[table] // the entries by key, read without mu (cachetable.go)
	ring  []*entry              // every entry once, in no order; the hand walks it
	hand  int
	bytes atomic.Int64 // written under mu, but variants add while only reading
	_     [64]byte     // shards on their own cache lines
}

func newFastCache(set *zones.Set, budget int64) *fastCache {
	c := &fastCache{set: set, budget: budget / fastShards}
	for i := range c.shards {
		c.shards[i].tab.Store(newTable(16))
	}
	return c
}

// keyHash is the hash of a cache key whose name has hash name
// (zones.WireHash, AES-based: a few ns) and whose last three bytes are
// tail: one multiply and a shift, so that the low bits (shard, doorkeeper
// slot) and the high ones (doorkeeper tag) depend on all of it. A key is
// a lower-case wire name and three bytes of type and flags, the name
// after 0xC0 for a template (absentKey, template set). The engine makes
// it once per query, from the name's hash the absent path needs too, and
// passes it on (getH, putH, admitH, addVariant).
func keyHash(name uint64, tail []byte, template bool) uint64 {
	x := uint64(tail[0])<<16 | uint64(tail[1])<<8 | uint64(tail[2])
	if template {
		x |= 1 << 24
	}
	h := (name ^ x) * 0x9e3779b97f4a7c15
	return h ^ h>>32
}

// admitH tells whether a question the cache does not hold (h its key's
// hash) is to be filled and kept: always while its shard has room, else
// only when the doorkeeper saw it before.
func (c *fastCache) admitH(h uint64) bool {
	if c.shards[h%fastShards].bytes.Load() < c.budget-c.budget/16 {
		return true
	}
	return knock(c.door[:], h)
}

// knock is a doorkeeper (door, a power-of-two number of slots) for the
// question of hash h: true if it knocked before since its slot was last
// taken (and the slot is cleared), else it is remembered.
//
// The slots are read and written plainly, unseen by the race detector: a
// doorkeeper is a hint, and two queries racing on a slot can only lose a
// knock or see one that was not theirs (a word is read whole: the memory
// model gives a racy read some value that was written). An atomic store is
// an XCHG on amd64, which waits for every store before it to be written:
// a third of the absent path's own time in the server, where each name of
// a flood knocks once.
//
//go:norace
func knock(door []uint32, h uint64) bool {
	slot := &door[(h/fastShards)&uint64(len(door)-1)]
	tag := uint32(h>>32) | 1 // never 0, the empty slot
	if *slot == tag {
		*slot = 0
		return true
	}
	*slot = tag
	return false
}

// getH returns the entry under key (of hash h), nil if none.
func (c *fastCache) getH(key []byte, h uint64) *entry {
	s := &c.shards[h%fastShards]
	e := s.tab.Load().get(key, h)
	if e != nil && !e.ref.Load() {
		e.ref.Store(true) // written once per pass of the hand, not per hit
	}
	return e
}

// putH adds e under key (of hash h), evicting until it fits, and returns
// the entry the cache holds for key (another query's, if it came first).
// An entry larger than a shard's budget is not kept (e is returned, not
// held).
func (c *fastCache) putH(key []byte, h uint64, e *entry) *entry {
	size := int64(entryOverhead + 2*len(key))
	if e.static != nil {
		size += int64(cap(e.static.wire))
	}
	if e.absent != nil {
		size += int64(4 * len(e.absent.door))
		if e.absent.p != nil {
			size += int64(cap(e.absent.p.wire) + 8*len(e.absent.ptrs))
		}
	}
	if size > c.budget {
		e.evicted = true
		return e
	}
	e.size.Store(size)
	s := &c.shards[h%fastShards]
	s.mu.Lock()
	defer s.mu.Unlock()
	t := s.tab.Load()
	if old := t.get(key, h); old != nil {
		return old
	}
	for s.bytes.Load()+size > c.budget && len(s.ring) > 0 {
		s.evict()
	}
	e.key = string(key)
	e.slot = len(s.ring)
	s.ring = append(s.ring, e)
	e.hash = h
	if n := t.put(e); n != t {
		s.tab.Store(n)
	}
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
		s.tab.Load().remove(e)
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
	if gen := h.generation(); c == nil || c.set != set || c.gen != gen {
		n := newFastCache(set, h.cfg.CacheBytes)
		n.gen = gen
		if h.fast.CompareAndSwap(c, n) {
			return n
		}
		return h.fast.Load()
	}
	return c
}

// variantSet is a service entry's variants. Those of an address entry
// (addrs), at most one per answering site, state and number of addresses,
// are found by comparing those fields in turn: building their decisionKey
// and hashing it for a map lookup was 10 % of a geo answer's time from the
// cache. Other entries' (an address set each) are in a map by decisionKey.
type variantSet struct {
	list  []variant          // addrs entries
	byKey map[string]*packed // other entries
}

// variant is an addrs entry's variant: what decisionKey names of it.
type variant struct {
	site  string // Sites[0]
	flags uint8  // Degraded, AllDown
	n     int    // len(Addrs)
	p     *packed
}

// variantOf is what names d's variant, as scalars: a variant built here
// and returned was copied by wide loads over its fresh stores, which the
// store buffer cannot forward (6 ns of a cached geo answer).
func variantOf(d *zones.Decision) (site string, flags uint8, n int) {
	if len(d.Sites) > 0 {
		site = d.Sites[0]
	}
	if d.Degraded {
		flags |= 1
	}
	if d.AllDown {
		flags |= 2
	}
	return site, flags, len(d.Addrs)
}

// get returns e's variant for d, or nil.
func (vs *variantSet) get(e *entry, d *zones.Decision) *packed {
	if !e.addrs {
		var kb [128]byte
		return vs.byKey[string(decisionKey(kb[:0], *d, false))]
	}
	site, flags, n := variantOf(d)
	for i := range vs.list {
		if v := &vs.list[i]; v.n == n && v.flags == flags && v.site == site {
			return v.p
		}
	}
	return nil
}

// with returns a copy of vs (nil: empty) with p added as e's variant for d.
func (vs *variantSet) with(e *entry, d *zones.Decision, p *packed) *variantSet {
	var n variantSet
	if !e.addrs {
		n.byKey = make(map[string]*packed, 1)
		if vs != nil {
			maps.Copy(n.byKey, vs.byKey)
		}
		var kb [128]byte
		n.byKey[string(decisionKey(kb[:0], *d, false))] = p
		return &n
	}
	if vs != nil {
		n.list = slices.Clone(vs.list)
	}
	site, flags, cnt := variantOf(d)
	n.list = append(n.list, variant{site: site, flags: flags, n: cnt, p: p})
	return &n
}

// count is how many variants vs has.
func (vs *variantSet) count() int {
	if vs == nil {
		return 0
	}
	return len(vs.list) + len(vs.byKey)
}

// variant returns the packed response of service entry e for decision d,
// or nil when no query got that decision yet.
func (c *fastCache) variant(e *entry, d *zones.Decision) *packed {
	if vs := e.variants.Load(); vs != nil {
		return vs.get(e, d)
	}
	return nil
}

// addVariant keeps p as service entry e's response for decision d, while
// the cache's shard (e's key's, of hash h) has room (making room as putH
// does, or a full shard would keep every new decision uncached) and e has
// fewer than maxVariants.
func (c *fastCache) addVariant(h uint64, e *entry, d zones.Decision, p *packed) {
	var kb [128]byte
	k := decisionKey(kb[:0], d, e.addrs)
	size := int64(len(k) + cap(p.wire) + entryOverhead/2)
	s := &c.shards[h%fastShards]
	if s.bytes.Load()+size > c.budget {
		s.mu.Lock()
		for s.bytes.Load()+size > c.budget && len(s.ring) > 1 {
			s.evict()
		}
		s.mu.Unlock()
	}
	e.mu.Lock()
	old := e.variants.Load()
	if !e.evicted && old.count() < maxVariants && s.bytes.Load()+size <= c.budget && (old == nil || old.get(e, &d) == nil) {
		e.variants.Store(old.with(e, &d, p))
		e.size.Add(size)
		s.bytes.Add(size) // the next put in the shard evicts to make room
	}
	e.mu.Unlock()
}

// decisionKey appends to b what names the response a decision makes;
// with addrs, the number of its addresses rather than the addresses.
func decisionKey(b []byte, d zones.Decision, addrs bool) []byte {
	// The state in a byte of its own: as letters before the site's name,
	// a degraded "na" was the key of a healthy "dna".
	var flags byte
	if d.Degraded {
		flags |= 1
	}
	if d.AllDown {
		flags |= 2
	}
	b = append(b, flags)
	if len(d.Sites) > 0 {
		b = append(b, d.Sites[0]...) // the answers counter's label
	}
	b = append(b, 0)
	if addrs {
		return append(b, byte(len(d.Addrs)))
	}
	for _, a := range d.Addrs {
		if a.Is4() {
			x := a.As4()
			b = append(b, x[:]...)
		} else {
			x := a.As16()
			b = append(b, x[:]...)
		}
		b = append(b, '|')
	}
	for _, n := range d.Names[:min(1, len(d.Names))] {
		b = append(b, n...)
	}
	return b
}
