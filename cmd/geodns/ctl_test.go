package main

import (
	"bytes"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/miekg/dns"
	"github.com/stretchr/testify/require"
)

// runWithEnv runs the real binary with env added to the environment,
// without any GEODNS_API_TOKEN the test runner has.
func runWithEnv(t *testing.T, env []string, args ...string) (int, string, string) {
	t.Helper()
	var stdout, stderr bytes.Buffer
	cmd := exec.Command(binary, args...)
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "GEODNS_API") {
			cmd.Env = append(cmd.Env, kv)
		}
	}
	cmd.Env = append(cmd.Env, env...)
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	if ee, ok := err.(*exec.ExitError); ok {
		return ee.ExitCode(), stdout.String(), stderr.String()
	}
	require.NoError(t, err)
	return 0, stdout.String(), stderr.String()
}

// TestCtl runs `geodns ctl` against a live server: the status tables with
// each site's and endpoint's state and reason, drains with a reason, a
// dial, explain, and every error an operator can make answered in words.
func TestCtl(t *testing.T) {
	files := realDB(t)
	var westFails atomic.Bool
	east := serveOn(t, "127.0.0.2", http.HandlerFunc(okBackend))
	west := serveOn(t, "127.0.0.3", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if westFails.Load() {
			http.Error(w, "maintenance", http.StatusServiceUnavailable)
			return
		}
		okBackend(w, r)
	}))
	zdir := t.TempDir()
	require.NoError(t, os.WriteFile(filepath.Join(zdir, "example.com.yaml"), []byte(chaosZone(east, west)), 0o644))
	httpAddr := freeLoopback(t, "127.0.0.1")
	server, _ := startGeodns(t, zdir, "example.com.", "--geoip", files[0], "--geoip", files[1], "--state-dir", t.TempDir(),
		"--http", httpAddr, "--api-token-file", tokenFile(t, testToken))
	base := "http://" + httpAddr
	require.Eventually(t, func() bool { code, _ := call(t, "GET", base+"/readyz", ""); return code == 200 }, 5*time.Second, 50*time.Millisecond)
	withToken := []string{"GEODNS_API_TOKEN=" + testToken}
	ctl := func(env []string, args ...string) (int, string, string) {
		t.Helper()
		return runWithEnv(t, env, append([]string{"ctl", "--api", base}, args...)...)
	}

	// A check that fails says how.
	westFails.Store(true)
	var out string
	require.Eventually(t, func() bool {
		_, out, _ = ctl(nil, "status")
		return strings.Contains(out, "check web failing: HTTP 503")
	}, 10*time.Second, 100*time.Millisecond, "status names the failing check's error:\n%s", out)
	require.Regexp(t, `web\s+us-west\s+down\s+0%\s+100%\s+100%\s+every endpoint is down: 198.51.100.10: check web failing: HTTP 503`, out)
	require.Regexp(t, `web\s+us-east\s+up\s+100%\s+100%\s+100%\s+every endpoint up`, out)
	t.Logf("geodns ctl status, west failing:\n%s", out)
	westFails.Store(false)
	require.Eventually(t, func() bool {
		_, out, _ = ctl(nil, "status")
		return !strings.Contains(out, "failing")
	}, 10*time.Second, 100*time.Millisecond, "west back up:\n%s", out)

	// A drain with a reason, through the token file; status says who and why.
	rc, out, errOut := ctl(nil, "drain", "us-east", "--reason", "kernel upgrade", "--token-file", tokenFile(t, testToken))
	require.Zero(t, rc, errOut)
	require.Regexp(t, `^site us-east: drained at \S+Z: kernel upgrade\n$`, out)
	c := &dns.Client{Timeout: time.Second}
	got, _ := answers(t, c, server, eastClients)
	require.True(t, all(got, westAddr), "drained: %v", got)
	rc, out, errOut = ctl(withToken, "dial", "web", "us-west", "80", "--reason", "canary")
	require.Zero(t, rc, errOut)
	require.Equal(t, "service web site us-west: keeps 80% of its clients\n", out)
	_, out, _ = ctl(nil, "status")
	require.Regexp(t, `web\s+us-east\s+drained\s+0%\s+100%\s+100%\s+drained by POST /api/v1/sites/us-east/drain from 127.0.0.1:\d+ at \S+: kernel upgrade`, out)
	require.Regexp(t, `web\s+us-east\s+192.0.2.10\s+drained\s+web 127.0.0.2:\d+\s+site us-east drained by`, out)
	require.Regexp(t, `site\s+us-east\s+drain\s+\S+Z\s+127.0.0.1:\d+\s+kernel upgrade`, out)
	require.Regexp(t, `web\s+us-west\s+80%\s+\S+Z\s+127.0.0.1:\d+\s+canary`, out)
	t.Logf("geodns ctl status, east drained, west dialed:\n%s", out)

	// Explain says why the near site is not chosen.
	rc, out, errOut = ctl(nil, "explain", "www.example.com", "--client", "128.112.0.0/24")
	require.Zero(t, rc, errOut)
	require.Contains(t, out, "site      us-east      drained: drained by POST /api/v1/sites/us-east/drain")
	require.Contains(t, out, "chosen    [us-west]")

	// Errors, each in words, each exit 1 with nothing changed.
	for _, tc := range []struct {
		name string
		env  []string
		args []string
		want string
	}{
		{"unknown site", withToken, []string{"undrain", "us-eats"}, `geodns ctl: no site "us-eats" in the served zones; did you mean "us-east"?` + "\n"},
		{"unknown endpoint", withToken, []string{"force-down", "--endpoint", "192.0.2.11"}, `geodns ctl: no endpoint "192.0.2.11" in the served zones; did you mean "192.0.2.10"?` + "\n"},
		{"unknown service", withToken, []string{"dial", "webb", "us-east", "50"}, `geodns ctl: no service "webb" in the served zones; did you mean "web"?` + "\n"},
		{"unknown site of a service", withToken, []string{"dial", "web", "us-wset", "50"}, `geodns ctl: service "web" has no site "us-wset"; did you mean "us-west"?` + "\n"},
		{"no token", nil, []string{"undrain", "us-east"}, "geodns ctl: no API token: set GEODNS_API_TOKEN or give --token-file FILE (the server's --api-token-file)\n"},
		{"wrong token", []string{"GEODNS_API_TOKEN=wrong"}, []string{"undrain", "us-east"}, "geodns ctl: the API refused the call (403 Forbidden): wrong token\n"},
	} {
		rc, out, errOut := ctl(tc.env, tc.args...)
		require.Equal(t, 1, rc, "%s: %s%s", tc.name, out, errOut)
		require.Equal(t, tc.want, errOut, tc.name)
		require.Empty(t, out, tc.name)
		t.Logf("%s: geodns ctl %s\n  %s", tc.name, strings.Join(tc.args, " "), errOut)
	}
	_, out, _ = ctl(nil, "status")
	require.Regexp(t, `web\s+us-east\s+drained`, out, "the real drain is in place")

	down := freeLoopback(t, "127.0.0.1")
	rc, out, errOut = runWithEnv(t, nil, "ctl", "--api", "http://"+down, "status")
	require.Equal(t, 1, rc, out)
	require.Equal(t, fmt.Sprintf("geodns ctl: cannot reach the API at http://%s: connect: connection refused (is geodns serving there? see --api)\n", down), errOut)
	t.Logf("API down: %s", errOut)

	rc, out, errOut = ctl(withToken, "undrain", "us-east")
	require.Zero(t, rc, errOut)
	require.Equal(t, "site us-east: undrained, no override\n", out)
	rc, out, errOut = ctl(withToken, "dial", "web", "us-west", "clear")
	require.Zero(t, rc, errOut)
	require.Equal(t, "service web site us-west: dial cleared (the zone file's applies)\n", out)
	got, _ = answers(t, c, server, eastClients)
	require.True(t, all(got, eastAddr), "undrained: %v", got)
}

// TestDrillSiteDown: a drill of a site that is down says so (the README's
// tour drills us-east after killing it; it used to say "give --clients").
func TestDrillSiteDown(t *testing.T) {
	files := realDB(t)
	west := serveOn(t, "127.0.0.3", http.HandlerFunc(okBackend))
	zdir := t.TempDir()
	require.NoError(t, os.WriteFile(filepath.Join(zdir, "example.com.yaml"), []byte(chaosZone(freeLoopback(t, "127.0.0.2"), west)), 0o644))
	httpAddr := freeLoopback(t, "127.0.0.1")
	startGeodns(t, zdir, "example.com.", "--geoip", files[0], "--geoip", files[1], "--state-dir", t.TempDir(),
		"--http", httpAddr, "--api-token-file", tokenFile(t, testToken))
	base := "http://" + httpAddr
	require.Eventually(t, func() bool {
		_, body := call(t, "GET", base+"/api/v1/status", "")
		return strings.Contains(body, `"state": "down"`)
	}, 10*time.Second, 50*time.Millisecond, "east is down")
	rc, out, errOut := runWithEnv(t, []string{"GEODNS_API_TOKEN=" + testToken}, "drill", "--api", base, "--site", "us-east", "--duration", "1s")
	require.Equal(t, 1, rc, out)
	require.Regexp(t, `^geodns drill: us-east is down, so there is nothing to drill: every endpoint is down: 192.0.2.10: check web failing: connection refused \(down since \S+\)\n$`, errOut)
	rc, _, errOut = runWithEnv(t, []string{"GEODNS_API_TOKEN=" + testToken}, "drill", "--api", base, "--site", "us-eats", "--duration", "1s")
	require.Equal(t, 1, rc)
	require.Equal(t, "geodns drill: no service has a site \"us-eats\"; did you mean \"us-east\"?\n", errOut)
}

// TestDrillInterrupted: Ctrl-C during a drill's hold says the drill was
// interrupted and undrains the site. It said every nameserver LAGS
// ("context canceled") and that they lagged, exit 1.
func TestDrillInterrupted(t *testing.T) {
	files := realDB(t)
	east := serveOn(t, "127.0.0.2", http.HandlerFunc(okBackend))
	west := serveOn(t, "127.0.0.3", http.HandlerFunc(okBackend))
	zdir := t.TempDir()
	require.NoError(t, os.WriteFile(filepath.Join(zdir, "example.com.yaml"), []byte(chaosZone(east, west)), 0o644))
	httpAddr := freeLoopback(t, "127.0.0.1")
	startGeodns(t, zdir, "example.com.", "--geoip", files[0], "--geoip", files[1], "--state-dir", t.TempDir(),
		"--http", httpAddr, "--api-token-file", tokenFile(t, testToken))
	base := "http://" + httpAddr
	require.Eventually(t, func() bool {
		_, body := call(t, "GET", base+"/readyz", "")
		return strings.Contains(body, "ready")
	}, 10*time.Second, 50*time.Millisecond)

	var stdout, stderr logBuffer
	cmd := exec.Command(binary, "drill", "--api", base, "--site", "us-east", "--duration", "30s")
	cmd.Env = append(os.Environ(), "GEODNS_API_TOKEN="+testToken)
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	require.NoError(t, cmd.Start())
	require.Eventually(t, func() bool { return strings.Contains(stdout.String(), "drained us-east") }, 15*time.Second, 20*time.Millisecond, "%s%s", &stdout, &stderr)
	require.NoError(t, cmd.Process.Signal(os.Interrupt))
	err := cmd.Wait()
	var ee *exec.ExitError
	require.ErrorAs(t, err, &ee)
	require.Equal(t, 1, ee.ExitCode())
	require.Equal(t, "geodns drill: interrupted; site us-east is undrained\n", stderr.String())
	require.NotContains(t, stdout.String(), "LAGS")
	_, body := call(t, "GET", base+"/api/v1/status", "")
	require.NotContains(t, body, `"drained"`, "undrained on the way out")
}
