package main

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// The shipped example configurations load under the strict parser.
func TestExampleConfigs(t *testing.T) {
	for _, f := range []string{"../../examples/docker/geodns.yaml", "../../examples/systemd/geodns.yaml"} {
		c := defaultConfig()
		require.NoError(t, c.load(f), f)
		_, err := c.probeAllow()
		require.NoError(t, err, f)
		require.NotEmpty(t, c.GeoIP, f)
	}
}

func TestConfigRejectsUnknownKeys(t *testing.T) {
	f := filepath.Join(t.TempDir(), "geodns.yaml")
	require.NoError(t, os.WriteFile(f, []byte("zones: z\nlisten_on: [\"127.0.0.1:53\"]\n"), 0o644))
	c := defaultConfig()
	err := c.load(f)
	require.ErrorContains(t, err, "geodns.yaml:2:1: unknown key listen_on (did you mean listen?)")
}

func TestConfigToken(t *testing.T) {
	c := defaultConfig()
	c.APIToken = "from-config"
	t.Setenv("GEODNS_API_TOKEN", "")
	tok, err := c.token()
	require.NoError(t, err)
	require.Equal(t, "from-config", tok)
	t.Setenv("GEODNS_API_TOKEN", "from-env")
	tok, _ = c.token()
	require.Equal(t, "from-env", tok, "the environment beats the config file")
	c.APITokenFile = tokenFile(t, "from-file")
	tok, _ = c.token()
	require.Equal(t, "from-file", tok, "a token file beats both")
}

func TestConfigZoneKeys(t *testing.T) {
	f := filepath.Join(t.TempDir(), "geodns.yaml")
	require.NoError(t, os.WriteFile(f, []byte("zone_import_dirs: [/srv/zones/shared]\nzone_max_file_size: 104857600\nzone_missing_grace: 10m\n"), 0o644))
	c := defaultConfig()
	require.NoError(t, c.load(f))
	require.Equal(t, []string{"/srv/zones/shared"}, c.ZoneImportDirs)
	require.Equal(t, int64(100<<20), c.ZoneMaxFileSize)
	require.Equal(t, 10*time.Minute, c.ZoneMissingGrace)
}

// Durations take days as TTLs do (internal/units); an empty file is all
// defaults.
func TestConfigUnits(t *testing.T) {
	f := filepath.Join(t.TempDir(), "geodns.yaml")
	require.NoError(t, os.WriteFile(f, []byte("zone_missing_grace: 1d\nrrl:\n  window: 1h30m\n  responses_per_second: 20\n"), 0o644))
	c := defaultConfig()
	require.NoError(t, c.load(f))
	require.Equal(t, 24*time.Hour, c.ZoneMissingGrace)
	require.Equal(t, 90*time.Minute, c.RRL.Window)
	require.Equal(t, 20, c.RRL.ResponsesPerSecond)
	require.NoError(t, os.WriteFile(f, nil, 0o644))
	c = defaultConfig()
	require.NoError(t, c.load(f))
	require.Equal(t, defaultConfig(), c)
}
