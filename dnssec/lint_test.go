package dnssec

import (
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil/promlint"
)

// testutilLint runs promlint over what g gathers.
func testutilLint(g prometheus.Gatherer) ([]promlint.Problem, error) {
	mfs, err := g.Gather()
	if err != nil {
		return nil, err
	}
	return promlint.NewWithMetricFamilies(mfs).Lint()
}
