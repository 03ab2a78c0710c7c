package route

import "github.com/prometheus/client_golang/prometheus"

// Metrics are the router's metrics, emitted by its plan loop (Run) when
// zones or health change, never per query.
type Metrics struct {
	allDown   *prometheus.CounterVec
	siteUp    *prometheus.GaugeVec
	estimates prometheus.Counter
	// mapSeconds is how long site maps took to compile (sitemap.go).
	mapSeconds prometheus.Histogram
}

// NewMetrics returns the router's metrics, registered with reg (nil: not
// registered).
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		allDown: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "geodns_all_down_total",
			Help: "Times every site of a service with endpoints of an address family (ipv4, ipv6; any for CNAME services) went down, so its all_down policy answered that family.",
		}, []string{"service", "family"}),
		siteUp: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "geodns_site_up",
			Help: "Whether a site of a service is up (1) for an address family (ipv4, ipv6; any for CNAME services): enough of its endpoints of the family are up, and it is not drained.",
		}, []string{"zone", "service", "site", "family"}),
		estimates: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "geodns_route_demand_estimates_total",
			Help: "Demand estimates computed for spillover services (each samples 65,536 networks), by the plan loop.",
		}),
		mapSeconds: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "geodns_route_site_map_compile_seconds",
			Help:    "Time to compile a site map (a service's site ranking over every GeoIP network), by the plan loop, once per distinct site set and database version.",
			Buckets: []float64{0.01, 0.1, 0.5, 1, 2, 5, 10, 30},
		}),
	}
	if reg != nil {
		reg.MustRegister(m.allDown, m.siteUp, m.estimates, m.mapSeconds)
	}
	return m
}

// familyLabel is the family label: ipv4, ipv6, or any for CNAME services
// (which answer every type alike).
func familyLabel(v6, cname bool) string {
	if cname {
		return "any"
	}
	if v6 {
		return "ipv6"
	}
	return "ipv4"
}
