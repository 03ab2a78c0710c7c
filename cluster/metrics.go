package cluster

import "github.com/prometheus/client_golang/prometheus"

type metrics struct {
	drift   *prometheus.GaugeVec
	rewinds prometheus.Counter
}

// newMetrics registers the cluster's metrics; the label values are
// bounded: drift is by kind (zone, geoip, operator), not by node or zone.
func newMetrics(c *Cluster, reg prometheus.Registerer) *metrics {
	m := &metrics{
		drift: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "geodns_cluster_drift",
			Help: "Live nodes, this one included, that serve something other than most live nodes do (a tie to the first node by name) (kind zone: a zone's content or serial, or a zone missing; geoip: a GeoIP database; operator: the applied operator state): the same number on every node that sees the same reports.",
		}, []string{"kind"}),
		rewinds: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "geodns_cluster_rewinds_total",
			Help: "Times etcd answered with a revision below one it had answered with before (its data lost or replaced), after which the node read the shared state again.",
		}),
	}
	for _, k := range []string{"zone", "geoip", "operator"} {
		m.drift.WithLabelValues(k)
	}
	if reg != nil {
		reg.MustRegister(m.drift, m.rewinds,
			prometheus.NewGaugeFunc(prometheus.GaugeOpts{
				Name: "geodns_cluster_connected",
				Help: "1 while this node holds its etcd lease and etcd answers; 0 while it serves its last view alone.",
			}, func() float64 {
				if c.Connected() {
					return 1
				}
				return 0
			}),
			prometheus.NewGaugeFunc(prometheus.GaugeOpts{
				Name: "geodns_cluster_stale_seconds",
				Help: "Seconds since this node last had the shared view (0 while connected).",
			}, func() float64 { return c.Stale().Seconds() }),
		)
	}
	return m
}
