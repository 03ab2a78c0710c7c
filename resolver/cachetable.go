package resolver

import "sync/atomic"

// table is a cache shard's index of entries by key: open addressing over
// atomic slots, read without a lock (a hit costs no atomic write, which a
// read lock did, twice, on a line every core shares) and written under
// the shard's lock. It grows by building a bigger table and swapping it
// in; a reader on the old one sees the entries of the moment it loaded it.
type table struct {
	slots []slot // a power of two
	used  int    // slots not nil (entries and tombstones); under the shard's lock
	live  int    // entries; under the shard's lock
}

// slot holds an entry and a tag of its hash: a probe reads an entry only
// when the tags agree. Without it a miss (every name of a random-name
// flood) read each entry its probe passed, a line anywhere in the heap.
// A writer stores the entry before its tag, so a reader that sees a tag
// sees an entry (one with another tag at worst, which it compares and
// passes); a slot never in use has tag 0.
type slot struct {
	tag atomic.Uint32
	e   atomic.Pointer[entry]
}

// tombstone marks a slot whose entry was removed: probes go on past it.
var tombstone = &entry{}

func newTable(size int) *table { return &table{slots: make([]slot, size)} }

// start is where h's probe begins (the low bits of h pick the shard).
func (t *table) start(h uint64) int { return int(h>>32) & (len(t.slots) - 1) }

// tagOf is h's tag: its low 32 bits but those that pick the shard (the
// probe's start is from the high 32, see start); never 0.
func tagOf(h uint64) uint32 { return uint32(h)&^(fastShards-1) | 1 }

// get returns the entry under key (of hash h), nil if none.
func (t *table) get(key []byte, h uint64) *entry {
	mask := len(t.slots) - 1
	tag := tagOf(h)
	for i, n := t.start(h), 0; n <= mask; i, n = (i+1)&mask, n+1 {
		switch t.slots[i].tag.Load() {
		case 0:
			return nil
		case tag:
			if e := t.slots[i].e.Load(); e != tombstone && e.hash == h && e.key == string(key) {
				return e
			}
		}
	}
	return nil
}

// put adds e (not under its key yet: the caller looked) and returns the
// table to use from now on: t, or a bigger one with e in it.
func (t *table) put(e *entry) *table {
	if 2*(t.used+1) > len(t.slots) {
		size := 16
		for size < 4*(t.live+1) {
			size *= 2 // half full at most after the next doubling of live
		}
		n := newTable(size)
		for i := range t.slots {
			if x := t.slots[i].e.Load(); x != nil && x != tombstone {
				n.insert(x)
			}
		}
		n.insert(e)
		return n
	}
	t.insert(e)
	return t
}

func (t *table) insert(e *entry) {
	mask := len(t.slots) - 1
	for i := t.start(e.hash); ; i = (i + 1) & mask {
		switch x := t.slots[i].e.Load(); x {
		case nil:
			t.used++
			fallthrough
		case tombstone:
			t.slots[i].e.Store(e)
			t.slots[i].tag.Store(tagOf(e.hash)) // after the entry: see slot
			t.live++
			return
		}
	}
}

// remove takes e out. The slot keeps its tag: probes go on past it.
func (t *table) remove(e *entry) {
	mask := len(t.slots) - 1
	for i, n := t.start(e.hash), 0; n <= mask; i, n = (i+1)&mask, n+1 {
		switch x := t.slots[i].e.Load(); x {
		case nil:
			return
		case e:
			t.slots[i].e.Store(tombstone)
			t.live--
			return
		}
	}
}
