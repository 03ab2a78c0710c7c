package health

import (
	"time"

	"github.com/geodns/geodns/zones"
)

// Override is an operator's decision that beats the probes.
type Override string

const (
	Drain     Override = "drain" // taken out of service (maintenance): down
	ForceDown Override = "down"
	ForceUp   Override = "up"
)

func (o Override) valid() bool { return o == Drain || o == ForceDown || o == ForceUp }

// Snapshot is the health state at one moment. It is immutable and safe for
// concurrent use.
type Snapshot struct {
	probes    map[string]bool      // probe key -> up
	sites     map[string]Override  // site name -> override
	endpoints map[string]Override  // endpoint ID (address or CNAME) -> override
	back      map[string]time.Time // probe key -> last down-to-up transition
	lifted    map[string]time.Time // "site:NAME", "endpoint:ID" -> drain or force-down lifted
	dials     map[DialKey]float64
	last      time.Time // the latest of back and lifted
	ready     bool
	gen       uint64 // Manager.Version
}

// EndpointUp reports whether an endpoint is up: an override if one applies
// (the endpoint's own before its site's), else its probe's state; an
// endpoint without a probe, or whose probe has no state yet, is up.
func (s *Snapshot) EndpointUp(ep *zones.Endpoint) bool {
	if len(s.endpoints) > 0 {
		if o, ok := s.endpoints[ep.ID]; ok {
			return o == ForceUp
		}
	}
	if len(s.sites) > 0 {
		if o, ok := s.sites[ep.Site]; ok {
			return o == ForceUp
		}
	}
	if ep.Probe == nil {
		return true
	}
	up, known := s.probes[ep.Probe.Key]
	return up || !known
}

// Returned reports when an endpoint last came back into service: its
// probe went up, or a drain or force-down of it or its site was lifted.
// Zero: never (as far as this process and the state file know).
func (s *Snapshot) Returned(ep *zones.Endpoint) time.Time {
	var t time.Time
	if ep.Probe != nil {
		t = s.back[ep.Probe.Key]
	}
	if len(s.lifted) > 0 {
		t = latest(t, s.lifted["site:"+ep.Site])
		t = latest(t, s.lifted["endpoint:"+ep.ID])
	}
	return t
}

func latest(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}

// LastReturn is the latest Returned of any endpoint.
func (s *Snapshot) LastReturn() time.Time { return s.last }

// Ready reports whether every probe has had its first result.
func (s *Snapshot) Ready() bool { return s.ready }
