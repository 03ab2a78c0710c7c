package main

import (
	"os"
	"regexp"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
	"gopkg.in/yaml.v3"
)

// The image's state directory (the example config's state_dir) is made
// owned by the user the image runs as, is a VOLUME, and docker-compose
// mounts a named volume there: a named volume starts with the image
// directory's owner, so the unprivileged server can save drains and dials.
// (No Docker daemon runs here to build the image; this holds the three
// files to each other.)
func TestDockerStateDirWritable(t *testing.T) {
	df, err := os.ReadFile("../../Dockerfile")
	require.NoError(t, err)
	c := defaultConfig()
	require.NoError(t, c.load("../../examples/docker/geodns.yaml"))
	require.NotEmpty(t, c.StateDir)

	user := regexp.MustCompile(`(?m)^USER (\d+):(\d+)$`).FindStringSubmatch(string(df))
	require.NotNil(t, user, "the image runs as a numeric user")
	chown := regexp.MustCompile(`chown -R (\d+):(\d+) /out/root(\S+)`).FindStringSubmatch(string(df))
	require.NotNil(t, chown, "the build stage makes the state directory")
	require.Equal(t, user[1:3], chown[1:3], "the state directory is owned by the image's user")
	require.Equal(t, c.StateDir, chown[3])
	require.Contains(t, string(df), "COPY --from=build /out/root/ /")
	require.Regexp(t, `(?m)^VOLUME `+regexp.QuoteMeta(c.StateDir)+`$`, string(df))

	var compose struct {
		Services map[string]struct {
			Volumes []string `yaml:"volumes"`
		} `yaml:"services"`
		Volumes map[string]any `yaml:"volumes"`
	}
	b, err := os.ReadFile("../../docker-compose.yml")
	require.NoError(t, err)
	require.NoError(t, yaml.Unmarshal(b, &compose))
	found := false
	for _, v := range compose.Services["geodns"].Volumes {
		parts := strings.Split(v, ":")
		if len(parts) >= 2 && parts[1] == c.StateDir {
			_, named := compose.Volumes[parts[0]]
			require.True(t, named, "%s is a named volume (a bind mount keeps the host directory's owner)", v)
			require.NotContains(t, v, ":ro")
			found = true
		}
	}
	require.True(t, found, "docker-compose mounts a volume at %s", c.StateDir)
}
