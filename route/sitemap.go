package route

import (
	"context"
	"maps"
	"math/bits"
	"net/netip"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/geodns/geodns/geo"
	"github.com/geodns/geodns/zones"
)

// Site maps: where a service's sites rank, compiled for the whole address
// space, as gdnsd compiles its datacenter maps. Placing a client network
// the first time otherwise costs a walk down the GeoIP database's tree
// (tens of cache misses in DB-IP's 63 MB) and a ranking of the sites; with
// 200,000 client networks in turn no memo of decisions holds them. But a
// service ranks its sites in only a few orders: the databases' millions of
// networks fall into a few hundred classes (same rule, same site groups),
// and neighbouring networks mostly share one. A site map is the address
// space cut into runs of one class: a lookup is a binary search in a
// small table, and a decision is made once per class, not per network.
//
// What a map does not keep is the client's coordinates. A decision needs
// them only for a return ramp's detour rule; the router then locates the
// client after all (placement.exact). Query logs ask for them (Where).
//
// Maps are compiled off the query path, by the plan loop's map worker,
// once per distinct (sites, rules, default order) and database generation:
// services that rank alike share one. A map is compiled only for a
// service whose clients come from many networks: after mapAfter of them
// were placed by a database lookup (a memo miss each). A service asked
// from a few networks is served by the memo as well, and does not pay the
// walk (seconds of CPU) nor the map's memory (DB-IP: ~10 MB, and some
// 70 MB more at the peak of the walk). Until a service's map is ready, or
// when its database was reloaded since, the service routes as before
// (memo, database lookup). Services with cidr rules have no map: their
// rules cut the address space along networks the databases know nothing
// of.

// siteMap is one compiled map.
type siteMap struct {
	gen     uint64 // the locator generation it was compiled from
	classes []mapClass
	fam     [2]spanTable // IPv4, IPv6
}

// mapClass is what routing reads of a class of clients: the placement,
// less the coordinates.
type mapClass struct {
	groups    [][]string
	rule      int
	hasCoords bool
}

// spanTable is one family's address space as runs of one class: run i
// starts at (hi[i], lo[i]) and ends where run i+1 starts. Addresses are
// 128-bit numbers. IPv4 ones are in the top 32 bits of hi, and the low 32
// bits hold the run's class (lo and cls are nil): one load gives a
// lookup both, where a separate class array cost the ecs200k cell a
// cache miss per query (the table is megabytes; with 200,000 client
// networks in turn its lines are rarely cached).
//
// bucket has an entry per value of the top 16 address bits. Where one run
// covers the whole bucket, the entry is the answer itself (most of
// DB-IP's buckets for a service of a few sites): bit 0 set, the scope in
// bits 8-15, the class in bits 32-63. The scope is the same for every
// address of such a bucket: the run holds the bucket's /16, so the widest
// prefix in it is at most 16 bits long and depends on those bits only.
// Otherwise the entry is the bucket's runs, first<<1 | end<<32 (run first
// is the first starting in the bucket), searched in turn.
type spanTable struct {
	hi, lo []uint64
	cls    []uint32 // IPv6
	bucket []uint64 // 1<<16 entries
}

const (
	bucketWhole = 1         // the bucket's entry is its class and scope
	v4Class     = 1<<32 - 1 // an IPv4 run's class, in its hi
)

// key is addr as a 128-bit number.
func key(addr netip.Addr) (hi, lo uint64) {
	if addr.Is4() {
		b := addr.As4()
		return uint64(b[0])<<56 | uint64(b[1])<<48 | uint64(b[2])<<40 | uint64(b[3])<<32, 0
	}
	b := addr.As16()
	for i := range 8 {
		hi = hi<<8 | uint64(b[i])
		lo = lo<<8 | uint64(b[8+i])
	}
	return hi, lo
}

func less(h1, l1, h2, l2 uint64) bool { return h1 < h2 || h1 == h2 && l1 < l2 }

// lookup returns the class of addr (of the table's family) and the
// length of the widest prefix around addr that lies within its run: every
// address in it is of the same class.
func (t *spanTable) lookup(addr netip.Addr) (cls uint32, scope int) {
	h, l := key(addr)
	e := t.bucket[h>>48]
	if e&bucketWhole != 0 {
		return uint32(e >> 32), int(uint8(e >> 8))
	}
	return t.search(h, l, int(uint32(e)>>1), int(e>>32))
}

// search is lookup in the runs [i, j) of addr's bucket (h, l).
func (t *spanTable) search(h, l uint64, i, j int) (cls uint32, scope int) {
	// The last run starting at or before addr: in the bucket, else the run
	// before it (which reaches into the bucket).
	if t.lo == nil {
		hm := h | v4Class // not below a run starting at addr, whatever its class
		for i < j {
			m := int(uint(i+j) >> 1)
			if hm < t.hi[m] {
				j = m
			} else {
				i = m + 1
			}
		}
	} else {
		for i < j {
			m := int(uint(i+j) >> 1)
			if less(h, l, t.hi[m], t.lo[m]) {
				j = m
			} else {
				i = m + 1
			}
		}
	}
	k := i - 1
	sh, sl, c := t.run(k)
	eh, el := ^uint64(0), ^uint64(0)
	if k+1 < len(t.hi) {
		eh, el, _ = t.run(k + 1)
		if el == 0 {
			eh--
		}
		el--
	}
	// The prefix of addr of length p lies in [start, end] from
	// p1 = min(c1+1, 128-tz(start)) on (its first address is not below
	// start) and p2 = min(c2+1, 128-to(end)) on (its last is not above
	// end), c1 and c2 the bits addr shares with start and end.
	p1 := min(common(h, l, sh, sl)+1, 128-tz(sh, sl))
	p2 := min(common(h, l, eh, el)+1, 128-tz(^eh, ^el))
	return c, max(p1, p2)
}

// run is run i: its start and class.
func (t *spanTable) run(i int) (hi, lo uint64, cls uint32) {
	if t.lo == nil {
		return t.hi[i] &^ v4Class, 0, uint32(t.hi[i])
	}
	return t.hi[i], t.lo[i], t.cls[i]
}

// runs is how many runs the table has.
func (t *spanTable) runs() int { return len(t.hi) }

// finish indexes the runs by bucket, once they are all added (hi, lo,
// cls); for IPv4 it moves the classes into hi.
func (t *spanTable) finish() {
	if t.lo == nil {
		for i, c := range t.cls {
			t.hi[i] |= uint64(c)
		}
		t.cls = nil
	}
	t.bucket = make([]uint64, 1<<16)
	r := 0
	for b := range 1 << 16 {
		first := r
		for r < len(t.hi) && t.hi[r]>>48 == uint64(b) {
			r++
		}
		t.bucket[b] = uint64(first)<<1 | uint64(r)<<32
		whole := r == first // no run starts in the bucket: the one before covers it
		if r == first+1 {
			sh, sl, _ := t.run(first)
			whole = sh == uint64(b)<<48 && sl == 0 // one starts at its first address
		}
		if whole {
			c, scope := t.search(uint64(b)<<48, 0, first, r)
			t.bucket[b] = bucketWhole | uint64(scope)<<8 | uint64(c)<<32
		}
	}
}

// common is how many leading bits two 128-bit numbers share.
func common(h1, l1, h2, l2 uint64) int {
	if h1 != h2 {
		return bits.LeadingZeros64(h1 ^ h2)
	}
	return 64 + bits.LeadingZeros64(l1^l2)
}

// tz is the trailing zero bits of a 128-bit number.
func tz(h, l uint64) int {
	if l != 0 {
		return bits.TrailingZeros64(l)
	}
	return 64 + bits.TrailingZeros64(h)
}

// lookup places addr: its class and how far that holds (a prefix length
// of addr's family).
func (m *siteMap) lookup(addr netip.Addr) (cls uint32, scope int) {
	return m.fam[b2i(!addr.Is4())].lookup(addr)
}

// place places addr (valid, unmapped) by the map: it returns its class
// and sets p to the placement, without coordinates (in place: the
// placement is a hundred bytes, copied twice per query when returned).
func (m *siteMap) place(addr netip.Addr, p *placement) uint32 {
	cls, bits := m.lookup(addr)
	c := &m.classes[cls]
	// Field by field: a placement literal was built aside and copied in by
	// wide loads the store buffer could not forward (half of place's time).
	p.lat, p.lon, p.hasCoords = 0, 0, c.hasCoords
	p.network = netip.PrefixFrom(addr, bits)
	p.groups, p.rule, p.approx = c.groups, c.rule, true
	return cls
}

// siteMap returns the site map of pl's service if it has one for the
// databases in use, else nil.
func (r *Router) siteMap(pl *plan) *siteMap {
	if m := pl.idx.smap.Load(); m != nil && m.gen == r.locGen() {
		return m
	}
	return nil
}

// mapSignature names what a service's map depends on, equal for services
// that rank alike; "" for a service without a map (one site, or cidr
// rules).
func mapSignature(svc *zones.Service) string {
	if len(svc.Sites) < 2 {
		return ""
	}
	var b strings.Builder
	for _, s := range svc.Sites {
		b.WriteString(s.Name)
		b.WriteByte('@')
		b.WriteString(strconv.FormatFloat(s.Lat, 'g', -1, 64))
		b.WriteByte(',')
		b.WriteString(strconv.FormatFloat(s.Lon, 'g', -1, 64))
		b.WriteByte(';')
	}
	b.WriteByte('|')
	b.WriteString(strings.Join(svc.SiteOrder, ","))
	for _, r := range svc.Rules {
		if len(r.CIDRs) > 0 {
			return ""
		}
		b.WriteByte('|')
		for _, l := range [][]string{r.Countries, r.Continents, r.Subdivisions, r.Sites} {
			b.WriteString(strings.Join(l, ","))
			b.WriteByte('/')
		}
		if r.Only {
			b.WriteString("only")
		}
	}
	return b.String()
}

// compileMap compiles svc's map from loc's databases. It stops early,
// returning nil, when ctx is done.
func compileMap(ctx context.Context, svc *zones.Service, loc *geo.Locator) *siteMap {
	m := &siteMap{}
	byKey := map[string]uint32{}
	class := func(groups [][]string, rule int, hasCoords bool) uint32 {
		var b strings.Builder
		b.WriteString(strconv.Itoa(rule))
		if hasCoords {
			b.WriteByte('+')
		}
		for _, g := range groups {
			b.WriteByte('|')
			b.WriteString(strings.Join(g, ","))
		}
		k := b.String()
		if c, ok := byKey[k]; ok {
			return c
		}
		c := uint32(len(m.classes))
		byKey[k] = c
		m.classes = append(m.classes, mapClass{groups: groups, rule: rule, hasCoords: hasCoords})
		return c
	}
	// Addresses no database places: the default order (or a rule that asks
	// for nothing a location has).
	g, rule := siteGroups(svc, geo.Location{}, false, netip.Addr{}, nil)
	unplaced := class(g, rule, false)
	var gens [2]uint64
	for f, v6 := range []bool{false, true} {
		t := &m.fam[f]
		next := netip.IPv4Unspecified() // the first address not yet in a run
		if v6 {
			next = netip.IPv6Unspecified()
		}
		more := true // next is an address: the space is not covered to its end
		add := func(first netip.Addr, c uint32) {
			if n := len(t.cls); n > 0 && t.cls[n-1] == c {
				return // the run before goes on
			}
			h, l := key(first)
			t.hi, t.cls = append(t.hi, h), append(t.cls, c)
			if v6 {
				t.lo = append(t.lo, l)
			}
		}
		stopped := false
		classify := func(l *geo.Location) uint32 {
			g, rule := siteGroups(svc, *l, true, netip.Addr{}, nil) // no cidr rules: the address is not read
			return class(g, rule, l.HasCoords)
		}
		gens[f] = loc.Spans(v6, classify, func(first, last netip.Addr, c uint32) bool {
			if ctx.Err() != nil {
				stopped = true
				return false
			}
			if first != next {
				add(next, unplaced) // a gap before this run
			}
			add(first, c)
			next = last.Next()
			more = next.IsValid() && next.Is4() == !v6
			return true
		})
		if stopped {
			return nil
		}
		if more {
			add(next, unplaced)
		}
		t.finish()
	}
	if gens[0] == gens[1] {
		m.gen = gens[0]
	} // else a reload came between the walks: generation 0 is never current, and the map is compiled again
	return m
}

// mapAfter is how many clients of a service are placed by a database
// lookup before its map is compiled: more networks than the memo holds
// (memoSlots) ask it.
const mapAfter = 2 * memoSlots

// classDecisions are a plan's decisions per class of a map, made at the
// first query of each class (and family).
type classDecisions struct {
	m *siteMap
	e []atomic.Pointer[classEntry] // class*2 + family
}

// classEntry is a class's decision in a plan. perNet: the decision
// depends on more than the class (a dial hashes client networks), so the
// class's clients go by network (the memo).
type classEntry struct {
	perNet bool
	d      Decision
	ans    answer
	scope0 bool // the answer is the same for everyone: scope 0
}

// decisions returns pl's decisions for m, made anew when m is.
func (pl *plan) decisions(m *siteMap) *classDecisions {
	if cd := pl.classDec.Load(); cd != nil && cd.m == m {
		return cd
	}
	cd := &classDecisions{m: m, e: make([]atomic.Pointer[classEntry], 2*len(m.classes))}
	pl.classDec.Store(cd) // a race makes two, one of which is kept: both right
	return cd
}

// routeMapped is Route for a client the site map m placed (class cls,
// placement p), into d: false, before any decision, when the client must
// go the other way (by network, still placed by p).
func (r *Router) routeMapped(pl *plan, m *siteMap, cls uint32, p *placement, svc *zones.Service, client netip.Prefix, v6 bool, d *Decision) bool {
	slot := &pl.decisions(m).e[2*int(cls)+b2i(v6)]
	if e := slot.Load(); e != nil {
		if e.perNet || !r.rampsOver(svc, pl) {
			return false
		}
		*d = e.d
		if !e.scope0 {
			d.Scope = min(client.Bits(), p.network.Bits())
		}
		e.ans.fill(d, r.turnFor(&e.ans), svc.Answers)
		return true
	}
	dd, ans, fixed := r.decide(pl, svc, client, v6, p, nil)
	hashed := dd.Why.Bucket >= 0 || dd.Why.Spilled
	switch {
	case fixed && hashed:
		slot.Store(&classEntry{perNet: true})
	case fixed && p.approx:
		e := &classEntry{d: dd, ans: ans, scope0: dd.Scope == 0}
		e.d.Addrs, e.d.Names = nil, nil
		slot.Store(e)
	}
	*d = dd
	ans.fill(d, r.turnFor(&ans), svc.Answers)
	return true
}

// exact locates a placement made from a map, for what needs the client's
// coordinates (a ramp's detour rule).
func (r *Router) exact(p *placement, addr netip.Addr) {
	if !p.approx {
		return
	}
	p.approx = false
	if r.Loc == nil || !addr.IsValid() {
		return
	}
	if loc, _ := r.Loc.Locate(addr); loc.HasCoords {
		p.lat, p.lon = loc.Lat, loc.Lon
	}
}

// Where returns a client's coordinates, for what a decision made from a
// site map does not carry (Why.Mapped): a query log's distance to the site.
func (r *Router) Where(addr netip.Addr) (lat, lon float64, ok bool) {
	if r.Loc == nil {
		return 0, 0, false
	}
	loc, _ := r.Loc.Locate(addr.Unmap())
	return loc.Lat, loc.Lon, loc.HasCoords
}

// CompileSiteMaps compiles the site maps of set's services now (Run's
// loop does it in the background): for tests and benchmarks.
func (r *Router) CompileSiteMaps(set *zones.Set) { r.compile(context.Background(), set, true) }

// compileMaps compiles the maps that set's services asked from many
// networks lack for the current databases, and drops those no service
// uses.
func (r *Router) compileMaps(ctx context.Context, set *zones.Set) { r.compile(ctx, set, false) }

// compile is compileMaps; with all, for every service.
func (r *Router) compile(ctx context.Context, set *zones.Set, all bool) {
	loc, _ := r.Loc.(*geo.Locator)
	if loc == nil || set == nil {
		return
	}
	r.mapsMu.Lock()
	defer r.mapsMu.Unlock()
	if set == r.mapsSet && loc.Generation() == r.mapsGen && !all && !r.mapsWanted(set) {
		return // nothing new (the plan loop sends every round's set)
	}
	if r.maps == nil {
		r.maps = map[string]*siteMap{}
	}
	gen := loc.Generation() // a map compiled from a newer one is compiled again next round
	used := map[string]bool{}
	for _, z := range set.Zones() {
		for _, svc := range z.Services {
			idx := r.planFor(z.Origin, svc).idx
			sig := idx.sig
			if sig == "" {
				continue
			}
			used[sig] = true
			m := r.maps[sig]
			if m == nil && !all && idx.placed.Load() < mapAfter {
				continue // asked from a few networks: the memo serves it
			}
			if m == nil || m.gen != gen {
				start := time.Now()
				if m = compileMap(ctx, svc, loc); m == nil {
					return // stopping
				}
				r.maps[sig] = m
				if r.Metrics != nil {
					r.Metrics.mapSeconds.Observe(time.Since(start).Seconds())
				}
				r.logger().Info("site map compiled", "zone", z.Origin, "service", svc.Name, "classes", len(m.classes),
					"runs_ipv4", m.fam[0].runs(), "runs_ipv6", m.fam[1].runs(), "took", time.Since(start).Round(time.Millisecond))
			}
			idx.smap.Store(m)
		}
	}
	for sig := range r.maps {
		if !used[sig] {
			delete(r.maps, sig)
		}
	}
	r.mapsSet, r.mapsGen = set, gen
	now := maps.Clone(r.maps)
	r.mapsNow.Store(&now)
}

// mapsWanted reports whether a service of set lacks the map its clients
// now call for. Called with mapsMu held.
func (r *Router) mapsWanted(set *zones.Set) bool {
	for _, z := range set.Zones() {
		for _, svc := range z.Services {
			if v, ok := r.plans.Load(svc); ok {
				idx := v.(*plan).idx
				if idx.sig != "" && idx.smap.Load() == nil && idx.placed.Load() >= mapAfter {
					return true
				}
			}
		}
	}
	return false
}
