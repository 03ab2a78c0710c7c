package health

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/geodns/geodns/zones"
	"github.com/miekg/dns"
)

// Result is the outcome of one probe.
type Result struct {
	OK     bool
	Reason string // what was seen: "HTTP 200", "connection refused", "timeout", ...
	RTT    time.Duration
}

// maxBody bounds how much of an HTTP body is read for expect_body.
const maxBody = 64 << 10

// prober sends probes. It holds no per-probe state.
type prober struct {
	allow   []netip.Prefix // empty: any target
	rootCAs *x509.CertPool // nil: the system's
}

// allowed reports whether a target may be probed (probe_allow).
func (p *prober) allowed(target string) bool {
	if len(p.allow) == 0 {
		return true
	}
	ap, err := netip.ParseAddrPort(target)
	if err != nil {
		return false
	}
	return slices.ContainsFunc(p.allow, func(pr netip.Prefix) bool { return pr.Contains(ap.Addr().Unmap()) })
}

// probe runs one probe to completion or its check's timeout.
func (p *prober) probe(ctx context.Context, pr *zones.Probe) Result {
	c := pr.Check
	if c.Type == "static" {
		if c.Up {
			return Result{OK: true, Reason: "static up"}
		}
		return Result{Reason: "static down"}
	}
	if !p.allowed(pr.Target) {
		return Result{Reason: "target not allowed"}
	}
	ctx, cancel := context.WithTimeout(ctx, c.Timeout)
	defer cancel()
	start := time.Now()
	var r Result
	switch c.Type {
	case "tcp":
		r = p.tcp(ctx, pr.Target)
	case "http", "https":
		r = p.http(ctx, pr.Target, c)
	case "dns":
		r = p.dns(ctx, pr.Target, c)
	default:
		r = Result{Reason: "unknown check type " + c.Type}
	}
	r.RTT = time.Since(start)
	return r
}

// dial connects to a target. Its connection closes with a reset (linger
// 0), as HAProxy's checks do: at thousands of probes a second, TIME_WAIT
// sockets would fill the ephemeral ports and make every connect slower.
func (p *prober) dial(ctx context.Context, target string) (*net.TCPConn, error) {
	var d net.Dialer
	c, err := d.DialContext(ctx, "tcp", target)
	if err != nil {
		return nil, err
	}
	tc := c.(*net.TCPConn)
	tc.SetLinger(0)
	return tc, nil
}

func (p *prober) tcp(ctx context.Context, target string) Result {
	conn, err := p.dial(ctx, target)
	if err != nil {
		return Result{Reason: reason(err)}
	}
	conn.Close()
	return Result{OK: true, Reason: "connected"}
}

// http sends one GET with Connection: close. A plain request on a fresh
// connection tests what a client would meet, and keeps no state per probe.
func (p *prober) http(ctx context.Context, target string, c *zones.Check) Result {
	tcp, err := p.dial(ctx, target)
	if err != nil {
		return Result{Reason: reason(err)}
	}
	defer tcp.Close()
	var conn net.Conn = tcp
	if dl, ok := ctx.Deadline(); ok {
		conn.SetDeadline(dl)
	}
	host := c.Host
	if host == "" {
		host = target
	}
	if c.Type == "https" {
		name := c.Host
		if name == "" {
			ap, _ := netip.ParseAddrPort(target)
			name = ap.Addr().String() // verified against the certificate's IP SANs
		}
		tc := tls.Client(conn, &tls.Config{ServerName: name, InsecureSkipVerify: c.Insecure, RootCAs: p.rootCAs, MinVersion: tls.VersionTLS12})
		if err := tc.HandshakeContext(ctx); err != nil {
			return Result{Reason: "TLS: " + reason(err)}
		}
		conn = tc
	}
	req := "GET " + c.Path + " HTTP/1.1\r\nHost: " + host + "\r\nUser-Agent: geodns-health\r\nConnection: close\r\n\r\n"
	if _, err := io.WriteString(conn, req); err != nil {
		return Result{Reason: reason(err)}
	}
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		if r := reason(err); r == "timeout" {
			return Result{Reason: "timeout waiting for response"}
		}
		return Result{Reason: "bad response: " + reason(err)}
	}
	defer resp.Body.Close()
	status := fmt.Sprintf("HTTP %d", resp.StatusCode)
	if !slices.Contains(c.ExpectStatus, resp.StatusCode) {
		return Result{Reason: status}
	}
	if c.ExpectBody != "" {
		body, err := io.ReadAll(io.LimitReader(resp.Body, maxBody))
		if err != nil {
			return Result{Reason: status + ", body: " + reason(err)}
		}
		if !strings.Contains(string(body), c.ExpectBody) {
			return Result{Reason: fmt.Sprintf("%s, body lacks %q", status, c.ExpectBody)}
		}
	}
	return Result{OK: true, Reason: status}
}

func (p *prober) dns(ctx context.Context, target string, c *zones.Check) Result {
	m := new(dns.Msg)
	m.SetQuestion(c.Query, c.QType)
	m.RecursionDesired = false
	cl := &dns.Client{Timeout: c.Timeout}
	r, _, err := cl.ExchangeContext(ctx, m, target)
	if err != nil {
		return Result{Reason: reason(err)}
	}
	if r.Rcode != dns.RcodeSuccess {
		return Result{Reason: "DNS " + dns.RcodeToString[r.Rcode]}
	}
	return Result{OK: true, Reason: "DNS NOERROR"}
}

// reason names a network error the way an operator reads it.
func reason(err error) string {
	var ne net.Error
	switch {
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, os.ErrDeadlineExceeded),
		errors.As(err, &ne) && ne.Timeout():
		return "timeout"
	case errors.Is(err, syscall.ECONNREFUSED):
		return "connection refused"
	case errors.Is(err, syscall.ECONNRESET):
		return "connection reset"
	case errors.Is(err, syscall.EHOSTUNREACH), errors.Is(err, syscall.ENETUNREACH):
		return "unreachable"
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return "connection closed"
	}
	var ce *tls.CertificateVerificationError
	if errors.As(err, &ce) {
		return "certificate: " + ce.Err.Error()
	}
	return err.Error()
}
