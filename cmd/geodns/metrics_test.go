package main

import (
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/miekg/dns"
	"github.com/stretchr/testify/require"
)

// deployMetrics are the geodns metrics the dashboard and the alert rules
// name (histograms by their base name).
func deployMetrics(t *testing.T) []string {
	t.Helper()
	names := map[string]bool{}
	re := regexp.MustCompile(`geodns_\w+`)
	for _, f := range []string{"../../deploy/prometheus/alerts.yml", "../../deploy/grafana/geodns.json"} {
		b, err := os.ReadFile(f)
		require.NoError(t, err)
		for _, m := range re.FindAllString(string(b), -1) {
			for _, s := range []string{"_bucket", "_sum", "_count"} {
				m = strings.TrimSuffix(m, s)
			}
			names[m] = true
		}
	}
	var out []string
	for n := range names {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}

// TestMetricsOfDeployFiles: a fresh server (one zone with a service, RRL
// and dnstap on) exports every metric the dashboard and the alerts name,
// and the counters the alerts take increase() of are there at 0 before
// any event: a counter that appears at 1 with its first event has no
// increase, and the alert would miss it.
func TestMetricsOfDeployFiles(t *testing.T) {
	zdir := t.TempDir()
	zone := `soa: {ns: ns1.example.com., mbox: hostmaster.example.com.}
records:
  "@": {NS: [ns1.example.com.]}
  www: {service: web}
sites:
  east: {lat: 39.04, lon: -77.49}
checks:
  up: {type: static, up: true}
services:
  web:
    endpoints:
      - {site: east, address: 192.0.2.10, check: up}
`
	require.NoError(t, os.WriteFile(filepath.Join(zdir, "example.com.yaml"), []byte(zone), 0o644))
	// A signed zone with transfers: the signatures' series.
	require.NoError(t, os.WriteFile(filepath.Join(zdir, "signed.test.yaml"), []byte(`soa: {ns: ns1.signed.test., mbox: h.signed.test.}
records: {"@": {NS: [ns1.signed.test.]}, ns1: {A: [192.0.2.53]}}
dnssec: {algorithm: ECDSAP256SHA256}
transfer: {allow: [127.0.0.0/8]}
`), 0o644))
	conf := filepath.Join(t.TempDir(), "geodns.yaml")
	require.NoError(t, os.WriteFile(conf, []byte("rrl: {responses_per_second: 1000}\n"), 0o644))
	httpAddr := freeLoopback(t, "127.0.0.1")
	server, _ := startGeodns(t, zdir, "example.com.", "--http", httpAddr, "--config", conf, "--state-dir", t.TempDir())
	base := "http://" + httpAddr
	c := &dns.Client{Timeout: time.Second}
	r, _, err := c.Exchange(question("www.example.com.", dns.TypeA), server)
	require.NoError(t, err)
	require.Len(t, r.Answer, 1)

	// Series that exist only while their condition holds (the cluster's:
	// with a cluster: section, checked by cluster_test.go; GeoIP's: one a
	// configured database, checked by TestOperatorMistakesFailFast; a
	// pre-signed zone's, checked by TestPresignedTransfer).
	onlyWhile := map[string]bool{"geodns_zone_file_missing": true, "geodns_cluster_connected": true, "geodns_cluster_drift": true,
		"geodns_geoip_load_failing": true, "geodns_zone_signatures_expire_timestamp_seconds": true}
	var metrics string
	require.Eventually(t, func() bool { // the first probe results are in
		var code int
		code, metrics = call(t, "GET", base+"/metrics", "")
		return code == http.StatusOK && strings.Contains(metrics, "geodns_check_duration_seconds_count") &&
			strings.Contains(metrics, "geodns_transfer_signature_expiry_seconds")
	}, 5*time.Second, 20*time.Millisecond)
	for _, name := range deployMetrics(t) {
		if onlyWhile[name] {
			continue
		}
		require.Regexp(t, `(?m)^`+name+`(_count)?(\{| )`, metrics, "%s is named in deploy/ but not exported", name)
	}
	for _, series := range []string{
		`geodns_all_down_total{family="ipv4",service="web"} 0`,
		`geodns_zone_reloads_total{result="error",zone="example.com."} 0`,
		`geodns_health_transitions_total{check="up",state="down"} 0`,
		`geodns_health_transitions_total{check="up",state="up"} 0`,
		`geodns_panics_total 0`,
		`geodns_health_state_write_errors_total 0`,
		`geodns_operator_state_write_errors_total 0`,
		`geodns_dnstap_dropped_total 0`,
		`geodns_rrl_dropped_total 0`,
	} {
		require.Contains(t, metrics, "\n"+series+"\n", "a fresh server exports %s", series)
	}
}

// TestMetricsOfRemovedZone: a zone removed (its file gone, SIGHUP) takes
// its query counters, its services' answer counters and its checks'
// duration and transition series with it. Before, they stayed until a
// restart: one more set of series with every zone, service or check that
// came and went.
func TestMetricsOfRemovedZone(t *testing.T) {
	backend, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer backend.Close()
	go func() {
		for {
			c, err := backend.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	zdir := t.TempDir()
	require.NoError(t, os.WriteFile(filepath.Join(zdir, "keep.test.yaml"), []byte("soa: {ns: ns1.keep.test., mbox: h.keep.test.}\nrecords:\n  \"@\": {NS: [ns1.keep.test.]}\n  ns1: {A: [192.0.2.1]}\n"), 0o644))
	gone := filepath.Join(zdir, "gone.test.yaml")
	require.NoError(t, os.WriteFile(gone, []byte(`soa: {ns: ns1.keep.test., mbox: h.keep.test.}
records:
  "@": {NS: [ns1.keep.test.]}
  www: {service: svcgone}
sites:
  east: {lat: 39.04, lon: -77.49}
checks:
  hcgone: {type: tcp, port: 1, interval: 200ms, timeout: 150ms}
services:
  svcgone:
    endpoints:
      - {site: east, address: 192.0.2.10, check: hcgone, target: "`+backend.Addr().String()+`"}
`), 0o644))
	httpAddr := freeLoopback(t, "127.0.0.1")
	server, _ := startGeodns(t, zdir, "keep.test.", "--http", httpAddr)
	waitSOA(t, server, "gone.test.")
	base := "http://" + httpAddr
	series := []*regexp.Regexp{
		regexp.MustCompile(`(?m)^geodns_queries_total\{[^}]*zone="gone.test."`),
		regexp.MustCompile(`(?m)^geodns_answers_total\{service="svcgone"`),
		regexp.MustCompile(`(?m)^geodns_check_duration_seconds_count\{check="hcgone"\}`),
		regexp.MustCompile(`(?m)^geodns_health_transitions_total\{check="hcgone"`),
	}
	c := &dns.Client{Timeout: time.Second}
	require.Eventually(t, func() bool {
		c.Exchange(question("www.gone.test.", dns.TypeA), server)
		_, metrics := call(t, "GET", base+"/metrics", "")
		for _, re := range series {
			if !re.MatchString(metrics) {
				return false
			}
		}
		return true
	}, 10*time.Second, 50*time.Millisecond, "the zone's series are there")

	require.NoError(t, os.Remove(gone))
	v, _ := servers.Load(server)
	require.NoError(t, v.(*process).cmd.Process.Signal(syscall.SIGHUP))
	require.Eventually(t, func() bool {
		_, metrics := call(t, "GET", base+"/metrics", "")
		for _, re := range series {
			if re.MatchString(metrics) {
				return false
			}
		}
		return true
	}, 10*time.Second, 50*time.Millisecond, "the removed zone's series are gone")
}
