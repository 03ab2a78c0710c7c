package main

import (
	"strings"
	"testing"

	"github.com/geodns/geodns/api"
	"github.com/geodns/geodns/cluster"
	"github.com/stretchr/testify/require"
)

// TestClusterStatusCutOffSelf: the node answering `cluster status` while
// cut off from etcd is serving, so it is "cut off", not "lost" as a dead
// node is; the others, which it cannot see, stay lost.
func TestClusterStatusCutOffSelf(t *testing.T) {
	v := api.ClusterView{}
	v.Node, v.Connected, v.StaleSeconds = "ns1", false, 42
	v.Nodes = []cluster.NodeView{
		{Report: cluster.Report{Node: "ns1"}, Self: true, State: cluster.StateLive},
		{Report: cluster.Report{Node: "ns2"}, State: cluster.StateLive},
	}
	var b strings.Builder
	printCluster(&b, v)
	out := b.String()
	require.Regexp(t, `(?m)^ns1 \*\s+-\s+cut off\s`, out)
	require.Regexp(t, `(?m)^ns2\s+-\s+lost\s`, out)
	require.Contains(t, out, "ns1 is NOT connected to etcd (for 42s)")
}
