package opstate

import "github.com/prometheus/client_golang/prometheus"

type metrics struct {
	writeErrors prometheus.Counter
	corrupt     prometheus.Counter
}

func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{
		writeErrors: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "geodns_operator_state_write_errors_total",
			Help: "Failed writes of the operator state file (overrides, dials); the change is refused and /readyz fails until one succeeds.",
		}),
		corrupt: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "geodns_operator_state_corrupt_total",
			Help: "Operator state files found corrupt at start (kept aside; the previous copy was loaded).",
		}),
	}
	if reg != nil {
		reg.MustRegister(m.writeErrors, m.corrupt)
	}
	return m
}
