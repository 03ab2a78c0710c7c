package route

import (
	"log/slog"
	"math/rand/v2"
	"net/netip"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/geodns/geodns/geo"
	"github.com/geodns/geodns/health"
	"github.com/geodns/geodns/opstate"
	"github.com/geodns/geodns/zones"
)

// Locator places client addresses; *geo.Locator is one. Implementations
// must be safe for concurrent use.
type Locator interface {
	Locate(netip.Addr) (geo.Location, bool)
	// Generation changes whenever the databases in use do: what the router
	// derives from locations (placements, demand estimates) keys on it.
	Generation() uint64
}

// Health publishes probe states; *health.Manager is one. Implementations
// must be safe for concurrent use and must not block.
type Health interface {
	// Table returns the current state table (nil: every probe up). The
	// router reads one per plan.
	Table() *health.Table
}

// Operator publishes the operator's state (drains, forces, dials); an
// opstate.Store is one. Implementations must be safe for concurrent use
// and must not block.
type Operator interface {
	// Load returns the current state (nil: none set).
	Load() *opstate.State
}

// Router makes routing decisions. The zero value routes every client by
// each service's default order with every endpoint up. Services must not
// change once routed: the router keeps what it derives per service (a new
// zone version brings new ones).
type Router struct {
	Loc      Locator          // nil: no client has a location
	Health   Health           // nil: every probe is up
	Operator Operator         // nil: no overrides, only the zone files' dials
	Now      func() time.Time // nil: time.Now; tests move the clock
	// Metrics receive all-down events, site states and demand estimates
	// from the plan loop (Run). nil: none.
	Metrics *Metrics
	Log     *slog.Logger // the plan loop's; nil: slog.Default
	// turns returns how far to turn a site's endpoints for one answer
	// (which come first, and which are answered when there are more
	// than the service answers). nil: at random. Tests that compare two
	// routers' answers give both the same sequence.
	turns func() uint32
	demandCache
	memo  memo
	plans sync.Map // *zones.Service -> *plan
	// planSlots hold plans found in plans, by their service's address:
	// while the plan loop runs, a query finds its service's plan there
	// (planFor) rather than in the map (interface hashing and a trie walk,
	// 7 % of a cached geo answer's time).
	planSlots [planSlotCount]atomic.Pointer[plan]
	planCount atomic.Int64
	loop      loopState
	mapsMu    sync.Mutex          // one compile round at a time
	maps      map[string]*siteMap // by mapSignature, under mapsMu
	mapsSet   *zones.Set          // the set and locator generation maps were last made for
	mapsGen   uint64
	// mapsNow is maps as of the last compile, for plans made after it
	// (a service's first query).
	mapsNow atomic.Pointer[map[string]*siteMap]
}

// logger is the plan loop's log.
func (r *Router) logger() *slog.Logger {
	if r.Log != nil {
		return r.Log
	}
	return slog.Default()
}

// turn returns the rotation of one answer: turns's, else a random one.
// Random per answer, from the thread's own generator, rather than a count
// of the router's: that count was an atomic add per answer on a line
// every core writes, and made a service answer on two cores slower than
// on one (BenchmarkServiceAnswerParallel -cpu 2: 406-427 ns an answer, one
// core 271-278; now 133-139). Clients of a site still spread over its
// endpoints alike.
func (r *Router) turn() uint32 {
	if r.turns != nil {
		return r.turns()
	}
	return rand.Uint32()
}

// turnFor is turn for answer a, 0 without drawing when a has nothing to
// turn (one address or name, as most sites have: the draw was 8 ns of a
// 230 ns answer from a site map). A test's turns is still asked, so that
// two routers' turns stay in step.
func (r *Router) turnFor(a *answer) uint32 {
	if r.turns == nil && a.addrs.total <= 1 && a.names.total <= 1 {
		return 0
	}
	return r.turn()
}

// Decision is what a service answers one client (zones.Decision: the
// resolver reads it without importing route).
type Decision = zones.Decision

// Why is how a decision was reached (zones.Why), for query logs.
type Why = zones.Why

// Trace records how a decision was made, for explain.
type Trace struct {
	Location  geo.Location
	Located   bool
	Rule      int // index of the matching rule, -1 if none
	Distances []geo.SiteDistance
	Groups    [][]string
	Down      []string // sites skipped as down
	// Traffic is the standing of every site the client was offered to, in
	// order; HashedNet is the client network their buckets are drawn for.
	Traffic   []SiteTraffic
	HashedNet netip.Prefix
	// SpilledFrom is the site whose clients this one left, with Spill the
	// spread they go by (spillover services only).
	SpilledFrom string
	Spill       []SiteShare
	// RampHeld is the nearest returning site that held the client back
	// (its ramp has not won it back yet), RampNext the site the client
	// went on to, or would have, and RampDetourKm how much farther that
	// is for the client. RampReturned: farther than MaxRampDetourKm, so
	// the client returned to RampHeld at once.
	RampHeld     string
	RampNext     string
	RampDetourKm float64
	RampReturned bool
}

// MaxRampDetourKm bounds where a return ramp may hold a client back: a
// client not yet won back by a returning site goes on only to a site at
// most this much farther from it than the returning one (about a
// continent's width, some 50 ms more round trip); else it returns to the
// returning site at once. A ramp protects a site from a stampede at the
// cost of a detour, not of a trip across an ocean: with us-east ramping
// and us-west drained, a New York client (us-east 340 km, us-west
// 4,100 km, Frankfurt 6,200 km) goes back to us-east rather than to
// Europe, while with us-west up it waits there. A client without
// coordinates is taken to be at the returning site.
const MaxRampDetourKm = 5000.0

// Route decides what svc answers to a client in the network client for the
// address family v6 (A: false, AAAA: true). For CNAME services v6 is
// ignored. origin is the zone's name, for health lookups. The returned
// slices are shared: callers must not modify them.
func (r *Router) Route(origin string, svc *zones.Service, client netip.Prefix, v6 bool) (d Decision) {
	// d is written in place, never built and then copied: a copy reads
	// back by wide loads what was just stored field by field, which the
	// store buffer cannot forward (a third of a memo hit's time).
	pl := r.planFor(origin, svc)
	m := r.siteMap(pl)
	if m == nil {
		// The memo's hit, apart: a network's repeated query (one resolver
		// asking over and over) costs a set's read, not route's frame of
		// placements and decisions to clear.
		set := r.memo.setOf(svc, client, v6)
		if e := set.find(svc, client, v6); e != nil && e.pl == pl && e.gen == r.locGen() && r.rampsOver(svc, pl) {
			d = e.d
			e.ans.fill(&d, r.turnFor(&e.ans), svc.Answers)
			return d
		}
	}
	r.route(pl, m, svc, client, v6, &d)
	return d
}

// route is Route past the memo's hit, for plan pl and site map m (nil:
// none), into d.
func (r *Router) route(pl *plan, m *siteMap, svc *zones.Service, client netip.Prefix, v6 bool, d *Decision) {
	var mp placement // placed by the site map, if the service has one
	mapped := false
	if m != nil {
		if addr := client.Addr().Unmap(); addr.IsValid() {
			cls := m.place(addr, &mp)
			mapped = true
			if r.routeMapped(pl, m, cls, &mp, svc, client, v6, d) {
				return
			}
		}
	}
	set := r.memo.setOf(svc, client, v6)
	gen := r.locGen()
	e := set.find(svc, client, v6)
	var p placement
	placed := e != nil && e.gen == gen
	if placed {
		if e.pl == pl && r.rampsOver(svc, pl) {
			*d = e.d
			e.ans.fill(d, r.turnFor(&e.ans), svc.Answers)
			return
		}
		p = e.place
	} else if mapped {
		p = mp // by network all the same (a hashed decision, a ramp), placed once
	} else {
		p = r.place(pl, svc, client)
	}
	dd, ans, fixed := r.decide(pl, svc, client, v6, &p, nil)
	n := r.turn()
	if fixed || !placed {
		// Kept for the next query of the network: the placement, and the
		// decision unless it depended on the time or the spill estimate.
		ne := &memoEntry{key: memoKey{svc: svc, client: client, v6: v6}, gen: gen, place: p}
		if fixed {
			ne.pl, ne.d, ne.ans = pl, dd, ans
		}
		set.put(ne, n>>3) // which busy entry goes: by bits that turn
	}
	*d = dd
	ans.fill(d, n, svc.Answers)
}

// Explain is Route with a trace of the steps taken. It places the client
// anew and keeps nothing.
func (r *Router) Explain(origin string, svc *zones.Service, client netip.Prefix, v6 bool) (Decision, Trace) {
	var t Trace
	addr := client.Addr().Unmap()
	pl := r.planFor(origin, svc)
	var (
		loc     geo.Location
		located bool
		p       placement
	)
	if r.Loc != nil && addr.IsValid() {
		loc, located = r.Loc.Locate(addr)
	}
	p.groups, p.rule = siteGroups(svc, loc, located, addr, &t.Distances)
	p.lat, p.lon, p.hasCoords, p.network = loc.Lat, loc.Lon, loc.HasCoords, loc.Network
	if m := r.siteMap(pl); m != nil && addr.IsValid() {
		// Queries are answered by the map: its scope is theirs.
		var mp placement
		m.place(addr, &mp)
		p.network = mp.network
	}
	t.Location, t.Located, t.Rule, t.Groups = loc, located, p.rule, p.groups
	d, ans, _ := r.decide(pl, svc, client, v6, &p, &t)
	ans.fill(&d, r.turnFor(&ans), svc.Answers)
	return d, t
}

// siteGroups orders a service's sites for a client: sites by distance in
// groups of equally near ones, else the default order; a matching rule's
// sites come first, one by one (and alone, for a rule with only).
// rule is the index of the matching rule, -1 if none.
func siteGroups(svc *zones.Service, loc geo.Location, located bool, addr netip.Addr, dist *[]geo.SiteDistance) (groups [][]string, rule int) {
	rule = geo.MatchRule(svc.Rules, loc, addr)
	if rule >= 0 && svc.Rules[rule].Only {
		return singletons(svc.Rules[rule].Sites), rule
	}
	var order [][]string
	if located && loc.HasCoords {
		order = geo.Rank(svc.Sites, loc, dist)
	} else {
		order = singletons(svc.SiteOrder)
	}
	if rule < 0 {
		return order, -1
	}
	r := &svc.Rules[rule]
	groups = singletons(r.Sites)
	// The rest after them: a rule says where its clients go first, and a
	// down site is skipped, theirs as anyone's.
	for _, g := range order {
		rest := slices.DeleteFunc(slices.Clone(g), func(s string) bool { return slices.Contains(r.Sites, s) })
		if len(rest) > 0 {
			groups = append(groups, rest)
		}
	}
	return groups, rule
}

// decide makes the decision for a client placed at p from plan pl, all but
// its addresses and names, which fill takes from ans. fixed says the
// decision depends on nothing else than the client network, pl and p: not
// on the time (a return ramp in progress) nor on the spill estimate.
func (r *Router) decide(pl *plan, svc *zones.Service, client netip.Prefix, v6 bool, p *placement, tr *Trace) (d Decision, ans answer, fixed bool) {
	ans.once = pl.idx.shared
	addr := client.Addr().Unmap()
	var (
		loc        = p.location() // coordinates unknown while p.approx: see coords
		groups     = p.groups
		rule       = p.rule                     // the matching rule's index, -1 if none
		candidates = pl.idx.candidates[b2i(v6)] // sites with endpoints of the family: more than one makes the answer location-dependent
	)
	var (
		t      time.Time // zero unless a ramp needs the time
		net    = hashedNet(client)
		hashed bool // the decision depends on the client's hashed network
		home   = "" // the first site offered the client, for spillover
		// held is the nearest site whose return ramp holds the client
		// back, heldGroup its group; far the first site farther than
		// MaxRampDetourKm beyond it that would have answered.
		held      = -1
		heldGroup = -1
		far       = -1
	)
	fixed = true
	if svc.ReturnRamp > 0 && !pl.last.IsZero() {
		t = r.now()
		fixed = t.Sub(pl.last) >= svc.ReturnRamp // every ramp is over
	}
	d.Why = Why{Rule: rule + 1, Located: loc.HasCoords, Bucket: -1} // Lat, Lon at the end: coords may locate the client
	if tr != nil {
		tr.HashedNet = net
	}
	for gi, g := range groups {
		for _, site := range g {
			si, fp := pl.site(site, v6)
			if fp == nil || !fp.has {
				continue
			}
			st := weigh(svc, pl, si, site, fp, t)
			if home == "" {
				home = site
			}
			if (st.Weight < 1 && st.Weight > 0) || (st.Up && st.Ramp < 1 && st.Dial > 0 && st.Dial < 1) {
				// Hashed only when a dial or ramp asks (a ramp at 0 under
				// a dial: the bucket tells dialed away from held back).
				hashed = true
				st.Bucket = bucket(netHash(net), site)
				if d.Why.Bucket < 0 {
					d.Why.Bucket, d.Why.BucketSite = st.Bucket, site
				}
			}
			if tr != nil {
				tr.Traffic = append(tr.Traffic, st)
			}
			switch {
			case !st.Up:
				if tr != nil {
					tr.Down = append(tr.Down, site)
				}
				d.Degraded = true // failing over
			case st.Weight <= 0 || (st.Weight < 1 && st.Bucket >= st.Weight):
				if st.Ramp < 1 {
					d.Degraded = true // come back soon: the ramp moves on
				}
				if held < 0 && heldBack(st) {
					held, heldGroup = si, gi
				}
				// dialed away, or not yet won back
			default:
				if held >= 0 {
					// Only a detour is worth a ramp's protection.
					km := detour(svc, r.coords(p, &loc, addr), held, si)
					if km > MaxRampDetourKm {
						if far < 0 {
							far = si
							traceRamp(tr, svc, held, si, km, true)
						}
						continue
					}
					if len(d.Sites) == 0 {
						traceRamp(tr, svc, held, si, km, false) // a near one answers after all
					}
				}
				d.Sites = append(d.Sites, site)
				ans.add(fp)
				d.Degraded = d.Degraded || fp.short // the site answers short of endpoints
			}
		}
		if len(d.Sites) > 0 {
			break
		}
		if far >= 0 {
			// The next site that would take the client is too far: the
			// ramping sites that held it back take it now.
			returnEarly(svc, pl, groups[heldGroup], v6, t, net, &d, &ans)
			break
		}
		if home != "" && svc.Spillover {
			// The home sites shed this client: spread it by spare capacity
			// rather than give the next group everything.
			fixed = false // the spread follows the demand estimate, which the plan does not hold
			sts := make([]SiteTraffic, len(svc.Sites))
			for i, s := range svc.Sites {
				if fp := &pl.sites[i][b2i(v6)]; fp.has {
					sts[i] = weigh(svc, pl, i, s.Name, fp, t)
				}
			}
			shares := r.spill(svc, pl.idx, home, sts)
			if tr != nil {
				tr.SpilledFrom, tr.Spill = home, shares
			}
			if to := pick(netHash(net), shares); to != "" {
				hashed, d.Why.Spilled = true, true
				if held >= 0 {
					ti := pl.idx.site[to]
					km := detour(svc, r.coords(p, &loc, addr), held, ti)
					traceRamp(tr, svc, held, ti, km, km > MaxRampDetourKm)
					if km > MaxRampDetourKm {
						returnEarly(svc, pl, groups[heldGroup], v6, t, net, &d, &ans)
						break
					}
				}
				take(pl, to, v6, &d, &ans)
			}
			break
		}
	}
	if len(d.Sites) == 0 && home != "" {
		// Up sites shed every client and nobody can take them (every site
		// is dialed away or still ramping, say after a total outage): the
		// nearest up sites keep them after all.
		for _, g := range groups {
			for _, site := range g {
				if _, fp := pl.site(site, v6); fp != nil && fp.has && fp.up {
					take(pl, site, v6, &d, &ans)
				}
			}
			if len(d.Sites) > 0 {
				break
			}
		}
	}
	if len(d.Sites) == 0 && candidates > 0 {
		d.AllDown, d.Degraded = true, true
		switch svc.AllDown {
		case zones.AllDownServeAll:
			if svc.CNAME {
				ans.names.add(pl.idx.allNames)
			} else {
				ans.addrs.add(pl.idx.all[b2i(v6)])
			}
		case zones.AllDownFallback:
			var fb []netip.Addr
			for _, a := range svc.Fallback {
				if a.Is6() == v6 {
					fb = append(fb, a)
				}
			}
			ans.addrs.add(fb)
		}
	}
	// The ECS scope: as wide as is still true for this decision.
	switch {
	case candidates <= 1 && !pl.idx.strands[b2i(!addr.Is4())][b2i(v6)], d.AllDown && pl.allDown(v6):
		// One possible answer for everyone. (Not so when a rule confines
		// clients to sites without endpoints of the family: their
		// all-down answer is theirs alone.)
		d.Scope = 0
	case !loc.Network.IsValid():
		d.Scope = geo.CIDRScope(svc.Rules, addr, 0) // no database: only rule networks matter
	default:
		d.Scope = min(client.Bits(), geo.CIDRScope(svc.Rules, addr, loc.Network.Bits()))
	}
	if hashed && d.Scope < net.Bits() && !d.AllDown {
		d.Scope = net.Bits() // the answer holds for the hashed network, no wider
	}
	if p.approx && p.hasCoords {
		d.Why.Mapped = true // no coordinates: Where has them
	} else {
		d.Why.Lat, d.Why.Lon = loc.Lat, loc.Lon
	}
	return d, ans, fixed
}

// coords returns loc with the client's coordinates, locating it if p came
// from a site map (which keeps none).
func (r *Router) coords(p *placement, loc *geo.Location, addr netip.Addr) geo.Location {
	if p.approx {
		r.exact(p, addr)
		loc.Lat, loc.Lon = p.lat, p.lon
	}
	return *loc
}

// heldBack tells whether a site sheds the client only because its return
// ramp has not won it back yet: the operator's dial alone would keep it.
func heldBack(st SiteTraffic) bool {
	return st.Up && st.Ramp < 1 && (st.Dial >= 1 || (st.Dial > 0 && st.Bucket < st.Dial))
}

// detour is how much farther site si is than the ramping site held for a
// client at loc; from the ramping site itself when loc has no coordinates.
func detour(svc *zones.Service, loc geo.Location, held, si int) float64 {
	h, s := svc.Sites[held], svc.Sites[si]
	if !loc.HasCoords {
		return geo.Distance(h.Lat, h.Lon, s.Lat, s.Lon)
	}
	return geo.Distance(loc.Lat, loc.Lon, s.Lat, s.Lon) - geo.Distance(loc.Lat, loc.Lon, h.Lat, h.Lon)
}

// returnEarly answers from the sites of group g that hold the client back
// by their ramps: the client returns now rather than go too far.
func returnEarly(svc *zones.Service, pl *plan, g []string, v6 bool, t time.Time, net netip.Prefix, d *Decision, ans *answer) {
	for _, site := range g {
		si, fp := pl.site(site, v6)
		if fp == nil || !fp.has {
			continue
		}
		st := weigh(svc, pl, si, site, fp, t)
		if st.Up && st.Ramp < 1 && st.Dial > 0 && st.Dial < 1 {
			st.Bucket = bucket(netHash(net), site)
		}
		if heldBack(st) {
			take(pl, site, v6, d, ans)
		}
	}
}

// traceRamp records, for explain, where a client held back by a ramp went.
func traceRamp(tr *Trace, svc *zones.Service, held, next int, km float64, returned bool) {
	if tr == nil {
		return
	}
	tr.RampHeld, tr.RampNext, tr.RampDetourKm, tr.RampReturned = svc.Sites[held].Name, svc.Sites[next].Name, km, returned
}

// take adds an up site's up endpoints of the family to the answer.
func take(pl *plan, site string, v6 bool, d *Decision, ans *answer) {
	_, fp := pl.site(site, v6)
	d.Sites = append(d.Sites, site)
	ans.add(fp)
	if fp.short {
		d.Degraded = true // the site answers short of endpoints
	}
}

func family(ep zones.Endpoint, v6, cname bool) bool {
	return cname || ep.Address.Is6() == v6
}

func b2i(b bool) int {
	if b {
		return 1
	}
	return 0
}

// siteUp is the rule for a site: up while at least SiteUpRatio of its
// total endpoints (of the family asked) are up, and at least one.
func siteUp(svc *zones.Service, up, total int) bool {
	return total > 0 && up > 0 && float64(up) >= svc.SiteUpRatio*float64(total)
}

func singletons(sites []string) [][]string {
	out := make([][]string, len(sites))
	for i, s := range sites {
		out[i] = []string{s}
	}
	return out
}
