package main

import (
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"
	"github.com/stretchr/testify/require"
)

// TestAllDownMetricPerFamily: site east has an IPv4 endpoint only, and it
// is down; site west an IPv6 endpoint only, up. Every A query gets the
// all_down policy, so geodns_all_down_total counts it and the log says so
// (they used to follow health's own "all down", which saw west up and
// stayed at 0).
func TestAllDownMetricPerFamily(t *testing.T) {
	zdir := t.TempDir()
	zone := `soa: {ns: ns1.example.com., mbox: hostmaster.example.com.}
records:
  "@": {NS: [ns1.example.com.]}
  www: {service: web}
  alias: {CNAME: www}
sites:
  east: {lat: 39.04, lon: -77.49}
  west: {lat: 37.34, lon: -121.89}
checks:
  down: {type: static, up: false}
  up: {type: static, up: true}
services:
  web:
    all_down: nodata
    endpoints:
      - {site: east, address: 192.0.2.10, check: down}
      - {site: west, address: "2001:db8::10", check: up}
`
	require.NoError(t, os.WriteFile(filepath.Join(zdir, "example.com.yaml"), []byte(zone), 0o644))
	httpAddr := freeLoopback(t, "127.0.0.1")
	server, log := startGeodns(t, zdir, "example.com.", "--http", httpAddr)
	base := "http://" + httpAddr
	require.Eventually(t, func() bool { code, _ := call(t, "GET", base+"/readyz", ""); return code == 200 }, 5*time.Second, 20*time.Millisecond)

	c := &dns.Client{Timeout: time.Second}
	var nodata *dns.Msg
	require.Eventually(t, func() bool { // east goes down after fall (2) probes
		r, _, err := c.Exchange(question("www.example.com.", dns.TypeA), server)
		nodata = r
		return err == nil && r.Rcode == dns.RcodeSuccess && len(r.Answer) == 0 // all down for A: the nodata policy
	}, 10*time.Second, 50*time.Millisecond)
	// Resolvers cache that NODATA for the SOA's TTL: the degraded TTL, as
	// the other all-down answers, not the zone's negative TTL (60 here),
	// so clients come back soon after the sites do.
	require.Len(t, nodata.Ns, 1)
	require.Equal(t, dns.TypeSOA, nodata.Ns[0].Header().Rrtype)
	require.Equal(t, uint32(5), nodata.Ns[0].Header().Ttl, "the degraded TTL")
	// So at the end of a CNAME chain (its answer holds the CNAME).
	viaAlias, _, err := c.Exchange(question("alias.example.com.", dns.TypeA), server)
	require.NoError(t, err)
	require.Len(t, viaAlias.Answer, 1)
	require.Equal(t, dns.TypeCNAME, viaAlias.Answer[0].Header().Rrtype)
	require.Len(t, viaAlias.Ns, 1)
	require.Equal(t, uint32(5), viaAlias.Ns[0].Header().Ttl, "the degraded TTL through the CNAME")
	r, _, err := c.Exchange(question("www.example.com.", dns.TypeAAAA), server)
	require.NoError(t, err)
	require.Len(t, r.Answer, 1, "west answers AAAA")

	counted := regexp.MustCompile(`(?m)^geodns_all_down_total\{[^}]*service="web"[^}]*\} 1$`)
	require.Eventually(t, func() bool {
		code, metrics := call(t, "GET", base+"/metrics", "")
		return code == http.StatusOK && counted.MatchString(metrics)
	}, 5*time.Second, 20*time.Millisecond, "the all-down answers are counted")
	require.Eventually(t, func() bool { return strings.Contains(log.String(), "every site of the service is down") }, 5*time.Second, 20*time.Millisecond)
}
