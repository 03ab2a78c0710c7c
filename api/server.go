package api

import (
	"context"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"log/slog"
	"math"
	"net"
	"net/http"
	"net/netip"
	"runtime"
	"slices"
	"sort"
	"strings"
	"sync/atomic"
	"time"

	"github.com/geodns/geodns/health"
	"github.com/geodns/geodns/opstate"
	"github.com/geodns/geodns/route"
	"github.com/geodns/geodns/zones"
	"github.com/miekg/dns"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Health is what the API reads of the probes; *health.Manager is one.
// Implementations must be safe for concurrent use.
type Health interface {
	// Table returns the current probe states (Ready: every probe has run).
	Table() *health.Table
	// Status returns every probe's state, for status pages.
	Status() []health.ProbeStatus
	// StateError returns why the last write of the state file failed.
	StateError() error
}

// Router is what the API reads of routing, and how it waits for a change
// to be in effect; *route.Router is one. Reads only read what the plan
// loop published: they start no work. Implementations must be safe for
// concurrent use.
type Router interface {
	Demand(svc *zones.Service) (map[string]float64, bool)
	Standing(origin string, svc *zones.Service, site string) route.SiteTraffic
	Explain(origin string, svc *zones.Service, client netip.Prefix, v6 bool) (route.Decision, route.Trace)
	// Refresh has the plans rebuilt now from the current state.
	Refresh(set *zones.Set)
}

// Answerer answers a query as the DNS server does, for explains, without
// counting it as traffic; the server's handler's resolver.Uncounted view
// is one. Implementations must be safe for concurrent use; the message
// returned is the caller's.
type Answerer interface {
	Answer(req *dns.Msg, client netip.Addr, tcp bool) *dns.Msg
}

// Server serves the HTTP API. Set its fields, then use Handler or Serve.
type Server struct {
	Zones    *atomic.Pointer[zones.Set]
	Health   Health
	Operator opstate.Store // drains, forces and dials are made through it
	Router   Router
	Resolver Answerer // answers explains
	Gatherer prometheus.Gatherer
	// Token authorizes write calls (Authorization: Bearer <token>).
	// "": write calls are refused.
	Token   string
	Version string
	DNS     []string // the DNS listen addresses, for status and drills
	Log     *slog.Logger
	Cluster Cluster // the NS set on etcd; nil for a single node
}

// maxBody bounds request bodies; no call needs one, so a small limit.
const maxBody = 4 << 10

// Handler returns the API's routes.
func (s *Server) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(s.Gatherer, promhttp.HandlerOpts{}))
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, map[string]string{"status": "alive"})
	})
	mux.HandleFunc("GET /readyz", s.readyz)
	mux.HandleFunc("GET /api/v1/status", s.status)
	mux.HandleFunc("GET /api/v1/explain", s.explain)
	mux.HandleFunc("GET /api/v1/cluster", s.cluster)
	mux.HandleFunc("POST /api/v1/sites/{name}/{action}", s.override(s.siteExists, opstate.Site))
	mux.HandleFunc("POST /api/v1/endpoints/{name}/{action}", s.override(s.endpointExists, opstate.Endpoint))
	mux.HandleFunc("POST /api/v1/services/{service}/sites/{site}/dial", s.dial)
	mux.HandleFunc("DELETE /api/v1/services/{service}/sites/{site}/dial", s.dial)
	return http.MaxBytesHandler(mux, maxBody)
}

// Serve listens on ln until ctx is done, then shuts down gracefully.
func (s *Server) Serve(ctx context.Context, ln net.Listener) error {
	srv := &http.Server{
		Handler:           s.Handler(),
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       10 * time.Second,
		WriteTimeout:      30 * time.Second,
		IdleTimeout:       60 * time.Second,
		MaxHeaderBytes:    16 << 10,
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	srv.Shutdown(sctx)
	if err := <-errc; !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.Encode(v)
}

func writeError(w http.ResponseWriter, code int, msg string) {
	writeJSON(w, code, map[string]string{"error": msg})
}

// writeChangeError answers a failed override or dial: 503 when the state
// file could not be written (the change was not made: it would not survive
// a restart), else 400.
func writeChangeError(w http.ResponseWriter, err error) {
	if errors.Is(err, opstate.ErrNotSaved) {
		writeError(w, http.StatusServiceUnavailable, err.Error())
		return
	}
	writeError(w, http.StatusBadRequest, err.Error())
}

// readyz is ready once zones are loaded and every probe has run once, and
// while the state files (operator state, probe states) are written.
func (s *Server) readyz(w http.ResponseWriter, r *http.Request) {
	opErr := s.Operator.Err()
	if opErr == nil {
		opErr = s.Health.StateError()
	}
	switch {
	case opErr != nil:
		writeJSON(w, http.StatusServiceUnavailable, map[string]any{"ready": false,
			"reason": "state file not written: " + opErr.Error()})
	case len(s.Zones.Load().Zones()) == 0:
		writeJSON(w, http.StatusServiceUnavailable, map[string]any{"ready": false, "reason": "no zone loaded"})
	case !s.Health.Table().Ready():
		writeJSON(w, http.StatusServiceUnavailable, map[string]any{"ready": false, "reason": "first round of health checks not done"})
	default:
		writeJSON(w, http.StatusOK, map[string]any{"ready": true})
	}
}

// Status is the answer of GET /api/v1/status.
type Status struct {
	Version   string               `json:"version"`
	Go        string               `json:"go"`
	Ready     bool                 `json:"ready"`
	DNS       []string             `json:"dns"`
	Zones     []ZoneStatus         `json:"zones"`
	Services  []ServiceStatus      `json:"services"`
	Overrides map[string]any       `json:"overrides"`
	Probes    []health.ProbeStatus `json:"probes"`
	Cluster   *ClusterStatus       `json:"cluster,omitempty"`
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

func percent(f float64) float64 { return math.Round(f*1000) / 10 }

// SiteStatus is one site of a service.
type SiteStatus struct {
	Name     string  `json:"name"`
	Up       bool    `json:"up"`
	Override string  `json:"override,omitempty"`
	Capacity float64 `json:"capacity"`
	// Dial is the percentage of its own clients the site keeps (the API's
	// dial if set, else the zone's); Ramp the percentage of its return
	// ramp done; Keeps their product, 0 when down.
	Dial      float64          `json:"dial_percent"`
	Ramp      float64          `json:"ramp_percent"`
	Keeps     float64          `json:"keeps_percent"`
	Demand    float64          `json:"demand_percent"` // estimated share of the service's clients (spillover's load)
	Endpoints []EndpointStatus `json:"endpoints"`
}

// EndpointStatus is one endpoint, with its probe's last change.
type EndpointStatus struct {
	ID       string    `json:"id"`
	Up       bool      `json:"up"`
	Override string    `json:"override,omitempty"`
	Check    string    `json:"check,omitempty"`
	Target   string    `json:"target,omitempty"`
	Since    time.Time `json:"since,omitzero"`
	Reason   string    `json:"reason,omitempty"`
}

func (s *Server) status(w http.ResponseWriter, r *http.Request) {
	set := s.Zones.Load()
	probes := s.Health.Status()
	byKey := map[string]health.ProbeStatus{}
	for _, p := range probes {
		byKey[p.Key] = p
	}
	tab, op := s.Health.Table(), s.Operator.Load() // one of each for the whole page
	sites, eps := op.Sites(), op.Endpoints()
	dials := []DialStatus{}
	for _, d := range op.Dials() {
		dials = append(dials, DialStatus{d.Service, d.Site, percent(d.Weight)})
	}
	st := Status{Version: s.Version, Go: runtime.Version(), Ready: tab.Ready(), DNS: s.DNS, Probes: probes,
		Overrides: map[string]any{"sites": sites, "endpoints": eps, "dials": dials}, Cluster: clusterStatus(s.Cluster)}
	zs := set.Zones()
	sort.Slice(zs, func(i, j int) bool { return zs[i].Origin < zs[j].Origin })
	for _, z := range zs {
		st.Zones = append(st.Zones, ZoneStatus{z.Origin, z.Serial, z.Len(), z.File})
		names := map[*zones.Service][]string{}
		for owner, svc := range z.ServiceNames() {
			names[svc] = append(names[svc], owner)
		}
		svcNames := make([]string, 0, len(z.Services))
		for n := range z.Services {
			svcNames = append(svcNames, n)
		}
		sort.Strings(svcNames)
		for _, n := range svcNames {
			svc := z.Services[n]
			ss := ServiceStatus{Zone: z.Origin, Name: n, Names: names[svc], Spillover: svc.Spillover,
				ReturnRamp: svc.ReturnRamp.String()}
			demand, _ := s.Router.Demand(svc)
			sort.Strings(ss.Names)
			for _, site := range svc.Sites {
				tr := s.Router.Standing(z.Origin, svc, site.Name)
				sst := SiteStatus{Name: site.Name, Up: tr.Up, Override: string(sites[site.Name]), Capacity: site.Capacity,
					Dial: percent(tr.Dial), Ramp: percent(tr.Ramp), Keeps: percent(tr.Weight), Demand: percent(demand[site.Name])}
				for _, ep := range svc.Endpoints {
					if ep.Site != site.Name {
						continue
					}
					es := EndpointStatus{ID: ep.ID, Up: route.EndpointUp(tab, op, &ep), Override: string(eps[ep.ID])}
					if ep.Probe != nil {
						p := byKey[ep.Probe.Key]
						es.Check, es.Target, es.Since, es.Reason = p.Check, p.Target, p.Since, p.Reason
					}
					sst.Endpoints = append(sst.Endpoints, es)
				}
				ss.Sites = append(ss.Sites, sst)
			}
			st.Services = append(st.Services, ss)
		}
	}
	writeJSON(w, http.StatusOK, st)
}

func (s *Server) explain(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	name, client := q.Get("name"), q.Get("client")
	if name == "" || client == "" {
		writeError(w, http.StatusBadRequest, "name and client are required, e.g. ?name=www.example.com&client=198.51.100.0/24")
		return
	}
	if _, ok := dns.IsDomainName(name); !ok {
		writeError(w, http.StatusBadRequest, "name is not a domain name")
		return
	}
	prefix, err := ParseClient(client)
	if err != nil {
		writeError(w, http.StatusBadRequest, "client: "+err.Error())
		return
	}
	qtype := dns.TypeA
	if t := q.Get("type"); t != "" {
		if qtype = dns.StringToType[strings.ToUpper(t)]; qtype == 0 {
			writeError(w, http.StatusBadRequest, "unknown type "+t)
			return
		}
	}
	writeJSON(w, http.StatusOK, Explain(s.Zones.Load(), s.Router, s.Resolver, name, qtype, prefix))
}

// ParseClient reads an address or a network: 203.0.113.7 or 203.0.113.0/24.
func ParseClient(s string) (netip.Prefix, error) {
	if strings.Contains(s, "/") {
		p, err := netip.ParsePrefix(s)
		return p.Masked(), err
	}
	a, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Prefix{}, err
	}
	a = a.Unmap()
	return netip.PrefixFrom(a, a.BitLen()), nil
}

var actions = map[string]opstate.Override{"drain": opstate.Drain, "undrain": "", "force-up": opstate.ForceUp, "force-down": opstate.ForceDown}

// override handles POST .../{name}/{action}: drain, undrain, force-up, force-down.
func (s *Server) override(exists func(string) bool, change func(string, opstate.Override) opstate.Change) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if !s.authorized(w, r) {
			return
		}
		name, action := r.PathValue("name"), r.PathValue("action")
		o, ok := actions[action]
		if !ok {
			writeError(w, http.StatusNotFound, "unknown action "+action+": drain, undrain, force-up or force-down")
			return
		}
		if !exists(name) && o != "" { // undrain works on anything, so a stale drain can always be removed
			writeError(w, http.StatusNotFound, name+" is in none of the served zones")
			return
		}
		if _, err := s.Operator.Apply(change(name, o)); err != nil {
			writeChangeError(w, err)
			return
		}
		s.Router.Refresh(s.Zones.Load()) // in effect for queries before it is acknowledged
		s.Log.Warn("API override", "name", name, "action", action, "from", r.RemoteAddr)
		writeJSON(w, http.StatusOK, map[string]string{"name": name, "override": string(o)})
	}
}

// DialStatus is a dial set through the API.
type DialStatus struct {
	Service string  `json:"service"`
	Site    string  `json:"site"`
	Weight  float64 `json:"weight_percent"`
}

// dial handles POST (body {"weight": percent}) and DELETE of
// /api/v1/services/{service}/sites/{site}/dial. The dial applies to the
// service of that name in every zone and persists across restarts.
func (s *Server) dial(w http.ResponseWriter, r *http.Request) {
	if !s.authorized(w, r) {
		return
	}
	service, site := r.PathValue("service"), r.PathValue("site")
	weight := -1.0 // DELETE: back to the zone file's dial
	if r.Method == http.MethodPost {
		var body struct {
			Weight *float64 `json:"weight"`
		}
		dec := json.NewDecoder(r.Body)
		dec.DisallowUnknownFields()
		if err := dec.Decode(&body); err != nil || body.Weight == nil {
			writeError(w, http.StatusBadRequest, `body must be {"weight": <percent 0-100>}`)
			return
		}
		if *body.Weight < 0 || *body.Weight > 100 {
			writeError(w, http.StatusBadRequest, "weight must be from 0 to 100 (percent)")
			return
		}
		weight = *body.Weight / 100
	}
	if !s.serviceSiteExists(service, site) && weight >= 0 { // a stale dial can always be removed
		writeError(w, http.StatusNotFound, "no service "+service+" with site "+site+" in the served zones")
		return
	}
	if _, err := s.Operator.Apply(opstate.DialOf(service, site, weight)); err != nil {
		writeChangeError(w, err)
		return
	}
	s.Router.Refresh(s.Zones.Load())
	s.Log.Warn("API dial", "service", service, "site", site, "weight", weight, "from", r.RemoteAddr)
	out := map[string]any{"service": service, "site": site, "weight_percent": nil}
	if weight >= 0 {
		out["weight_percent"] = percent(weight)
	}
	writeJSON(w, http.StatusOK, out)
}

func (s *Server) serviceSiteExists(service, site string) bool {
	for _, z := range s.Zones.Load().Zones() {
		if svc := z.Services[service]; svc != nil && slices.ContainsFunc(svc.Sites, func(x *zones.Site) bool { return x.Name == site }) {
			return true
		}
	}
	return false
}

// authorized checks the bearer token: 401 without one, 403 with a wrong
// one or when no token is configured (write calls are then disabled).
func (s *Server) authorized(w http.ResponseWriter, r *http.Request) bool {
	if s.Token == "" {
		writeError(w, http.StatusForbidden, "write calls are disabled: no API token is configured")
		return false
	}
	got, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	if !ok || got == "" {
		w.Header().Set("WWW-Authenticate", `Bearer realm="geodns"`)
		writeError(w, http.StatusUnauthorized, "missing Authorization: Bearer <token>")
		return false
	}
	if subtle.ConstantTimeCompare([]byte(got), []byte(s.Token)) != 1 {
		writeError(w, http.StatusForbidden, "wrong token")
		return false
	}
	return true
}

func (s *Server) siteExists(name string) bool {
	for _, z := range s.Zones.Load().Zones() {
		if z.Sites[name] != nil {
			return true
		}
	}
	return false
}

func (s *Server) endpointExists(id string) bool {
	for _, z := range s.Zones.Load().Zones() {
		for _, svc := range z.Services {
			if slices.ContainsFunc(svc.Endpoints, func(ep zones.Endpoint) bool { return ep.ID == id }) {
				return true
			}
		}
	}
	return false
}
