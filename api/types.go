package api

import "time"

// The API's JSON, one schema: snake_case keys, percentages as *_percent
// numbers (0-100), times in RFC 3339. api/openapi.yaml documents every type
// here, and a test checks real answers against it.

// Status is the answer of GET /api/v1/status.
type Status struct {
	Version   string          `json:"version"`
	Go        string          `json:"go"`
	Ready     bool            `json:"ready"`
	DNS       []string        `json:"dns"`
	Zones     []ZoneStatus    `json:"zones"`
	Services  []ServiceStatus `json:"services"`
	Overrides Overrides       `json:"overrides"`
	Probes    []ProbeStatus   `json:"probes"`
	Cluster   *ClusterStatus  `json:"cluster,omitempty"` // in an NS set (cluster.go)
}

// ZoneStatus describes one served zone.
type ZoneStatus struct {
	Origin  string `json:"origin"`
	Serial  uint32 `json:"serial"`
	Records int    `json:"records"`
	File    string `json:"file"`
}

// ServiceStatus describes one service and its sites.
type ServiceStatus struct {
	Zone       string       `json:"zone"`
	Name       string       `json:"name"`
	Names      []string     `json:"names"`
	Spillover  bool         `json:"spillover"`
	ReturnRamp string       `json:"return_ramp"`
	Sites      []SiteStatus `json:"sites"`
}

// The states of a site or an endpoint, with a reason beside each.
const (
	StateUp         = "up"
	StateDown       = "down"        // its check fails (an endpoint), or all its endpoints are down (a site)
	StateDrained    = "drained"     // an operator drained it
	StateForcedUp   = "forced-up"   // an operator forced it up: checks are ignored
	StateForcedDown = "forced-down" // an operator forced it down
)

// SiteStatus is one site of a service.
type SiteStatus struct {
	Name     string          `json:"name"`
	Up       bool            `json:"up"`
	State    string          `json:"state"`  // up, down, drained, forced-up, forced-down
	Reason   string          `json:"reason"` // why, in words: who drained it, which check fails, how far it ramps
	Override *OverrideStatus `json:"override,omitempty"`
	Capacity float64         `json:"capacity"`
	// Dial is the percentage of its own clients the site keeps (the API's
	// dial if set, else the zone's); Ramp the percentage of its return
	// ramp done; Keeps their product, 0 when down.
	Dial      float64          `json:"dial_percent"`
	Ramp      float64          `json:"ramp_percent"`
	Keeps     float64          `json:"keeps_percent"`
	Demand    float64          `json:"demand_percent"` // estimated share of the service's clients (spillover's load)
	Endpoints []EndpointStatus `json:"endpoints"`
}

// EndpointStatus is one endpoint, with its probe's state.
type EndpointStatus struct {
	ID       string          `json:"id"`
	Up       bool            `json:"up"`
	State    string          `json:"state"`
	Reason   string          `json:"reason"`
	Override *OverrideStatus `json:"override,omitempty"` // its own, or its site's
	Check    string          `json:"check,omitempty"`
	Target   string          `json:"target,omitempty"`
	Since    time.Time       `json:"since,omitzero"`        // when its probe last changed state
	Last     string          `json:"last_result,omitempty"` // the probe's latest result
	LastErr  string          `json:"last_error,omitempty"`  // the probe's latest failure
}

// Overrides are the operator's overrides and dials in effect.
type Overrides struct {
	Sites     []OverrideStatus `json:"sites"`
	Endpoints []OverrideStatus `json:"endpoints"`
	Dials     []DialStatus     `json:"dials"`
}

// OverrideStatus is an operator's override of a site or an endpoint: the
// answer of the override calls, and part of status.
type OverrideStatus struct {
	Kind     string `json:"kind"` // site or endpoint
	Name     string `json:"name"`
	Override string `json:"override"` // drain, up, down; none once lifted
	Change
}

// Change says who made an override or a dial, when, and why.
type Change struct {
	At     time.Time `json:"at,omitzero"`
	From   string    `json:"from,omitempty"`   // the caller's address
	Call   string    `json:"call,omitempty"`   // e.g. "POST /api/v1/sites/us-east/drain"
	Reason string    `json:"reason,omitempty"` // the operator's words
}

// DialStatus is a dial set through the API: the answer of the dial calls
// (dial_percent null once cleared), and part of status.
type DialStatus struct {
	Service string   `json:"service"`
	Site    string   `json:"site"`
	Dial    *float64 `json:"dial_percent"`
	Change
}

// ProbeStatus is one health check probe.
type ProbeStatus struct {
	Check       string    `json:"check"`
	Target      string    `json:"target,omitempty"`
	Site        string    `json:"site"`
	Endpoints   []string  `json:"endpoints"`
	Up          bool      `json:"up"`
	Since       time.Time `json:"since,omitzero"`
	Reason      string    `json:"reason"` // what was seen when it last changed state
	Last        string    `json:"last_result,omitempty"`
	LastError   string    `json:"last_error,omitempty"`
	LastErrorAt time.Time `json:"last_error_at,omitzero"`
}

// Error is the answer of every call that fails.
type Error struct {
	Error      string `json:"error"`
	DidYouMean string `json:"did_you_mean,omitempty"` // the name meant, for an unknown one
}

// Readiness is the answer of GET /readyz.
type Readiness struct {
	Ready bool `json:"ready"`
	// Reason says why not ready, or, when ready, what is wrong that does
	// not keep the node from serving right (an unreadable operator state
	// in etcd).
	Reason string `json:"reason,omitempty"`
}

// OverrideRequest is the optional body of the override calls.
type OverrideRequest struct {
	Reason string `json:"reason,omitempty"`
}

// DialRequest is the body of POST .../dial. Weight is the old name of
// Dial, still accepted.
type DialRequest struct {
	Dial   *float64 `json:"dial_percent,omitempty"`
	Weight *float64 `json:"weight,omitempty"`
	Reason string   `json:"reason,omitempty"`
}

// Liveness is the answer of GET /healthz.
type Liveness struct {
	Status string `json:"status"`
}
