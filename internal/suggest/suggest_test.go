package suggest

import (
	"testing"

	"github.com/stretchr/testify/require"
)

func TestClosest(t *testing.T) {
	require.Equal(t, 3, Distance("kitten", "sitting"))
	require.Equal(t, 0, Distance("", ""))
	require.Equal(t, "us-east", Closest("us-eats", []string{"us-west", "us-east"}))
	require.Equal(t, "probe_allow", Closest("probe_alow", []string{"listen", "probe_allow"}))
	require.Empty(t, Closest("mars", []string{"us-east", "us-west"}), "too far to be meant")
}
