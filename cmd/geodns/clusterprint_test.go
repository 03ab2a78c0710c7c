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

// TestClusterStatusVotelessProbe: a probe nobody votes on keeps its last
// decision; `cluster status` counted it "up by every vote" (no vote
// disagreed) and did not list it. It is counted and listed as having no
// votes.
func TestClusterStatusVotelessProbe(t *testing.T) {
	votes := []api.ProbeVotes{
		{Target: "192.0.2.1:80", Key: "a", Up: true, Decided: true, Runs: true, Votes: []api.NodeVote{{Node: "ns1", Up: true}}},
		{Target: "192.0.2.2:80", Key: "b", Up: true, Decided: true, Runs: false, Votes: []api.NodeVote{}},
	}
	var b strings.Builder
	printVotes(&b, votes)
	out := b.String()
	require.Contains(t, out, "health votes on 2 probes: 1 up by every vote, 0 down, 0 where the nodes disagree, 1 with no votes", out)
	require.Regexp(t, `(?m)^192\.0\.2\.2:80\s+up, no votes \(kept\)\s+no\s+-$`, out)
	require.NotContains(t, out, "192.0.2.1:80", out)
}

// TestClusterStatusZonesOmitted: a node whose report left its zones out
// (too large for etcd) says how many, not "-" as a node without zones.
func TestClusterStatusZonesOmitted(t *testing.T) {
	v := api.ClusterView{}
	v.Node, v.Connected = "ns1", true
	v.Nodes = []cluster.NodeView{
		{Report: cluster.Report{Node: "ns1", ZonesOmitted: 14000}, Self: true, State: cluster.StateLive, Connected: true},
	}
	var b strings.Builder
	printCluster(&b, v)
	require.Contains(t, b.String(), "14000 zones (not in its report: too large for etcd)")
}
