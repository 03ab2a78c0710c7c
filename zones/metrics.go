package zones

import "github.com/prometheus/client_golang/prometheus"

// Metrics counts zone loads. Series of removed zones are deleted.
type Metrics struct {
	reloads *prometheus.CounterVec
	serial  *prometheus.GaugeVec
	records *prometheus.GaugeVec
	missing *prometheus.GaugeVec
	warns   *prometheus.GaugeVec
	same    *prometheus.CounterVec
	failing *prometheus.GaugeVec
	expires *prometheus.GaugeVec
}

// NewMetrics registers the zone metrics with reg (nil: not registered).
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		reloads: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "geodns_zone_reloads_total",
			Help: "Zone file loads by zone and result (ok, error, removed).",
		}, []string{"zone", "result"}),
		serial: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "geodns_zone_serial",
			Help: "SOA serial of the zone being served.",
		}, []string{"zone"}),
		records: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "geodns_zone_records",
			Help: "Number of records in the zone being served.",
		}, []string{"zone"}),
		missing: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "geodns_zone_file_missing",
			Help: "1 while a zone is served from a file that is gone (it keeps serving until SIGHUP or zone_missing_grace).",
		}, []string{"zone"}),
		warns: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "geodns_zone_warnings",
			Help: "Warnings of the zone version being served (occluded data, targets without addresses, ...): logged when it loads.",
		}, []string{"zone"}),
		failing: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "geodns_zone_load_failing",
			Help: "1 while a zone's file fails to load: an older version is served, or (no geodns_zone_serial) none. A zone that fails from the start has no error counter at 0 before it; this is set from its first failure.",
		}, []string{"zone"}),
		expires: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "geodns_zone_signatures_expire_timestamp_seconds",
			Help: "For a pre-signed zone, when the first of its RRsets has no unexpired signature left, Unix time: its file must be signed again before.",
		}, []string{"zone"}),
		same: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "geodns_zone_serial_unchanged_total",
			Help: "Loads of a zone whose content changed while its SOA serial did not.",
		}, []string{"zone"}),
	}
	if reg != nil {
		reg.MustRegister(m.reloads, m.serial, m.records, m.missing, m.warns, m.same, m.failing, m.expires)
	}
	return m
}

func (m *Metrics) loaded(z *Zone) {
	m.reloads.WithLabelValues(z.Origin, "ok").Inc()
	m.reloads.WithLabelValues(z.Origin, "error") // at 0 from the first load, so alerts see the first rejected edit
	m.serial.WithLabelValues(z.Origin).Set(float64(z.Serial))
	m.records.WithLabelValues(z.Origin).Set(float64(z.Len()))
	m.missing.DeleteLabelValues(z.Origin)
	m.warns.WithLabelValues(z.Origin).Set(float64(len(z.Warnings)))
	m.failing.WithLabelValues(z.Origin).Set(0)
	if at, _, ok := z.SignaturesExpire(); ok {
		m.expires.WithLabelValues(z.Origin).Set(float64(at.Unix()))
	} else {
		m.expires.DeleteLabelValues(z.Origin)
	}
}

func (m *Metrics) serialUnchanged(zone string) { m.same.WithLabelValues(zone).Inc() }

func (m *Metrics) fileMissing(zone string) { m.missing.WithLabelValues(zone).Set(1) }

func (m *Metrics) fileBack(zone string) { m.missing.DeleteLabelValues(zone) }

func (m *Metrics) failed(zone string) {
	m.reloads.WithLabelValues(zone, "error").Inc()
	m.failing.WithLabelValues(zone).Set(1)
}

func (m *Metrics) removed(zone string) {
	m.reloads.DeleteLabelValues(zone, "ok")
	m.reloads.DeleteLabelValues(zone, "error")
	m.serial.DeleteLabelValues(zone)
	m.records.DeleteLabelValues(zone)
	m.missing.DeleteLabelValues(zone)
	m.warns.DeleteLabelValues(zone)
	m.same.DeleteLabelValues(zone)
	m.failing.DeleteLabelValues(zone)
	m.expires.DeleteLabelValues(zone)
}
