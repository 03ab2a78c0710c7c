package route

import (
	"context"
	"encoding/binary"
	"fmt"
	"math"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/geodns/geodns/geo"
	"github.com/geodns/geodns/zones"
)

// rampSteps: a returning site wins its clients back in this many equal
// steps of ReturnRamp/rampSteps each, so every step moves a known slice.
const rampSteps = 20

// Hashed client networks: the IPv4 /24 and IPv6 /48 a client is in (or
// its ECS prefix, if shorter) picks its place in every dial, ramp and
// spill. Every client of one such network gets the same answer, which is
// what the ECS scope we return promises to resolvers' caches.
const (
	hashBits4 = 24
	hashBits6 = 48
)

// SiteTraffic is one site's standing for a decision, for explain.
type SiteTraffic struct {
	Site   string
	Up     bool
	Dial   float64 // share of its own clients the operator lets it keep
	Ramp   float64 // share of its return ramp done; 1 when not returning
	Weight float64 // Dial × Ramp, 0 when down: the share it keeps
	Bucket float64 // the client's place in [0,1): kept while Bucket < Weight
}

// SiteShare is a site's share of a spread.
type SiteShare struct {
	Site  string
	Share float64
}

// Standing returns a site's standing for svc now, for status pages: up
// when it is up for a family it has endpoints of (IPv4 first).
func (r *Router) Standing(origin string, svc *zones.Service, site string) SiteTraffic {
	now := time.Now()
	if r.Now != nil {
		now = r.Now()
	}
	pl := r.planFor(origin, svc)
	si, fp := pl.site(site, false)
	if _, fp6 := pl.site(site, true); fp == nil || !fp.has || (!fp.up && fp6 != nil && fp6.has && fp6.up) {
		fp = fp6
	}
	if fp == nil {
		return SiteTraffic{Site: site, Dial: 1, Ramp: 1}
	}
	return weigh(svc, pl, si, site, fp, now)
}

// weigh is what site (index si) may keep of its clients at now, from its
// plan for the family asked.
func weigh(svc *zones.Service, pl *plan, si int, site string, fp *famPlan, now time.Time) SiteTraffic {
	st := SiteTraffic{Site: site, Up: fp.up, Dial: pl.dials[si], Ramp: 1}
	if st.Up {
		st.Ramp = ramp(svc, pl, fp, now)
		st.Weight = st.Dial * st.Ramp
	}
	return st
}

// ramp returns how far a site's return ramp has gone: 0 when it just came
// back, 1 when it is done (or the site never left). The site came back
// when its last needed endpoint did (famPlan.back).
func ramp(svc *zones.Service, pl *plan, fp *famPlan, now time.Time) float64 {
	if svc.ReturnRamp <= 0 || fp.back.IsZero() || now.Sub(pl.last) >= svc.ReturnRamp {
		return 1
	}
	done := float64(now.Sub(fp.back)) / float64(svc.ReturnRamp)
	switch {
	case done >= 1:
		return 1
	case done <= 0:
		return 0
	}
	return math.Floor(done*rampSteps) / rampSteps
}

// hashedNet returns the network a client is hashed by: its /24 or /48,
// or its whole prefix when that is shorter.
func hashedNet(client netip.Prefix) netip.Prefix {
	addr, bits := client.Addr(), client.Bits()
	if addr.Is4In6() {
		addr, bits = addr.Unmap(), max(0, bits-96)
	}
	limit := hashBits6
	if addr.Is4() {
		limit = hashBits4
	}
	p, _ := addr.Prefix(min(bits, limit))
	return p
}

// netHash is a stable hash of a network: the same across restarts and
// builds, so a client keeps its place.
func netHash(p netip.Prefix) uint64 {
	b := p.Addr().As16()
	h := mix(binary.BigEndian.Uint64(b[:8]) ^ uint64(p.Bits())<<56)
	return mix(h ^ binary.BigEndian.Uint64(b[8:]))
}

func nameHash(s string) uint64 {
	h := uint64(14695981039346656037) // FNV-1a
	for i := 0; i < len(s); i++ {
		h = (h ^ uint64(s[i])) * 1099511628211
	}
	return h
}

// mix is splitmix64's finalizer: every input bit moves every output bit.
func mix(x uint64) uint64 {
	x ^= x >> 30
	x *= 0xbf58476d1ce4e5b9
	x ^= x >> 27
	x *= 0x94d049bb133111eb
	return x ^ x>>31
}

// bucket places a client network in [0,1) for one site. Each site has its
// own order of clients, so dialing one site down does not always pick the
// clients another dial picked.
func bucket(net uint64, site string) float64 {
	return float64(mix(net^nameHash(site))>>11) / (1 << 53)
}

// pick chooses a site for a client by weighted rendezvous hashing: each
// site's chance is its share, and a change of shares moves only the
// clients it must.
func pick(net uint64, shares []SiteShare) string {
	best, bestScore := "", math.Inf(1)
	for _, s := range shares {
		if s.Share <= 0 {
			continue
		}
		u := float64(mix(net^nameHash(s.Site)^0x5bd1e995)>>11+1) / (1<<53 + 1) // in (0,1)
		if score := -math.Log(u) / s.Share; score < bestScore {
			best, bestScore = s.Site, score
		}
	}
	return best
}

// spill returns how the clients lost shed spread over the other sites.
//
// Load is measured in shares of the service's clients (Demand), capacity
// in shares of the sites' summed capacity; utilization is load over
// capacity, so 1 means a site carries exactly its capacity's share. Every
// site that sheds clients (down, drained, dialed or ramping), in the order
// the zone lists them, spreads them in two passes: first to the up sites
// nearest it, each up to MaxLoad utilization, then, if clients remain,
// over all up sites so that the fullest are filled last (water filling):
// when the survivors are all full, the result is proportional to capacity.
// Nil when no site can take clients.
func (r *Router) spill(svc *zones.Service, idx *svcIndex, lost string, st []SiteTraffic) []SiteShare {
	demand := r.demand(svc, idx)
	key := spillKey{svc, lost}
	if v, ok := r.spills.Load(key); ok && v.(*spillMemo).matches(demand, st) {
		return v.(*spillMemo).shares
	}
	shares := spread(svc, lost, st, *demand)
	m := &spillMemo{from: demand, weights: make([]float64, len(st)), shares: shares}
	for i, t := range st {
		m.weights[i] = weightOf(t)
	}
	r.spills.Store(key, m)
	return shares
}

// spread computes spill's answer from the sites' standings and demand.
func spread(svc *zones.Service, lost string, st []SiteTraffic, demand map[string]float64) []SiteShare {
	n := len(svc.Sites)
	capShare := make([]float64, n)
	load := make([]float64, n)
	totalCap := 0.0
	for i, s := range svc.Sites {
		if st[i].Site != "" {
			totalCap += s.Capacity
		}
	}
	var survivors []int
	for i, s := range svc.Sites {
		if st[i].Site == "" {
			continue // no endpoint of the family
		}
		if totalCap > 0 {
			capShare[i] = s.Capacity / totalCap
		}
		load[i] = demand[svc.Sites[i].Name] * st[i].Weight
		if st[i].Weight > 0 {
			survivors = append(survivors, i)
		}
	}
	if len(survivors) == 0 {
		return nil
	}
	for j, s := range svc.Sites {
		if st[j].Site == "" || st[j].Weight >= 1 || (s.Name != lost && demand[s.Name] == 0) {
			continue
		}
		x := demand[s.Name] * (1 - st[j].Weight)
		if s.Name == lost {
			// A client of a site the estimate gives no clients still needs
			// a place: the spread of a marginal one.
			x = max(x, 1e-9)
		}
		given := make([]float64, n)
		near := slices.Clone(survivors)
		slices.SortStableFunc(near, func(a, b int) int {
			da := geo.Distance(s.Lat, s.Lon, svc.Sites[a].Lat, svc.Sites[a].Lon)
			db := geo.Distance(s.Lat, s.Lon, svc.Sites[b].Lat, svc.Sites[b].Lon)
			return cmpFloat(da, db)
		})
		for _, i := range near {
			if room := svc.MaxLoad*capShare[i] - load[i]; room > 0 {
				g := min(room, x)
				given[i] += g
				load[i] += g
				x -= g
			}
			if x <= 0 {
				break
			}
		}
		if x > 0 {
			waterFill(survivors, capShare, load, given, x)
		}
		if s.Name != lost {
			continue
		}
		var out []SiteShare
		sum := 0.0
		for _, i := range survivors {
			sum += given[i]
		}
		for _, i := range survivors {
			if given[i] > 0 {
				out = append(out, SiteShare{svc.Sites[i].Name, given[i] / sum})
			}
		}
		return out
	}
	return nil
}

// waterFill gives x more load to the survivors, raising the least utilized
// to a common utilization level; sites without capacity share it equally
// when no site has any.
func waterFill(survivors []int, capShare, load, given []float64, x float64) {
	var withCap []int
	for _, i := range survivors {
		if capShare[i] > 0 {
			withCap = append(withCap, i)
		}
	}
	if len(withCap) == 0 {
		for _, i := range survivors {
			given[i] += x / float64(len(survivors))
			load[i] += x / float64(len(survivors))
		}
		return
	}
	slices.SortStableFunc(withCap, func(a, b int) int {
		return cmpFloat(load[a]/capShare[a], load[b]/capShare[b])
	})
	// Find the level: the sites below it are the first m in that order.
	sumCap, sumLoad, level := 0.0, 0.0, 0.0
	for m, i := range withCap {
		sumCap += capShare[i]
		sumLoad += load[i]
		level = (x + sumLoad) / sumCap
		if m+1 == len(withCap) || load[withCap[m+1]]/capShare[withCap[m+1]] >= level {
			break
		}
	}
	for _, i := range withCap {
		if g := level*capShare[i] - load[i]; g > 0 {
			given[i] += g
			load[i] += g
		}
	}
}

func cmpFloat(a, b float64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// Demand estimates the share of a service's clients each site has when
// every site is up: the spread's notion of load. It samples one IPv4 /24
// in every /16 (65,536 networks, each counting once) through the locator
// and routes each by distance and rules; sites that tie share. Only the
// plan loop (Run) estimates, for spillover services, once per service
// version and database generation; Demand only reads. Until an estimate
// is in (ok false), and without a database, shares follow capacity; after
// a database reload the last estimate stands until the new one is in.
func (r *Router) Demand(svc *zones.Service) (shares map[string]float64, ok bool) {
	if v, found := r.demands.Load(svc); found {
		return v.(*demandEntry).shares, true
	}
	return capacityShares(svc), r.Loc == nil
}

// demand is the spread's demand for svc; the pointer names the estimate
// (or capacity shares) a spread was computed from. It only reads.
func (r *Router) demand(svc *zones.Service, idx *svcIndex) *map[string]float64 {
	if v, found := r.demands.Load(svc); found {
		return &v.(*demandEntry).shares
	}
	return &idx.capShares
}

// demandEntry is one estimate, published whole.
type demandEntry struct {
	gen    uint64 // the locator generation it was estimated from
	shares map[string]float64
}

// locGen is the locator's generation: it changes when a database reloads.
func (r *Router) locGen() uint64 {
	if r.Loc == nil {
		return 0
	}
	return r.Loc.Generation()
}

// demandKey names what an estimate depends on: the sites' places and the
// rules. Services that share them (the same sites in many services) share
// one estimate.
func demandKey(svc *zones.Service) string {
	var b strings.Builder
	for _, s := range svc.Sites {
		fmt.Fprintf(&b, "%s %g %g;", s.Name, s.Lat, s.Lon)
	}
	fmt.Fprintf(&b, "%v", svc.Rules)
	return b.String()
}

// estimateDemands estimates the demand of the spillover services in set
// that have no estimate for the locator's generation, one after another
// (the plan loop's demand worker runs it, never a query or a GET).
// Estimates are kept by demandKey, so a reload that keeps a service's
// sites and rules reuses its estimate.
func (r *Router) estimateDemands(ctx context.Context, set *zones.Set) {
	if r.Loc == nil || set == nil {
		return
	}
	r.estMu.Lock()
	defer r.estMu.Unlock()
	gen := r.locGen()
	used := map[string]bool{}
	for _, z := range set.Zones() {
		for _, svc := range z.Services {
			if !svc.Spillover || ctx.Err() != nil {
				continue
			}
			k := demandKey(svc)
			used[k] = true
			if v, ok := r.demands.Load(svc); ok && v.(*demandEntry).gen == gen {
				continue
			}
			e := r.byKey[k]
			if e == nil || e.gen != gen {
				r.estimates.Add(1)
				if r.Metrics != nil {
					r.Metrics.estimates.Inc()
				}
				e = &demandEntry{gen: gen, shares: estimate(r.Loc, svc)}
				if r.byKey == nil {
					r.byKey = map[string]*demandEntry{}
				}
				r.byKey[k] = e
			}
			r.demands.Store(svc, e)
		}
	}
	if ctx.Err() == nil {
		for k := range r.byKey {
			if !used[k] {
				delete(r.byKey, k)
			}
		}
	}
}

func capacityShares(svc *zones.Service) map[string]float64 {
	out := make(map[string]float64, len(svc.Sites))
	total := 0.0
	for _, s := range svc.Sites {
		total += s.Capacity
	}
	for _, s := range svc.Sites {
		if total > 0 {
			out[s.Name] = s.Capacity / total
		} else {
			out[s.Name] = 1 / float64(len(svc.Sites))
		}
	}
	return out
}

func estimate(loc Locator, svc *zones.Service) map[string]float64 {
	counts := make(map[string]float64, len(svc.Sites))
	total := 0.0
	for n := 0; n < 1<<16; n++ {
		addr := netip.AddrFrom4([4]byte{byte(n >> 8), byte(n), 128, 0})
		l, ok := loc.Locate(addr)
		if !ok || !l.HasCoords {
			continue
		}
		groups, _ := siteGroups(svc, l, true, addr, nil)
		for _, g := range groups {
			if len(g) == 0 {
				continue
			}
			for _, s := range g {
				counts[s] += 1 / float64(len(g))
			}
			total++
			break
		}
	}
	if total == 0 {
		return capacityShares(svc)
	}
	for s := range counts {
		counts[s] /= total
	}
	return counts
}

// demandCache is the Router's per-service demand estimates, and the
// spreads computed from them.
type demandCache struct {
	demands   sync.Map // *zones.Service -> *demandEntry, stored by the plan loop only
	spills    sync.Map // spillKey -> *spillMemo
	estimates atomic.Int64
	estMu     sync.Mutex
	byKey     map[string]*demandEntry // demandKey -> the estimate; under estMu
}

type spillKey struct {
	svc  *zones.Service
	lost string
}

// spillMemo is a spread and what it was computed from: every spilled
// query of an outage asks for the same one.
type spillMemo struct {
	from    *map[string]float64
	weights []float64 // each site's Weight, 0 for sites without the family; -1 for those
	shares  []SiteShare
}

func (m *spillMemo) matches(from *map[string]float64, st []SiteTraffic) bool {
	if m.from != from || len(m.weights) != len(st) {
		return false
	}
	for i, t := range st {
		if m.weights[i] != weightOf(t) {
			return false
		}
	}
	return true
}

func weightOf(t SiteTraffic) float64 {
	if t.Site == "" {
		return -1
	}
	return t.Weight
}
