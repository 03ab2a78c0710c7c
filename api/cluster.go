package api

import (
	"cmp"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/geodns/geodns/cluster"
	"github.com/geodns/geodns/health"
)

// Cluster is what the API reads of the NS set the server is part of;
// *cluster.Reports is one. Implementations must be safe for concurrent
// use.
type Cluster interface {
	// View returns the NS set as this node sees it: nodes, their applied
	// operator-state revision, zones, GeoIP databases and drift.
	View() cluster.View
}

// ClusterStatus is the cluster part of /api/v1/status: the etcd revision
// of the operator state each live node has applied.
type ClusterStatus struct {
	Node         string           `json:"node"`
	Connected    bool             `json:"connected"`
	StaleSeconds float64          `json:"stale_seconds"`
	Revision     int64            `json:"revision"` // this node's
	Revisions    map[string]int64 `json:"revisions"`
	Drift        bool             `json:"drift"`
}

func clusterStatus(c Cluster) *ClusterStatus {
	if c == nil {
		return nil
	}
	v := c.View()
	st := &ClusterStatus{Node: v.Node, Connected: v.Connected, StaleSeconds: v.StaleSeconds, Drift: v.Drift,
		Revisions: map[string]int64{}}
	for _, n := range v.Nodes {
		if n.State != cluster.StateLive {
			continue // lost or left: /api/v1/cluster shows its last revision
		}
		st.Revisions[n.Node] = n.OperatorRevision
		if n.Self {
			st.Revision = n.OperatorRevision
		}
	}
	return st
}

// Votes is what the API reads of the NS set's health votes;
// *health.Manager is one.
type Votes interface {
	// Votes returns every shared probe's votes by probe key; nil when the
	// node is not in an NS set.
	Votes() map[string]health.VoteStatus
}

// ClusterView is GET /api/v1/cluster: the NS set as this node sees it and
// the votes on every probe the set shares.
type ClusterView struct {
	cluster.View
	Votes []ProbeVotes `json:"votes"`
}

// ProbeVotes is one shared probe: what the set decided and each live
// node's vote.
type ProbeVotes struct {
	Target  string     `json:"target"` // host:port (or name) probed
	Key     string     `json:"key"`    // the probe's whole key: target, check settings, quorum rule
	Up      bool       `json:"up"`
	Decided bool       `json:"decided"` // false: no vote yet, this node's own state stands
	Runs    bool       `json:"runs"`    // this node probes it (probers: k)
	Votes   []NodeVote `json:"votes"`
}

// NodeVote is one node's vote on a probe.
type NodeVote struct {
	Node  string    `json:"node"`
	Up    bool      `json:"up"`
	Since time.Time `json:"since"`
}

// cluster answers GET /api/v1/cluster: 404 on a single node.
func (s *Server) cluster(w http.ResponseWriter, r *http.Request) {
	if s.Cluster == nil {
		writeError(w, http.StatusNotFound, "not part of a cluster (no cluster: section in the config)")
		return
	}
	v := ClusterView{View: s.Cluster.View(), Votes: []ProbeVotes{}}
	if s.Votes != nil {
		for key, vs := range s.Votes.Votes() {
			target, _, _ := strings.Cut(key, "|")
			pv := ProbeVotes{Target: target, Key: key, Up: vs.Up, Decided: vs.Decided, Runs: vs.Runs, Votes: []NodeVote{}}
			for _, n := range vs.Votes {
				pv.Votes = append(pv.Votes, NodeVote{n.Node, n.Up, n.Since})
			}
			v.Votes = append(v.Votes, pv)
		}
		slices.SortFunc(v.Votes, func(a, b ProbeVotes) int { return cmp.Compare(a.Key, b.Key) })
	}
	writeJSON(w, http.StatusOK, v)
}
