package dnssec

import (
	"bytes"
	"hash/maphash"
	"slices"
	"sync"
	"sync/atomic"

	"github.com/miekg/dns"
)

// sigCache holds the signatures of RRsets, at most a budget of bytes. An
// entry is found by its signing state and the RRset's content; it keeps
// the RRset so that a new signing window can re-sign it ahead of use. Each
// shard evicts with CLOCK, as the resolver's answer cache does.
type sigCache struct {
	seed   maphash.Seed
	budget int64 // per shard
	shards [sigShards]sigShard
}

const (
	sigShards = 16
	// sigOverhead is what an entry costs besides its key, RRset and
	// signatures (an estimate on the high side).
	sigOverhead = 256
)

type sigShard struct {
	mu    sync.Mutex
	m     map[string]*sigEntry
	ring  []*sigEntry
	hand  int
	bytes int64
	_     [40]byte
}

type sigEntry struct {
	key   string
	state uint64 // the signing state (zone and window) that made sigs
	zone  string
	rrset []dns.RR
	sigs  []dns.RR
	size  int64
	slot  int
	ref   atomic.Bool
}

func newSigCache(budget int64) *sigCache {
	c := &sigCache{seed: maphash.MakeSeed(), budget: max(budget/sigShards, 4096)}
	for i := range c.shards {
		c.shards[i].m = map[string]*sigEntry{}
	}
	return c
}

func (c *sigCache) shard(key []byte) *sigShard {
	return &c.shards[maphash.Bytes(c.seed, key)%sigShards]
}

func (c *sigCache) get(key []byte) *sigEntry {
	s := c.shard(key)
	s.mu.Lock()
	e := s.m[string(key)]
	s.mu.Unlock()
	if e != nil && !e.ref.Load() {
		e.ref.Store(true)
	}
	return e
}

// put keeps e under key, evicting until it fits; an entry larger than a
// shard is not kept.
func (c *sigCache) put(key []byte, e *sigEntry) {
	e.size = int64(sigOverhead + 2*len(key))
	for _, rr := range e.sigs {
		e.size += int64(dns.Len(rr)) * 2
	}
	if e.size > c.budget {
		return
	}
	s := c.shard(key)
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.m[string(key)]; ok {
		return
	}
	for s.bytes+e.size > c.budget && len(s.ring) > 0 {
		s.evict()
	}
	e.key = string(key)
	e.slot = len(s.ring)
	s.ring = append(s.ring, e)
	s.m[e.key] = e
	s.bytes += e.size
}

func (s *sigShard) evict() {
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
		s.remove(e)
		return
	}
}

func (s *sigShard) remove(e *sigEntry) {
	last := len(s.ring) - 1
	s.ring[e.slot] = s.ring[last]
	s.ring[e.slot].slot = e.slot
	s.ring[last] = nil
	s.ring = s.ring[:last]
	delete(s.m, e.key)
	s.bytes -= e.size
}

// entries returns the entries made by signing state id.
func (c *sigCache) entries(id uint64) []*sigEntry {
	var out []*sigEntry
	for i := range c.shards {
		s := &c.shards[i]
		s.mu.Lock()
		for _, e := range s.ring {
			if e.state == id {
				out = append(out, e)
			}
		}
		s.mu.Unlock()
	}
	return out
}

// drop removes the entries of signing state id: the state is gone.
func (c *sigCache) drop(id uint64) {
	for i := range c.shards {
		s := &c.shards[i]
		s.mu.Lock()
		for j := 0; j < len(s.ring); {
			if e := s.ring[j]; e.state == id {
				s.remove(e)
				continue
			}
			j++
		}
		s.mu.Unlock()
	}
}

// bytes returns what the cache holds, as budgeted.
func (c *sigCache) bytes() int64 {
	var n int64
	for i := range c.shards {
		s := &c.shards[i]
		s.mu.Lock()
		n += s.bytes
		s.mu.Unlock()
	}
	return n
}

// appendKey appends the cache key of rrset signed by state id: the id,
// then the records in wire form with their owner in lower case, in
// canonical order (RFC 4034 6.3). Records that differ only in the case of
// their owner (compared without case, RFC 4034 6.2) or in their order (a
// service's rotated addresses) share signatures.
func appendKey(b []byte, id uint64, rrset []dns.RR) ([]byte, bool) {
	for i := 0; i < 8; i++ {
		b = append(b, byte(id>>(8*i)))
	}
	start := len(b)
	var ends [16]int
	sorted := len(rrset) <= len(ends)
	for k, rr := range rrset {
		n := len(b)
		l := dns.Len(rr)
		b = append(b, make([]byte, l)...)
		end, err := dns.PackRR(rr, b, n, nil, false)
		if err != nil {
			return nil, false
		}
		b = b[:end]
		for o := n; o < end && b[o] != 0; o += int(b[o]) + 1 {
			for i := o + 1; i <= o+int(b[o]) && i < end; i++ {
				if c := b[i]; c >= 'A' && c <= 'Z' {
					b[i] = c + 'a' - 'A'
				}
			}
		}
		if sorted {
			ends[k] = end
		}
	}
	if sorted && len(rrset) > 1 {
		// Sort the records (few: insertion order of their byte strings).
		recs := make([][]byte, len(rrset))
		prev := start
		for k := range rrset {
			recs[k] = append([]byte(nil), b[prev:ends[k]]...)
			prev = ends[k]
		}
		slices.SortFunc(recs, bytes.Compare)
		b = b[:start]
		for _, r := range recs {
			b = append(b, r...)
		}
	}
	return b, true
}
