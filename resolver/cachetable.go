package resolver

import "sync/atomic"

// table is a cache shard's index of entries by key: open addressing over
// atomic slots, read without a lock (a hit costs no atomic write, which a
// read lock did, twice, on a line every core shares) and written under
// the shard's lock. It grows by building a bigger table and swapping it
// in; a reader on the old one sees the entries of the moment it loaded it.
type table struct {
	slots []atomic.Pointer[entry] // a power of two
	used  int                     // slots not nil (entries and tombstones); under the shard's lock
	live  int                     // entries; under the shard's lock
}

// tombstone marks a slot whose entry was removed: probes go on past it.
var tombstone = &entry{}

func newTable(size int) *table { return &table{slots: make([]atomic.Pointer[entry], size)} }

// start is where h's probe begins (the low bits of h pick the shard).
func (t *table) start(h uint64) int { return int(h>>32) & (len(t.slots) - 1) }

// get returns the entry under key (of hash h), nil if none.
func (t *table) get(key []byte, h uint64) *entry {
	mask := len(t.slots) - 1
	for i, n := t.start(h), 0; n <= mask; i, n = (i+1)&mask, n+1 {
		e := t.slots[i].Load()
		if e == nil {
			return nil
		}
		if e != tombstone && e.hash == h && e.key == string(key) {
			return e
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
			if x := t.slots[i].Load(); x != nil && x != tombstone {
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
		switch x := t.slots[i].Load(); x {
		case nil:
			t.used++
			fallthrough
		case tombstone:
			t.slots[i].Store(e)
			t.live++
			return
		}
	}
}

// remove takes e out.
func (t *table) remove(e *entry) {
	mask := len(t.slots) - 1
	for i, n := t.start(e.hash), 0; n <= mask; i, n = (i+1)&mask, n+1 {
		switch x := t.slots[i].Load(); x {
		case nil:
			return
		case e:
			t.slots[i].Store(tombstone)
			t.live--
			return
		}
	}
}
