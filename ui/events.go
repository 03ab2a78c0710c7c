package ui

import (
	"encoding/json"
	"fmt"
	"net/http"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/geodns/geodns/opstate"
)

// maxEvents bounds the timeline: the newest are kept.
const maxEvents = 200

// Event is one entry of the timeline.
type Event struct {
	At time.Time `json:"at"`
	// Kind is probe (a check's state changed), site (a site of a service
	// went down or came up), reload (a zone loaded, changed or went),
	// drain (an override set or lifted), dial, or start.
	Kind string `json:"kind"`
	Text string `json:"text"`
	// Up is the new state of a probe or site; omitted for other kinds.
	Up *bool `json:"up,omitempty"`
}

// timeline is the recent events and what was seen last, to tell changes.
type timeline struct {
	mu      sync.Mutex
	events  []Event // oldest first, at most maxEvents
	started bool
	probes  map[string]bool   // probe key -> up
	sites   map[string]bool   // "zone service site" -> up
	serials map[string]uint32 // zone -> serial
	opVer   uint64
	op      *opstate.State
	once    sync.Once
	notes   chan opNote // operator states as they happened (OperatorChanged)
}

// opNote is an operator state and when it became current.
type opNote struct {
	at time.Time
	st *opstate.State
}

func (t *timeline) noteChan() chan opNote {
	t.once.Do(func() { t.notes = make(chan opNote, 64) })
	return t.notes
}

// OperatorChanged notes a new operator state for the timeline, so that a
// drain lifted again before the next look still shows. It never blocks
// (opstate.Store.Watch's contract): when the queue is full the next look
// reports the difference in one go.
func (s *Server) OperatorChanged(st *opstate.State) {
	select {
	case s.events.noteChan() <- opNote{time.Now(), st}:
	default:
	}
}

func (t *timeline) add(e Event) {
	t.events = append(t.events, e)
	if len(t.events) > maxEvents {
		t.events = append(t.events[:0], t.events[len(t.events)-maxEvents:]...)
	}
}

func ptr(b bool) *bool { return &b }

func upDown(up bool) string {
	if up {
		return "up"
	}
	return "down"
}

// observe compares the current probes, sites, zones and operator state
// with the last seen and records what changed. Run calls it every Poll.
func (s *Server) observe(now time.Time) {
	t := &s.events
	t.mu.Lock()
	defer t.mu.Unlock()
	first := !t.started
	if first {
		t.started = true
		t.probes, t.sites, t.serials = map[string]bool{}, map[string]bool{}, map[string]uint32{}
		t.add(Event{At: now, Kind: "start", Text: "status page watching"})
	}
	if s.Health != nil {
		seen := map[string]bool{}
		for _, p := range s.Health.Status() {
			seen[p.Key] = true
			was, ok := t.probes[p.Key]
			t.probes[p.Key] = p.Up
			if !ok || was == p.Up {
				continue // a new probe (or the first look) is not news, nor no change
			}
			at := p.Since
			if at.IsZero() {
				at = now
			}
			text := fmt.Sprintf("check %s of %s (%s) %s", p.Check, strings.Join(p.Endpoints, ", "), p.Site, upDown(p.Up))
			if p.Reason != "" {
				text += ": " + p.Reason
			}
			t.add(Event{At: at, Kind: "probe", Text: text, Up: ptr(p.Up)})
		}
		for k := range t.probes {
			if !seen[k] {
				delete(t.probes, k)
			}
		}
	}
	set := s.Zones.Load()
	seenZ, seenS := map[string]bool{}, map[string]bool{}
	for _, z := range set.Zones() {
		seenZ[z.Origin] = true
		old, ok := t.serials[z.Origin]
		t.serials[z.Origin] = z.Serial
		switch {
		case !ok && !first:
			t.add(Event{At: now, Kind: "reload", Text: fmt.Sprintf("zone %s loaded, serial %d", z.Origin, z.Serial)})
		case ok && old != z.Serial:
			t.add(Event{At: now, Kind: "reload", Text: fmt.Sprintf("zone %s reloaded, serial %d → %d", z.Origin, old, z.Serial)})
		}
		for name, svc := range z.Services {
			for _, site := range svc.Sites {
				k := z.Origin + " " + name + " " + site.Name
				seenS[k] = true
				up := s.Router.Standing(z.Origin, svc, site.Name).Up
				was, ok := t.sites[k]
				t.sites[k] = up
				if ok && was != up {
					t.add(Event{At: now, Kind: "site", Text: fmt.Sprintf("site %s of service %s (%s) %s", site.Name, name, z.Origin, upDown(up)), Up: ptr(up)})
				}
			}
		}
	}
	for z := range t.serials {
		if !seenZ[z] {
			delete(t.serials, z)
			t.add(Event{At: now, Kind: "reload", Text: "zone " + z + " removed"})
		}
	}
	for k := range t.sites {
		if !seenS[k] {
			delete(t.sites, k)
		}
	}
	if s.Operator != nil {
		notes := []opNote{}
	drain:
		for {
			select {
			case n := <-t.noteChan():
				notes = append(notes, n)
			default:
				break drain
			}
		}
		notes = append(notes, opNote{now, s.Operator.Load()})
		for _, n := range notes {
			if v := n.st.Version(); v > t.opVer || first {
				if !first {
					for _, e := range opChanges(t.op, n.st) {
						e.At = n.at
						t.add(e)
					}
				}
				t.opVer, t.op, first = v, n.st, false
			}
		}
	}
}

// opChanges lists what differs between two operator states.
func opChanges(old, cur *opstate.State) []Event {
	var out []Event
	diff := func(what string, a, b map[string]opstate.Override) {
		keys := map[string]bool{}
		for k := range a {
			keys[k] = true
		}
		for k := range b {
			keys[k] = true
		}
		sorted := make([]string, 0, len(keys))
		for k := range keys {
			sorted = append(sorted, k)
		}
		sort.Strings(sorted)
		for _, k := range sorted {
			switch was, now := a[k], b[k]; {
			case was == now:
			case now == "":
				out = append(out, Event{Kind: "drain", Text: fmt.Sprintf("%s %s: %s lifted", what, k, name(was))})
			default:
				out = append(out, Event{Kind: "drain", Text: fmt.Sprintf("%s %s: %s", what, k, name(now))})
			}
		}
	}
	diff("site", old.Sites(), cur.Sites())
	diff("endpoint", old.Endpoints(), cur.Endpoints())
	dials := func(s *opstate.State) map[opstate.DialKey]float64 {
		m := map[opstate.DialKey]float64{}
		for _, d := range s.Dials() {
			m[opstate.DialKey{Service: d.Service, Site: d.Site}] = d.Weight
		}
		return m
	}
	a, b := dials(old), dials(cur)
	for _, d := range cur.Dials() {
		k := opstate.DialKey{Service: d.Service, Site: d.Site}
		if w, ok := a[k]; !ok || w != d.Weight {
			out = append(out, Event{Kind: "dial", Text: fmt.Sprintf("dial %s at %s: %g %%", d.Service, d.Site, d.Weight*100)})
		}
	}
	for _, d := range old.Dials() {
		if _, ok := b[opstate.DialKey{Service: d.Service, Site: d.Site}]; !ok {
			out = append(out, Event{Kind: "dial", Text: fmt.Sprintf("dial %s at %s removed (back to the zone's)", d.Service, d.Site)})
		}
	}
	return out
}

func name(o opstate.Override) string {
	switch o {
	case opstate.Drain:
		return "drained"
	case opstate.ForceUp:
		return "forced up"
	case opstate.ForceDown:
		return "forced down"
	}
	return string(o)
}

func (s *Server) serveEvents(w http.ResponseWriter, r *http.Request) {
	t := &s.events
	t.mu.Lock()
	out := make([]Event, len(t.events))
	for i, e := range t.events { // newest first
		out[len(out)-1-i] = e
	}
	t.mu.Unlock()
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	json.NewEncoder(w).Encode(map[string]any{"events": out})
}
