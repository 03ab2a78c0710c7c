package health

import (
	"context"
	"testing"

	"github.com/geodns/geodns/zones"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/stretchr/testify/require"
)

func testutilCounter(c prometheus.Collector) float64 { return testutil.ToFloat64(c) }

// probeOnce runs one probe and closes any connection it kept.
func probeOnce(p *prober, pr *zones.Probe) Result {
	r, kept := p.probe(context.Background(), pr, nil)
	p.release(kept)
	return r
}

// runner runs one probe to its end, given the connection the last one
// kept, and returns the result and the connection kept for the next.
type runner struct {
	name string
	run  func(pr *zones.Probe, kept *conn) (Result, *conn)
}

// runners are the ways a probe of p runs: in a goroutine of its own, and
// (on Linux, for tcp and http) on an event loop. Tests run each.
func runners(t testing.TB, p *prober) []runner {
	rs := []runner{{"goroutine", func(pr *zones.Probe, kept *conn) (Result, *conn) {
		return p.probe(context.Background(), pr, kept)
	}}}
	done := make(chanOwner, 1)
	l, err := newEvloop(p, done)
	require.NoError(t, err)
	if l == nil {
		return rs
	}
	t.Cleanup(l.stop)
	return append(rs, runner{"loop", func(pr *zones.Probe, kept *conn) (Result, *conn) {
		l.submit(&probe{}, pr, loopTarget(pr), kept)
		r := <-done
		return r.r, r.kept
	}})
}

// chanOwner hands the loop's outcomes to a test.
type chanOwner chan loopResult

type loopResult struct {
	r         Result
	kept      *conn
	abandoned bool
}

func (o chanOwner) finished(_ *probe, r Result, kept *conn) { o <- loopResult{r: r, kept: kept} }
func (o chanOwner) abandoned(*probe)                        { o <- loopResult{abandoned: true} }
