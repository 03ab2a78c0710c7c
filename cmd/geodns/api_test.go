package main

import (
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/geodns/geodns/api"
	"github.com/miekg/dns"
	"github.com/stretchr/testify/require"
)

const testToken = "s3cret-drill-token"

func tokenFile(t *testing.T, token string) string {
	t.Helper()
	f := filepath.Join(t.TempDir(), "token")
	require.NoError(t, os.WriteFile(f, []byte(token+"\n"), 0o600))
	return f
}

func call(t *testing.T, method, url, token string) (int, string) {
	t.Helper()
	return callJSON(t, method, url, token, "")
}

// callJSON is call with a JSON body ("" for none).
func callJSON(t *testing.T, method, url, token, body string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	require.NoError(t, err)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	out, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(out)
}

func okBackend(w http.ResponseWriter, r *http.Request) { fmt.Fprint(w, "ok") }

// TestAPI: tokens, a drain through the API that moves DNS answers and
// survives a restart, and a metrics scrape that promtool accepts.
func TestAPI(t *testing.T) {
	files := realDB(t)
	east := serveOn(t, "127.0.0.2", http.HandlerFunc(okBackend))
	west := serveOn(t, "127.0.0.3", http.HandlerFunc(okBackend))
	zdir, state := t.TempDir(), t.TempDir()
	zoneFile := filepath.Join(zdir, "example.com.yaml")
	require.NoError(t, os.WriteFile(zoneFile, []byte(chaosZone(east, west)), 0o644))
	httpAddr := freeLoopback(t, "127.0.0.1")
	args := []string{"--geoip", files[0], "--geoip", files[1], "--state-dir", state, "--http", httpAddr,
		"--api-token-file", tokenFile(t, testToken)}
	server, _ := startGeodns(t, zdir, "example.com.", args...)
	base := "http://" + httpAddr
	c := &dns.Client{Timeout: time.Second}
	require.Eventually(t, func() bool { code, _ := call(t, "GET", base+"/readyz", ""); return code == 200 }, 5*time.Second, 50*time.Millisecond)
	got, _ := answers(t, c, server, eastClients)
	require.True(t, all(got, eastAddr))

	// Write calls: no token 401, wrong token 403, right token 200.
	code, body := call(t, "POST", base+"/api/v1/sites/us-east/drain", "")
	require.Equal(t, http.StatusUnauthorized, code, body)
	code, body = call(t, "POST", base+"/api/v1/sites/us-east/drain", "wrong")
	require.Equal(t, http.StatusForbidden, code, body)
	code, body = call(t, "POST", base+"/api/v1/sites/nowhere/drain", testToken)
	require.Equal(t, http.StatusNotFound, code, body)
	code, body = call(t, "POST", base+"/api/v1/sites/us-east/drain", testToken)
	require.Equal(t, http.StatusOK, code, body)

	// The drain moves east clients west at once, with the degraded TTL.
	got, ttl := answers(t, c, server, eastClients)
	require.True(t, all(got, westAddr), "drained: %v", got)
	require.Equal(t, uint32(5), ttl)
	code, body = call(t, "GET", base+"/api/v1/status", "")
	require.Equal(t, 200, code)
	var st api.Status
	require.NoError(t, json.Unmarshal([]byte(body), &st))
	require.Equal(t, []string{server}, st.DNS)
	require.Len(t, st.Services, 1)
	require.Equal(t, "drain", st.Services[0].Sites[0].Override.Override)
	require.Equal(t, api.StateDrained, st.Services[0].Sites[0].State)
	require.False(t, st.Services[0].Sites[0].Up)
	require.True(t, st.Services[0].Sites[1].Up)
	require.Equal(t, "HTTP 200", st.Services[0].Sites[1].Endpoints[0].Last)

	// A reload, for the metrics: a new TTL in the zone.
	require.NoError(t, os.WriteFile(zoneFile, []byte(strings.Replace(chaosZone(east, west), "ttl: 30", "ttl: 31", 1)), 0o644))
	require.Eventually(t, func() bool { _, ttl := answers(t, c, server, []string{"128.32.0.0/24"}); return ttl == 31 }, 5*time.Second, 20*time.Millisecond)

	// Explain over HTTP.
	code, body = call(t, "GET", base+"/api/v1/explain?name=www.example.com&client=96.224.0.0/24", "")
	require.Equal(t, 200, code, body)
	var e api.Explanation
	require.NoError(t, json.Unmarshal([]byte(body), &e))
	require.Equal(t, []string{"us-west"}, e.Services[0].Chosen, "east is drained")
	require.Equal(t, []string{"us-east"}, e.Services[0].Down)
	code, _ = call(t, "GET", base+"/api/v1/explain?name=www.example.com", "")
	require.Equal(t, http.StatusBadRequest, code)

	// The scrape, after queries, a reload and a failover, passes promtool.
	code, metrics := call(t, "GET", base+"/metrics", "")
	require.Equal(t, 200, code)
	for _, want := range []string{
		`geodns_queries_total{qtype="A",rcode="NOERROR",zone="example.com."}`,
		`geodns_answers_total{service="web",site="us-west"}`,
		`geodns_zone_reloads_total{result="ok",zone="example.com."} 2`,
		`geodns_zone_serial{zone="example.com."}`,
		`geodns_check_up{check="web",endpoint="` + west + `",site="us-west"} 1`,
		`geodns_site_up{family="ipv4",service="web",site="us-east",zone="example.com."} 0`,
		`geodns_check_duration_seconds_bucket`,
		`geodns_build_info{`,
	} {
		require.Contains(t, metrics, want)
	}
	promtool(t, metrics)

	// The drain survives a restart.
	stopGeodns(t, server)
	server, _ = startGeodns(t, zdir, "example.com.", args...)
	got, _ = answers(t, c, server, eastClients)
	require.True(t, all(got, westAddr), "the drain must survive a restart: %v", got)
	code, body = call(t, "POST", base+"/api/v1/sites/us-east/undrain", testToken)
	require.Equal(t, http.StatusOK, code, body)
	got, _ = answers(t, c, server, eastClients)
	require.True(t, all(got, eastAddr), "undrained: %v", got)
}

// promtool runs `promtool check metrics` on a scrape.
func promtool(t *testing.T, scrape string) {
	t.Helper()
	bin, err := exec.LookPath("promtool")
	if err != nil {
		t.Fatal("promtool is not installed: run scripts/test-deps.sh (make test does)")
	}
	cmd := exec.Command(bin, "check", "metrics")
	cmd.Stdin = strings.NewReader(scrape)
	out, err := cmd.CombinedOutput()
	require.NoError(t, err, "promtool check metrics:\n%s", out)
	t.Logf("promtool check metrics: exit 0 on a %d-line scrape %s", strings.Count(scrape, "\n"), strings.TrimSpace(string(out)))
}

// TestReadyAndTokens: not ready before the first health round; no token
// configured means write calls are refused.
func TestReadyAndTokens(t *testing.T) {
	// East never answers: its first result is a timeout after 2 s.
	hung, err := net.Listen("tcp", "127.0.0.2:0")
	require.NoError(t, err)
	defer hung.Close()
	go func() {
		for {
			c, err := hung.Accept()
			if err != nil {
				return
			}
			go func() { io.Copy(io.Discard, c); c.Close() }()
		}
	}()
	west := serveOn(t, "127.0.0.3", http.HandlerFunc(okBackend))
	zone := strings.Replace(chaosZone(hung.Addr().String(), west), "expect_body: ok}", "expect_body: ok, interval: 5s, timeout: 2s}", 1)
	zdir := t.TempDir()
	require.NoError(t, os.WriteFile(filepath.Join(zdir, "example.com.yaml"), []byte(zone), 0o644))
	httpAddr := freeLoopback(t, "127.0.0.1")
	start := time.Now()
	startGeodns(t, zdir, "example.com.", "--http", httpAddr)
	base := "http://" + httpAddr
	code, body := call(t, "GET", base+"/readyz", "")
	require.Equal(t, http.StatusServiceUnavailable, code, "ready %v after start, before the first round: %s", time.Since(start), body)
	require.Contains(t, body, "first round of health checks")
	require.Eventually(t, func() bool { code, _ := call(t, "GET", base+"/readyz", ""); return code == 200 }, 10*time.Second, 50*time.Millisecond)
	code, _ = call(t, "GET", base+"/healthz", "")
	require.Equal(t, 200, code)

	code, body = call(t, "POST", base+"/api/v1/sites/us-east/drain", "anything")
	require.Equal(t, http.StatusForbidden, code)
	require.Contains(t, body, "no API token is configured")
}
