package health

import (
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
	probes    map[string]bool     // probe key -> up
	sites     map[string]Override // site name -> override
	endpoints map[string]Override // endpoint ID (address or CNAME) -> override
	ready     bool
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

// Ready reports whether every probe has had its first result.
func (s *Snapshot) Ready() bool { return s.ready }
