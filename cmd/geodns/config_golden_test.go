package main

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestConfigErrors loads each testdata/config/*.bad.yaml and wants every
// line of its .want file in the errors, in order, and every error to be
// positioned as file:line:col.
func TestConfigErrors(t *testing.T) {
	files, err := filepath.Glob("testdata/config/*.bad.yaml")
	require.NoError(t, err)
	require.NotEmpty(t, files)
	pos := regexp.MustCompile(`^[a-z]+\.bad\.yaml:\d+:\d+: `)
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			want, err := os.ReadFile(strings.TrimSuffix(f, ".bad.yaml") + ".want")
			require.NoError(t, err)
			c := defaultConfig()
			err = c.load(f)
			require.Error(t, err)
			got := strings.ReplaceAll(err.Error(), "testdata/config/", "")
			t.Logf("\n%s", got)
			lines := strings.Split(got, "\n")
			for _, l := range lines {
				require.Regexp(t, pos, l)
			}
			i := 0
			for _, w := range strings.Split(strings.TrimSpace(string(want)), "\n") {
				for i < len(lines) && !strings.Contains(lines[i], w) {
					i++
				}
				require.Less(t, i, len(lines), "missing (in order): %s", w)
			}
		})
	}
}

func TestEditDistanceSuggest(t *testing.T) {
	names := []string{"listen", "probe_allow", "zones", "http", "state_dir"}
	require.Equal(t, "probe_allow", suggest("probe_alow", names))
	require.Equal(t, "probe_allow", suggest("probeallow", names))
	require.Equal(t, "listen", suggest("lsiten", names))
	require.Equal(t, "zones", suggest("zone", names))
	require.Equal(t, "", suggest("colour", names))
}
