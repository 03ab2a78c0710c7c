package route

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/geodns/geodns/opstate"
	"github.com/geodns/geodns/zones"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/stretchr/testify/require"
)

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

// TestAllDownPerFamily: east has IPv4 endpoints only (down), west IPv6
// only (up). A queries get the all_down policy, and the router's one
// definition of all down counts and logs it for IPv4, once per
// transition; health no longer decides it (it said "west is up").
func TestAllDownPerFamily(t *testing.T) {
	z, err := zones.Compile("example.net.yaml", []byte(`
soa: {ns: ns1.example.net., mbox: h.example.net.}
records:
  "@": {NS: [ns1.example.net.]}
  www: {service: web}
sites:
  east: {lat: 39, lon: -77}
  west: {lat: 37, lon: -122}
services:
  web:
    endpoints:
      - {site: east, address: 192.0.2.10}
      - {site: west, address: "2001:db8::10"}
`), "example.net.", time.Now(), nil)
	require.NoError(t, err)
	set := zones.NewSet(z)
	web := z.Services["web"]
	h := &countingHealth{down: map[string]bool{"site:east": true}, version: 1}
	reg := prometheus.NewRegistry()
	r := &Router{Operator: h, Metrics: NewMetrics(reg), Log: quiet}
	client := prefix("10.10.1.0/24")
	allDown := func(fam string) float64 {
		return testutil.ToFloat64(r.Metrics.allDown.WithLabelValues("web", fam))
	}

	d := r.Route(z.Origin, web, client, false)
	require.True(t, d.AllDown)
	require.Equal(t, []netip.Addr{netip.MustParseAddr("192.0.2.10")}, d.Addrs, "serve-all")
	require.False(t, r.Route(z.Origin, web, client, true).AllDown)
	require.True(t, r.AllDown(z.Origin, web, false))
	require.False(t, r.AllDown(z.Origin, web, true))

	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { r.Run(ctx, func() *zones.Set { return set }); close(done) }()
	// The loop counts IPv4's all-down before it sets IPv6's site gauges:
	// wait for the round to finish.
	require.Eventually(t, func() bool {
		return allDown("ipv4") == 1 && testutil.CollectAndCount(r.Metrics.siteUp) == 2
	}, 5*time.Second, 5*time.Millisecond)
	require.Zero(t, allDown("ipv6"))
	require.Equal(t, 0.0, testutil.ToFloat64(r.Metrics.siteUp.WithLabelValues("example.net.", "web", "east", "ipv4")))
	require.Equal(t, 1.0, testutil.ToFloat64(r.Metrics.siteUp.WithLabelValues("example.net.", "web", "west", "ipv6")))

	cancel()
	<-done

	// Still down at the next change: not counted again. Back up, then
	// down again: a second transition.
	r.refresh(set)
	require.Equal(t, 1.0, allDown("ipv4"))
	h.down, h.version = nil, 2
	r.refresh(set)
	require.False(t, r.AllDown(z.Origin, web, false))
	h.down, h.version = map[string]bool{"site:east": true, "site:west": true}, 3
	r.refresh(set)
	require.Equal(t, 2.0, allDown("ipv4"))
	require.Equal(t, 1.0, allDown("ipv6"))
}

// TestDemandOnlyByLoop: reads (Route, Explain, Standing, Demand) of 300
// services start no demand estimate; the plan loop estimates the spillover
// services only, once for services that share sites and rules.
func TestDemandOnlyByLoop(t *testing.T) {
	var b strings.Builder
	b.WriteString("soa: {ns: ns1.example.net., mbox: h.example.net.}\nrecords:\n  \"@\": {NS: [ns1.example.net.]}\n")
	b.WriteString("sites:\n  us-east: {lat: 39, lon: -77}\n  us-west: {lat: 37, lon: -122}\nservices:\n")
	for i := range 300 {
		fmt.Fprintf(&b, "  s%d:\n", i)
		if i < 10 {
			b.WriteString("    spillover: true\n")
		}
		b.WriteString("    endpoints:\n      - {site: us-east, address: 192.0.2.1}\n      - {site: us-west, address: 198.51.100.1}\n")
	}
	z, err := zones.Compile("example.net.yaml", []byte(b.String()), "example.net.", time.Now(), nil)
	require.NoError(t, err)
	set := zones.NewSet(z)
	r := &Router{Loc: newYork{}, Operator: downHealth{"site:us-east": true}, Log: quiet}
	for range 3 {
		for _, svc := range z.Services {
			r.Demand(svc)
			r.Standing(z.Origin, svc, "us-east")
			r.Route(z.Origin, svc, prefix("11.0.0.0/24"), false)
			r.Explain(z.Origin, svc, prefix("11.0.0.0/24"), false)
		}
	}
	require.Zero(t, r.estimates.Load(), "reads started demand estimates")
	_, ok := r.Demand(z.Services["s0"])
	require.False(t, ok, "no estimate yet: capacity shares")

	r.refresh(set)
	r.estimateDemands(context.Background(), set)
	require.Equal(t, int64(1), r.estimates.Load(), "ten spillover services with the same sites: one estimate")
	_, ok = r.Demand(z.Services["s0"])
	require.True(t, ok)
	_, ok = r.Demand(z.Services["s100"])
	require.False(t, ok, "no spillover: never estimated")
	r.estimateDemands(context.Background(), set)
	require.Equal(t, int64(1), r.estimates.Load(), "once per zone version and database generation")

	// A reload (new service versions) with the same sites and rules
	// reuses the estimate.
	z2, err := zones.Compile("example.net.yaml", []byte(b.String()), "example.net.", time.Now(), nil)
	require.NoError(t, err)
	r.estimateDemands(context.Background(), zones.NewSet(z2))
	require.Equal(t, int64(1), r.estimates.Load())
	_, ok = r.Demand(z2.Services["s3"])
	require.True(t, ok)
}

// TestSegsRotated: reading the gathered lists turned and cut is the same
// as concatenating, rotating and cutting them (the old way, O(endpoints)).
func TestSegsRotated(t *testing.T) {
	lists := [][]int{{1, 2, 3}, {}, {4}, {5, 6}}
	var all []int
	var s segs[int]
	for _, l := range lists {
		s.add(l)
		all = append(all, l...)
	}
	for n := range uint32(20) {
		for limit := range 8 {
			k := int(n % uint32(len(all)))
			want := append(append([]int{}, all[k:]...), all[:k]...)
			want = want[:min(limit, len(want))]
			got := s.rotated(n, limit, false)
			if limit == 0 {
				require.Empty(t, got)
				continue
			}
			require.Equal(t, want, got, "n %d limit %d", n, limit)
		}
	}
	var empty segs[int]
	require.Nil(t, empty.rotated(3, 2, false))

	// One list with its double: rotations are subslices of the double,
	// the same as those of the list alone, and cannot grow into it.
	half, whole := twice([]int{1, 2, 3, 4, 5})
	var one, doubled segs[int]
	one.add(half)
	doubled.addTwice(half, whole)
	for n := range uint32(12) {
		for limit := range 7 {
			got := doubled.rotated(n, limit, false)
			require.Equal(t, one.rotated(n, limit, false), got, "n %d limit %d", n, limit)
			require.Equal(t, len(got), cap(got))
		}
	}
	require.Equal(t, []int{1, 2, 3, 4, 5}, half)
	doubled.add([]int{6}) // a second list: no longer one double
	require.Equal(t, []int{6, 1, 2}, doubled.rotated(5, 3, false))
}

// swapHealth is a countingHealth replaced whole, as the health manager
// swaps its snapshots.
type swapHealth struct {
	cur atomic.Pointer[countingHealth]
}

func (h *swapHealth) Load() *opstate.State { return h.cur.Load().Load() }

// TestPlanLoopFollowsHealth: while the plan loop runs, queries take the
// plan it published, and a health change (Changed) reaches them through
// the loop's rebuild.
func TestPlanLoopFollowsHealth(t *testing.T) {
	z, svc := bigService(t, 100)
	set := zones.NewSet(z)
	h := &swapHealth{}
	h.cur.Store(&countingHealth{version: 1})
	r := &Router{Loc: places, Operator: h, Log: quiet}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { r.Run(ctx, func() *zones.Set { return set }); close(done) }()
	defer func() { cancel(); <-done }()
	ny := prefix("10.10.1.0/24")
	require.Eventually(t, func() bool { return r.loop.running.Load() }, 5*time.Second, time.Millisecond)
	require.Equal(t, []string{"us-east"}, r.Route(z.Origin, svc, ny, false).Sites)

	h.cur.Store(&countingHealth{down: map[string]bool{"site:us-east": true}, version: 2})
	r.Changed()
	require.Eventually(t, func() bool {
		return slices.Equal([]string{"us-west"}, r.Route(z.Origin, svc, ny, false).Sites)
	}, 5*time.Second, time.Millisecond)
}

// TestAllDownCNAMEOnce: a CNAME service answers every type alike, so its
// all-down transition counts once, with family "any".
func TestAllDownCNAMEOnce(t *testing.T) {
	z := loadZone(t)
	r := &Router{Operator: downHealth{"site:us-east": true, "site:us-west": true, "site:eu": true},
		Metrics: NewMetrics(prometheus.NewRegistry()), Log: quiet}
	r.refresh(zones.NewSet(z))
	require.Equal(t, 1.0, testutil.ToFloat64(r.Metrics.allDown.WithLabelValues("edge", "any")))
	require.Equal(t, 3, testutil.CollectAndCount(r.Metrics.allDown, "geodns_all_down_total"), "web: ipv4 and ipv6; edge: once")
}

// swapOp is an operator state replaced whole, as a Store publishes.
type swapOp struct{ cur atomic.Pointer[opstate.State] }

func (o *swapOp) Load() *opstate.State { return o.cur.Load() }

// TestDecisionReadsOnePlan: while the plan loop runs, a decision reads the
// operator's dials from the plan it routes by, never a newer state than
// the plan's health: a dial set meanwhile reaches queries with the plan
// that includes it. (Dials used to be read live at each site of each
// query, beside a plan of an older health snapshot.)
func TestDecisionReadsOnePlan(t *testing.T) {
	z := loadZone(t)
	set := zones.NewSet(z)
	web := z.Services["web"]
	op := &swapOp{}
	op.cur.Store(opstate.NewState(nil, nil, nil, nil, 1))
	r := &Router{Loc: newYork{}, Operator: op, Log: quiet}
	r.loop.running.Store(true) // as while Run runs: queries take the published plans
	r.Refresh(set)
	client := newYorkers()[0]
	require.Equal(t, "us-east", r.Route(z.Origin, web, client, false).Sites[0])

	op.cur.Store(opstate.NewState(nil, nil, nil, []opstate.Dial{{Service: "web", Site: "us-east", Weight: 0}}, 2))
	require.Equal(t, "us-east", r.Route(z.Origin, web, client, false).Sites[0], "the published plan's dial, until the loop rebuilds")
	r.Refresh(set)
	require.NotEqual(t, "us-east", r.Route(z.Origin, web, client, false).Sites[0], "dialed to 0 with the new plan")
}
