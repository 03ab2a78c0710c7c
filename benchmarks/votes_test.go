package benchmarks

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/geodns/geodns/health"
	"github.com/geodns/geodns/route"
	"github.com/geodns/geodns/zones"
)

// BenchmarkRouteVotes routes a query of a service of 1,000 probed
// endpoints with a node alone and with a node of an NS set whose health
// comes from three nodes' votes, while votes stream in (300 a second,
// each batch republishing the table, as a flapping 5 % of 30,000 targets
// make them): a query reads the same dense table either way, so the two
// cost the same; no query touches a vote or etcd.
func BenchmarkRouteVotes(b *testing.B) {
	const n = 1000
	var z strings.Builder
	z.WriteString("soa: {ns: ns1.example.net., mbox: h.example.net.}\nrecords:\n  \"@\": {NS: [ns1.example.net.]}\n  www: {service: web}\n")
	z.WriteString("sites:\n  east: {lat: 39, lon: -77}\n  west: {lat: 37, lon: -122}\n")
	z.WriteString("checks:\n  hc: {type: tcp, port: 80}\nservices:\n  web:\n    endpoints:\n")
	for i := range n {
		site := "east"
		if i%2 == 1 {
			site = "west"
		}
		fmt.Fprintf(&z, "      - {site: %s, address: 10.0.%d.%d, check: hc, target: \"127.0.%d.%d:80\"}\n", site, i/250, 1+i%250, i/250, 1+i%250)
	}
	zone, err := zones.Compile("example.net.yaml", []byte(z.String()), "example.net.", time.Now(), nil)
	if err != nil {
		b.Fatal(err)
	}
	set := zones.NewSet(zone)
	svc := zone.Services["web"]
	var ids []string
	for _, ep := range svc.Endpoints {
		ids = append(ids, health.VoteID(ep.Probe.Key))
	}
	client := netip.MustParsePrefix("198.51.100.0/24")
	for _, mode := range []string{"alone", "NS set"} {
		b.Run(mode, func(b *testing.B) {
			// As in serve: the plan loop rebuilds the plans when health
			// changes; queries read the published ones.
			r := &route.Router{}
			m := health.NewManager(health.Options{Log: slog.New(slog.NewTextHandler(io.Discard, nil)), OnChange: r.Changed})
			m.SetZones(set)
			r.Health = m
			var sp atomic.Pointer[zones.Set]
			sp.Store(set)
			ctx, cancel := context.WithCancel(context.Background())
			loopDone := make(chan struct{})
			go func() { r.Run(ctx, sp.Load); close(loopDone) }()
			done := make(chan struct{})
			if mode == "NS set" {
				m.SetSharing(health.Sharing{Runs: func(id string) bool { return id < "127.0.2" }})
				all := map[string]map[string]*health.Vote{}
				for _, id := range ids {
					all[id] = map[string]*health.Vote{"ns1": {Up: true}, "ns2": {Up: true}, "ns3": {Up: true}}
				}
				m.UpdateVotes(true, all)
				go func() { // 30 votes every 100 ms: 300 a second
					defer close(done)
					tick := time.NewTicker(100 * time.Millisecond)
					defer tick.Stop()
					for i := 0; ; i++ {
						select {
						case <-ctx.Done():
							return
						case <-tick.C:
						}
						batch := map[string]map[string]*health.Vote{}
						for j := range 30 {
							id := ids[(i*30+j)%len(ids)]
							batch[id] = map[string]*health.Vote{"ns2": {Up: i%2 == 0}}
						}
						m.UpdateVotes(false, batch)
					}
				}()
			} else {
				close(done)
			}
			if d := r.Route(zone.Origin, svc, client, false); len(d.Addrs) == 0 {
				b.Fatal("no answer")
			}
			b.ReportAllocs()
			for b.Loop() {
				r.Route(zone.Origin, svc, client, false)
			}
			cancel()
			<-done
			<-loopDone
		})
	}
}
