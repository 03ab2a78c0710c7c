package geo

import (
	"iter"
	"net/netip"

	"github.com/oschwald/maxminddb-golang/v2"
)

// NoPlace is what a Spans classifier returns for a location that should
// count as not placed; Spans never returns it as a class.
const NoPlace = ^uint32(0)

// Spans walks the address space of one family (IPv6 when v6) as Locate
// places it, for compiling what derives from locations. classify is called
// once per database record, with its location (Network and Source unset),
// and returns the record's class; fn is called, in address order, for
// every run of addresses placed by records of one class. Addresses in no
// run are not located. It follows Locate: where databases overlap, the
// first that places an address wins, and a record that fails to decode or
// has neither coordinates nor a country places nothing. fn returning false
// stops the walk.
//
// It walks every network of the databases (DB-IP City: 6.3 M IPv4 with
// 425 k records, 8.4 M IPv6), seconds of work: it is for compiling, off
// the query path. It returns the generation of the databases it walked.
func (l *Locator) Spans(v6 bool, classify func(*Location) uint32, fn func(first, last netip.Addr, class uint32) bool) uint64 {
	gen := l.gen.Load() // before the set: a reload in between makes the result look stale, not fresh
	var cs []*spanCursor
	classes := map[uint64]uint32{} // by record (database, offset); NoPlace: places nothing
	var dbs []*db
	for _, d := range *l.dbs.Load() {
		if !v6 || !d.ipv4 {
			dbs = append(dbs, d)
		}
	}
	nets := func(d *db) iter.Seq[maxminddb.Result] {
		if !v6 {
			return d.r.NetworksWithin(netip.PrefixFrom(netip.IPv4Unspecified(), 0)) // an IPv6 tree's IPv4 part only
		}
		return d.r.Networks()
	}
	// The walk reads every page of the databases: it leaves resident only
	// what lookups use, and holds no more than a part at any time (the
	// peak RSS of a server counts too).
	drop := func() {
		for _, d := range dbs {
			dropPages(d.data, d.shared)
		}
	}
	defer drop()
	// going is called for the n-th network: false once the databases are
	// replaced (their memory goes a minute after, retire).
	going := func(n int) bool {
		if n%(1<<20) == 0 {
			drop()
		}
		return n%(1<<16) != 0 || l.gen.Load() == gen
	}
	if len(dbs) == 1 {
		// One database: its networks in turn, without the merge's
		// coroutine switch per network.
		c := &spanCursor{d: dbs[0], v6: v6, classes: classes, classify: classify}
		n := 0
		for res := range nets(dbs[0]) {
			if n++; !going(n) {
				break
			}
			if c.take(res) && !fn(c.first, c.last, c.class) {
				break
			}
		}
		return gen
	}
	for i, d := range dbs {
		next, stop := iter.Pull(nets(d))
		defer stop()
		c := &spanCursor{next: next, d: d, id: uint64(i) << 48, v6: v6, classes: classes, classify: classify}
		c.advance()
		cs = append(cs, c)
	}
	pos := netip.IPv4Unspecified()
	if v6 {
		pos = netip.IPv6Unspecified()
	}
	for n := 1; ; n++ {
		if !going(n) {
			return gen
		}
		best := -1
		for i, c := range cs {
			for c.ok && c.last.Less(pos) {
				c.advance()
			}
			if !c.ok {
				continue
			}
			if c.first.Less(pos) {
				c.first = pos
			}
			if best < 0 || c.first.Less(cs[best].first) {
				best = i // on a tie the earlier database stays
			}
		}
		if best < 0 {
			return gen
		}
		b := cs[best]
		end := b.last
		for _, c := range cs[:best] {
			if c.ok && !end.Less(c.first) {
				end = c.first.Prev() // an earlier database takes over from there
			}
		}
		if !fn(b.first, end, b.class) {
			return gen
		}
		if pos = end.Next(); !pos.IsValid() || pos.Is4() != !v6 {
			return gen // the end of the family's space
		}
	}
}

// spanCursor walks one database's networks of one family.
type spanCursor struct {
	next        func() (maxminddb.Result, bool)
	d           *db
	id          uint64 // the database's part of a record's key
	v6          bool
	ok          bool // first..last is a network that places
	first, last netip.Addr
	class       uint32
	classes     map[uint64]uint32
	classify    func(*Location) uint32
	// The last record and its class: neighbouring networks often share
	// one (DB-IP: 6.3 M networks, 3.7 M runs of one record).
	lastRec   uint64
	lastClass uint32
}

// advance moves to the next network that places an address.
func (c *spanCursor) advance() {
	for {
		res, ok := c.next()
		if !ok {
			c.ok = false
			return
		}
		if c.take(res) {
			return
		}
	}
}

// take makes res the cursor's network if it places an address.
func (c *spanCursor) take(res maxminddb.Result) bool {
	p := res.Prefix()
	if !p.IsValid() || p.Addr().Is4() == c.v6 || res.Err() != nil || !res.Found() {
		return false
	}
	rec := c.id | uint64(res.Offset()) + 1 // never 0, which lastRec starts at
	cls := c.lastClass
	if rec != c.lastRec {
		var seen bool
		if cls, seen = c.classes[rec]; !seen {
			// Decoded here, not through d.decoded: a walk over every
			// record would only churn the lookups' cache.
			l, err := c.d.decode(res)
			cls = NoPlace
			if err == nil && l.Known() {
				cls = c.classify(&l)
			}
			c.classes[rec] = cls
		}
		c.lastRec, c.lastClass = rec, cls
	}
	if cls == NoPlace {
		return false // Locate goes on to the next database
	}
	c.ok, c.first, c.last, c.class = true, p.Masked().Addr(), lastAddr(p), cls
	return true
}

// lastAddr is the last address of p.
func lastAddr(p netip.Prefix) netip.Addr {
	b := p.Addr().As16()
	bits := p.Bits()
	if p.Addr().Is4() {
		bits += 96
	}
	for i := range b {
		switch {
		case bits >= 8*(i+1):
		case bits <= 8*i:
			b[i] = 0xff
		default:
			b[i] |= 0xff >> (bits - 8*i)
		}
	}
	a := netip.AddrFrom16(b)
	if p.Addr().Is4() {
		return a.Unmap()
	}
	return a
}
