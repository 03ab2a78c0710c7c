package dnssec

import "github.com/prometheus/client_golang/prometheus"

// Metrics counts signing work. Labels are the zones signed; the series of
// a zone no longer signed are deleted.
type Metrics struct {
	signatures *prometheus.CounterVec
	hits       prometheus.Counter
	misses     prometheus.Counter
	cacheBytes prometheus.Gauge
	nextEvent  *prometheus.GaugeVec
	expiry     *prometheus.GaugeVec
	dsChecks   *prometheus.CounterVec
}

// NewMetrics registers the DNSSEC metrics with reg (nil: not registered).
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		signatures: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "geodns_dnssec_signatures_total",
			Help: "RRSIG records made, by zone.",
		}, []string{"zone"}),
		hits: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "geodns_dnssec_signature_cache_hits_total",
			Help: "RRsets whose signatures came from the signature cache.",
		}),
		misses: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "geodns_dnssec_signature_cache_misses_total",
			Help: "RRsets signed because the signature cache did not hold them.",
		}),
		cacheBytes: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "geodns_dnssec_signature_cache_bytes",
			Help: "Bytes the signature cache holds, as budgeted.",
		}),
		nextEvent: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "geodns_dnssec_next_key_event_timestamp_seconds",
			Help: "When the zone's next key event (a rollover starting or moving on) is due, Unix time; 0 while waiting for the parent's DS.",
		}, []string{"zone"}),
		expiry: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "geodns_dnssec_signature_expiry_seconds",
			Help: "Time until the signatures being served expire, in seconds (/86400: days); they are remade when Refresh is left.",
		}, []string{"zone"}),
		dsChecks: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "geodns_dnssec_parent_ds_checks_total",
			Help: "Queries of the parent's nameservers for the zone's DS during rollovers, by result (error, missing, found).",
		}, []string{"zone", "result"}),
	}
	if reg != nil {
		reg.MustRegister(m.signatures, m.hits, m.misses, m.cacheBytes, m.nextEvent, m.expiry, m.dsChecks)
	}
	return m
}

func (m *Metrics) forget(zone string) {
	m.signatures.DeleteLabelValues(zone)
	m.nextEvent.DeleteLabelValues(zone)
	m.expiry.DeleteLabelValues(zone)
	for _, r := range []string{"error", "missing", "found"} {
		m.dsChecks.DeleteLabelValues(zone, r)
	}
}
