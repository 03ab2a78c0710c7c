package health

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/geodns/geodns/zones"
	"github.com/miekg/dns"
	"github.com/stretchr/testify/require"
)

// loopback is the allowlist of every test prober.
var loopback = []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}

func check(typ string, mod ...func(*zones.Check)) *zones.Check {
	c := &zones.Check{Name: "hc", Type: typ, Path: "/healthz", ExpectStatus: []int{200},
		Interval: time.Second, Timeout: 800 * time.Millisecond, Rise: 3, Fall: 2, Up: true, KeepAlive: true}
	for _, f := range mod {
		f(c)
	}
	return c
}

func probeOf(c *zones.Check, target string) *zones.Probe {
	return &zones.Probe{Key: c.Type + "|" + target, Check: c, Target: target}
}

func hostPort(t *testing.T, url string) string {
	t.Helper()
	return strings.TrimPrefix(strings.TrimPrefix(url, "http://"), "https://")
}

// hungListener accepts connections and never answers.
func hungListener(t testing.TB) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() { io.Copy(io.Discard, c); c.Close() }() // silent until the prober gives up
		}
	}()
	t.Cleanup(func() { ln.Close() })
	return ln.Addr().String()
}

// closedPort returns a loopback address nothing listens on.
func closedPort(t *testing.T) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

func TestProbes(t *testing.T) {
	ok := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/healthz":
			if r.Host != "www.example.com" && r.Host != r.Context().Value(http.LocalAddrContextKey).(net.Addr).String() {
				w.WriteHeader(421)
				return
			}
			fmt.Fprint(w, "all ok")
		case "/fail":
			w.WriteHeader(503)
		}
	}))
	defer ok.Close()
	tlsSrv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { fmt.Fprint(w, "ok") }))
	defer tlsSrv.Close()
	dnsAddr := dnsBackend(t)
	httpTarget, tlsTarget := hostPort(t, ok.URL), hostPort(t, tlsSrv.URL)

	p := &prober{allow: loopback} // a mistake in a test must fail closed, never leave the machine
	for _, c := range []struct {
		name   string
		probe  *zones.Probe
		ok     bool
		reason string
	}{
		{"http 200", probeOf(check("http"), httpTarget), true, "HTTP 200"},
		{"http Host header", probeOf(check("http", func(c *zones.Check) { c.Host = "www.example.com" }), httpTarget), true, "HTTP 200"},
		{"http body matches", probeOf(check("http", func(c *zones.Check) { c.ExpectBody = "ok" }), httpTarget), true, "HTTP 200"},
		{"http body lacks", probeOf(check("http", func(c *zones.Check) { c.ExpectBody = "healthy" }), httpTarget), false, `HTTP 200, body lacks "healthy"`},
		{"http status", probeOf(check("http", func(c *zones.Check) { c.Path = "/fail" }), httpTarget), false, "HTTP 503"},
		{"http status listed", probeOf(check("http", func(c *zones.Check) { c.Path = "/fail"; c.ExpectStatus = []int{200, 503} }), httpTarget), true, "HTTP 503"},
		{"http refused", probeOf(check("http"), closedPort(t)), false, "connection refused"},
		{"http hung", probeOf(check("http", func(c *zones.Check) { c.Timeout = 200 * time.Millisecond }), hungListener(t)), false, "timeout waiting for response"},
		{"https self-signed", probeOf(check("https"), tlsTarget), false, "TLS: certificate: x509: certificate signed by unknown authority"},
		{"https self-signed, insecure", probeOf(check("https", func(c *zones.Check) { c.Insecure = true }), tlsTarget), true, "HTTP 200"},
		{"tcp", probeOf(check("tcp"), httpTarget), true, "connected"},
		{"tcp refused", probeOf(check("tcp"), closedPort(t)), false, "connection refused"},
		{"dns NOERROR", probeOf(check("dns", func(c *zones.Check) { c.Query, c.QType = "example.net.", dns.TypeSOA }), dnsAddr), true, "DNS NOERROR"},
		{"dns REFUSED", probeOf(check("dns", func(c *zones.Check) { c.Query, c.QType = "example.org.", dns.TypeSOA }), dnsAddr), false, "DNS REFUSED"},
		{"static up", probeOf(check("static"), ""), true, "static up"},
		{"static down", probeOf(check("static", func(c *zones.Check) { c.Up = false }), ""), false, "static down"},
		{"outside the allowlist: not sent", probeOf(check("tcp"), "192.0.2.1:80"), false, "target not allowed"},
	} {
		for _, via := range runners(t, p) {
			if via.name == "loop" && !loopTarget(c.probe).IsValid() {
				continue
			}
			t.Run(c.name+"/"+via.name, func(t *testing.T) {
				r, kept := via.run(c.probe, nil)
				p.release(kept)
				require.Equal(t, c.ok, r.OK, r.Reason)
				require.Equal(t, c.reason, r.Reason)
			})
		}
	}
	require.EqualValues(t, 0, p.kept.Load(), "every connection counted was closed")
}

// TestHTTPSVerified: a certificate the roots trust, for the host name asked.
func TestHTTPSVerified(t *testing.T) {
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { fmt.Fprint(w, "ok") }))
	defer srv.Close()
	pool := srv.Client().Transport.(*http.Transport).TLSClientConfig.RootCAs
	p := &prober{rootCAs: pool, allow: loopback}
	target := hostPort(t, srv.URL)
	r := probeOnce(p, probeOf(check("https", func(c *zones.Check) { c.Host = "example.com" }), target))
	require.True(t, r.OK, r.Reason) // httptest's certificate is for example.com and 127.0.0.1
	r = probeOnce(p, probeOf(check("https", func(c *zones.Check) { c.Host = "www.example.org" }), target))
	require.False(t, r.OK)
	require.Contains(t, r.Reason, "certificate is valid for")
}

func TestProbeAllow(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	defer srv.Close()
	target := hostPort(t, srv.URL)
	p := &prober{allow: []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}}
	r := probeOnce(p, probeOf(check("http"), target))
	require.False(t, r.OK)
	require.Equal(t, "target not allowed", r.Reason)
	p.allow = []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}
	require.True(t, probeOnce(p, probeOf(check("http"), target)).OK)
}

// dnsBackend serves example.net. SOA and refuses the rest.
func dnsBackend(t *testing.T) string {
	t.Helper()
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	require.NoError(t, err)
	srv := &dns.Server{PacketConn: pc, Handler: dns.HandlerFunc(func(w dns.ResponseWriter, r *dns.Msg) {
		m := new(dns.Msg).SetReply(r)
		if r.Question[0].Name != "example.net." {
			m.Rcode = dns.RcodeRefused
		}
		w.WriteMsg(m)
	})}
	go srv.ActivateAndServe()
	t.Cleanup(func() { srv.Shutdown() })
	return pc.LocalAddr().String()
}

// countingServer answers "all ok" (with Connection: close at /close) and
// counts the connections it accepted.
func countingServer(t *testing.T) (srv *httptest.Server, conns *atomic.Int64) {
	conns = new(atomic.Int64)
	srv = httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/close" {
			w.Header().Set("Connection", "close")
		}
		fmt.Fprint(w, "all ok")
	}))
	srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			conns.Add(1)
		}
	}
	srv.Start()
	t.Cleanup(srv.Close)
	return srv, conns
}

// TestKeepAlive: an http check reuses one connection across probes, gets
// past a connection the server closed while idle, and keeps none when the
// check, the server or the budget says not to.
func TestKeepAlive(t *testing.T) {
	p := &prober{allow: loopback, maxKept: 10}
	for _, via := range runners(t, p) {
		t.Run(via.name, func(t *testing.T) {
			srv, conns := countingServer(t)
			target := hostPort(t, srv.URL)
			run := func(pr *zones.Probe, kept *conn) *conn {
				t.Helper()
				r, kept := via.run(pr, kept)
				require.True(t, r.OK, r.Reason)
				return kept
			}

			pr := probeOf(check("http", func(c *zones.Check) { c.ExpectBody = "ok" }), target)
			var kept *conn
			for range 5 {
				kept = run(pr, kept)
				require.NotNil(t, kept)
			}
			require.EqualValues(t, 1, conns.Load(), "five probes, one connection")
			require.EqualValues(t, 1, p.kept.Load())

			srv.CloseClientConnections() // as a server's idle timeout does
			kept = run(pr, kept)
			require.NotNil(t, kept)
			require.EqualValues(t, 2, conns.Load(), "a closed connection is replaced, and the probe still succeeds")
			require.EqualValues(t, 1, p.kept.Load())

			srv.Close()
			r, kept := via.run(pr, kept)
			require.False(t, r.OK)
			require.Equal(t, "connection refused", r.Reason, "a dead server fails the probe on the fresh connection")
			require.Nil(t, kept)
			require.EqualValues(t, 0, p.kept.Load())
		})
	}
}

func TestKeepAliveNotKept(t *testing.T) {
	srv, conns := countingServer(t)
	target := hostPort(t, srv.URL)
	for _, c := range []struct {
		name    string
		maxKept int64
		check   *zones.Check
	}{
		{"keepalive: false", 10, check("http", func(c *zones.Check) { c.KeepAlive = false })},
		{"the server says close", 10, check("http", func(c *zones.Check) { c.Path = "/close" })},
		{"over the budget", 0, check("http")},
	} {
		p := &prober{allow: loopback, maxKept: c.maxKept}
		for _, via := range runners(t, p) {
			t.Run(c.name+"/"+via.name, func(t *testing.T) {
				before := conns.Load()
				for range 3 {
					r, kept := via.run(probeOf(c.check, target), nil)
					require.True(t, r.OK, r.Reason)
					require.Nil(t, kept)
				}
				require.EqualValues(t, 3, conns.Load()-before)
				require.EqualValues(t, 0, p.kept.Load())
			})
		}
	}
}

// serveEach listens on loopback and runs serve on each connection it
// accepts, closing the connection after.
func serveEach(t *testing.T, serve func(net.Conn)) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				serve(c)
			}()
		}
	}()
	return ln.Addr().String()
}

// splitServer answers every request on a connection with pieces, written
// 20 ms apart, and closes the connection after them if closeAfter.
func splitServer(t *testing.T, pieces []string, closeAfter bool) string {
	return serveEach(t, func(c net.Conn) {
		br := bufio.NewReader(c)
		for {
			if _, err := http.ReadRequest(br); err != nil {
				return
			}
			for _, p := range pieces {
				if _, err := io.WriteString(c, p); err != nil {
					return
				}
				time.Sleep(20 * time.Millisecond)
			}
			if closeAfter {
				return
			}
		}
	})
}

// TestResponseInPieces: a response read in several reads, cut anywhere
// (mid-line, mid-body, between chunks, before a folded line), gives the
// same result as in one, and the connection is kept exactly when the
// response said it may be.
func TestResponseInPieces(t *testing.T) {
	big := strings.Repeat("x", 40000) // more than one read buffer
	for _, c := range []struct {
		name       string
		pieces     []string
		closeAfter bool
		ok         bool
		reason     string
		kept       bool
	}{
		{"length, cut in a header and the body", []string{"HTTP/1.1 200 OK\r\nContent-Le", "ngth: 6\r\n\r\nall", " ok"}, false, true, "HTTP 200", true},
		{"chunked", []string{"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nall\r\n", "3\r\n ok\r\n0\r\n", "\r\n"}, false, true, "HTTP 200", true},
		{"folded header after a cut", []string{"HTTP/1.1 200 OK\r\nX-A: 1\r\n", " 2\r\nContent-Length: 6\r\n\r\nall ok"}, false, true, "HTTP 200", true},
		{"interim response first", []string{"HTTP/1.1 100 Continue\r\n\r\n", "HTTP/1.1 200 OK\r\nContent-Length: 6\r\n\r\nall ok"}, false, true, "HTTP 200", true},
		{"body to the connection's end", []string{"HTTP/1.1 200 OK\r\n\r\nall", " ok"}, true, true, "HTTP 200", false},
		{"long body", []string{"HTTP/1.1 200 OK\r\nContent-Length: 40006\r\n\r\n" + big[:20000], big[20000:] + "all ok"}, false, true, "HTTP 200", true},
		{"cut short", []string{"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nall"}, true, false, "bad response: connection closed", false},
		{"status cut short", []string{"HTTP/1.1 20"}, true, false, "bad response: connection closed", false},
	} {
		target := splitServer(t, c.pieces, c.closeAfter)
		p := &prober{allow: loopback, maxKept: 10}
		for _, via := range runners(t, p) {
			t.Run(c.name+"/"+via.name, func(t *testing.T) {
				pr := probeOf(check("http", func(c *zones.Check) { c.ExpectBody = "all ok" }), target)
				r, kept := via.run(pr, nil)
				require.Equal(t, c.ok, r.OK, r.Reason)
				require.Equal(t, c.reason, r.Reason)
				require.Equal(t, c.kept, kept != nil)
				if kept != nil { // and it carries the next probe
					r, kept = via.run(pr, kept)
					require.True(t, r.OK, r.Reason)
					require.NotNil(t, kept)
				}
				p.release(kept)
				require.EqualValues(t, 0, p.kept.Load())
			})
		}
	}
}

// TestRequestLongerThanSocketBuffers: a request the socket cannot take in
// one write (a path of 16 MB, to a server that starts reading only after
// a pause) is written in parts as the server drains it, and answered.
func TestRequestLongerThanSocketBuffers(t *testing.T) {
	target := serveEach(t, func(c net.Conn) {
		time.Sleep(100 * time.Millisecond) // the prober's writes fill the buffers meanwhile
		if _, err := http.ReadRequest(bufio.NewReader(c)); err == nil {
			io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
		}
	})
	pr := probeOf(check("http", func(c *zones.Check) {
		c.Path = "/" + strings.Repeat("a", 16<<20)
		c.Timeout = 10 * time.Second
	}), target)
	p := &prober{allow: loopback, maxKept: 10}
	for _, via := range runners(t, p) {
		t.Run(via.name, func(t *testing.T) {
			r, kept := via.run(pr, nil)
			p.release(kept)
			require.True(t, r.OK, r.Reason)
		})
	}
}
