package cluster

import (
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"
)

// TestDriftHelpSaysWhatIsCounted: geodns_cluster_drift counts the live
// nodes (this one included) whose zone, GeoIP database or operator
// revision differs from what most live nodes have (Drift), the same
// number on every node. Its help said "other than this node", which a
// node in the majority would read as 0 where it shows 1.
func TestDriftHelpSaysWhatIsCounted(t *testing.T) {
	m := newMetrics(nil, nil)
	ch := make(chan *prometheus.Desc, 1)
	m.drift.Describe(ch)
	help := (<-ch).String()
	require.Contains(t, help, "other than most live nodes")
	require.NotContains(t, help, "other than this node")
}
