package route

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/geodns/geodns/health"
	"github.com/geodns/geodns/opstate"
	"github.com/geodns/geodns/zones"
	"github.com/stretchr/testify/require"
)

// TestRouteReadsHealthTable: the plan loop reads the real health
// manager's dense table (each endpoint's probe by number), and an
// operator's force-up beats a probe that is down.
func TestRouteReadsHealthTable(t *testing.T) {
	src := strings.Replace(zoneYAML, "services:\n", "checks:\n  dead: {type: static, up: false, fall: 1, interval: 100ms, timeout: 50ms}\nservices:\n", 1)
	for _, a := range []string{"192.0.2.10", "192.0.2.11", "192.0.2.12"} {
		src = strings.Replace(src, "address: "+a+"}", "address: "+a+", check: dead}", 1)
	}
	z, err := zones.Compile("example.net.yaml", []byte(src), "example.net.", time.Now(), nil)
	require.NoError(t, err)
	set := zones.NewSet(z)
	op := opstate.OpenFile(opstate.FileOptions{Log: quiet})
	r := &Router{Loc: places, Operator: op, Log: quiet}
	m := health.NewManager(health.Options{Log: quiet, OnChange: r.Changed})
	r.Health = m
	op.Watch(func(*opstate.State) { r.Changed() })
	m.SetZones(set)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go m.Run(ctx)
	go r.Run(ctx, func() *zones.Set { return set })
	web, ny := z.Services["web"], prefix("10.10.1.0/24")
	require.Eventually(t, func() bool {
		return slices.Equal([]string{"us-west"}, r.Route(z.Origin, web, ny, false).Sites)
	}, 5*time.Second, 5*time.Millisecond, "east's probes are down")
	require.Len(t, m.Table().States, 1, "a static check has no target: east's three endpoints share its one probe")

	_, err = op.Apply(opstate.Site("us-east", opstate.ForceUp))
	require.NoError(t, err)
	require.Eventually(t, func() bool {
		return slices.Equal([]string{"us-east"}, r.Route(z.Origin, web, ny, false).Sites)
	}, 5*time.Second, 5*time.Millisecond, "forced up beats the probe")
}
