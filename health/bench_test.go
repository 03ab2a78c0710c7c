package health

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/geodns/geodns/zones"
)

// BenchmarkProbeTCP measures one tcp probe (connect, close) on loopback.
func BenchmarkProbeTCP(b *testing.B) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() { io.Copy(io.Discard, c); c.Close() }()
		}
	}()
	p := &prober{allow: loopback}
	pr := probeOf(check("tcp"), ln.Addr().String())
	b.ReportAllocs()
	for b.Loop() {
		if r := probeOnce(p, pr); !r.OK {
			b.Fatal(r.Reason)
		}
	}
}

// BenchmarkProbeHTTP measures one http probe (connect, GET, response,
// close) on loopback against a net/http server.
func BenchmarkProbeHTTP(b *testing.B) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok") }))
	defer srv.Close()
	p := &prober{allow: loopback}
	pr := probeOf(check("http", func(c *zones.Check) { c.ExpectBody = "ok" }), strings.TrimPrefix(srv.URL, "http://"))
	b.ReportAllocs()
	for b.Loop() {
		if r := probeOnce(p, pr); !r.OK {
			b.Fatal(r.Reason)
		}
	}
}

// BenchmarkProbeHTTPKeepAlive measures one http probe on the connection
// the last one kept (GET, response), as checks with keepalive run, in a
// goroutine of its own and (on Linux) on the event loop.
func BenchmarkProbeHTTPKeepAlive(b *testing.B) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok") }))
	defer srv.Close()
	p := &prober{allow: loopback, maxKept: 1}
	c := check("http", func(c *zones.Check) { c.ExpectBody = "ok" })
	pr := probeOf(c, strings.TrimPrefix(srv.URL, "http://"))
	for _, via := range runners(b, p) {
		b.Run(via.name, func(b *testing.B) {
			var kept *conn
			b.ReportAllocs()
			for b.Loop() {
				var r Result
				if r, kept = via.run(pr, kept); !r.OK || kept == nil {
					b.Fatal(r.Reason)
				}
			}
			p.release(kept)
		})
	}
}

// BenchmarkUpdateVotes applies a batch of 15 targets' votes from two
// nodes to a node sharing 30,000 probes, as a flapping 5 % make them, the
// table republished by Run's loop as in serve: the work is the batch's,
// not the whole table's.
func BenchmarkUpdateVotes(b *testing.B) {
	const n = 30000
	var z strings.Builder
	z.WriteString("soa: {ns: ns1.example.net., mbox: h.example.net.}\nrecords:\n  \"@\": {NS: [ns1.example.net.]}\n  www: {service: web}\n")
	z.WriteString("sites:\n  east: {lat: 39, lon: -77}\nchecks:\n  hc: {type: tcp, port: 80}\nservices:\n  web:\n    endpoints:\n")
	for i := range n {
		fmt.Fprintf(&z, "      - {site: east, address: 10.%d.%d.%d, check: hc, target: \"127.0.0.1:%d\"}\n", i>>16, i>>8&255, i&255, 1024+i)
	}
	set := compile(b, z.String())
	m := NewManager(Options{Allow: loopback, Log: quiet})
	m.SetZones(set)
	m.SetSharing(Sharing{Runs: func(string) bool { return false }, Grace: time.Minute})
	m.async = true // as under Run: the table is republished by its loop, batched, not per batch of votes
	var ids []string
	for _, p := range m.probes {
		ids = append(ids, p.vid)
	}
	batch := func(i int, up bool) map[string]map[string]*Vote {
		out := map[string]map[string]*Vote{}
		for j := range 15 {
			out[ids[(i*15+j)%len(ids)]] = map[string]*Vote{"ns2": {Up: up}, "ns3": {Up: up}}
		}
		return out
	}
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		m.UpdateVotes(false, batch(i, i%2 == 0))
		i++
	}
}
