package zones

import (
	"hash/maphash"
	"sync/atomic"

	"github.com/miekg/dns"
)

// A random-subdomain flood asks for names that do not exist, each once.
// The resolver answers them from a template per closest encloser, so what
// is left per query is deciding that the name is absent and finding its
// encloser. Doing that on the text form cost converting the query's wire
// name to text, then a string hash and map probe per zone suffix and per
// label below the apex: half of the absent path's time. The wire index
// decides it on the lower-case wire name the query already holds: one
// hash and a probe or two in a table of 4-byte words per label below the
// apex.
//
// The index holds 30 bits of each name's hash, not names: a name that
// does not exist and shares them with one probed on its way (about one
// absent name in 400 million) looks like one that does, never the
// reverse. Taken for the name asked, that sends the query to the
// resolver, which answers it as it would anyway. Taken for a name above
// it, AbsentWire reports a deeper encloser, or misses a cut or DNAME
// above the name; but the resolver makes an encloser's template only
// after the text lookup (Absent) finds names below it absent with that
// encloser, so that ends in a template that resolves each name, not in a
// wrong answer.

// wireSeed is the seed of the index's hashes: one per process, as the
// index is never written to disk.
var wireSeed = maphash.MakeSeed()

// WireHash returns the hash of the lower-case wire name name as the wire
// index keeps it. The resolver's cache derives its keys' hashes from it,
// so that a query's name is hashed once for the cache and the index.
func WireHash(name []byte) uint64 { return maphash.Bytes(wireSeed, name) }

// The low two bits of a slot are its node's flags; the rest is the top of
// its name's hash (the bottom picks the slot). A slot of 0 is empty.
const (
	wireCut   = 1 // the node is a delegation point (node.cut)
	wireDNAME = 2 // the node holds a DNAME (node.dname)
	wireFlags = wireCut | wireDNAME
)

// wireIndex is a zone's node names, lower-case wire form, hashed with their
// flags: an open-addressed table, linear probing, at most half full so a
// name that is not there is known after two or three probes on average.
// 4 bytes a slot, 8 to 16 a name (a million-name zone: 8 MiB).
type wireIndex struct {
	slots []uint32
	mask  uint64
}

// newWireIndex returns an empty index for n names.
func newWireIndex(n int) wireIndex {
	size := 4
	for size < 2*n {
		size *= 2
	}
	return wireIndex{slots: make([]uint32, size), mask: uint64(size - 1)}
}

// wireHashKey is the part of a slot the hash h must match.
func wireHashKey(h uint64) uint32 {
	if k := uint32(h>>32) &^ wireFlags; k != 0 {
		return k
	}
	return wireFlags + 1 // not 0, which marks an empty slot
}

// add puts a name of hash h and flags in the index. Safe to call from
// several goroutines at once (the compiler's workers); the zone is
// published after they are done, so lookups read the slots plainly.
func (x *wireIndex) add(h uint64, flags uint32) {
	v := wireHashKey(h) | flags
	for i := h & x.mask; ; i = (i + 1) & x.mask {
		if atomic.CompareAndSwapUint32(&x.slots[i], 0, v) {
			return
		}
	}
}

// get returns the flags of the name of hash h, and whether it is there.
func (x *wireIndex) get(h uint64) (flags uint32, ok bool) {
	k := wireHashKey(h)
	for i := h & x.mask; ; i = (i + 1) & x.mask {
		v := x.slots[i]
		if v == 0 {
			return 0, false
		}
		if v&^wireFlags == k {
			return v & wireFlags, true
		}
	}
}

// indexWire builds the zone's wire index, once every node is made (the
// services' owners are made last) and its cut and DNAME bits are set.
func (c *compiler) indexWire() {
	z := c.z
	z.wire = newWireIndex(len(c.all))
	c.shares(func(nodes []*node) [2]uint64 {
		var buf [256]byte
		for _, n := range nodes {
			var flags uint32
			if n.cut {
				flags |= wireCut
			}
			if n.dname {
				flags |= wireDNAME
			}
			z.wire.add(WireHash(appendWire(buf[:0], n.name)), flags)
		}
		return [2]uint64{}
	})
}

// appendWire appends the wire form of the canonical name s to b, or
// nothing when s is not a name (a label over 63 octets, the name over
// 255, a bad escape).
func appendWire(b []byte, s string) []byte {
	if s == "." {
		return append(b, 0)
	}
	if !plainName(s) {
		var buf [256]byte
		n, err := dns.PackDomainName(s, buf[:], 0, nil, false)
		if err != nil {
			return b
		}
		return append(b, buf[:n]...)
	}
	at, start := len(b), 0
	for i := 0; i < len(s); i++ {
		if s[i] == '.' {
			if i-start > 63 {
				return b[:at]
			}
			b = append(append(b, byte(i-start)), s[start:i]...)
			start = i + 1
		}
	}
	if len(b)-at >= 255 {
		return b[:at]
	}
	return append(b, 0)
}

// AbsentWire is Absent for the lower-case wire name name (uncompressed,
// ending with the root label, in the zone) of hash h (WireHash): whether
// it has no node of its own and no delegation or DNAME above it, and if
// so the length of its closest encloser's wire form, the last encWire
// octets of name, and that suffix's hash. Like Absent but for two names
// of equal hash (see the wire index).
func (z *Zone) AbsentWire(name []byte, h uint64) (encWire int, encHash uint64, ok bool) {
	below := len(name) - len(z.originWire) // labels starting before this are below the apex
	if below <= 0 {
		return 0, 0, false // the apex, which exists
	}
	if z.apex.dname {
		return 0, 0, false // a DNAME at the apex: every name below is substituted
	}
	var starts [128]uint8 // label starts below the apex; a name has at most 127 labels and 255 octets
	k := 0
	for off := 0; off < below; off += int(name[off]) + 1 {
		starts[k] = uint8(off)
		k++
	}
	enc, encHash := len(z.originWire), z.originHash
	for i := k - 1; i >= 0; i-- {
		suffix := name[starts[i]:]
		sh := h
		if i > 0 {
			sh = WireHash(suffix)
		}
		flags, found := z.wire.get(sh)
		if !found {
			return enc, encHash, true
		}
		if i == 0 || flags != 0 {
			return 0, 0, false // the name itself, or a cut or DNAME above it
		}
		enc, encHash = len(suffix), sh
	}
	return 0, 0, false
}
