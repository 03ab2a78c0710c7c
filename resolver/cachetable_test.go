package resolver

import (
	"fmt"
	"hash/maphash"
	"math/rand/v2"
	"net/netip"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/geodns/geodns/zones"
	"github.com/stretchr/testify/require"
)

// hash is the hash of a cache key (keyHash) made from the key alone, as
// the engine makes it from the name's hash: what the tests use.
func (c *fastCache) hash(key []byte) uint64 {
	n := len(key) - 3
	if key[0] == 0xC0 {
		return keyHash(zones.WireHash(key[1:n]), key[n:], true)
	}
	return keyHash(zones.WireHash(key[:n]), key[n:], false)
}

// get and put are getH and putH for a key whose hash is not at hand:
// what the tests look up and add (the engine passes the hash it made).
func (c *fastCache) get(key []byte) *entry { return c.getH(key, c.hash(key)) }

func (c *fastCache) put(key []byte, e *entry) *entry { return c.putH(key, c.hash(key), e) }

func (c *fastCache) shard(key []byte) *cacheShard { return &c.shards[c.hash(key)%fastShards] }

// TestTableMatchesMap: random puts and removes (growth, tombstones, keys
// whose hashes collide in the low bits) give what a map gives, while
// readers look keys up without a lock (run with -race).
func TestTableMatchesMap(t *testing.T) {
	seed := maphash.MakeSeed()
	var mu sync.Mutex
	var cur atomic.Pointer[table]
	cur.Store(newTable(16))
	model := map[string]*entry{}
	stop := readWhile(2, func(i int) {
		k := []byte(fmt.Sprintf("k%d", i%500))
		if e := cur.Load().get(k, maphash.Bytes(seed, k)); e != nil && e.key != string(k) {
			panic("wrong entry")
		}
	})
	rng := rand.New(rand.NewPCG(1, 2))
	for range 20000 {
		k := fmt.Sprintf("k%d", rng.IntN(500))
		h := maphash.String(seed, k)
		if rng.IntN(8) == 0 {
			h &^= 0xffffffff00000000 // the same probe start for many keys
		}
		mu.Lock()
		t0 := cur.Load()
		if e := model[k]; e != nil && rng.IntN(2) == 0 {
			t0.remove(e)
			delete(model, k)
		} else if e == nil {
			e = &entry{key: k, hash: h}
			if n := t0.put(e); n != t0 {
				cur.Store(n)
			}
			model[k] = e
		}
		tab := cur.Load()
		require.Equal(t, len(model), tab.live)
		require.LessOrEqual(t, 2*tab.used, len(tab.slots), "half full at most")
		mu.Unlock()
	}
	stop()
	tab := cur.Load()
	for k, e := range model {
		require.Same(t, e, tab.get([]byte(k), e.hash), k)
	}
	require.Nil(t, tab.get([]byte("absent"), maphash.String(seed, "absent")))
}

// TestVariantsWhileAdded: writers add more decisions' variants than an
// entry keeps while readers look them up without a lock (run with -race).
// The entry ends with maxVariants variants, each the response first added
// for its decision, charged to the entry and its shard once.
func TestVariantsWhileAdded(t *testing.T) {
	c := newFastCache(nil, 1<<30)
	key := []byte("www.example.com.\x00\x01")
	e := c.put(key, &entry{})
	base, shardBase := e.size.Load(), c.shard(key).bytes.Load()
	decision := func(i int) zones.Decision { return zones.Decision{Sites: []string{fmt.Sprintf("site-%d", i)}} }
	const decisions = 3 * maxVariants
	var first [decisions]atomic.Pointer[packed] // the response each decision's first add offered
	stop := readWhile(2, func(i int) {
		if p := c.variant(e, new(decision(i%decisions))); p != nil && p != first[i%decisions].Load() {
			panic("a variant that was not the first added for its decision")
		}
	})
	var wg sync.WaitGroup
	for w := range 3 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range decisions {
				i := (i + w*maxVariants) % decisions
				p := &packed{wire: make([]byte, 100)}
				if first[i].CompareAndSwap(nil, p) {
					c.addVariant(c.hash(key), e, decision(i), p)
				}
			}
		}()
	}
	wg.Wait()
	stop()
	found := 0
	var charged int64
	for i := range decisions {
		if p := c.variant(e, new(decision(i))); p != nil {
			require.Same(t, first[i].Load(), p)
			found++
			var kb [128]byte
			charged += int64(len(decisionKey(kb[:0], decision(i), false)) + cap(p.wire) + entryOverhead/2)
		}
	}
	require.Equal(t, maxVariants, found)
	require.Equal(t, base+charged, e.size.Load())
	require.Equal(t, shardBase+charged, c.shard(key).bytes.Load())
}

// readWhile runs n readers, each calling read with 0, 1, 2... until the
// returned stop, which waits for them.
func readWhile(n int, read func(i int)) (stop func()) {
	done := make(chan struct{})
	var readers sync.WaitGroup
	for range n {
		readers.Add(1)
		go func() {
			defer readers.Done()
			for i := 0; ; i++ {
				select {
				case <-done:
					return
				default:
				}
				read(i)
			}
		}()
	}
	return func() { close(done); readers.Wait() }
}

// TestVariantsByState: decisions that differ only in state (degraded, all
// down) or site get variants of their own, for address entries and
// others; a site named like another's state and name ("dna", degraded
// "na") is no exception.
func TestVariantsByState(t *testing.T) {
	c := newFastCache(nil, 1<<30)
	addr := netip.MustParseAddr("192.0.2.1")
	for _, addrs := range []bool{true, false} {
		key := fmt.Appendf(nil, "www.example.com.\x00\x01%v", addrs)
		e := c.put(key, &entry{addrs: addrs})
		ds := []zones.Decision{
			{Sites: []string{"na"}, Addrs: []netip.Addr{addr}},
			{Sites: []string{"na"}, Addrs: []netip.Addr{addr}, Degraded: true},
			{Sites: []string{"dna"}, Addrs: []netip.Addr{addr}},
			{Sites: []string{"xna"}, Addrs: []netip.Addr{addr}},
			{Sites: []string{"na"}, Addrs: []netip.Addr{addr}, AllDown: true},
			{Sites: []string{"na"}, Addrs: []netip.Addr{addr}, AllDown: true, Degraded: true},
			{Sites: []string{"na"}, Addrs: []netip.Addr{addr, addr}},
		}
		ps := make([]*packed, len(ds))
		for i, d := range ds {
			require.Nil(t, c.variant(e, &d), "%v %d", addrs, i)
			ps[i] = &packed{wire: make([]byte, 10)}
			c.addVariant(c.hash(key), e, d, ps[i])
		}
		for i, d := range ds {
			require.Same(t, ps[i], c.variant(e, &d), "%v %d", addrs, i)
		}
	}
}
