package api

import (
	"bytes"
	"context"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"io"
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
	"github.com/geodns/geodns/internal/suggest"
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
// is one. Explain routes each service name it meets with route (given
// the name answered and the type), so the caller records the decisions
// of the answer it gets. Implementations must be safe for concurrent use;
// the message returned is the caller's.
type Answerer interface {
	Explain(req *dns.Msg, client netip.Addr, tcp bool,
		route func(origin string, svc *zones.Service, owner string, qtype uint16, client netip.Prefix) zones.Decision) *dns.Msg
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
	// UI serves the status page under /ui/ (package ui); nil: no page.
	UI      http.Handler
	Cluster Cluster // the NS set on etcd; nil for a single node
	Votes   Votes   // the NS set's health votes (GET /api/v1/cluster); nil: none shown
}

// maxBody bounds request bodies; no call needs one, so a small limit.
const maxBody = 4 << 10

// Handler returns the API's routes.
func (s *Server) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(s.Gatherer, promhttp.HandlerOpts{}))
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, Liveness{Status: "alive"})
	})
	mux.HandleFunc("GET /readyz", s.readyz)
	mux.HandleFunc("GET /api/v1/status", s.status)
	mux.HandleFunc("GET /api/v1/explain", s.explain)
	mux.HandleFunc("GET /api/v1/openapi.yaml", serveOpenAPI)
	mux.HandleFunc("GET /api/v1/cluster", s.cluster)
	mux.HandleFunc("POST /api/v1/sites/{name}/{action}", s.override(opstate.SiteOverride))
	mux.HandleFunc("POST /api/v1/endpoints/{name}/{action}", s.override(opstate.EndpointOverride))
	mux.HandleFunc("POST /api/v1/services/{service}/sites/{site}/dial", s.dial)
	mux.HandleFunc("DELETE /api/v1/services/{service}/sites/{site}/dial", s.dial)
	if s.UI != nil {
		mux.Handle("GET /ui/", s.UI)
		mux.Handle("GET /ui", s.UI)
	}
	return http.MaxBytesHandler(jsonMisses(mux), maxBody)
}

// jsonMisses answers a request no route takes, as every other error of
// the API, in JSON: 405 with the methods the path has (Allow), else 404.
// The mux's own answers are plain text.
func jsonMisses(mux *http.ServeMux) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if _, pattern := mux.Handler(r); pattern != "" {
			mux.ServeHTTP(w, r)
			return
		}
		var allow []string
		for _, m := range []string{http.MethodGet, http.MethodPost, http.MethodDelete} {
			if m == r.Method {
				continue
			}
			probe := r.Clone(r.Context())
			probe.Method = m
			if _, pattern := mux.Handler(probe); pattern != "" {
				allow = append(allow, m)
			}
		}
		if len(allow) == 0 {
			writeError(w, http.StatusNotFound, "no such path: "+r.URL.Path)
			return
		}
		if slices.Contains(allow, http.MethodGet) {
			allow = append(allow, http.MethodHead) // GET routes answer HEAD
		}
		w.Header().Set("Allow", strings.Join(allow, ", "))
		writeError(w, http.StatusMethodNotAllowed, r.Method+" is not allowed on "+r.URL.Path+" (allowed: "+strings.Join(allow, ", ")+")")
	})
}

// Serve listens on ln until ctx is done, then shuts down gracefully. It
// holds at most MaxConns connections at once.
func (s *Server) Serve(ctx context.Context, ln net.Listener) error {
	lim := limitConns(ln, MaxConns)
	srv := &http.Server{
		Handler:           s.Handler(),
		ConnState:         lim.state,
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       10 * time.Second,
		WriteTimeout:      30 * time.Second,
		IdleTimeout:       60 * time.Second,
		MaxHeaderBytes:    16 << 10,
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(lim) }()
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
	writeJSON(w, code, Error{Error: msg})
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
		writeJSON(w, http.StatusServiceUnavailable, Readiness{Reason: "state file not written: " + opErr.Error()})
	case len(s.Zones.Load().Zones()) == 0:
		writeJSON(w, http.StatusServiceUnavailable, Readiness{Reason: "no zone loaded"})
	case !s.Health.Table().Ready():
		writeJSON(w, http.StatusServiceUnavailable, Readiness{Reason: "first round of health checks not done"})
	default:
		ready := Readiness{Ready: true}
		if op, ok := s.Operator.(operatorWarner); ok {
			if err := op.Warning(); err != nil {
				ready.Reason = err.Error()
			}
		}
		writeJSON(w, http.StatusOK, ready)
	}
}

// operatorWarner is an operator store that can be wrong without the node
// serving wrong (cluster.OperatorStore: the state in etcd does not
// decode, the node keeps its last one): /readyz says so and stays ready.
type operatorWarner interface {
	Warning() error
}

func percent(f float64) float64 { return math.Round(f*1000) / 10 }

func (s *Server) status(w http.ResponseWriter, r *http.Request) {
	set := s.Zones.Load()
	probes := s.Health.Status()
	byKey := map[string]*health.ProbeStatus{}
	st := Status{Version: s.Version, Go: runtime.Version(), DNS: s.DNS, Probes: []ProbeStatus{}}
	for i, p := range probes {
		byKey[p.Key] = &probes[i]
		st.Probes = append(st.Probes, ProbeStatus{p.Check, p.Target, p.Site, p.Endpoints, p.Up, p.Since, p.Reason,
			p.Last, p.LastError, p.LastErrorAt})
	}
	tab, op := s.Health.Table(), s.Operator.Load() // one of each for the whole page
	st.Ready = tab.Ready()
	st.Overrides = overridesOf(op)
	st.Cluster = clusterStatus(s.Cluster)
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
				ReturnRamp: svc.ReturnRamp.String(), Sites: []SiteStatus{}}
			if ss.Names == nil {
				ss.Names = []string{}
			}
			demand, _ := s.Router.Demand(svc)
			sort.Strings(ss.Names)
			for _, site := range svc.Sites {
				tr := s.Router.Standing(z.Origin, svc, site.Name)
				sst := standing(svc, site.Name, tr, tab, op, byKey)
				sst.Capacity, sst.Demand = site.Capacity, percent(demand[site.Name])
				ss.Sites = append(ss.Sites, sst)
			}
			st.Services = append(st.Services, ss)
		}
	}
	if st.Zones == nil {
		st.Zones = []ZoneStatus{}
	}
	if st.Services == nil {
		st.Services = []ServiceStatus{}
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
	set := s.Zones.Load()
	e := Explain(set, s.Router, s.Resolver, name, qtype, prefix)
	s.addStandings(set, &e)
	writeJSON(w, http.StatusOK, e)
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

// changeOf is who makes a change through the API, when, and why.
func changeOf(r *http.Request, reason string) opstate.Meta {
	return opstate.Meta{From: r.RemoteAddr, Call: r.Method + " " + r.URL.Path, Reason: reason}
}

// readBody decodes an optional JSON body into v: an empty body is none.
func readBody(r *http.Request, v any) error {
	// Read whole first (MaxBytesHandler stops it past maxBody): too large
	// is said whatever the body holds, before the decoder finds something
	// else wrong at its first byte, with or without a Content-Length.
	body, err := io.ReadAll(r.Body)
	if err != nil {
		return err
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil && !errors.Is(err, io.EOF) {
		return err
	}
	return nil
}

// tooLarge answers 413 when err is a body over maxBody, and says so.
func tooLarge(w http.ResponseWriter, err error) bool {
	var mb *http.MaxBytesError
	if !errors.As(err, &mb) {
		return false
	}
	writeError(w, http.StatusRequestEntityTooLarge, fmt.Sprintf("the body is over %d bytes (a reason is a line of text)", maxBody))
	return true
}

// override handles POST .../{name}/{action}: drain, undrain, force-up,
// force-down, with an optional body {"reason": "..."}.
func (s *Server) override(kind opstate.ChangeKind) http.HandlerFunc {
	noun, change := "site", opstate.Site
	if kind == opstate.EndpointOverride {
		noun, change = "endpoint", opstate.Endpoint
	}
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
		var body OverrideRequest
		if err := readBody(r, &body); err != nil {
			if tooLarge(w, err) {
				return
			}
			writeError(w, http.StatusBadRequest, `the body, if any, must be {"reason": "<text>"}`)
			return
		}
		known := s.siteNames()
		set := s.Operator.Load().Sites()
		if kind == opstate.EndpointOverride {
			known, set = s.endpointIDs(), s.Operator.Load().Endpoints()
		}
		// An override of a name no longer served can still be lifted.
		if _, stale := set[name]; !slices.Contains(known, name) && !(o == "" && stale) {
			notFound(w, fmt.Sprintf("no %s %q in the served zones", noun, name), name, known)
			return
		}
		c := change(name, o)
		c.Meta = changeOf(r, body.Reason)
		st, err := s.Operator.Apply(c)
		if err != nil {
			writeChangeError(w, err)
			return
		}
		s.Router.Refresh(s.Zones.Load()) // in effect for queries before it is acknowledged
		s.Log.Warn("API override", noun, name, "action", action, "from", r.RemoteAddr, "reason", body.Reason)
		out := OverrideStatus{Kind: noun, Name: name, Override: string(o)}
		if o == "" {
			out.Override = "none"
		} else {
			out.Change = changeStatus(st.SiteMeta(name))
			if kind == opstate.EndpointOverride {
				out.Change = changeStatus(st.EndpointMeta(name))
			}
		}
		writeJSON(w, http.StatusOK, out)
	}
}

// notFound answers 404 for an unknown name, with the closest known one.
func notFound(w http.ResponseWriter, msg, name string, known []string) {
	e := Error{Error: msg, DidYouMean: suggest.Closest(name, known)}
	if e.DidYouMean != "" {
		e.Error += fmt.Sprintf("; did you mean %q?", e.DidYouMean)
	}
	writeJSON(w, http.StatusNotFound, e)
}

// dial handles POST (body {"dial_percent": 0-100, "reason": "..."}; the
// old {"weight": percent} too) and DELETE of
// /api/v1/services/{service}/sites/{site}/dial. The dial applies to the
// service of that name in every zone and persists across restarts.
func (s *Server) dial(w http.ResponseWriter, r *http.Request) {
	if !s.authorized(w, r) {
		return
	}
	service, site := r.PathValue("service"), r.PathValue("site")
	weight := -1.0 // DELETE: back to the zone file's dial
	var body DialRequest
	if r.Method == http.MethodPost {
		err := readBody(r, &body)
		pct := body.Dial
		if pct == nil {
			pct = body.Weight
		}
		if tooLarge(w, err) {
			return
		}
		if err != nil || pct == nil || (body.Dial != nil && body.Weight != nil) {
			writeError(w, http.StatusBadRequest, `body must be {"dial_percent": <0-100>, "reason": "<text, optional>"}`)
			return
		}
		if *pct < 0 || *pct > 100 {
			writeError(w, http.StatusBadRequest, "dial_percent must be from 0 to 100")
			return
		}
		weight = *pct / 100
	}
	_, stale := s.Operator.Load().Dial(service, site)
	if !(weight < 0 && stale) { // a stale dial can always be removed
		sites, ok := s.serviceSites(service)
		if !ok {
			notFound(w, fmt.Sprintf("no service %q in the served zones", service), service, s.serviceNames())
			return
		}
		if !slices.Contains(sites, site) {
			notFound(w, fmt.Sprintf("service %q has no site %q", service, site), site, sites)
			return
		}
	}
	c := opstate.DialOf(service, site, weight)
	c.Meta = changeOf(r, body.Reason)
	st, err := s.Operator.Apply(c)
	if err != nil {
		writeChangeError(w, err)
		return
	}
	s.Router.Refresh(s.Zones.Load())
	s.Log.Warn("API dial", "service", service, "site", site, "weight", weight, "from", r.RemoteAddr, "reason", body.Reason)
	out := DialStatus{Service: service, Site: site}
	if weight >= 0 {
		p := percent(weight)
		out.Dial, out.Change = &p, changeStatus(st.DialMeta(service, site))
	}
	writeJSON(w, http.StatusOK, out)
}

// serviceSites returns the sites of the services named service (in any
// zone); ok is false when there is none.
func (s *Server) serviceSites(service string) (sites []string, ok bool) {
	for _, z := range s.Zones.Load().Zones() {
		if svc := z.Services[service]; svc != nil {
			ok = true
			for _, x := range svc.Sites {
				sites = append(sites, x.Name)
			}
		}
	}
	return sites, ok
}

func (s *Server) serviceNames() []string {
	var out []string
	for _, z := range s.Zones.Load().Zones() {
		for n := range z.Services {
			out = append(out, n)
		}
	}
	return out
}

// authorized checks the bearer token: 401 without one, 403 with a wrong
// one or when no token is configured (write calls are then disabled).
func (s *Server) authorized(w http.ResponseWriter, r *http.Request) bool {
	if s.Token == "" {
		writeError(w, http.StatusForbidden, "write calls are disabled: no API token is configured")
		return false
	}
	// The scheme is case-insensitive (RFC 9110 11.1): "bearer x" is asked too.
	scheme, got, ok := strings.Cut(r.Header.Get("Authorization"), " ")
	got = strings.TrimLeft(got, " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") || got == "" {
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

func (s *Server) siteNames() []string {
	var out []string
	for _, z := range s.Zones.Load().Zones() {
		for n := range z.Sites {
			out = append(out, n)
		}
	}
	return out
}

func (s *Server) endpointIDs() []string {
	var out []string
	for _, z := range s.Zones.Load().Zones() {
		for _, svc := range z.Services {
			for _, ep := range svc.Endpoints {
				out = append(out, ep.ID)
			}
		}
	}
	return out
}
