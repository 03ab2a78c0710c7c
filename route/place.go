package route

import (
	"net/netip"
	"sync"
	"sync/atomic"

	"github.com/geodns/geodns/geo"
	"github.com/geodns/geodns/zones"
)

// Placing a client — its database record, the matching rule, the sites
// ranked by distance — depends only on the client network, the service
// and the database, not on health or time. Resolvers send the same few
// networks over and over, so placements are kept: a query then skips the
// database lookup and the ranking. A new zone version is a new service
// pointer and a reloaded database a new generation, so nothing stale is
// used; the cache forgets everything when it grows past placeLimit.

const (
	placeShards = 32
	placeLimit  = 1 << 17
)

type placeKey struct {
	svc    *zones.Service
	client netip.Prefix
}

type placement struct {
	gen    uint64
	loc    geo.Location
	groups [][]string // shared, read only
	rule   int        // the matching rule's index, -1 if none
}

type placeCache struct {
	shards [placeShards]struct {
		mu sync.RWMutex
		m  map[placeKey]*placement
	}
	count atomic.Int64
}

func (r *Router) place(svc *zones.Service, client netip.Prefix, addr netip.Addr) *placement {
	gen := r.locGen()
	k := placeKey{svc, client}
	sh := &r.places.shards[shardOf(client)]
	sh.mu.RLock()
	p := sh.m[k]
	sh.mu.RUnlock()
	if p != nil && p.gen == gen {
		return p
	}
	p = &placement{gen: gen}
	located := false
	if r.Loc != nil && addr.IsValid() {
		p.loc, located = r.Loc.Locate(addr)
	}
	p.groups, p.rule = siteGroups(svc, p.loc, located, addr, nil)
	if r.places.count.Add(1) > placeLimit {
		r.places.count.Store(0)
		for i := range r.places.shards {
			s := &r.places.shards[i]
			s.mu.Lock()
			s.m = nil
			s.mu.Unlock()
		}
	}
	sh.mu.Lock()
	if sh.m == nil {
		sh.m = map[placeKey]*placement{}
	}
	sh.m[k] = p
	sh.mu.Unlock()
	return p
}

func shardOf(p netip.Prefix) int {
	b := p.Addr().As16()
	h := uint32(p.Bits())
	for _, x := range b {
		h = h*31 + uint32(x)
	}
	return int(h % placeShards)
}
