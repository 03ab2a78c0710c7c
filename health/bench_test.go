package health

import (
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

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
