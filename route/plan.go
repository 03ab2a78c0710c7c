package route

import (
	"math"
	"net/netip"
	"slices"
	"sync/atomic"
	"time"
	"unsafe"

	"github.com/geodns/geodns/health"
	"github.com/geodns/geodns/opstate"
	"github.com/geodns/geodns/zones"
)

// svcIndex is what a service version implies for routing, derived once:
// its sites' endpoints grouped per address family, so that a query walks
// sites, not endpoints.
type svcIndex struct {
	site       map[string]int  // site name -> index in svc.Sites
	eps        [][2][]int32    // per site, per family (IPv4, IPv6): endpoint indices
	candidates [2]int          // sites with endpoints of the family
	shared     bool            // an address (or name) is at two sites: answers gathering sites list it once
	all        [2][]netip.Addr // every address of the family: serve-all's answer
	allNames   []string        // CNAME services: every name
	capShares  map[string]float64
	sig        string                  // mapSignature: "" when the service has no site map
	smap       atomic.Pointer[siteMap] // its site map, once compiled (sitemap.go)
	placed     atomic.Int64            // clients placed by a database lookup: a map is compiled after mapAfter
	// strands[c][f]: a rule (with only) that may match clients of address
	// family c (IPv4, IPv6) confines them to sites without endpoints of family f,
	// so that they get an all-down answer others do not.
	strands [2][2]bool
}

func newIndex(svc *zones.Service) *svcIndex {
	x := &svcIndex{site: make(map[string]int, len(svc.Sites)), eps: make([][2][]int32, len(svc.Sites)),
		capShares: capacityShares(svc), sig: mapSignature(svc)}
	for i, s := range svc.Sites {
		x.site[s.Name] = i
	}
	for i, ep := range svc.Endpoints {
		s, ok := x.site[ep.Site]
		if !ok {
			continue // the zone compiler lists every endpoint's site; be safe
		}
		for f := range 2 {
			if family(ep, f == 1, svc.CNAME) {
				x.eps[s][f] = append(x.eps[s][f], int32(i))
				if ep.CNAME != "" {
					if f == 0 {
						x.allNames = append(x.allNames, ep.CNAME)
					}
				} else {
					x.all[f] = append(x.all[f], ep.Address)
				}
			}
		}
	}
	seen := make(map[string]bool, len(svc.Endpoints))
	for _, ep := range svc.Endpoints {
		k := ep.Address.String() + ep.CNAME
		x.shared = x.shared || seen[k]
		seen[k] = true
	}
	for s := range x.eps {
		for f := range 2 {
			if len(x.eps[s][f]) > 0 {
				x.candidates[f]++
			}
		}
	}
	for _, r := range svc.Rules {
		if !r.Only {
			continue // its clients go on to the other sites
		}
		var matches [2]bool // client families the rule can match
		if len(r.CIDRs) == 0 {
			matches = [2]bool{true, true}
		}
		for _, c := range r.CIDRs {
			matches[b2i(!c.Addr().Is4())] = true
		}
		for f := range 2 {
			reach := false
			for _, s := range r.Sites {
				if i, ok := x.site[s]; ok && len(x.eps[i][f]) > 0 {
					reach = true
				}
			}
			for c := range 2 {
				x.strands[c][f] = x.strands[c][f] || matches[c] && !reach
			}
		}
	}
	return x
}

// plan is a service's sites as one health table and one operator state
// see them. It is immutable once built, and a decision reads only it: one
// decision never mixes two tables or two operator states.
type plan struct {
	idx   *svcIndex
	tab   *health.Table  // nil: every probe up
	op    *opstate.State // nil: no overrides or dials
	sites [][2]famPlan   // per site (svc.Sites order), per family
	dials []float64      // per site: the share of its own clients it keeps (the operator's dial, else the zone's)
	// last is the latest return of any endpoint (probe or lift): ramps are
	// skipped while none is recent.
	last time.Time
	// nums are the endpoints' probe numbers in tab (-1: no probe), for
	// tab's Numbering: resolved once per zone set, then reused by every
	// plan of the service, so a rebuild only indexes the table.
	nums      []int32
	numbering uint64
	classDec  atomic.Pointer[classDecisions] // decisions per class of the service's site map
	svc       *zones.Service                 // the service it is for
	// gone is set once Router.plans no longer holds the plan (replaced by a
	// newer one, or its service forgotten): a plan in Router.planSlots is
	// current while it is not gone.
	gone atomic.Bool
}

// famPlan is a site's endpoints of one family.
type famPlan struct {
	has   bool // the site has endpoints of the family
	up    bool // siteUp over them
	short bool // some of them are down
	addrs []netip.Addr
	names []string
	// addrs2 and names2 are addrs and names twice over (addrs and names
	// are their first halves): any rotation of them is a subslice, so an
	// answer from one site is rotated without a copy.
	addrs2 []netip.Addr
	names2 []string
	// back is when the site came back for the ramp: with k endpoints
	// needed for it to be up, the k-th earliest return among its up ones.
	// Zero: no return known.
	back time.Time
}

// snapshots loads the current health table and operator state: once per
// plan, so a plan (and every decision made from it) sees one of each.
func (r *Router) snapshots() (*health.Table, *opstate.State) {
	var (
		tab *health.Table
		op  *opstate.State
	)
	if r.Health != nil {
		tab = r.Health.Table()
	}
	if r.Operator != nil {
		op = r.Operator.Load()
	}
	return tab, op
}

// planFor returns svc's plan for the current health and operator state.
// The plan loop (Run) keeps them current off the query path; a query builds
// one only for a service the loop has not seen yet (a new zone version in
// the moment before the loop's refresh), or when no loop runs (then at each
// change).
func (r *Router) planFor(origin string, svc *zones.Service) *plan {
	if !r.loop.running.Load() {
		return r.plan(origin, svc, false, nil, nil)
	}
	slot := &r.planSlots[planSlot(svc)]
	if p := slot.Load(); p != nil && p.svc == svc && !p.gone.Load() {
		return p // what plans holds for svc: a plan leaves it marked gone
	}
	p := r.plan(origin, svc, true, nil, nil)
	slot.Store(p) // over a colliding service's: that one looks in the map until it takes the slot back
	return p
}

// planSlotCount is how many services' plans Router.planSlots hold.
const (
	planSlotBits  = 8
	planSlotCount = 1 << planSlotBits
)

// planSlot is svc's slot in Router.planSlots: multiplicative hashing of
// its address (the collector does not move it).
func planSlot(svc *zones.Service) uint64 {
	return uint64(uintptr(unsafe.Pointer(svc))) * 0x9e3779b97f4a7c15 >> (64 - planSlotBits)
}

// plan returns svc's plan: any one built, if published is set and one is;
// else one for the given snapshots (nil: the current ones), built if need be.
func (r *Router) plan(origin string, svc *zones.Service, published bool, tab *health.Table, op *opstate.State) *plan {
	var old *plan
	if v, found := r.plans.Load(svc); found {
		old = v.(*plan)
		if published {
			// While the plan loop runs, it rebuilds plans on every change
			// (within refreshEvery): queries take the published one, and a
			// burst of changes never makes queries build plans.
			return old
		}
	}
	if tab == nil && op == nil {
		tab, op = r.snapshots()
	}
	if old != nil && old.tab.Version() == tab.Version() && old.op.Version() == op.Version() {
		return old
	}
	var idx *svcIndex
	if old != nil {
		idx = old.idx
	} else {
		idx = newIndex(svc)
		if maps := r.mapsNow.Load(); maps != nil && idx.sig != "" {
			idx.smap.Store((*maps)[idx.sig])
		}
	}
	p := r.buildPlan(svc, idx, tab, op, old)
	if old == nil && r.planCount.Add(1) > 1<<16 && !r.loop.running.Load() {
		// Without the plan loop, which forgets the services of replaced
		// zone versions, a bound: they are never asked again.
		r.plans.Range(func(k, _ any) bool {
			r.forget(k)
			return true
		})
	}
	if published && old == nil {
		// Never replace what the loop published meanwhile: it may be newer.
		actual, _ := r.plans.LoadOrStore(svc, p)
		return actual.(*plan)
	}
	if prev, ok := r.plans.Swap(svc, p); ok {
		prev.(*plan).gone.Store(true)
	}
	return p
}

// forget removes a service's plan from Router.plans (k: its *zones.Service),
// and from planCount.
func (r *Router) forget(k any) {
	if prev, ok := r.plans.LoadAndDelete(k); ok {
		r.planCount.Add(-1)
		p := prev.(*plan)
		p.gone.Store(true)
		r.planSlots[planSlot(p.svc)].CompareAndSwap(p, nil) // nor kept from the collector there
	}
}

// buildPlan builds svc's plan from tab and op, reusing old's probe
// numbers when they still hold.
func (r *Router) buildPlan(svc *zones.Service, idx *svcIndex, tab *health.Table, op *opstate.State, old *plan) *plan {
	p := &plan{svc: svc, idx: idx, tab: tab, op: op, sites: make([][2]famPlan, len(idx.eps)), dials: make([]float64, len(svc.Sites)),
		last: op.LastLift()}
	if t := tab.LastReturn(); t.After(p.last) {
		p.last = t
	}
	for i, s := range svc.Sites {
		p.dials[i] = 1
		if d, ok := svc.Dials[s.Name]; ok {
			p.dials[i] = d
		}
		if d, ok := op.Dial(svc.Name, s.Name); ok {
			p.dials[i] = d
		}
	}
	p.numbering = tab.Numbering()
	if old != nil && old.nums != nil && old.numbering == p.numbering && old.tab != nil && tab != nil {
		p.nums = old.nums
	} else if tab != nil {
		p.nums = make([]int32, len(svc.Endpoints))
		for i := range svc.Endpoints {
			p.nums[i] = tab.Num(svc.Endpoints[i].Probe)
		}
	}
	ramps := svc.ReturnRamp > 0 && !p.last.IsZero()
	overrides := op.Any()
	var back []time.Time
	for s := range idx.eps {
		for f := range 2 {
			eps := idx.eps[s][f]
			fp := &p.sites[s][f]
			fp.has = len(eps) > 0
			back = back[:0]
			n := 0
			for _, i := range eps {
				ep := &svc.Endpoints[i]
				st := health.State{Up: true}
				if p.nums != nil {
					if k := p.nums[i]; k >= 0 && int(k) < len(tab.States) {
						st = tab.States[k]
					}
				}
				if overrides {
					st.Up = up(st, op, ep)
				}
				if !st.Up {
					continue
				}
				n++
				if ep.CNAME != "" {
					fp.names = append(fp.names, ep.CNAME)
				} else {
					fp.addrs = append(fp.addrs, ep.Address)
				}
				if ramps {
					b := st.Back
					if t := op.Lifted(ep.Site, ep.ID); t.After(b) {
						b = t
					}
					back = append(back, b)
				}
			}
			fp.up, fp.short = siteUp(svc, n, len(eps)), n < len(eps)
			fp.addrs, fp.addrs2 = twice(fp.addrs)
			fp.names, fp.names2 = twice(fp.names)
			need := max(1, int(math.Ceil(svc.SiteUpRatio*float64(len(eps)))))
			if ramps && len(back) >= need {
				slices.SortFunc(back, time.Time.Compare)
				fp.back = back[need-1]
			}
		}
	}
	return p
}

// EndpointUp reports whether an endpoint is up in tab and op, for status
// pages: an operator's override if one applies (the endpoint's own before
// its site's), else its probe's state.
func EndpointUp(tab *health.Table, op *opstate.State, ep *zones.Endpoint) bool {
	return up(tab.Probe(ep.Probe), op, ep)
}

// up is the one rule for an endpoint: an override beats its probe's state.
func up(probe health.State, op *opstate.State, ep *zones.Endpoint) bool {
	if o, ok := op.Override(ep.Site, ep.ID); ok {
		return o == opstate.ForceUp
	}
	return probe.Up
}

// site returns a site's index and plan for a family; nil when the
// service has no such site.
func (p *plan) site(name string, v6 bool) (int, *famPlan) {
	s, ok := p.idx.site[name]
	if !ok {
		return -1, nil
	}
	return s, &p.sites[s][b2i(v6)]
}

// allDown is the one definition of "all down", for answers, metrics and
// logs: the service has sites with endpoints of the family and none of
// them is up.
func (p *plan) allDown(v6 bool) bool {
	f := b2i(v6)
	if p.idx.candidates[f] == 0 {
		return false
	}
	for s := range p.sites {
		if fp := &p.sites[s][f]; fp.has && fp.up {
			return false
		}
	}
	return true
}

// AllDown reports whether every site of svc with endpoints of the family
// (A: v6 false, AAAA: true) is down, so its all_down policy answers every
// client that no rule confines to fewer sites.
func (r *Router) AllDown(origin string, svc *zones.Service, v6 bool) bool {
	return r.planFor(origin, svc).allDown(v6)
}

// answer gathers a decision's addresses or names from the answering sites'
// lists without copying them: a site may have thousands of endpoints and
// a query answers a few.
type answer struct {
	addrs segs[netip.Addr]
	names segs[string]
	// once: some address is at two sites (svcIndex.shared), so a list
	// gathered from several is read without repeats. Else nothing is
	// compared: the zone compiler refuses an address twice in one site.
	once bool
}

func (a *answer) add(fp *famPlan) {
	a.addrs.addTwice(fp.addrs, fp.addrs2)
	a.names.addTwice(fp.names, fp.names2)
}

// twice returns l in a new array that holds it twice over: its first
// half, and the whole.
func twice[T any](l []T) (half, whole []T) {
	if len(l) == 0 {
		return nil, nil
	}
	whole = append(append(make([]T, 0, 2*len(l)), l...), l...)
	return whole[:len(l):len(l)], whole
}

// fill sets d's addresses and names: all gathered, turned by n so that
// clients of one site spread over its endpoints, at most limit of each.
func (a *answer) fill(d *Decision, n uint32, limit int) {
	d.Addrs = a.addrs.rotated(n, limit, a.once)
	d.Names = a.names.rotated(n, limit, a.once)
}

// segs is a list of lists read as their concatenation. The first list is
// held apart: most answers come from one site, and then nothing is
// allocated to gather them, nor to rotate them when it came with its
// double.
type segs[T comparable] struct {
	first []T
	twice []T // first twice over, if known
	more  [][]T
	total int
}

func (s *segs[T]) add(l []T) { s.addTwice(l, nil) }

// addTwice adds l, whose double (l twice over) is l2 if not nil.
func (s *segs[T]) addTwice(l, l2 []T) {
	switch {
	case len(l) == 0:
		return
	case s.total == 0:
		s.first, s.twice = l, l2
	default:
		s.more = append(s.more, l)
	}
	s.total += len(l)
}

func (s *segs[T]) seg(i int) []T {
	if i == 0 {
		return s.first
	}
	return s.more[i-1]
}

// rotated returns at most limit elements of the concatenation, starting
// at element n mod its length and wrapping around; with once, each
// element once.
func (s *segs[T]) rotated(n uint32, limit int, once bool) []T {
	if s.total == 0 || limit <= 0 {
		return nil
	}
	if len(s.more) == 0 && len(s.twice) == 2*s.total {
		start, m := int(n%uint32(s.total)), min(s.total, limit)
		return s.twice[start : start+m : start+m]
	}
	out := make([]T, 0, min(s.total, limit))
	start := int(n % uint32(s.total))
	l := 0
	for start >= len(s.seg(l)) {
		start -= len(s.seg(l))
		l++
	}
	segs := 1 + len(s.more)
	// Once each: an address at two sites that answer together (an
	// anycast address, or serve-all) is one record. A site lists an
	// address once (the zone compiler refuses more), so the one-site path
	// above has nothing to skip.
	for i, cur, seen := start, s.seg(l), 0; len(out) < cap(out) && seen < s.total; seen++ {
		if !once || !slices.Contains(out, cur[i]) {
			out = append(out, cur[i])
		}
		if i++; i == len(cur) {
			l = (l + 1) % segs
			i, cur = 0, s.seg(l)
		}
	}
	return out
}
