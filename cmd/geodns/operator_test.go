package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// TestOperatorMistakesFailFast: mistakes an operator makes at 3 a.m. get
// one clear error and an exit code, where before each one was silent or
// contradicted itself (each case failed before):
//   - `serve FILE` (forgetting --config) started on the defaults, and
//     dropped every flag after FILE;
//   - a missing zones directory logged "serving DNS", then exited 1;
//   - check said ok for a GeoIP file that does not open and an API token
//     file that is missing or empty (serve then ran without the database,
//     or without write calls);
//   - import of a missing file said "missing SOA" too;
//   - without state_dir, drains were lost at restart without a word.
func TestOperatorMistakesFailFast(t *testing.T) {
	dir := t.TempDir()
	zdir := filepath.Join(dir, "zones")
	require.NoError(t, os.Mkdir(zdir, 0o755))
	staticExample(t, zdir)

	code, _, errOut := runGeodns(t, "serve", filepath.Join(dir, "geodns.yaml"), "--zones", zdir, "--listen", "127.0.0.1:0", "--http", "off")
	require.Equal(t, 2, code)
	require.Contains(t, errOut, `unexpected argument "`)
	require.Contains(t, errOut, "--config FILE")

	code, _, errOut = runGeodns(t, "serve", "--zones", filepath.Join(dir, "nozones"), "--listen", "127.0.0.1:0", "--http", "off")
	require.Equal(t, 1, code)
	require.Contains(t, errOut, "zones directory")
	require.NotContains(t, errOut, "serving DNS")
	require.Contains(t, errOut, "state_dir is not set: drains, forces and dials", "drains would be lost at restart: said at start")

	empty := filepath.Join(dir, "empty-token")
	require.NoError(t, os.WriteFile(empty, []byte("\n"), 0o600))
	for name, c := range map[string]struct{ body, want string }{
		"geoip typo":    {"geoip: [" + filepath.Join(dir, "dbip-city-ipv4.mmbd") + "]\n", "geodns.yaml:1:9: geoip "},
		"token missing": {"api_token_file: " + filepath.Join(dir, "missing-token") + "\n", "geodns.yaml:1:17: api token file: open "},
		"token empty":   {"api_token_file: " + empty + "\n", "geodns.yaml:1:17: api token file " + empty + " is empty"},
	} {
		cfg := filepath.Join(dir, "geodns.yaml")
		require.NoError(t, os.WriteFile(cfg, []byte("zones: "+zdir+"\n"+c.body), 0o644))
		// The key is on line 2 here: the zones line comes first.
		want := strings.Replace(c.want, "geodns.yaml:1:", "geodns.yaml:2:", 1)
		code, out, errOut := runGeodns(t, "check", "--config", cfg)
		require.Equal(t, 1, code, "%s: %s%s", name, out, errOut)
		require.Contains(t, errOut, want, name)
	}
	code, _, errOut = runGeodns(t, "serve", "--zones", zdir, "--api-token-file", empty, "--listen", "127.0.0.1:0", "--http", "off")
	require.Equal(t, 2, code)
	require.Contains(t, errOut, "is empty: write calls would be disabled")

	// serve keeps running without a database it cannot open (the spec's
	// "without any database the server still runs"), and a metric says so.
	httpAddr := freeLoopback(t, "127.0.0.1")
	_, _ = startGeodns(t, zdir, "example.com.", "--geoip", filepath.Join(dir, "city.mmbd"), "--http", httpAddr)
	require.Eventually(t, func() bool {
		code, metrics := call(t, "GET", "http://"+httpAddr+"/metrics", "")
		return code == 200 && strings.Contains(metrics, `geodns_geoip_load_failing{file="`+filepath.Join(dir, "city.mmbd")+`"} 1`)
	}, 5*time.Second, 20*time.Millisecond)

	code, _, errOut = runGeodns(t, "import", "--origin", "example.org.", filepath.Join(dir, "nonexist.zone"))
	require.Equal(t, 1, code)
	require.Contains(t, errOut, "no such file or directory")
	require.NotContains(t, errOut, "SOA")
}
