package route

import (
	"net/netip"
	"sync/atomic"
	"time"
	"unsafe"

	"github.com/geodns/geodns/geo"
	"github.com/geodns/geodns/zones"
)

// The decision memo. A decision depends on the client network, the
// service's plan and where the database places the client; resolvers send
// the same few networks over and over, so it is kept: a repeated query
// costs a slot read, not a database lookup, a ranking and a walk over the
// sites. What it keys on says when it is stale: the service (a new zone
// version is a new pointer), the client network and family, the locator
// generation, and the plan (health, operator state and dials: the plan
// loop publishes a new one on every change). Decisions that also depend on
// the time (a return ramp in progress) or on the demand estimate (a
// spillover spread) keep only the placement.
//
// The memo is a fixed table of memoSlots slots, each one entry, in sets
// of memoWays, replaced on collision: it never grows with the number of clients (a flood of
// 200,000 distinct ECS networks churns it; it costs at most its slots'
// entries, some memoEntryBytes each, about 5 MB).
const (
	memoBits       = 13
	memoSlots      = 1 << memoBits
	memoWaysBits   = 2
	memoWays       = 1 << memoWaysBits
	memoEntryBytes = 600 // a memoEntry (480), its site groups and answering sites, roughly
)

type memoKey struct {
	svc    *zones.Service
	client netip.Prefix
	v6     bool
}

// placement is where a client of a network is for a service: what of its
// database record routing reads, the matching rule, the sites ranked.
type placement struct {
	lat, lon  float64
	hasCoords bool
	network   netip.Prefix // the database network that placed the client
	groups    [][]string   // shared, read only
	rule      int          // the matching rule's index, -1 if none
	// approx: placed by a site map, which keeps no coordinates: lat and
	// lon are unknown until Router.exact locates the client.
	approx bool
}

// location is what decide reads of the client's location.
func (p *placement) location() geo.Location {
	return geo.Location{Lat: p.lat, Lon: p.lon, HasCoords: p.hasCoords, Network: p.network}
}

// memoEntry is immutable once stored.
type memoEntry struct {
	key   memoKey
	gen   uint64 // the locator generation it was placed by
	place placement
	// pl is the plan the decision d was made from, with its addresses and
	// names gathered in ans (fill rotates them in per query); nil: the
	// decision is not kept.
	pl  *plan
	d   Decision
	ans answer
}

type memo struct {
	sets atomic.Pointer[[memoSlots / memoWays]memoSet] // allocated at first use
}

// memoSet is the slots a key may take: a few busy networks whose keys
// collide do not evict each other on every query (with one slot a key,
// 1,000 networks had ~6 % of them in colliding pairs; with two, 3-5 % in
// sets of three or more).
type memoSet [memoWays]atomic.Pointer[memoEntry]

// setOf returns the set of the key (svc, client, v6). The key's fields
// are passed apart: a memoKey built to pass was copied by halves that the
// copy's wide loads could not take from the store buffer (the hottest
// instructions of a memo hit).
func (m *memo) setOf(svc *zones.Service, client netip.Prefix, v6 bool) *memoSet {
	s := m.sets.Load()
	if s == nil {
		m.sets.CompareAndSwap(nil, new([memoSlots / memoWays]memoSet))
		s = m.sets.Load()
	}
	return &s[memoSetIndex(svc, client, v6)]
}

// find returns the key's entry in set, if it holds one.
func (set *memoSet) find(svc *zones.Service, client netip.Prefix, v6 bool) *memoEntry {
	for i := range set {
		if e := set[i].Load(); e != nil && e.key.svc == svc && e.key.client == client && e.key.v6 == v6 {
			return e
		}
	}
	return nil
}

// put stores e in set: over an entry of its key, else in the first empty
// slot, else over the entry in slot evict mod memoWays.
func (set *memoSet) put(e *memoEntry, evict uint32) {
	empty := -1
	for i := range set {
		switch old := set[i].Load(); {
		case old == nil:
			if empty < 0 {
				empty = i
			}
		case old.key == e.key:
			set[i].Store(e)
			return
		}
	}
	if empty >= 0 {
		set[empty].Store(e)
		return
	}
	set[evict%memoWays].Store(e)
}

// memoSetIndex is a key's set number: multiplicative hashing, whose top
// bits depend on every bit of the key (the service by its address, which
// the collector does not move). The address by key, which reads an IPv4
// one by As4: As16's array, copied whole, stalled on its two halves' stores
// (a quarter of a memo hit's time).
func memoSetIndex(svc *zones.Service, client netip.Prefix, v6 bool) uint64 {
	hi, lo := key(client.Addr())
	h := (hi ^ uint64(uintptr(unsafe.Pointer(svc)))) * 0x9e3779b97f4a7c15
	h = (h ^ lo ^ uint64(client.Bits())<<1 ^ uint64(b2i(v6))) * 0xbf58476d1ce4e5b9
	return h >> (64 - memoBits + memoWaysBits)
}

// place places a client network for svc: the database lookup and the
// ranking, done once per network while its memo entry lasts.
func (r *Router) place(pl *plan, svc *zones.Service, client netip.Prefix) placement {
	var (
		p       placement
		loc     geo.Location
		located bool
		addr    = client.Addr().Unmap()
	)
	if r.Loc != nil && addr.IsValid() {
		loc, located = r.Loc.Locate(addr)
		if pl.idx.placed.Add(1) == mapAfter {
			r.Changed() // the plan loop has the map compiled
		}
	}
	p.groups, p.rule = siteGroups(svc, loc, located, addr, nil)
	// Only what decide reads: names would keep the entry larger.
	p.lat, p.lon, p.hasCoords, p.network = loc.Lat, loc.Lon, loc.HasCoords, loc.Network
	return p
}

// now is the router's clock.
func (r *Router) now() time.Time {
	if r.Now != nil {
		return r.Now()
	}
	return time.Now()
}

// rampsOver reports whether no return ramp of svc in plan pl can be in
// progress now, for a memo entry made from pl when none was: with the
// system clock time only moves on, so that stays true; a test's clock is
// asked again.
func (r *Router) rampsOver(svc *zones.Service, pl *plan) bool {
	if svc.ReturnRamp <= 0 || pl.last.IsZero() || r.Now == nil {
		return true
	}
	return r.Now().Sub(pl.last) >= svc.ReturnRamp
}
