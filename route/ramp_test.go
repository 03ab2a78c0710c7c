package route

import (
	"net/netip"
	"testing"
	"time"

	"github.com/geodns/geodns/opstate"
	"github.com/geodns/geodns/zones"
	"github.com/stretchr/testify/require"
)

// TestRampHeldClientsDoNotCrossOcean is issue 18's ramp question: us-east
// is undrained at t0 and ramps its clients back over 60 s; us-west, where
// the clients not yet back go, is drained 1.5 s later. The held-back
// east-coast clients used to go to Europe for up to a minute while
// us-east was up and nearest. Now a held-back client goes on only to a
// site at most MaxRampDetourKm farther than the ramping one; Europe is
// farther, so it returns to us-east at once.
func TestRampHeldClientsDoNotCrossOcean(t *testing.T) {
	z := loadZone(t)
	web := z.Services["web"]
	t0 := time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)
	now := t0
	op := &swapOp{}
	lifted := map[string]time.Time{"site:us-east": t0}
	op.cur.Store(opstate.NewState(nil, nil, lifted, nil, 1))
	r := &Router{Loc: newYork{}, Operator: op, Now: func() time.Time { return now }}
	clients := newYorkers()[:1000]
	count := func() map[string]int {
		got := map[string]int{}
		for _, c := range clients {
			d := r.Route(z.Origin, web, c, false)
			require.NotEmpty(t, d.Sites, "%v", c)
			if d.Sites[0] != "us-east" {
				require.True(t, d.Degraded, "a client not yet won back gets the short TTL")
			}
			got[d.Sites[0]]++
		}
		return got
	}

	// us-west is up: the ramp holds clients back there (4,100 km from New
	// York, 3,760 km farther than us-east: within the detour).
	now = t0.Add(30 * time.Second)
	got := count()
	require.InDelta(t, 500, got["us-east"], 60, "half way through the ramp: %v", got)
	require.Equal(t, 1000, got["us-east"]+got["us-west"], "nobody to Europe: %v", got)
	held := firstHeld(t, r, z.Origin, web, clients, "us-west")
	_, tr := r.Explain(z.Origin, web, held, false)
	require.Equal(t, "us-east", tr.RampHeld)
	require.Equal(t, "us-west", tr.RampNext)
	require.False(t, tr.RampReturned)
	require.InDelta(t, 3760, tr.RampDetourKm, 100)

	// us-west drained 1.5 s after us-east came back: the next site is
	// Europe, 5,900 km farther than us-east. Every client returns now.
	op.cur.Store(opstate.NewState(map[string]opstate.Override{"us-west": opstate.Drain}, nil, lifted, nil, 2))
	for _, s := range []time.Duration{2 * time.Second, 30 * time.Second, 59 * time.Second} {
		now = t0.Add(s)
		got = count()
		require.Equal(t, map[string]int{"us-east": 1000}, got, "at %v: us-east is up and nearest", s)
	}
	now = t0.Add(2 * time.Second)
	d, tr := r.Explain(z.Origin, web, held, false)
	require.Equal(t, []string{"us-east"}, d.Sites)
	require.True(t, d.Degraded, "still ramping: the short TTL brings clients back to the normal answer soon")
	require.Equal(t, "us-east", tr.RampHeld)
	require.Equal(t, "eu", tr.RampNext)
	require.True(t, tr.RampReturned)
	require.Greater(t, tr.RampDetourKm, MaxRampDetourKm)

	// The same with spillover: the spread of east's held-back clients has
	// only Europe left, so they return too.
	spill := *web
	spill.Spillover, spill.MaxLoad = true, 0.8
	for _, c := range clients[:200] {
		d, tr := r.Explain(z.Origin, &spill, c, false)
		require.Equal(t, []string{"us-east"}, d.Sites, "%v", c)
		require.Equal(t, "us-east", tr.SpilledFrom)
		require.True(t, tr.RampReturned)
		require.Equal(t, "eu", tr.RampNext)
	}

	// After the ramp, nothing is held back and the trace says nothing.
	now = t0.Add(61 * time.Second)
	_, tr = r.Explain(z.Origin, web, held, false)
	require.Empty(t, tr.RampHeld)
}

// firstHeld returns a client that the ramp sends to site.
func firstHeld(t *testing.T, r *Router, origin string, svc *zones.Service, clients []netip.Prefix, site string) netip.Prefix {
	t.Helper()
	for _, c := range clients {
		if d := r.Route(origin, svc, c, false); len(d.Sites) > 0 && d.Sites[0] == site {
			return c
		}
	}
	t.Fatalf("no client sent to %s", site)
	return netip.Prefix{}
}
