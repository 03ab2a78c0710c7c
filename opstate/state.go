package opstate

import (
	"cmp"
	"errors"
	"maps"
	"math"
	"slices"
	"strings"
	"time"
)

// Override is an operator's decision that beats the probes.
type Override string

const (
	Drain     Override = "drain" // taken out of service (maintenance): down
	ForceDown Override = "down"
	ForceUp   Override = "up"
)

// Valid reports whether o is drain, down or up.
func (o Override) Valid() bool { return o == Drain || o == ForceDown || o == ForceUp }

// Dial is a dial set by an operator: the share (0-1) of its own clients a
// site of a service (the service of that name in every zone) keeps.
type Dial struct {
	Service string  `json:"service"`
	Site    string  `json:"site"`
	Weight  float64 `json:"weight"`
}

// Meta records who made an override or a dial, when, and why: what status
// pages and explain show beside it. It is kept while the override or dial
// is, and stored with it.
type Meta struct {
	At     time.Time `json:"at,omitzero"`
	From   string    `json:"from,omitempty"`   // the caller: a remote address
	Call   string    `json:"call,omitempty"`   // the call that made it, e.g. "POST /api/v1/sites/us-east/drain"
	Reason string    `json:"reason,omitempty"` // the operator's words, if given
}

// MetaKey names the Meta of an override or a dial in Metas and NewStateMeta.
func MetaKey(kind ChangeKind, name, service string) string {
	switch kind {
	case SiteOverride:
		return "site:" + name
	case EndpointOverride:
		return "endpoint:" + name
	case SetDial:
		return "dial:" + service + "/" + name
	}
	return ""
}

// DialKey names a dial: a service and a site.
type DialKey struct{ Service, Site string }

// ErrBadOverride rejects an override that is not drain, up or down.
var ErrBadOverride = errors.New(`override must be "drain", "up" or "down"`)

// ErrBadDial rejects a dial weight above 1 (100 %) or not a number.
var ErrBadDial = errors.New("dial weight must be from 0 to 100 percent")

// ErrNotSaved wraps a failure to make a change durable: the change was not
// made, since it would not survive a restart.
var ErrNotSaved = errors.New("state file not written")

// State is the operator state at one moment. It is immutable and safe for
// concurrent use; the zero value (and nil) has no overrides and no dials.
type State struct {
	sites     map[string]Override  // site name -> override
	endpoints map[string]Override  // endpoint ID (address or CNAME) -> override
	lifted    map[string]time.Time // "site:NAME", "endpoint:ID" -> when a drain or force-down was lifted
	dials     map[DialKey]float64
	meta      map[string]Meta // MetaKey -> who made it; only for what is set
	last      time.Time       // the latest of lifted
	version   uint64
}

// Version grows with every state a Store publishes.
func (s *State) Version() uint64 {
	if s == nil {
		return 0
	}
	return s.version
}

// Override returns the override of an endpoint (by ID) at site: its own
// before its site's. ok is false when neither has one.
func (s *State) Override(site, id string) (o Override, ok bool) {
	if s == nil {
		return "", false
	}
	if len(s.endpoints) > 0 {
		if o, ok := s.endpoints[id]; ok {
			return o, true
		}
	}
	if len(s.sites) > 0 {
		o, ok = s.sites[site]
	}
	return o, ok
}

// Any reports whether any override is set.
func (s *State) Any() bool { return s != nil && len(s.sites)+len(s.endpoints) > 0 }

// Lifted returns when a drain or force-down of the site or of the endpoint
// was last lifted; zero: never (in the last hour).
func (s *State) Lifted(site, id string) time.Time {
	if s == nil || len(s.lifted) == 0 {
		return time.Time{}
	}
	return latest(s.lifted["site:"+site], s.lifted["endpoint:"+id])
}

// LastLift is the latest Lifted of any site or endpoint.
func (s *State) LastLift() time.Time {
	if s == nil {
		return time.Time{}
	}
	return s.last
}

// Dial returns the dial set for service at site, if one is.
func (s *State) Dial(service, site string) (float64, bool) {
	if s == nil || len(s.dials) == 0 {
		return 0, false
	}
	w, ok := s.dials[DialKey{service, site}]
	return w, ok
}

// SiteMeta returns who set the override of site, when and why (zero if
// unknown or none).
func (s *State) SiteMeta(site string) Meta { return s.metaOf(MetaKey(SiteOverride, site, "")) }

// EndpointMeta returns who set the override of endpoint id.
func (s *State) EndpointMeta(id string) Meta { return s.metaOf(MetaKey(EndpointOverride, id, "")) }

// DialMeta returns who set the dial of service at site.
func (s *State) DialMeta(service, site string) Meta { return s.metaOf(MetaKey(SetDial, site, service)) }

func (s *State) metaOf(k string) Meta {
	if s == nil || len(s.meta) == 0 {
		return Meta{}
	}
	return s.meta[k]
}

// Metas returns a copy of every Meta, by MetaKey: for stores that hold
// the state elsewhere.
func (s *State) Metas() map[string]Meta {
	if s == nil {
		return map[string]Meta{}
	}
	return maps.Clone(s.meta)
}

// Sites returns a copy of the site overrides.
func (s *State) Sites() map[string]Override {
	if s == nil {
		return map[string]Override{}
	}
	return maps.Clone(s.sites)
}

// Endpoints returns a copy of the endpoint overrides.
func (s *State) Endpoints() map[string]Override {
	if s == nil {
		return map[string]Override{}
	}
	return maps.Clone(s.endpoints)
}

// Dials returns the dials, by service and site.
func (s *State) Dials() []Dial {
	if s == nil {
		return nil
	}
	var out []Dial
	for k, w := range s.dials {
		out = append(out, Dial{k.Service, k.Site, w})
	}
	slices.SortFunc(out, func(a, b Dial) int {
		return cmp.Or(cmp.Compare(a.Service, b.Service), cmp.Compare(a.Site, b.Site))
	})
	return out
}

func latest(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}

// ChangeKind says what a Change changes.
type ChangeKind uint8

const (
	SiteOverride     ChangeKind = iota + 1 // Name is a site
	EndpointOverride                       // Name is an endpoint ID
	SetDial                                // Name is a site of Service
)

// Change is one operator action. A Store applies it to its newest state.
type Change struct {
	Kind     ChangeKind
	Name     string   // the site or endpoint
	Service  string   // SetDial: the service
	Override Override // overrides: the new one; "" lifts it
	Weight   float64  // SetDial: 0..1; negative clears the dial
	// Meta says who makes the change and why; its At defaults to the time
	// the change is made. Kept while the override or dial is set.
	Meta Meta
}

// Site sets (or with "" clears) the override of every site named site.
func Site(site string, o Override) Change { return Change{Kind: SiteOverride, Name: site, Override: o} }

// Endpoint sets (or with "" clears) the override of an endpoint, named by
// its address or CNAME.
func Endpoint(id string, o Override) Change {
	return Change{Kind: EndpointOverride, Name: id, Override: o}
}

// DialOf sets the share (0..1) of its own clients site keeps for service,
// beating the zone file's dial; a negative weight clears it.
func DialOf(service, site string, weight float64) Change {
	return Change{Kind: SetDial, Name: site, Service: service, Weight: weight}
}

// Check reports whether c can be applied.
func (c Change) Check() error {
	switch c.Kind {
	case SiteOverride, EndpointOverride:
		if c.Override != "" && !c.Override.Valid() {
			return ErrBadOverride
		}
	case SetDial:
		if c.Weight > 1 || math.IsNaN(c.Weight) {
			return ErrBadDial
		}
	default:
		return errors.New("unknown change")
	}
	return nil
}

// liftedFor is how long a lift is remembered: longer than any ramp.
const liftedFor = time.Hour

// With returns the state after c, made at now, with version v. s is not
// changed. c must have passed Check.
func (s *State) With(c Change, now time.Time, v uint64) *State {
	d := s.data()
	switch c.Kind {
	case SiteOverride, EndpointOverride:
		kind, in := "site", d.Sites
		if c.Kind == EndpointOverride {
			kind, in = "endpoint", d.Endpoints
		}
		if old, ok := in[c.Name]; ok && old != ForceUp && c.Override != Drain && c.Override != ForceDown {
			// Taken out and now let back in: a return, ramped like one.
			d.Lifted[kind+":"+c.Name] = now
		}
		for k, t := range d.Lifted {
			if now.Sub(t) > liftedFor {
				delete(d.Lifted, k)
			}
		}
		if c.Override == "" {
			delete(in, c.Name)
		} else {
			in[c.Name] = c.Override
		}
		setMeta(d.Meta, c, now, c.Override != "")
	case SetDial:
		d.Dials = slices.DeleteFunc(d.Dials, func(x Dial) bool { return x.Service == c.Service && x.Site == c.Name })
		if c.Weight >= 0 {
			d.Dials = append(d.Dials, Dial{c.Service, c.Name, c.Weight})
		}
		setMeta(d.Meta, c, now, c.Weight >= 0)
	}
	return d.state(v)
}

func setMeta(m map[string]Meta, c Change, now time.Time, set bool) {
	k := MetaKey(c.Kind, c.Name, c.Service)
	if !set {
		delete(m, k)
		return
	}
	mt := c.Meta
	if mt.At.IsZero() {
		mt.At = now
	}
	m[k] = mt
}

// data is what a State holds, in the form it is stored: copies, free to
// change.
type data struct {
	Version   int                  `json:"version"`
	Sites     map[string]Override  `json:"site_overrides"`
	Endpoints map[string]Override  `json:"endpoint_overrides"`
	Lifted    map[string]time.Time `json:"overrides_lifted,omitempty"`
	Dials     []Dial               `json:"dials,omitempty"`
	Meta      map[string]Meta      `json:"meta,omitempty"` // older files have none
}

// fileVersion is the operator state file's format. Version 1 was the
// health state file, which held the same fields beside probe states.
const fileVersion = 2

func (s *State) data() data {
	d := data{Version: fileVersion, Sites: s.Sites(), Endpoints: s.Endpoints(), Dials: s.Dials(), Lifted: map[string]time.Time{},
		Meta: s.Metas()}
	if s != nil {
		maps.Copy(d.Lifted, s.lifted)
	}
	return d
}

// state makes a State of d (which it keeps), dropping what is invalid.
func (d data) state(v uint64) *State {
	s := &State{sites: d.Sites, endpoints: d.Endpoints, lifted: d.Lifted, dials: map[DialKey]float64{}, meta: d.Meta, version: v}
	if s.sites == nil {
		s.sites = map[string]Override{}
	}
	if s.endpoints == nil {
		s.endpoints = map[string]Override{}
	}
	if s.lifted == nil {
		s.lifted = map[string]time.Time{}
	}
	maps.DeleteFunc(s.sites, func(_ string, o Override) bool { return !o.Valid() })
	maps.DeleteFunc(s.endpoints, func(_ string, o Override) bool { return !o.Valid() })
	for _, x := range d.Dials {
		if x.Weight >= 0 && x.Weight <= 1 {
			s.dials[DialKey{x.Service, x.Site}] = x.Weight
		}
	}
	for _, t := range s.lifted {
		s.last = latest(s.last, t)
	}
	if s.meta == nil {
		s.meta = map[string]Meta{}
	}
	// Meta only of what is set: a file edited by hand may hold others.
	maps.DeleteFunc(s.meta, func(k string, _ Meta) bool {
		kind, name, _ := strings.Cut(k, ":")
		switch kind {
		case "site":
			_, ok := s.sites[name]
			return !ok
		case "endpoint":
			_, ok := s.endpoints[name]
			return !ok
		case "dial":
			svc, site, _ := strings.Cut(name, "/")
			_, ok := s.dials[DialKey{svc, site}]
			return !ok
		}
		return true
	})
	return s
}

// NewState returns a State with copies of the overrides (site name and
// endpoint ID to override), lifts ("site:NAME" or "endpoint:ID" to when a
// drain or force-down was lifted) and dials given, and version v: for
// stores that hold the state elsewhere, and for tests. Invalid entries
// are dropped.
func NewState(sites, endpoints map[string]Override, lifted map[string]time.Time, dials []Dial, v uint64) *State {
	return NewStateMeta(sites, endpoints, lifted, dials, nil, v)
}

// NewStateMeta is NewState with the Meta of each override and dial (by
// MetaKey; entries for what is not set are dropped).
func NewStateMeta(sites, endpoints map[string]Override, lifted map[string]time.Time, dials []Dial, meta map[string]Meta, v uint64) *State {
	return data{Sites: maps.Clone(sites), Endpoints: maps.Clone(endpoints), Lifted: maps.Clone(lifted),
		Dials: slices.Clone(dials), Meta: maps.Clone(meta)}.state(v)
}
