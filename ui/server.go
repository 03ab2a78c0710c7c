package ui

import (
	"context"
	"embed"
	"io/fs"
	"log/slog"
	"net/http"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/geodns/geodns/geo"
	"github.com/geodns/geodns/health"
	"github.com/geodns/geodns/opstate"
	"github.com/geodns/geodns/route"
	"github.com/geodns/geodns/zones"
)

//go:embed assets
var assets embed.FS

// Router is what the page reads of routing; *route.Router is one.
// Implementations must be safe for concurrent use.
type Router interface {
	// Explain routes one client as a query would, from the published plans.
	Explain(origin string, svc *zones.Service, client netip.Prefix, v6 bool) (route.Decision, route.Trace)
	// Standing is a site's state for a service now.
	Standing(origin string, svc *zones.Service, site string) route.SiteTraffic
	// PlanGeneration grows whenever the plans are rebuilt: the map is
	// recomputed only when it moves.
	PlanGeneration() uint64
}

// Locator places client networks for the map's sample; *geo.Locator is
// one. Implementations must be safe for concurrent use.
type Locator interface {
	Locate(netip.Addr) (geo.Location, bool)
	Generation() uint64
}

// Health is what the timeline reads of the probes; *health.Manager is one.
// Implementations must be safe for concurrent use.
type Health interface {
	Status() []health.ProbeStatus
}

// Operator publishes the operator state; an opstate.Store is one.
type Operator interface {
	Load() *opstate.State
}

// Server serves the status page. Set its fields, call Run in the
// background, and mount Handler at /ui/.
type Server struct {
	Zones    *atomic.Pointer[zones.Set]
	Router   Router
	Loc      Locator // nil: the map shows sites, no shading
	Health   Health
	Operator Operator
	Log      *slog.Logger
	// Poll is how often Run looks for changes for the timeline and a
	// reloaded GeoIP database. Default 500ms.
	Poll time.Duration

	sample atomic.Pointer[sample] // built by Run, per locator generation
	mapMu  sync.Mutex             // one map computation at a time
	mapOut *mapCache              // under mapMu
	events timeline
}

// Handler serves the page and its data under /ui/.
func (s *Server) Handler() http.Handler {
	sub, _ := fs.Sub(assets, "assets")
	static := http.StripPrefix("/ui/", http.FileServerFS(sub))
	mux := http.NewServeMux()
	mux.HandleFunc("GET /ui/{$}", func(w http.ResponseWriter, r *http.Request) {
		secure(w)
		http.ServeFileFS(w, r, sub, "index.html")
	})
	mux.HandleFunc("GET /ui/map.json", s.serveMap)
	mux.HandleFunc("GET /ui/events.json", s.serveEvents)
	mux.Handle("GET /ui/", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		secure(w)
		static.ServeHTTP(w, r)
	}))
	mux.Handle("GET /ui", http.RedirectHandler("/ui/", http.StatusMovedPermanently))
	return mux
}

// secure sets the headers of a page that handles a write token: only our
// own scripts run (no inline ones, nothing from elsewhere), and no other
// site may frame it.
func secure(w http.ResponseWriter) {
	h := w.Header()
	h.Set("Content-Security-Policy", "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'")
	h.Set("X-Frame-Options", "DENY")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "no-referrer")
}

// Run builds the map's sample of client networks (again when the GeoIP
// databases reload) and watches for the timeline until ctx is done. The
// sample is built beside the watching (it takes a while on a busy host),
// so the timeline starts at once.
func (s *Server) Run(ctx context.Context) error {
	poll := s.Poll
	if poll <= 0 {
		poll = 500 * time.Millisecond
	}
	done := make(chan struct{})
	if s.Loc != nil {
		go func() {
			defer close(done)
			s.sampleLoop(ctx, 10*poll)
		}()
	} else {
		close(done)
	}
	t := time.NewTicker(poll)
	defer t.Stop()
	for {
		s.observe(time.Now())
		select {
		case <-ctx.Done():
			<-done
			return nil
		case <-t.C:
		}
	}
}

// sampleLoop keeps the sample drawn from the locator's current databases.
func (s *Server) sampleLoop(ctx context.Context, every time.Duration) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		if cur := s.sample.Load(); cur == nil || cur.gen != s.Loc.Generation() {
			start := time.Now()
			if sm := buildSample(ctx, s.Loc); sm != nil {
				s.sample.Store(sm)
				s.log().Info("status page map sample built", "networks", sm.networks, "cells", len(sm.cells),
					"took", time.Since(start).Round(time.Millisecond))
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

func (s *Server) log() *slog.Logger {
	if s.Log == nil {
		return slog.Default()
	}
	return s.Log
}
