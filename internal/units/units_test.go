package units

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestParseTTL(t *testing.T) {
	for in, want := range map[string]uint32{
		"0": 0, "300": 300, "5m": 300, "1h": 3600, "1d": 86400, "1w": 604800,
		"1h30m": 5400, "1d12h": 129600, "90s": 90, "2147483647": MaxTTL,
	} {
		got, err := ParseTTL(in)
		require.NoError(t, err, in)
		require.Equal(t, want, got, in)
	}
	for _, in := range []string{"", "-5", "5x", "1.5s", "1h-5m", "2147483648", "4000w", "m", "5m3", "1e3"} {
		_, err := ParseTTL(in)
		require.Error(t, err, in)
	}
}

func TestParseDuration(t *testing.T) {
	for in, want := range map[string]time.Duration{
		"0": 0, "60s": time.Minute, "1d": 24 * time.Hour, "1d2h": 26 * time.Hour, "1.5d": 36 * time.Hour,
		"500ms": 500 * time.Millisecond, "2w": 14 * 24 * time.Hour,
	} {
		got, err := ParseDuration(in)
		require.NoError(t, err, in)
		require.Equal(t, want, got, in)
	}
	for _, in := range []string{"", "60", "-1s", "1x", "d", "1d5"} {
		_, err := ParseDuration(in)
		require.Error(t, err, in)
	}
}
