package zones

import (
	"fmt"
	"net/netip"
	"slices"
	"time"
)

// Site is a location that serves a service, placed by its coordinates.
type Site struct {
	Name     string
	Lat, Lon float64
	Capacity float64 // relative units; default 1
}

// AllDownPolicy says what a service answers when none of its sites is up.
type AllDownPolicy uint8

const (
	AllDownServeAll AllDownPolicy = iota // answer every endpoint (default)
	AllDownNoData                        // answer NODATA
	AllDownFallback                      // answer the service's Fallback addresses
)

// Endpoint is one answer of a service at one site.
type Endpoint struct {
	Site    string
	Address netip.Addr // the address answered; invalid for CNAME services
	CNAME   string     // the name answered, for CNAME services (canonical)
	Check   string     // name of the check probing it; "" = never probed
	Target  string     // address[:port] probed instead of Address; "" = Address and the check's port
	Probe   *Probe     // what health checking sends; nil when never probed
	ID      string     // the address or CNAME as text: names the endpoint in overrides and status
}

// Probe is one health check against one target. Endpoints whose probes have
// the same Key share a single probe and its state (an address and its AAAA
// sibling behind the same target, or one backend in several zones).
type Probe struct {
	Key    string // the check's settings and the target: equal keys are one probe
	Check  *Check
	Target string // IP:port to probe; "" for static checks
}

// Rule sends matching clients to a fixed site order, ahead of distance.
type Rule struct {
	Countries    []string // ISO 3166-1 alpha-2, upper case
	Continents   []string // two-letter continent codes, upper case
	Subdivisions []string // ISO 3166-2 subdivision codes, upper case
	CIDRs        []netip.Prefix
	Sites        []string
	// Only keeps the rule's clients to its sites: when they are all down,
	// the all-down policy answers them. Without it they go on to the
	// other sites, nearest first.
	Only bool
}

// Service is a geo- and health-routed name's configuration.
type Service struct {
	Name        string
	TTL         uint32 // answer TTL; default: the zone's default TTL
	Answers     int    // max addresses per answer and family; default 2
	Endpoints   []Endpoint
	Rules       []Rule
	SiteUpRatio float64 // a site is up while >= this share of its endpoints is; default 0.5
	AllDown     AllDownPolicy
	Fallback    []netip.Addr // answered under AllDownFallback
	SiteOrder   []string     // order for clients without a location: sites as listed
	Sites       []*Site      // the sites its endpoints are at, as listed under sites
	// CNAME services answer every type with a CNAME to the chosen site's
	// endpoint name, for sites behind a load balancer or CDN name.
	CNAME bool
	// DegradedTTL caps the answer TTL while the answering site has endpoints
	// down or a nearer site is skipped, so clients move back soon. Default 5.
	DegradedTTL uint32
	// Spillover spreads the clients a lost (down, drained or dialed) site
	// sheds over the other up sites by their spare capacity, instead of
	// sending them all to the next nearest site.
	Spillover bool
	// MaxLoad: spilled clients fill the survivors nearest the lost site up
	// to this utilization before farther ones take any. Default 0.8.
	MaxLoad float64
	// ReturnRamp is how long a site that comes back (or is undrained) takes
	// to win its clients back, step by step. 0: at once. Default 60s.
	ReturnRamp time.Duration
	// Dials are the share (0..1) of its own clients each site keeps, from
	// the zone file; sites not listed keep all. The admin API can override.
	Dials map[string]float64
	// Export is what zone transfers carry for the service's names:
	// "fallback" (its fallback addresses), "all" (every endpoint of every
	// site) or a site name (that site's endpoints). "": the fallback
	// addresses if it has any, else the first site of SiteOrder.
	Export string
}

// Decision is what a service answers one client: made by the router
// (route.Router.Route), answered by the resolver. It lives here, with the
// service it is about, so that neither imports the other.
type Decision struct {
	// Addrs are the addresses to answer, at most svc.Answers, rotated.
	Addrs []netip.Addr
	// Names are the CNAME targets (CNAME services), rotated; the first is answered.
	Names []string
	// Scope is the prefix length (of the client's family) the decision
	// holds for: every client in client/Scope gets the same decision.
	// 0 when it does not depend on the client at all.
	Scope int
	// AllDown is set when no site was up and the all-down policy answered.
	AllDown bool
	// Degraded is set when the answer is not the healthy normal one: a
	// nearer site was skipped as down or is still winning its clients back,
	// an answering site has endpoints down, or AllDown. Answers then get
	// the service's DegradedTTL, so clients come back soon after recovery.
	Degraded bool
	// Sites are the sites answering, nearest group first.
	Sites []string
	// Why is how the sites were chosen, for query logs.
	Why Why
}

// Why is how a decision was reached, cheap enough to fill for every query:
// query logs (dnstap, the JSON log) report it.
type Why struct {
	// Rule is the index + 1 of the service rule that chose the sites; 0
	// when none matched (sites by distance, or the default order).
	Rule int
	// Located is set when the client had coordinates (Lat, Lon): the
	// sites were ranked by distance from there unless a rule chose.
	Located  bool
	Lat, Lon float64
	// Mapped: the sites came from the service's compiled site map, which
	// ranks by network and keeps no coordinates; Lat and Lon are zero and
	// the router's Where has them (for query logs).
	Mapped bool
	// Bucket is the client network's place in [0,1) at BucketSite, the
	// first site whose dial or return ramp decided by it (the client
	// stays while Bucket < the site's share); -1 when none did.
	Bucket     float64
	BucketSite string
	// Spilled is set when the answer is a spillover pick (by the client
	// network's hash over the spread of spare capacity).
	Spilled bool
}

// DefaultReturnRamp is a service's return_ramp when the zone file gives none.
const DefaultReturnRamp = 60 * time.Second

// Check describes how endpoints are probed. Field defaults are applied at load.
type Check struct {
	Name         string
	Type         string // http, https, tcp, dns, static
	Port         int
	Path         string
	Host         string
	ExpectStatus []int
	ExpectBody   string
	Interval     time.Duration // default 1s
	Timeout      time.Duration // default 800ms
	Rise         int           // default 3
	Fall         int           // default 2
	Insecure     bool
	// KeepAlive keeps an http(s) check's connection open between probes
	// (default true): a probe is then one request on it instead of a TCP
	// (and TLS) handshake, several times cheaper for the checker.
	KeepAlive bool
	Up        bool   // static checks: the fixed state; default true
	Query     string // dns checks: the name asked; default the zone's origin
	QType     uint16 // dns checks: the type asked; default SOA
	// Quorum combines the NS set's votes on the check's targets in
	// cluster mode (quorum: majority, min_up: N or up_ratio: R); a single
	// node ignores it. Default majority.
	Quorum Quorum
}

// Quorum is how a check's state is decided from the votes of the nodes
// that probe a target: at most one of MinUp and UpRatio is set; neither
// is a majority.
type Quorum struct {
	MinUp   int     // up while at least this many votes (all, if fewer voted) say up
	UpRatio float64 // up while more than this share of the votes say up (Route 53: 0.18)
}

// String is the rule as the zone file writes it.
func (q Quorum) String() string {
	switch {
	case q.MinUp > 0:
		return fmt.Sprintf("min_up: %d", q.MinUp)
	case q.UpRatio > 0:
		return fmt.Sprintf("up_ratio: %v", q.UpRatio)
	}
	return "quorum: majority"
}

var checkTypes = map[string]int{"http": 80, "https": 443, "tcp": 0, "dns": 53, "static": 0}

func (c *compiler) services(uses []serviceUse) {
	s, z := c.spec, c.z
	for _, site := range s.sites {
		z.Sites[site.Name] = site
		z.SiteList = append(z.SiteList, site)
	}
	for _, ch := range s.checks {
		z.Checks[ch.Name] = ch
	}
	for _, svc := range s.services {
		for _, r := range svc.siteRefs {
			if z.Sites[r.name] == nil {
				c.errAt(r.node, "service %q: unknown site %q", svc.Name, r.name)
			}
		}
		for _, r := range svc.checkRef {
			if z.Checks[r.name] == nil {
				c.errAt(r.node, "service %q: unknown check %q", svc.Name, r.name)
			}
		}
		if len(svc.SiteOrder) == 0 {
			for _, site := range z.SiteList {
				svc.SiteOrder = append(svc.SiteOrder, site.Name)
			}
		}
		// The published copy gets probes and sites; the spec stays as
		// decoded, so the content hash prints no pointers.
		sv := svc.Service
		sv.Endpoints = slices.Clone(svc.Endpoints)
		for i := range sv.Endpoints {
			ep := &sv.Endpoints[i]
			c.probe(ep, svc)
			if ep.ID = ep.CNAME; ep.Address.IsValid() {
				ep.ID = ep.Address.String()
			}
		}
		for _, site := range z.SiteList {
			if slices.ContainsFunc(sv.Endpoints, func(ep Endpoint) bool { return ep.Site == site.Name }) {
				sv.Sites = append(sv.Sites, site)
			}
		}
		z.Services[svc.Name] = &sv
	}
	for _, u := range uses {
		svc := z.Services[u.name]
		if svc == nil {
			c.errAt(u.node, "name %q: unknown service %q", c.rel(u.owner), u.name)
			continue
		}
		c.node(u.owner).service = svc
	}
}

// probe sets the endpoint's probe from its check and target.
func (c *compiler) probe(ep *Endpoint, svc *serviceSpec) {
	if ep.Check == "" {
		return
	}
	ch := c.z.Checks[ep.Check]
	if ch == nil {
		return // reported as an unknown check
	}
	p := &Probe{Check: ch}
	if ch.Type != "static" {
		host, port := ep.Address, ch.Port
		if ep.Target != "" {
			if ap, err := netip.ParseAddrPort(ep.Target); err == nil {
				host, port = ap.Addr().Unmap(), int(ap.Port())
			} else if a, err := netip.ParseAddr(ep.Target); err == nil {
				host = a.Unmap()
			}
		}
		if !host.IsValid() {
			c.errAt(svc.node, "service %q: endpoint %s at site %s has check %q but nothing to probe: give it a target",
				svc.Name, ep.CNAME, ep.Site, ep.Check)
			return
		}
		if port == 0 {
			c.errAt(svc.node, "service %q: check %q needs a port (in the check or the endpoint's target)", svc.Name, ep.Check)
			return
		}
		p.Target = netip.AddrPortFrom(host, uint16(port)).String()
	}
	p.Key = fmt.Sprintf("%s|%s|%d|%s|%s|%v|%q|%v|%v|%d|%d|%v|%v|%s|%d|%v", p.Target, ch.Type, ch.Port, ch.Path, ch.Host,
		ch.ExpectStatus, ch.ExpectBody, ch.Interval, ch.Timeout, ch.Rise, ch.Fall, ch.Insecure, ch.Up, ch.Query, ch.QType, ch.KeepAlive)
	if ch.Quorum != (Quorum{}) { // the same probe under another rule is another vote; keys without one stay as they were
		p.Key += "|" + ch.Quorum.String()
	}
	ep.Probe = p
}
