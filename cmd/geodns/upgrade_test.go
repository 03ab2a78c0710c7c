package main

import (
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/miekg/dns"
	"github.com/stretchr/testify/require"
)

// TestUpgradeKeepsDrains: a state directory of an older version, whose
// health.json held the drains beside probe states, still drains after the
// upgrade (the operator state moves to operator.json, health.json keeps
// probe states only), and after the next restart too.
func TestUpgradeKeepsDrains(t *testing.T) {
	files := realDB(t)
	east := serveOn(t, "127.0.0.2", http.HandlerFunc(okBackend))
	west := serveOn(t, "127.0.0.3", http.HandlerFunc(okBackend))
	zdir, state := t.TempDir(), t.TempDir()
	require.NoError(t, os.WriteFile(filepath.Join(zdir, "example.com.yaml"), []byte(chaosZone(east, west)), 0o644))
	old := `{"version": 1, "probes": {}, "site_overrides": {"us-east": "drain"}, "endpoint_overrides": {},
 "dials": [{"service": "web", "site": "us-west", "weight": 1}]}`
	require.NoError(t, os.WriteFile(filepath.Join(state, "health.json"), []byte(old), 0o644))
	args := []string{"--geoip", files[0], "--geoip", files[1], "--state-dir", state}
	c := &dns.Client{Timeout: time.Second}

	server, _ := startGeodns(t, zdir, "example.com.", args...)
	got, _ := answers(t, c, server, eastClients)
	require.True(t, all(got, westAddr), "the old file's drain holds after the upgrade: %v", got)
	require.Eventually(t, func() bool { // health rewrites its file with probe states only
		data, err := os.ReadFile(filepath.Join(state, "health.json"))
		var st map[string]any
		return err == nil && json.Unmarshal(data, &st) == nil && st["site_overrides"] == nil && st["probes"] != nil
	}, 5*time.Second, 20*time.Millisecond)
	data, err := os.ReadFile(filepath.Join(state, "operator.json"))
	require.NoError(t, err)
	require.Contains(t, string(data), `"us-east": "drain"`)
	stopGeodns(t, server)

	server, _ = startGeodns(t, zdir, "example.com.", args...)
	got, _ = answers(t, c, server, eastClients)
	require.True(t, all(got, westAddr), "still drained after the next restart: %v", got)
}
