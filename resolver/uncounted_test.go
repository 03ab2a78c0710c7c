package resolver

import (
	"testing"

	"github.com/miekg/dns"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/stretchr/testify/require"
)

// TestExplainUncounted: the server's one handler answers explains through
// its Uncounted view, with the same answer as traffic gets (a service
// name routed, a static name, a NXDOMAIN) and nothing counted in the
// query or answer metrics; cmd/geodns used to build a second handler
// without metrics for that.
func TestExplainUncounted(t *testing.T) {
	reg := prometheus.NewRegistry()
	h := newTestHandler(t, Config{Metrics: NewMetrics(reg), ServerID: "ns-test-1"})
	m := h.cfg.Metrics
	u := h.Uncounted()
	type question struct {
		name  string
		qtype uint16
	}
	qs := []question{{"svc.example.net.", dns.TypeA}, {"www.example.net.", dns.TypeA}, {"nope.example.net.", dns.TypeAAAA}}
	req := func(q question) *dns.Msg {
		m := new(dns.Msg).SetQuestion(q.name, q.qtype)
		m.SetEdns0(1232, false)
		return m
	}
	var explained []*dns.Msg
	for _, q := range qs {
		explained = append(explained, u.Answer(req(q), testClient, true))
	}
	require.Zero(t, testutil.CollectAndCount(m.queries), "an explain is not a query")
	require.Zero(t, testutil.CollectAndCount(m.answers), "nor a service answer")
	for i, q := range qs {
		want, got := h.Answer(req(q), testClient, true), explained[i]
		require.Equal(t, want.Rcode, got.Rcode, q.name)
		require.ElementsMatch(t, rrStrings(want.Answer), rrStrings(got.Answer), "%s: the same set, rotated", q.name)
		require.Equal(t, rrStrings(want.Ns), rrStrings(got.Ns), q.name)
	}
	require.Equal(t, 2.0, testutil.ToFloat64(m.queries.WithLabelValues("example.net.", "A", "NOERROR")), "traffic is counted")
	require.Equal(t, 1.0, testutil.ToFloat64(m.queries.WithLabelValues("example.net.", "AAAA", "NXDOMAIN")))
	require.Equal(t, 1.0, testutil.ToFloat64(m.answers.WithLabelValues("web", "east")))
}

func rrStrings(rrs []dns.RR) []string {
	var out []string
	for _, rr := range rrs {
		out = append(out, rr.String())
	}
	return out
}
