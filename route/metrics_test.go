package route

import (
	"testing"
	"time"

	"github.com/geodns/geodns/zones"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/stretchr/testify/require"
)

// TestAllDownSeriesFollowServices: a refresh creates each service's
// geodns_all_down_total series at 0 (for the families it has endpoints
// of), so an alert on its increase sees the first all-down; a refresh
// without the service deletes them.
func TestAllDownSeriesFollowServices(t *testing.T) {
	z, err := zones.Compile("example.net.yaml", []byte(`
soa: {ns: ns1.example.net., mbox: h.example.net.}
records:
  "@": {NS: [ns1.example.net.]}
  www: {service: web}
sites:
  east: {lat: 39, lon: -77}
services:
  web:
    endpoints:
      - {site: east, address: 192.0.2.10}
      - {site: east, address: "2001:db8::10"}
`), "example.net.", time.Now(), nil)
	require.NoError(t, err)
	r := &Router{Metrics: NewMetrics(prometheus.NewRegistry()), Log: quiet}
	r.Refresh(zones.NewSet(z))
	require.Equal(t, 2, testutil.CollectAndCount(r.Metrics.allDown))
	require.Zero(t, testutil.ToFloat64(r.Metrics.allDown.WithLabelValues("web", "ipv4")))
	require.Zero(t, testutil.ToFloat64(r.Metrics.allDown.WithLabelValues("web", "ipv6")))
	r.Refresh(zones.NewSet())
	require.Zero(t, testutil.CollectAndCount(r.Metrics.allDown), "removed with the service")
}
