package main

import (
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/miekg/dns"
	"github.com/stretchr/testify/require"
)

// serveBackend runs a site's web server: /healthz answers "ok".
func serveBackend(addr string) {
	http.HandleFunc("/healthz", func(w http.ResponseWriter, r *http.Request) { fmt.Fprint(w, "ok") })
	if err := http.ListenAndServe(addr, nil); err != nil {
		fmt.Fprintln(os.Stderr, "backend:", err)
		os.Exit(1)
	}
}

// backend is a site's web server in its own process, so it can be killed.
type backend struct {
	t    *testing.T
	addr string
	cmd  *exec.Cmd
}

func startBackend(t *testing.T, addr string) *backend {
	t.Helper()
	b := &backend{t: t, addr: addr}
	b.start()
	t.Cleanup(func() { b.kill() })
	return b
}

func (b *backend) start() {
	b.t.Helper()
	b.cmd = exec.Command(os.Args[0])
	b.cmd.Env = append(os.Environ(), "GEODNS_TEST_BACKEND="+b.addr)
	b.cmd.Stderr = os.Stderr // why it did not start, if it did not
	require.NoError(b.t, b.cmd.Start())
	require.Eventually(b.t, func() bool {
		c, err := net.DialTimeout("tcp", b.addr, 100*time.Millisecond)
		if err == nil {
			c.Close()
		}
		return err == nil
	}, 10*time.Second, 20*time.Millisecond, "backend %s did not start", b.addr)
}

// kill sends SIGKILL to the backend's PID: the datacenter dies.
func (b *backend) kill() {
	if b.cmd != nil && b.cmd.Process != nil {
		b.cmd.Process.Signal(syscall.SIGKILL)
		b.cmd.Wait()
		b.cmd = nil
	}
}

const (
	eastAddr = "192.0.2.10"
	westAddr = "198.51.100.10"
)

// chaosZone is the example's two sites, probed at the given backends with
// the default check settings (interval 1s, timeout 800ms, rise 3, fall 2).
func chaosZone(east, west string) string {
	return fmt.Sprintf(`soa: {ns: ns1.example.com., mbox: hostmaster.example.com.}
records:
  "@": {NS: [ns1.example.com.]}
  www: {service: web}
sites:
  us-east: {lat: 39.04, lon: -77.49}
  us-west: {lat: 37.34, lon: -121.89}
checks:
  web: {type: http, port: 8080, path: /healthz, expect_body: ok}
services:
  web:
    ttl: 30
    return_ramp: 0s   # back at once: the ramp has its own test
    endpoints:
      - {site: us-east, address: %s, check: web, target: %q}
      - {site: us-west, address: %s, check: web, target: %q}
`, eastAddr, east, westAddr, west)
}

// eastClients are real east-coast networks (DB-IP): Ashburn, New York,
// Princeton, Hanover, Cambridge MA.
var eastClients = []string{"3.80.0.0/24", "96.224.0.0/24", "128.112.0.0/24", "129.170.0.0/24", "128.103.0.0/24"}

// answers asks www.example.com A for every client and returns the address
// each got and the smallest TTL seen.
func answers(t *testing.T, c *dns.Client, server string, clients []string) ([]string, uint32) {
	t.Helper()
	var out []string
	minTTL := uint32(1 << 31)
	for _, p := range clients {
		q := question("www.example.com.", dns.TypeA)
		q.SetEdns0(1232, false)
		ip, ipnet, _ := net.ParseCIDR(p)
		bits, _ := ipnet.Mask.Size()
		q.IsEdns0().Option = append(q.IsEdns0().Option, &dns.EDNS0_SUBNET{Code: dns.EDNS0SUBNET, Family: 1, SourceNetmask: uint8(bits), Address: ip.To4()})
		r, _, err := c.Exchange(q, server)
		if err != nil || len(r.Answer) == 0 {
			out = append(out, "error")
			continue
		}
		a := r.Answer[0].(*dns.A)
		out = append(out, a.A.String())
		minTTL = min(minTTL, a.Hdr.Ttl)
	}
	return out, minTTL
}

// untilAll asks for the east clients' answers every 20 ms until all of
// them get want (at most 10 s) and returns how long that took. Every
// sample goes to check first; done says whether it is the last one.
func untilAll(t *testing.T, c *dns.Client, server, want string, check func(got []string, ttl uint32, done bool)) time.Duration {
	t.Helper()
	start := time.Now()
	for {
		got, ttl := answers(t, c, server, eastClients)
		done := all(got, want)
		check(got, ttl, done)
		if done {
			return time.Since(start)
		}
		require.Less(t, time.Since(start), 10*time.Second, "east clients never all got %s: %v", want, got)
		time.Sleep(20 * time.Millisecond)
	}
}

func all(xs []string, v string) bool {
	for _, x := range xs {
		if x != v {
			return false
		}
	}
	return true
}

func none(xs []string, v string) bool {
	for _, x := range xs {
		if x == v {
			return false
		}
	}
	return true
}

// TestChaosFailover kills the east site's process and measures how long
// east clients take to be answered west; restarts geodns while east is
// down (the state must hold from the first query); then brings east back.
func TestChaosFailover(t *testing.T) {
	files := realDB(t)
	east := startBackend(t, freeLoopback(t, "127.0.0.2"))
	west := startBackend(t, freeLoopback(t, "127.0.0.3"))
	zdir, state := t.TempDir(), t.TempDir()
	require.NoError(t, os.WriteFile(filepath.Join(zdir, "example.com.yaml"), []byte(chaosZone(east.addr, west.addr)), 0o644))
	args := []string{"--geoip", files[0], "--geoip", files[1], "--state-dir", state}
	server, _ := startGeodns(t, zdir, "example.com.", args...)
	c := &dns.Client{Timeout: time.Second}

	// Healthy: east clients get east, with the full TTL.
	require.Eventually(t, func() bool {
		got, ttl := answers(t, c, server, eastClients)
		return all(got, eastAddr) && ttl == 30
	}, 5*time.Second, 50*time.Millisecond)
	time.Sleep(1500 * time.Millisecond) // every probe has run

	// The east datacenter dies.
	east.kill()
	moved := untilAll(t, c, server, westAddr, func(got []string, ttl uint32, done bool) {
		if done {
			require.LessOrEqual(t, ttl, uint32(5), "failover answers carry the degraded TTL")
		}
	})
	t.Logf("east killed (SIGKILL): every east client answered west after %.2f s", moved.Seconds())
	require.LessOrEqual(t, moved, 3*time.Second)
	for end := time.Now().Add(2 * time.Second); time.Now().Before(end); time.Sleep(50 * time.Millisecond) {
		got, _ := answers(t, c, server, eastClients)
		require.True(t, none(got, eastAddr), "an answer pointed east after the failover: %v", got)
	}

	// Restart geodns while east is down: the persisted state answers the
	// very first queries, long before two failed probes could (>= 1.6 s).
	require.Eventually(t, func() bool {
		data, err := os.ReadFile(filepath.Join(state, "health.json"))
		var st struct {
			Probes map[string]struct{ Up bool } `json:"probes"`
		}
		if err != nil || json.Unmarshal(data, &st) != nil {
			return false
		}
		for k, p := range st.Probes {
			if strings.HasPrefix(k, east.addr+"|") {
				return !p.Up
			}
		}
		return false
	}, 2*time.Second, 10*time.Millisecond, "east's down state was not persisted")
	stopGeodns(t, server)
	restarted := time.Now()
	server2, _ := startGeodns(t, zdir, "example.com.", args...)
	ready := time.Since(restarted)
	for end := time.Now().Add(500 * time.Millisecond); time.Now().Before(end); time.Sleep(20 * time.Millisecond) {
		got, _ := answers(t, c, server2, eastClients)
		require.True(t, all(got, westAddr), "after a restart, east must be down from the first query: %v", got)
	}
	t.Logf("geodns restarted (SIGKILL) while east was down: first answers %.2f s after start all west", ready.Seconds())

	// East comes back: clients return after rise (3) successful probes.
	east.start()
	straddled := false // a sample's five queries may straddle the one state change, not two samples
	returned := untilAll(t, c, server2, eastAddr, func(got []string, _ uint32, done bool) {
		if !done && !none(got, eastAddr) {
			require.False(t, straddled, "clients return together: %v", got)
			straddled = true
		}
	})
	t.Logf("east restarted: east clients back after %.2f s (rise 3 x interval 1 s)", returned.Seconds())
	require.GreaterOrEqual(t, returned, 1900*time.Millisecond, "not before rise successes")
	require.LessOrEqual(t, returned, 4500*time.Millisecond)
}
