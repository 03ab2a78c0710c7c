package api

import (
	"net/http"

	"github.com/geodns/geodns/cluster"
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
		st.Revisions[n.Node] = n.OperatorRevision
		if n.Self {
			st.Revision = n.OperatorRevision
		}
	}
	return st
}

// cluster answers GET /api/v1/cluster: 404 on a single node.
func (s *Server) cluster(w http.ResponseWriter, r *http.Request) {
	if s.Cluster == nil {
		writeError(w, http.StatusNotFound, "not part of a cluster (no cluster: section in the config)")
		return
	}
	writeJSON(w, http.StatusOK, s.Cluster.View())
}
