package api

import (
	"math"
	"net"
	"net/netip"

	"github.com/geodns/geodns/route"
	"github.com/geodns/geodns/zones"
	"github.com/miekg/dns"
)

// Explanation says how a name is answered for a client, step by step.
type Explanation struct {
	Name     string         `json:"name"`
	Type     string         `json:"type"`
	Client   string         `json:"client"`
	Zone     string         `json:"zone,omitempty"`
	Serial   uint32         `json:"serial,omitempty"`
	Services []ServiceTrace `json:"services,omitempty"`
	Rcode    string         `json:"rcode"`
	Answer   []string       `json:"answer,omitempty"`
	Ns       []string       `json:"authority,omitempty"`
	Scope    *int           `json:"ecs_scope,omitempty"` // set when the client is a network (sent as ECS)
}

// ServiceTrace is one service's routing decision within an explanation.
type ServiceTrace struct {
	Service   string         `json:"service"`
	Owner     string         `json:"owner"`
	Type      string         `json:"type"`
	Location  *Location      `json:"location,omitempty"` // nil: not located
	Network   string         `json:"network,omitempty"`  // database network, located or not
	Rule      int            `json:"rule,omitempty"`     // 1-based; 0: none matched
	RuleSites []string       `json:"rule_sites,omitempty"`
	Distances []SiteDistance `json:"distances,omitempty"`
	Order     []string       `json:"default_order,omitempty"` // used when neither a rule nor a location applies
	Groups    [][]string     `json:"groups"`
	Down      []string       `json:"down,omitempty"`
	Sites     []SiteState    `json:"sites,omitempty"` // every site's state and why (from a live server only)
	AllDown   bool           `json:"all_down,omitempty"`
	Degraded  bool           `json:"degraded,omitempty"`
	Chosen    []string       `json:"chosen_sites"`
	Addresses []string       `json:"addresses,omitempty"`
	Names     []string       `json:"names,omitempty"`
	Scope     int            `json:"scope"`
	// Traffic is each site's standing, when a dial, a return ramp or a
	// spread decided where the client goes: the client's bucket (drawn for
	// HashedNet) below a site's keeps_percent keeps it there.
	Traffic     []SiteTrafficTrace `json:"traffic,omitempty"`
	HashedNet   string             `json:"hashed_network,omitempty"`
	SpilledFrom string             `json:"spilled_from,omitempty"`
	Spill       []SiteShareTrace   `json:"spill,omitempty"` // the spread of SpilledFrom's clients
	Ramp        *RampTrace         `json:"ramp,omitempty"`  // set when a return ramp held the client back
}

// RampTrace says where a client a returning site has not won back yet
// went: on to Next, at most max_detour_km farther than HeldBy, or, when
// Next is farther, back to HeldBy at once (ReturnedEarly).
type RampTrace struct {
	HeldBy        string  `json:"held_by"`
	Next          string  `json:"next"`
	DetourKm      float64 `json:"detour_km"`
	MaxDetourKm   float64 `json:"max_detour_km"`
	ReturnedEarly bool    `json:"returned_early"`
}

// Location is where the GeoIP database places the client.
type Location struct {
	Country         string  `json:"country"`
	Continent       string  `json:"continent"`
	Subdivision     string  `json:"subdivision"`
	SubdivisionName string  `json:"subdivision_name"`
	City            string  `json:"city"`
	Lat             float64 `json:"lat"`
	Lon             float64 `json:"lon"`
	HasCoords       bool    `json:"has_coordinates"`
	Network         string  `json:"network"` // the database network that matched
	Source          string  `json:"source"`  // the database file
}

// SiteDistance is a site and its distance from the client.
type SiteDistance struct {
	Site string  `json:"site"`
	Km   float64 `json:"km"`
}

// SiteState is a site's state in an explanation of the live server, and
// why it is in it (who drained it, which check fails, how far it ramps).
type SiteState struct {
	Site   string `json:"site"`
	State  string `json:"state"`
	Reason string `json:"reason"`
}

// SiteTrafficTrace is one site's standing in a decision.
type SiteTrafficTrace struct {
	Site   string  `json:"site"`
	Up     bool    `json:"up"`
	Dial   float64 `json:"dial_percent"`
	Ramp   float64 `json:"ramp_percent"`
	Keeps  float64 `json:"keeps_percent"`
	Bucket float64 `json:"client_bucket_percent"`
}

// SiteShareTrace is one site's share of a spread.
type SiteShareTrace struct {
	Site  string  `json:"site"`
	Share float64 `json:"share_percent"`
}

// Explainer traces routing decisions; *route.Router is one.
type Explainer interface {
	Explain(origin string, svc *zones.Service, client netip.Prefix, v6 bool) (route.Decision, route.Trace)
}

// Explain answers name/qtype for client with the server's own code (the
// zones, router and answerer given) and records every routing decision.
func Explain(set *zones.Set, router Explainer, h Answerer, name string, qtype uint16, client netip.Prefix) Explanation {
	name = zones.CanonicalName(name)
	e := Explanation{Name: name, Type: dns.TypeToString[qtype], Client: client.String()}
	if z := set.Find(name, qtype); z != nil {
		e.Zone, e.Serial = z.Origin, z.Serial
		traced := func(svc *zones.Service, owner string, t uint16) []dns.RR {
			d, tr := router.Explain(z.Origin, svc, client, t == dns.TypeAAAA)
			e.Services = append(e.Services, trace(svc, owner, t, d, tr))
			return nil
		}
		z.Lookup(name, qtype, false, traced)
	}
	req := new(dns.Msg).SetQuestion(name, qtype)
	req.SetEdns0(1232, false)
	ecs := client.Bits() < client.Addr().BitLen()
	if ecs {
		o := &dns.EDNS0_SUBNET{Code: dns.EDNS0SUBNET, Family: 1, SourceNetmask: uint8(client.Bits()), Address: net.IP(client.Addr().AsSlice())}
		if client.Addr().Is6() {
			o.Family = 2
		}
		req.IsEdns0().Option = append(req.IsEdns0().Option, o)
	}
	resp := h.Answer(req, client.Addr(), true)
	e.Rcode = dns.RcodeToString[resp.Rcode]
	for _, rr := range resp.Answer {
		e.Answer = append(e.Answer, rr.String())
	}
	for _, rr := range resp.Ns {
		e.Ns = append(e.Ns, rr.String())
	}
	if opt := resp.IsEdns0(); opt != nil && ecs {
		for _, o := range opt.Option {
			if s, ok := o.(*dns.EDNS0_SUBNET); ok {
				scope := int(s.SourceScope)
				e.Scope = &scope
			}
		}
	}
	return e
}

func trace(svc *zones.Service, owner string, qtype uint16, d route.Decision, tr route.Trace) ServiceTrace {
	st := ServiceTrace{Service: svc.Name, Owner: owner, Type: dns.TypeToString[qtype], Groups: tr.Groups,
		Down: tr.Down, AllDown: d.AllDown, Degraded: d.Degraded, Chosen: d.Sites, Names: d.Names, Scope: d.Scope}
	for _, sd := range tr.Distances {
		st.Distances = append(st.Distances, SiteDistance{sd.Site, sd.Km})
	}
	if tr.Located {
		l := tr.Location
		st.Location = &Location{l.Country, l.Continent, l.Subdivision, l.SubdivisionName, l.City, l.Lat, l.Lon,
			l.HasCoords, "", l.Source}
		if l.Network.IsValid() {
			st.Location.Network = l.Network.String()
		}
	}
	if tr.Location.Network.IsValid() {
		st.Network = tr.Location.Network.String()
	}
	if tr.Rule >= 0 {
		st.Rule, st.RuleSites = tr.Rule+1, svc.Rules[tr.Rule].Sites
	} else if len(tr.Distances) == 0 {
		st.Order = svc.SiteOrder
	}
	for _, a := range d.Addrs {
		st.Addresses = append(st.Addresses, a.String())
	}
	if tr.RampHeld != "" {
		st.Ramp = &RampTrace{tr.RampHeld, tr.RampNext, math.Round(tr.RampDetourKm), route.MaxRampDetourKm, tr.RampReturned}
	}
	shaped := tr.SpilledFrom != ""
	for _, t := range tr.Traffic {
		shaped = shaped || (t.Up && t.Weight < 1)
	}
	if shaped {
		st.HashedNet, st.SpilledFrom = tr.HashedNet.String(), tr.SpilledFrom
		for _, t := range tr.Traffic {
			st.Traffic = append(st.Traffic, SiteTrafficTrace{t.Site, t.Up, percent(t.Dial), percent(t.Ramp), percent(t.Weight), percent(t.Bucket)})
		}
		for _, s := range tr.Spill {
			st.Spill = append(st.Spill, SiteShareTrace{s.Site, percent(s.Share)})
		}
	}
	return st
}
