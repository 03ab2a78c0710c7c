package health

import (
	"context"

	"github.com/geodns/geodns/zones"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

func testutilCounter(c prometheus.Collector) float64 { return testutil.ToFloat64(c) }

// probeOnce runs one probe and closes any connection it kept.
func probeOnce(p *prober, pr *zones.Probe) Result {
	r, kept := p.probe(context.Background(), pr, nil)
	p.release(kept)
	return r
}
