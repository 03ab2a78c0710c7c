package api

import (
	"encoding/json"
	"io"
	"net/http"
	"testing"
	"time"

	"github.com/geodns/geodns/health"
	"github.com/stretchr/testify/require"
)

// TestReasonsInNSSet: in an NS set an endpoint's state is the set's
// decision from the votes; where this node's own probe disagrees, the
// reason says so instead of calling the node's failure "passing" (or its
// success "failing").
func TestReasonsInNSSet(t *testing.T) {
	s, base := liveServer(t) // east refuses connections, west answers
	hm := s.Health.(*health.Manager)
	hm.SetSharing(health.Sharing{})
	keys := map[string]string{} // site -> probe key
	for _, ep := range s.Zones.Load().Zones()[0].Services["web"].Endpoints {
		if ep.Probe != nil {
			keys[ep.Site] = ep.Probe.Key
		}
	}
	// Two other nodes see east up and west down: the set outvotes this one.
	votes := func(up bool) map[string]*health.Vote {
		return map[string]*health.Vote{"ns1": {Node: "ns1", Up: !up}, "ns2": {Node: "ns2", Up: up}, "ns3": {Node: "ns3", Up: up}}
	}
	hm.UpdateVotes(false, map[string]map[string]*health.Vote{
		health.VoteID(keys["east"]): votes(true), health.VoteID(keys["west"]): votes(false)})

	var east, west string
	require.Eventually(t, func() bool {
		resp, err := http.Get(base + "/api/v1/status")
		require.NoError(t, err)
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		var st Status
		require.NoError(t, json.Unmarshal(body, &st))
		sites := st.Services[0].Sites
		east, west = sites[0].Endpoints[0].Reason, sites[1].Endpoints[0].Reason
		return sites[0].State == StateUp && sites[1].State == StateDown
	}, 10*time.Second, 20*time.Millisecond, "the set's decision never shown: east %q, west %q", east, west)
	require.Equal(t, "check web up by the set's votes (this node's probe: connection refused)", east)
	require.Equal(t, "check web down by the set's votes (this node's probe: HTTP 200)", west)
}
