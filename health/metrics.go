package health

import "github.com/prometheus/client_golang/prometheus"

type metrics struct {
	up          *prometheus.GaugeVec
	duration    *prometheus.HistogramVec
	transitions *prometheus.CounterVec
	skipped     prometheus.Counter

	stateWriteErrors prometheus.Counter
	stateCorrupt     prometheus.Counter

	checks map[string]bool // the checks of the probes at the last SetZones: prune
}

func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{
		up: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "geodns_check_up",
			Help: "Whether a probe's target is up (1) or down (0), after rise/fall.",
		}, []string{"check", "endpoint", "site"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "geodns_check_duration_seconds",
			Help:    "Time a probe took, by check.",
			Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5},
		}, []string{"check"}),
		transitions: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "geodns_health_transitions_total",
			Help: "Up/down changes of probes, by check and new state.",
		}, []string{"check", "state"}),
		skipped: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "geodns_check_skipped_total",
			Help: "Probes not started because too many were in flight.",
		}),
		stateWriteErrors: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "geodns_health_state_write_errors_total",
			Help: "Failed writes of the health state file (probe states); /readyz fails until one succeeds.",
		}),
		stateCorrupt: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "geodns_health_state_corrupt_total",
			Help: "Health state files found corrupt at start (kept aside; the previous copy was loaded).",
		}),
	}
	if reg != nil {
		reg.MustRegister(m.up, m.duration, m.transitions, m.skipped, m.stateWriteErrors, m.stateCorrupt)
	}
	return m
}

// series holds a probe's metric series, looked up once rather than by
// their labels at every result.
type series struct {
	up       prometheus.Gauge
	upLabels [3]string
	duration prometheus.Observer
	check    string // the duration's label
}

func (m *metrics) labels(p *probe) [3]string {
	target := p.spec.Target
	if target == "" && len(p.ids) > 0 {
		target = p.ids[0] // static checks: name the endpoint
	}
	return [3]string{p.check, target, p.site}
}

func (m *metrics) set(p *probe) {
	v := 0.0
	if p.up {
		v = 1
	}
	if l := m.labels(p); p.series.up == nil || l != p.series.upLabels {
		if p.series.up != nil { // a reload gave the probe another check name or site
			m.up.DeleteLabelValues(p.series.upLabels[:]...)
		}
		p.series.up, p.series.upLabels = m.up.WithLabelValues(l[:]...), l
		// The check's transition counters exist at 0 from its first
		// probe, so a rate over them (the flapping alert) sees the first change.
		m.transitions.WithLabelValues(p.check, "up")
		m.transitions.WithLabelValues(p.check, "down")
	}
	p.series.up.Set(v)
}

func (m *metrics) observe(p *probe, r Result) {
	if p.series.duration == nil || p.series.check != p.check {
		p.series.duration, p.series.check = m.duration.WithLabelValues(p.check), p.check
	}
	p.series.duration.Observe(r.RTT.Seconds())
}

func (m *metrics) transition(p *probe, state string) {
	m.transitions.WithLabelValues(p.check, state).Inc()
}

// prune deletes the series of checks no probe has any more (removed or
// renamed): their durations and transitions stayed until a restart.
func (m *metrics) prune(checks map[string]bool) {
	for c := range m.checks {
		if !checks[c] {
			m.duration.DeleteLabelValues(c)
			m.transitions.DeleteLabelValues(c, "up")
			m.transitions.DeleteLabelValues(c, "down")
		}
	}
	m.checks = checks
}

// forget deletes a removed probe's series.
func (m *metrics) forget(p *probe) {
	if p.series.up != nil {
		m.up.DeleteLabelValues(p.series.upLabels[:]...)
	}
}
