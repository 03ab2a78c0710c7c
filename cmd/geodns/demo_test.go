package main

import (
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// TestDemoDrill runs the demo (scripts/demo.sh, what make run starts) and a
// fire drill against it, then stops the demo and checks nothing is left.
func TestDemoDrill(t *testing.T) {
	realDB(t)
	dir := t.TempDir()
	backend := filepath.Join(dir, "demo-backend")
	build := exec.Command("go", "build", "-o", backend, "../../examples/backend")
	out, err := build.CombinedOutput()
	require.NoError(t, err, "%s", out)

	dnsAddr, httpAddr := freeAddr(t), freeLoopback(t, "127.0.0.1")
	demo := exec.Command("scripts/demo.sh")
	demo.Dir = "../.."
	demo.Env = append(os.Environ(), "GEODNS_BIN="+binary, "BACKEND_BIN="+backend, "DEMO_DNS="+dnsAddr,
		"DEMO_HTTP="+httpAddr, "DEMO_STATE="+filepath.Join(dir, "state"), "DEMO_LOGS="+dir, "GEODNS_API_TOKEN="+testToken)
	log := new(logBuffer)
	demo.Stdout, demo.Stderr = log, log
	// Its own process group: if the test fails half way, killing the group
	// ends the servers too (they hold the output pipe Wait waits for).
	demo.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	require.NoError(t, demo.Start())
	done := make(chan struct{})
	go func() { demo.Wait(); close(done) }()
	defer func() {
		syscall.Kill(-demo.Process.Pid, syscall.SIGKILL)
		<-done
	}()
	require.Eventually(t, func() bool { return regexp.MustCompile(`Ctrl-C stops the demo`).MatchString(log.String()) },
		60*time.Second, 100*time.Millisecond, "demo did not start:\n%s", log.String())

	// Ready is every check having run once; a backend slow to start (a
	// busy machine) can be down then: the drill wants both sites up.
	require.Eventually(t, func() bool {
		_, body := call(t, "GET", "http://"+httpAddr+"/api/v1/status", "")
		return strings.Count(body, `"state": "up"`) >= 2+4 // two sites, four endpoints
	}, 30*time.Second, 100*time.Millisecond, "both demo sites up:\n%s", log.String())
	code, stdout, stderr := runGeodns(t, "drill", "--api", "http://"+httpAddr, "--site", "us-east", "--duration", "2s", "--token", testToken)
	t.Logf("geodns drill against the demo (exit %d):\n%s%s", code, stdout, stderr)
	require.Equal(t, 0, code)
	m := regexp.MustCompile(`drill passed: move ([0-9.]+) s, return ([0-9.]+) s`).FindStringSubmatch(stdout)
	require.NotNil(t, m)
	move, _ := strconv.ParseFloat(m[1], 64)
	back, _ := strconv.ParseFloat(m[2], 64)
	require.LessOrEqual(t, move, 3.0)
	require.LessOrEqual(t, back, 3.0+10, "3 s and the example's return_ramp of 10 s")
	require.GreaterOrEqual(t, back, 8.0, "the return is ramped, not at once")

	// Ctrl-C (SIGINT to the script) stops everything it started.
	require.NoError(t, demo.Process.Signal(syscall.SIGINT))
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("the demo did not stop on SIGINT")
	}
	require.Contains(t, log.String(), "demo stopped")
	for _, addr := range []string{"127.0.0.2:8080", "127.0.0.3:8080", httpAddr} {
		c, err := net.DialTimeout("tcp", addr, 200*time.Millisecond)
		if err == nil {
			c.Close()
		}
		require.Error(t, err, "%s still listening after the demo stopped", addr)
	}
}
