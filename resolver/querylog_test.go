package resolver

import (
	"bufio"
	"encoding/json"
	"math"
	"net/netip"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"github.com/geodns/geodns/geo"
	"github.com/miekg/dns"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/stretchr/testify/require"
)

func packedQuery(t *testing.T, name string) []byte {
	t.Helper()
	w, err := new(dns.Msg).SetQuestion(name, dns.TypeA).Pack()
	require.NoError(t, err)
	return w
}

// readLines decodes a query log file.
func readLines(t *testing.T, path string) []QueryLine {
	t.Helper()
	f, err := os.Open(path)
	require.NoError(t, err)
	defer f.Close()
	var out []QueryLine
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		var l QueryLine
		require.NoError(t, json.Unmarshal(sc.Bytes(), &l), sc.Text())
		out = append(out, l)
	}
	return out
}

// TestQueryLogLines: with every query sampled, each is one JSON line with
// its question, rcode, answer and, for a service name, the decision.
func TestQueryLogLines(t *testing.T) {
	path := filepath.Join(t.TempDir(), "queries.json")
	m := NewMetrics(prometheus.NewRegistry())
	ql, err := NewQueryLog(QueryLogConfig{Path: path, Sample: 1, MaxPerSecond: 1000}, m)
	require.NoError(t, err)
	h := newTestHandler(t, Config{Metrics: m, QueryLog: ql})
	buf := make([]byte, 0, 512)
	require.NotNil(t, h.ServeWire(packedQuery(t, "svc.example.net."), testClient, false, buf))
	require.NotNil(t, h.ServeWire(packedQuery(t, "nope.example.net."), testClient, true, buf))
	ql.Close()
	lines := readLines(t, path)
	require.Len(t, lines, 2)
	svc, nx := lines[0], lines[1]
	t.Logf("service line: %+v", svc)
	require.Equal(t, "svc.example.net.", svc.Qname)
	require.Equal(t, "A", svc.Qtype)
	require.Equal(t, "NOERROR", svc.Rcode)
	require.Equal(t, "udp", svc.Transport)
	require.Equal(t, "127.0.0.1", svc.Client)
	require.Equal(t, "web", svc.Service)
	require.Contains(t, []string{"east", "west"}, svc.Site)
	require.Equal(t, "127.0.0.1/32", svc.Network)
	require.NotNil(t, svc.Scope)
	require.Nil(t, svc.ECSSource, "no ECS option")
	require.NotEmpty(t, svc.Answer)
	require.Equal(t, "NXDOMAIN", nx.Rcode)
	require.Equal(t, "tcp", nx.Transport)
	require.Empty(t, nx.Service)
	require.Equal(t, 2.0, testutil.ToFloat64(m.queryLogLines))
}

// TestQueryLogDistanceFromSiteMap: a decision made from the service's
// compiled site map carries no coordinates; the query log still gets the
// client's distance to the site, from the router.
func TestQueryLogDistanceFromSiteMap(t *testing.T) {
	path := filepath.Join(t.TempDir(), "queries.json")
	m := NewMetrics(prometheus.NewRegistry())
	ql, err := NewQueryLog(QueryLogConfig{Path: path, Sample: 1, MaxPerSecond: 1000}, m)
	require.NoError(t, err)
	h, r := newGeoHandlerWith(t, Config{Metrics: m, QueryLog: ql})
	r.CompileSiteMaps(h.zones.Load())
	q := ecsQuery("svc.example.net.", dns.TypeA, subnet("203.0.113.0/24")) // New York
	wire, err := q.Pack()
	require.NoError(t, err)
	d := r.Route("example.net.", h.zones.Load().Zones()[0].Services["web"], netip.MustParsePrefix("203.0.113.0/24"), false)
	require.True(t, d.Why.Mapped, "the decision comes from the map")
	require.NotNil(t, h.ServeWire(wire, testClient, false, make([]byte, 0, 512)))
	ql.Close()
	lines := readLines(t, path)
	require.Len(t, lines, 1)
	require.Equal(t, "east", lines[0].Site)
	require.NotNil(t, lines[0].DistanceKm, "distance_km")
	require.Equal(t, int(math.Round(geo.Distance(40.71, -74.0, 39, -77))), *lines[0].DistanceKm)
}

// TestQueryLogSampleAndLimit: a sample of 0.25 logs about a quarter of
// the queries; max_per_second caps the lines of a second and counts the
// rest.
func TestQueryLogSampleAndLimit(t *testing.T) {
	q := packedQuery(t, "mail.example.net.")
	buf := make([]byte, 0, 512)
	t.Run("sample", func(t *testing.T) {
		m := NewMetrics(prometheus.NewRegistry())
		ql, err := NewQueryLog(QueryLogConfig{Path: filepath.Join(t.TempDir(), "q"), Sample: 0.25, MaxPerSecond: 1 << 30}, m)
		require.NoError(t, err)
		h := newTestHandler(t, Config{QueryLog: ql})
		const n = 8000
		for range n {
			h.ServeWire(q, testClient, false, buf)
		}
		ql.Close()
		got := testutil.ToFloat64(m.queryLogLines) + testutil.ToFloat64(m.queryLogDropped)
		require.InDelta(t, n/4, got, n/4*0.15, "about a quarter sampled")
	})
	t.Run("limit", func(t *testing.T) {
		m := NewMetrics(prometheus.NewRegistry())
		ql, err := NewQueryLog(QueryLogConfig{Path: filepath.Join(t.TempDir(), "q"), Sample: 1, MaxPerSecond: 50}, m)
		require.NoError(t, err)
		h := newTestHandler(t, Config{QueryLog: ql})
		const n = 3000
		for range n {
			h.ServeWire(q, testClient, false, buf)
		}
		ql.Close()
		lines, limited := testutil.ToFloat64(m.queryLogLines), testutil.ToFloat64(m.queryLogLimited)
		t.Logf("%d queries: %.0f lines, %.0f over max_per_second", n, lines, limited)
		require.Equal(t, float64(n), lines+limited+testutil.ToFloat64(m.queryLogDropped))
		require.LessOrEqual(t, lines, 50.0*3, "at most 50 a second (the loop may straddle a second or two)")
		require.Positive(t, lines)
	})
}

// blockedWriter never returns from Write until released: a destination
// that stopped draining (a full pipe).
type blockedWriter struct{ release chan struct{} }

func (b blockedWriter) Write(p []byte) (int, error) { <-b.release; return len(p), nil }

// TestQueryLogNeverBlocks: with the destination stuck, queries are still
// answered (a blocked send would hang this test), and what does not fit
// in the queue is dropped and counted.
func TestQueryLogNeverBlocks(t *testing.T) {
	m := NewMetrics(prometheus.NewRegistry())
	release := make(chan struct{})
	ql := &QueryLog{max: 1 << 30, threshold: ^uint64(0), ch: make(chan qlEntry, queryLogQueue),
		stop: make(chan struct{}), done: make(chan struct{}), m: m,
		w: bufio.NewWriterSize(blockedWriter{release}, 16)}
	go ql.run()
	h := newTestHandler(t, Config{QueryLog: ql})
	q := packedQuery(t, "mail.example.net.")
	const workers, each = 4, 2000
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			buf := make([]byte, 0, 512)
			for range each {
				require.NotNil(t, h.ServeWire(q, testClient, false, buf))
			}
		})
	}
	wg.Wait()
	dropped := testutil.ToFloat64(m.queryLogDropped)
	t.Logf("%d queries answered with the log's destination stuck; %.0f dropped", workers*each, dropped)
	require.GreaterOrEqual(t, dropped, float64(workers*each-queryLogQueue-1))
	close(release)
	ql.Close()
}
