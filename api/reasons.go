package api

import (
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/geodns/geodns/health"
	"github.com/geodns/geodns/opstate"
	"github.com/geodns/geodns/route"
	"github.com/geodns/geodns/zones"
)

// A site that is up but keeps fewer than all its clients says why in its
// state too (its reason says how far).
const (
	StateRamping = "ramping" // up, winning its clients back over the return ramp
	StateDialed  = "dialed"  // up, dialed to keep fewer than all its clients
)

func changeStatus(m opstate.Meta) Change { return Change{m.At, m.From, m.Call, m.Reason} }

// overridesOf lists the overrides and dials of op, sorted, with who made them.
func overridesOf(op *opstate.State) Overrides {
	out := Overrides{Sites: []OverrideStatus{}, Endpoints: []OverrideStatus{}, Dials: []DialStatus{}}
	for n, o := range op.Sites() {
		out.Sites = append(out.Sites, OverrideStatus{"site", n, string(o), changeStatus(op.SiteMeta(n))})
	}
	for n, o := range op.Endpoints() {
		out.Endpoints = append(out.Endpoints, OverrideStatus{"endpoint", n, string(o), changeStatus(op.EndpointMeta(n))})
	}
	byName := func(l []OverrideStatus) { sort.Slice(l, func(i, j int) bool { return l[i].Name < l[j].Name }) }
	byName(out.Sites)
	byName(out.Endpoints)
	for _, d := range op.Dials() {
		p := percent(d.Weight)
		out.Dials = append(out.Dials, DialStatus{d.Service, d.Site, &p, changeStatus(op.DialMeta(d.Service, d.Site))})
	}
	return out
}

// stateOf names the state an override puts a site or endpoint in.
func stateOf(o opstate.Override) string {
	switch o {
	case opstate.Drain:
		return StateDrained
	case opstate.ForceUp:
		return StateForcedUp
	}
	return StateForcedDown
}

// describe says who made an override: "drained by POST /api/v1/sites/us-east/drain
// from 127.0.0.1:41234 at 2026-12-02T12:30:00Z: kernel upgrade".
func describe(o *OverrideStatus) string {
	verb := map[string]string{"drain": "drained", "up": "forced up", "down": "forced down"}[o.Override]
	var b strings.Builder
	b.WriteString(verb)
	if o.Call != "" {
		b.WriteString(" by " + o.Call)
	} else {
		b.WriteString(" by an operator")
	}
	if o.From != "" {
		b.WriteString(" from " + o.From)
	}
	if !o.At.IsZero() {
		b.WriteString(" at " + o.At.UTC().Format(time.RFC3339))
	}
	if o.Reason != "" {
		b.WriteString(": " + o.Reason)
	}
	return b.String()
}

// overrideOf returns the override that applies to an endpoint (its own
// before its site's), with who made it; nil when none does.
func overrideOf(op *opstate.State, site, id string) *OverrideStatus {
	if o, ok := op.Override("", id); ok && id != "" { // no site is named "": the endpoint's own
		return &OverrideStatus{"endpoint", id, string(o), changeStatus(op.EndpointMeta(id))}
	}
	if o, ok := op.Override(site, "\x00"); ok { // no endpoint is named NUL: the site's
		return &OverrideStatus{"site", site, string(o), changeStatus(op.SiteMeta(site))}
	}
	return nil
}

// endpointStanding is an endpoint's state and why: an override, else its
// check's state and latest result.
func endpointStanding(ep *zones.Endpoint, tab *health.Table, op *opstate.State, probes map[string]*health.ProbeStatus) EndpointStatus {
	es := EndpointStatus{ID: ep.ID, Up: route.EndpointUp(tab, op, ep)}
	var p *health.ProbeStatus
	if ep.Probe != nil {
		p = probes[ep.Probe.Key]
	}
	if p != nil {
		es.Check, es.Target, es.Since, es.Last, es.LastErr = p.Check, p.Target, p.Since, p.Last, p.LastError
	}
	switch o := overrideOf(op, ep.Site, ep.ID); {
	case o != nil:
		es.Override, es.State, es.Reason = o, stateOf(opstate.Override(o.Override)), describe(o)
		if o.Kind == "site" {
			es.Reason = "site " + o.Name + " " + es.Reason
		}
	case p == nil && ep.Probe != nil:
		es.State, es.Reason = StateUp, "not probed yet"
	case p == nil:
		es.State, es.Reason = StateUp, "not checked"
	case p.Voted && (!p.Runs || p.Own != es.Up):
		// The set outvoted this node's own probe, or decided a target this
		// node does not probe: its own results do not say why.
		es.State = StateDown
		if es.Up {
			es.State = StateUp
		}
		own := "not probed here"
		if p.Runs {
			own = "this node's probe: " + orNone(p.Last, p.Reason)
		}
		es.Reason = fmt.Sprintf("check %s %s by the set's votes (%s)", p.Check, es.State, own)
	case es.Up:
		es.State, es.Reason = StateUp, fmt.Sprintf("check %s passing: %s", p.Check, orNone(p.Last, p.Reason))
	default:
		es.State = StateDown
		why := p.LastError
		if why == "" {
			why = p.Reason // down since before a restart
		}
		es.Reason = fmt.Sprintf("check %s failing: %s (down since %s)", p.Check, why, p.Since.UTC().Format(time.RFC3339))
	}
	return es
}

func orNone(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

// standing is a site's status in a service and why: an override, its
// endpoints' checks, its return ramp, its dial.
func standing(svc *zones.Service, site string, tr route.SiteTraffic, tab *health.Table, op *opstate.State, probes map[string]*health.ProbeStatus) SiteStatus {
	sst := SiteStatus{Name: site, Up: tr.Up, Dial: percent(tr.Dial), Ramp: percent(tr.Ramp), Keeps: percent(tr.Weight),
		Endpoints: []EndpointStatus{}}
	// Endpoints down for the same reason (an address and its AAAA sibling
	// behind one target) are named together: "192.0.2.10, 2001:db8::10: ...".
	var reasons []string
	byReason := map[string][]string{}
	ndown := 0
	for i := range svc.Endpoints {
		ep := &svc.Endpoints[i]
		if ep.Site != site {
			continue
		}
		es := endpointStanding(ep, tab, op, probes)
		if !es.Up {
			ndown++
			if byReason[es.Reason] == nil {
				reasons = append(reasons, es.Reason)
			}
			byReason[es.Reason] = append(byReason[es.Reason], es.ID)
		}
		sst.Endpoints = append(sst.Endpoints, es)
	}
	var down []string
	for _, r := range reasons {
		down = append(down, strings.Join(byReason[r], ", ")+": "+r)
	}
	if o, ok := op.Override(site, "\x00"); ok {
		sst.Override = &OverrideStatus{"site", site, string(o), changeStatus(op.SiteMeta(site))}
		sst.State, sst.Reason = stateOf(o), describe(sst.Override)
		return sst
	}
	if !tr.Up {
		sst.State = StateDown
		switch {
		case len(sst.Endpoints) == 0:
			sst.Reason = "no endpoints"
		default:
			sst.Reason = "every endpoint is down: " + strings.Join(down, "; ")
		}
		return sst
	}
	sst.State = StateUp
	var why []string
	if tr.Ramp < 1 {
		sst.State = StateRamping
		why = append(why, fmt.Sprintf("returning: %.0f%% of its return ramp (%v) done", 100*tr.Ramp, svc.ReturnRamp))
	}
	if tr.Dial < 1 {
		if sst.State == StateUp {
			sst.State = StateDialed
		}
		by := "by the zone file"
		if _, ok := op.Dial(svc.Name, site); ok {
			m := op.DialMeta(svc.Name, site)
			by = "by " + orNone(m.Call, "an operator")
			if m.Reason != "" {
				by += ": " + m.Reason
			}
		}
		why = append(why, fmt.Sprintf("dialed to %.0f%% %s", 100*tr.Dial, by))
	}
	if len(down) > 0 {
		why = append(why, fmt.Sprintf("%d of %d endpoints down (%s)", ndown, len(sst.Endpoints), strings.Join(down, "; ")))
	}
	if len(why) == 0 {
		why = append(why, "every endpoint up")
	}
	sst.Reason = strings.Join(why, "; ")
	sst.Keeps = percent(tr.Weight)
	return sst
}

// addStandings adds each traced service's sites, with their states and
// why, to an explanation of the live server.
func (s *Server) addStandings(set *zones.Set, e *Explanation) {
	if e.Zone == "" || len(e.Services) == 0 {
		return
	}
	z := set.Zone(e.Zone)
	if z == nil {
		return
	}
	probes := s.Health.Status()
	byKey := map[string]*health.ProbeStatus{}
	for i := range probes {
		byKey[probes[i].Key] = &probes[i]
	}
	tab, op := s.Health.Table(), s.Operator.Load()
	for i := range e.Services {
		st := &e.Services[i]
		svc := z.Services[st.Service]
		if svc == nil {
			continue
		}
		for _, site := range svc.Sites {
			ss := standing(svc, site.Name, s.Router.Standing(z.Origin, svc, site.Name), tab, op, byKey)
			st.Sites = append(st.Sites, SiteState{Site: site.Name, State: ss.State, Reason: ss.Reason})
		}
	}
}
