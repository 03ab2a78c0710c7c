package main

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/miekg/dns"
	"github.com/stretchr/testify/require"
)

// TestExplainOfflineStaticChecks: geodns explain without --api reads the
// zone files, so what they decide (static checks) it must apply, as the
// server does: east is down by a static check, and both answer west.
// Before, explain chose east, and said an A where the server had NODATA.
func TestExplainOfflineStaticChecks(t *testing.T) {
	dir := t.TempDir()
	zone := `soa: {ns: ns1.example.com., mbox: hostmaster.example.com.}
records:
  "@": {NS: [ns1.example.com.]}
  sd: {service: sd}
  nd: {service: nd}
sites:
  east: {lat: 39.04, lon: -77.49}
  west: {lat: 37.34, lon: -121.89}
checks:
  off: {type: static, up: false}
services:
  sd:
    ttl: 30
    endpoints:
      - {site: east, address: 192.0.2.97, check: off}
      - {site: west, address: 198.51.100.97}
  nd:
    all_down: nodata
    endpoints:
      - {site: east, address: 192.0.2.98, check: off}
`
	require.NoError(t, os.WriteFile(filepath.Join(dir, "example.com.yaml"), []byte(zone), 0o644))
	code, out, errOut := runGeodns(t, "explain", "--zones", dir, "--client", "192.0.2.1", "sd.example.com", "A")
	require.Equal(t, 0, code, errOut)
	require.Contains(t, out, "chosen    [west] -> [198.51.100.97]")
	require.Contains(t, out, "answer    sd.example.com.\t5\tIN\tA\t198.51.100.97", "failing over: the degraded TTL")
	code, out, errOut = runGeodns(t, "explain", "--zones", dir, "--client", "192.0.2.1", "nd.example.com", "A")
	require.Equal(t, 0, code, errOut)
	require.NotContains(t, out, "IN\tA\t192.0.2.98", "all down, nodata: no address")

	// The server agrees.
	server, _ := startGeodns(t, dir, "example.com.")
	c := &dns.Client{Timeout: time.Second}
	require.Eventually(t, func() bool {
		r, _, err := c.Exchange(question("sd.example.com.", dns.TypeA), server)
		return err == nil && len(r.Answer) == 1 && r.Answer[0].(*dns.A).A.String() == "198.51.100.97" && r.Answer[0].Header().Ttl == 5
	}, 5*time.Second, 20*time.Millisecond)
	r, _, err := c.Exchange(question("nd.example.com.", dns.TypeA), server)
	require.NoError(t, err)
	require.Empty(t, r.Answer)
}
