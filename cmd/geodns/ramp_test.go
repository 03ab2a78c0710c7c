package main

import (
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/geodns/geodns/api"
	"github.com/miekg/dns"
	"github.com/stretchr/testify/require"
)

// eastSide returns the east clients: /24s of east-coast networks (AWS in
// Ashburn, Verizon in New York) that DB-IP places nearer us-east.
func eastSide(t *testing.T, c *dns.Client, server string) []string {
	t.Helper()
	var cands []string
	for _, pre := range []string{"3.80", "54.80", "96.224"} {
		for x := range 100 {
			cands = append(cands, fmt.Sprintf("%s.%d.0/24", pre, x))
		}
	}
	got, _ := answers(t, c, server, cands)
	var out []string
	for i, a := range got {
		if a == eastAddr {
			out = append(out, cands[i])
		}
	}
	require.GreaterOrEqual(t, len(out), 150, "east clients among %d candidates", len(cands))
	return out
}

func shareOf(got []string, addr string) float64 {
	n := 0
	for _, a := range got {
		if a == addr {
			n++
		}
	}
	return float64(n) / float64(len(got))
}

// TestReturnRampAndDials: dials through the API move a share of a site's
// clients and persist; a site whose process was killed and restarted wins
// its clients back step by step over return_ramp, never losing one it won.
func TestReturnRampAndDials(t *testing.T) {
	files := realDB(t)
	east := startBackend(t, freeLoopback(t, "127.0.0.2"))
	west := startBackend(t, freeLoopback(t, "127.0.0.3"))
	zdir, state := t.TempDir(), t.TempDir()
	const ramp = 10 * time.Second
	zone := strings.Replace(chaosZone(east.addr, west.addr), "return_ramp: 0s", "return_ramp: 10s", 1)
	require.NoError(t, os.WriteFile(filepath.Join(zdir, "example.com.yaml"), []byte(zone), 0o644))
	httpAddr := freeLoopback(t, "127.0.0.1")
	args := []string{"--geoip", files[0], "--geoip", files[1], "--state-dir", state, "--http", httpAddr,
		"--api-token-file", tokenFile(t, testToken)}
	server, _ := startGeodns(t, zdir, "example.com.", args...)
	base := "http://" + httpAddr
	c := &dns.Client{Timeout: time.Second}
	require.Eventually(t, func() bool { code, _ := call(t, "GET", base+"/readyz", ""); return code == 200 }, 5*time.Second, 50*time.Millisecond)
	clients := eastSide(t, c, server)

	// Dials: the API checks its input, and a dial of 75 % moves about a
	// quarter of east's clients (the simulation pins 25 % ± 2 % on 42,000).
	dialURL := base + "/api/v1/services/web/sites/us-east/dial"
	code, body := call(t, "POST", dialURL, "")
	require.Equal(t, http.StatusUnauthorized, code, body)
	code, body = callJSON(t, "POST", dialURL, testToken, `{"dial_percent": 101}`)
	require.Equal(t, http.StatusBadRequest, code, body)
	code, body = callJSON(t, "POST", base+"/api/v1/services/web/sites/mars/dial", testToken, `{"dial_percent": 50}`)
	require.Equal(t, http.StatusNotFound, code, body)
	code, body = callJSON(t, "POST", dialURL, testToken, `{"weight": 75}`)
	require.Equal(t, http.StatusOK, code, body)
	got, ttl := answers(t, c, server, clients)
	moved := 1 - shareOf(got, eastAddr)
	t.Logf("dial us-east 75%%: %.1f%% of %d east clients moved west (TTL %d)", 100*moved, len(clients), ttl)
	require.InDelta(t, 0.25, moved, 0.1)
	require.Equal(t, uint32(30), ttl, "a steady dial keeps the full TTL")
	code, body = call(t, "GET", base+"/api/v1/status", "")
	require.Equal(t, 200, code)
	var st api.Status
	require.NoError(t, json.Unmarshal([]byte(body), &st))
	require.Equal(t, 75.0, st.Services[0].Sites[0].Dial)
	require.Equal(t, 75.0, *st.Overrides.Dials[0].Dial)

	// The dial persists across a restart, with the same clients moved.
	stopGeodns(t, server)
	server, _ = startGeodns(t, zdir, "example.com.", args...)
	again, _ := answers(t, c, server, clients)
	require.Equal(t, got, again, "the same clients are dialed away after a restart")
	rc, out, errOut := runGeodns(t, "explain", "--api", base, "--client", clients[0], "www.example.com")
	require.Zero(t, rc, errOut)
	require.Contains(t, out, "traffic   us-east      keeps 75.0% (dial 75.0%, ramp 100.0%); client bucket")
	t.Logf("geodns explain --api:\n%s", out)
	code, body = callJSON(t, "DELETE", dialURL, testToken, "")
	require.Equal(t, http.StatusOK, code, body)
	got, _ = answers(t, c, server, clients)
	require.True(t, all(got, eastAddr), "dial cleared: %v", got)

	// East dies, everyone goes west; east comes back and ramps.
	time.Sleep(1500 * time.Millisecond) // every probe has run since the restart
	east.kill()
	require.Eventually(t, func() bool { got, _ := answers(t, c, server, clients); return all(got, westAddr) }, 5*time.Second, 50*time.Millisecond)
	east.start()
	start := time.Now()
	var curve []string
	prev, first := 0.0, time.Duration(0)
	onEast := map[string]bool{}
	for {
		got, ttl := answers(t, c, server, clients)
		share := shareOf(got, eastAddr)
		el := time.Since(start)
		if share > 0 && first == 0 {
			first = el
		}
		curve = append(curve, fmt.Sprintf("%5.1fs %5.1f%% (TTL %d)", el.Seconds(), 100*share, ttl))
		require.GreaterOrEqual(t, share, prev, "the share answered east never falls: %v", curve)
		for i, a := range got {
			require.False(t, onEast[clients[i]] && a != eastAddr, "%s went back west during the ramp", clients[i])
			onEast[clients[i]] = a == eastAddr
		}
		prev = share
		if share == 1 {
			break
		}
		require.Less(t, el, ramp+10*time.Second, "the ramp did not finish: %v", curve)
		time.Sleep(500 * time.Millisecond)
	}
	full := time.Since(start)
	t.Logf("east restarted; share of its %d clients answered east:\n%s", len(clients), strings.Join(curve, "\n"))
	t.Logf("first client back after %.1f s (rise 3 x 1 s), all back after %.1f s (ramp %v)", first.Seconds(), full.Seconds(), ramp)
	require.Greater(t, len(curve), 12, "the curve has intermediate points")
	require.GreaterOrEqual(t, full-first, ramp*8/10, "the return is spread over the ramp")
}

// TestRampReturnsEarlyExplain is issue 18's ramp question end to end, with
// the admin API and `explain --api`: us-east is undrained and ramps
// (return_ramp 60 s); us-west, where its clients wait, is drained right
// after. The east clients not yet won back return to us-east at once
// rather than go to Europe, and explain says why.
func TestRampReturnsEarlyExplain(t *testing.T) {
	files := realDB(t)
	zdir, state := t.TempDir(), t.TempDir()
	zone := fmt.Sprintf(`soa: {ns: ns1.example.com., mbox: hostmaster.example.com.}
records:
  "@": {NS: [ns1.example.com.]}
  www: {service: web}
sites:
  us-east: {lat: 39.04, lon: -77.49}
  us-west: {lat: 37.34, lon: -121.89}
  eu:      {lat: 50.11, lon: 8.68}
services:
  web:
    ttl: 30
    endpoints:
      - {site: us-east, address: %s}
      - {site: us-west, address: %s}
      - {site: eu, address: 203.0.113.10}
`, eastAddr, westAddr)
	require.NoError(t, os.WriteFile(filepath.Join(zdir, "example.com.yaml"), []byte(zone), 0o644))
	httpAddr := freeLoopback(t, "127.0.0.1")
	server, _ := startGeodns(t, zdir, "example.com.", "--geoip", files[0], "--geoip", files[1], "--state-dir", state,
		"--http", httpAddr, "--api-token-file", tokenFile(t, testToken))
	base := "http://" + httpAddr
	c := &dns.Client{Timeout: time.Second}
	require.Eventually(t, func() bool { code, _ := call(t, "GET", base+"/readyz", ""); return code == 200 }, 5*time.Second, 50*time.Millisecond)
	clients := eastSide(t, c, server)
	site := func(name, action string) {
		code, body := call(t, "POST", base+"/api/v1/sites/"+name+"/"+action, testToken)
		require.Equal(t, http.StatusOK, code, body)
	}

	site("us-east", "drain")
	require.Eventually(t, func() bool { got, _ := answers(t, c, server, clients); return all(got, westAddr) }, 5*time.Second, 50*time.Millisecond)
	site("us-east", "undrain") // the ramp starts: at 0 % for its first 3 s, every client still waits west
	var held string
	require.Eventually(t, func() bool {
		_, held, _ = runGeodns(t, "explain", "--api", base, "--client", clients[0], "www.example.com")
		return strings.Contains(held, "ramping   held back by us-east: to us-west, 3846 km farther (within 5000 km)")
	}, 2*time.Second, 20*time.Millisecond, "held back to us-west while it is up: %s", held)
	t.Logf("geodns explain --api, us-west up:\n%s", held)
	site("us-west", "drain")
	require.Eventually(t, func() bool { got, _ := answers(t, c, server, clients); return all(got, eastAddr) }, 5*time.Second, 50*time.Millisecond,
		"us-east is up and nearest: nobody waits in Europe")
	rc, out, errOut := runGeodns(t, "explain", "--api", base, "--client", clients[0], "www.example.com")
	require.Zero(t, rc, errOut)
	t.Logf("geodns explain --api:\n%s", out)
	require.Contains(t, out, "ramping   returned early to us-east: the next site eu is ")
	require.Contains(t, out, "chosen    [us-east] -> ["+eastAddr+"]")
}
