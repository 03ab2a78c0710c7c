package route

import (
	"context"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/geodns/geodns/zones"
)

// loopState is what the plan loop keeps between rounds.
type loopState struct {
	once    sync.Once
	kick    chan struct{}
	running atomic.Bool // Run is keeping the plans current
	mu      sync.Mutex  // one refresh at a time (Run's, or a test's)
	set     *zones.Set  // the set of the last refresh
	allDown map[allDownKey]bool
	// allDownSeries are the label sets (service, family) of
	// geodns_all_down_total created at 0, deleted when their service goes.
	allDownSeries map[[2]string]bool
	gen           atomic.Uint64 // refreshes done: PlanGeneration
}

type allDownKey struct {
	origin, service string
	v6              bool
}

func (r *Router) kickChan() chan struct{} {
	r.loop.once.Do(func() { r.loop.kick = make(chan struct{}, 1) })
	return r.loop.kick
}

// Changed tells the plan loop that health, overrides or zones changed. It
// never blocks; it is safe to call from any goroutine, before Run too.
func (r *Router) Changed() {
	select {
	case r.kickChan() <- struct{}{}:
	default:
	}
}

// refreshEvery bounds how often the plan loop rebuilds: the first change
// of a burst is handled at once, the rest together after it.
const refreshEvery = 10 * time.Millisecond

// geoPoll is how often the plan loop looks for a reloaded GeoIP database
// (whose demand estimates are then redone).
const geoPoll = 5 * time.Second

// Run keeps the router's plans current until ctx is done, off the query
// path: at start and whenever Changed is called it rebuilds the plans of
// the services in current() for the current health, reports services whose
// sites of a family all went down or came back (metric and log, once per
// transition), and has the demand of spillover services estimated for
// each new zone version or GeoIP generation.
func (r *Router) Run(ctx context.Context, current func() *zones.Set) error {
	work := make(chan *zones.Set, 1)
	go worker(ctx, work, r.estimateDemands)
	mapWork := make(chan *zones.Set, 1)
	go worker(ctx, mapWork, r.compileMaps)
	poll := time.NewTicker(geoPoll)
	defer poll.Stop()
	kick := r.kickChan()
	r.loop.running.Store(true)
	defer r.loop.running.Store(false)
	for {
		set := current()
		r.refresh(set)
		newest(work, set)
		newest(mapWork, set)
		select {
		case <-ctx.Done():
			return nil
		case <-kick:
		case <-poll.C: // a reloaded database: the worker sees the new generation
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(refreshEvery):
		}
	}
}

// worker does its job for each set sent on work until ctx is done: the
// demand estimates and the site maps, slow work the plan loop does not
// wait for.
func worker(ctx context.Context, work <-chan *zones.Set, do func(context.Context, *zones.Set)) {
	for {
		select {
		case <-ctx.Done():
			return
		case set := <-work:
			do(ctx, set)
		}
	}
}

// newest puts set on work (of capacity 1) in place of one not yet taken.
func newest(work chan *zones.Set, set *zones.Set) {
	select {
	case <-work:
	default:
	}
	work <- set
}

// Refresh does a round of the plan loop now: when it returns, queries
// route by the health, overrides and dials of its start. Write calls (an
// API drain) use it so that their change is in effect when they answer.
func (r *Router) Refresh(set *zones.Set) { r.refresh(set) }

// PlanGeneration grows after every refresh of the plans (Run's or
// Refresh's): what readers derive from routing (the status page's map)
// keys on it and is redone only when it moves.
func (r *Router) PlanGeneration() uint64 { return r.loop.gen.Load() }

// refresh rebuilds the plans of set's services for the current health
// and reports all-down transitions and site states.
func (r *Router) refresh(set *zones.Set) {
	r.loop.mu.Lock()
	defer r.loop.mu.Unlock()
	defer r.loop.gen.Add(1) // after the plans are published
	log := r.Log
	if log == nil {
		log = slog.Default()
	}
	if r.loop.allDown == nil {
		r.loop.allDown = map[allDownKey]bool{}
	}
	if set != r.loop.set && r.Metrics != nil {
		r.Metrics.siteUp.Reset() // series of removed zones, services and sites go; the rest are set below
	}
	r.loop.set = set
	// One health table and one operator state for the whole round: every
	// plan of a round sees the same moment.
	tab, op := r.snapshots()
	live := map[*zones.Service]bool{}
	seen := map[allDownKey]bool{}
	series := map[[2]string]bool{}
	if set != nil {
		for _, z := range set.Zones() {
			for name, svc := range z.Services {
				live[svc] = true
				pl := r.plan(z.Origin, svc, false, tab, op) // rebuilt if health or operator state changed
				fams := []bool{false, true}
				if svc.CNAME {
					fams = fams[:1] // one answer for every type: counted once
				}
				for _, v6 := range fams {
					if pl.idx.candidates[b2i(v6)] == 0 {
						continue
					}
					fam := familyLabel(v6, svc.CNAME)
					if r.Metrics != nil {
						// At 0 from the service's load, so the all-down alert sees the first one.
						r.Metrics.allDown.WithLabelValues(name, fam)
						series[[2]string{name, fam}] = true
						for i, s := range svc.Sites {
							if fp := &pl.sites[i][b2i(v6)]; fp.has {
								up := 0.0
								if fp.up {
									up = 1
								}
								r.Metrics.siteUp.WithLabelValues(z.Origin, name, s.Name, fam).Set(up)
							}
						}
					}
					k := allDownKey{z.Origin, name, v6}
					seen[k] = true
					down := pl.allDown(v6)
					if down == r.loop.allDown[k] {
						continue
					}
					r.loop.allDown[k] = down
					if down {
						if r.Metrics != nil {
							r.Metrics.allDown.WithLabelValues(name, fam).Inc()
						}
						log.Error("every site of the service is down for the family; all_down policy applies", "zone", z.Origin,
							"service", name, "family", fam, "policy", policyName(svc.AllDown))
					} else {
						log.Warn("service has an up site again", "zone", z.Origin, "service", name, "family", fam)
					}
				}
			}
		}
	}
	for k := range r.loop.allDown {
		if !seen[k] {
			delete(r.loop.allDown, k)
		}
	}
	if r.Metrics != nil {
		for l := range r.loop.allDownSeries {
			if !series[l] {
				r.Metrics.allDown.DeleteLabelValues(l[0], l[1])
			}
		}
		r.loop.allDownSeries = series
	}
	// Forget what services of replaced zone versions left behind.
	r.plans.Range(func(k, _ any) bool {
		if !live[k.(*zones.Service)] {
			r.forget(k)
		}
		return true
	})
	r.demands.Range(func(k, _ any) bool {
		if !live[k.(*zones.Service)] {
			r.demands.Delete(k)
		}
		return true
	})
	r.spills.Range(func(k, _ any) bool {
		if !live[k.(spillKey).svc] {
			r.spills.Delete(k)
		}
		return true
	})
}

func policyName(p zones.AllDownPolicy) string {
	return [...]string{"serve-all", "nodata", "fallback"}[p]
}
