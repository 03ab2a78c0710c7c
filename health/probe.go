package health

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/geodns/geodns/internal/rawconn"
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

// prober sends probes. The only state it keeps between probes is the
// count of connections held open for http(s) keep-alive; the connections
// themselves belong to the probes that use them.
type prober struct {
	allow   []netip.Prefix // empty: any target
	rootCAs *x509.CertPool // nil: the system's
	// maxKept bounds the connections kept open at once (file descriptors:
	// the rest of the server needs some too). 0: none are kept.
	maxKept int64
	kept    atomic.Int64
}

// conn is a connection kept open between the probes of one target. A probe
// owns it while it runs; between runs its scheduled probe holds it.
type conn struct {
	net.Conn     // a goroutine's probe (https); nil for the event loop's,
	fd       int // whose connection is this socket
}

// close closes the connection.
func (c *conn) close() {
	if c.Conn != nil {
		c.Conn.Close()
	} else {
		closeFD(c.fd)
	}
}

// looper runs the probes loopTarget accepts, telling a loopOwner
// how each ends (loop_linux.go).
type looper interface {
	submit(p *probe, spec *zones.Probe, target netip.AddrPort, kept *conn)
	stop()
}

// loopOwner hears how the loop's probes end.
type loopOwner interface {
	// finished takes a probe's result and the connection kept for its
	// next run (nil: none).
	finished(p *probe, r Result, kept *conn)
	// abandoned: the loop stopped before the probe finished.
	abandoned(p *probe)
}

// loopTarget is the target of a probe an event loop runs, parsed once per
// zone set rather than per probe; the zero AddrPort for the others. The
// loop runs tcp and plain http checks; TLS (https), DNS and static checks
// run in a goroutine each, as do targets with an IPv6 zone (it needs the
// interface's index: net.Dialer knows how).
func loopTarget(pr *zones.Probe) netip.AddrPort {
	if pr.Check.Type != "tcp" && pr.Check.Type != "http" {
		return netip.AddrPort{}
	}
	ap, err := netip.ParseAddrPort(pr.Target)
	if err != nil || ap.Addr().Zone() != "" {
		return netip.AddrPort{}
	}
	return ap
}

// readers lends response buffers to running probes: a kept connection has
// nothing to buffer between probes, so thirty thousand of them need no
// buffer of their own.
var readers = sync.Pool{New: func() any { return bufio.NewReaderSize(nil, 2048) }}

// allowed reports whether a target may be probed (probe_allow).
func (p *prober) allowed(target string) bool {
	if len(p.allow) == 0 {
		return true
	}
	ap, err := netip.ParseAddrPort(target)
	return err == nil && p.allowedAddr(ap)
}

func (p *prober) allowedAddr(ap netip.AddrPort) bool {
	return len(p.allow) == 0 || slices.ContainsFunc(p.allow, func(pr netip.Prefix) bool { return pr.Contains(ap.Addr().Unmap()) })
}

// probe runs one probe to completion or its check's timeout. kept is the
// connection the last probe of this target left open, or nil; the one it
// returns is for the next probe (nil: none was kept).
func (p *prober) probe(ctx context.Context, pr *zones.Probe, kept *conn) (Result, *conn) {
	c := pr.Check
	if c.Type == "static" {
		if c.Up {
			return Result{OK: true, Reason: "static up"}, nil
		}
		return Result{Reason: "static down"}, nil
	}
	if !p.allowed(pr.Target) {
		p.release(kept)
		return Result{Reason: "target not allowed"}, nil
	}
	start := time.Now()
	deadline := start.Add(c.Timeout)
	var r Result
	switch c.Type {
	case "tcp":
		r = p.tcp(ctx, pr.Target, deadline)
	case "http", "https":
		r, kept = p.http(ctx, pr.Target, c, kept, deadline)
	case "dns":
		r = p.dns(ctx, pr.Target, c, deadline)
	default:
		r = Result{Reason: "unknown check type " + c.Type}
	}
	r.RTT = time.Since(start)
	return r, kept
}

// release closes a kept connection (nil: nothing to do).
func (p *prober) release(c *conn) {
	if c != nil {
		c.close()
		p.kept.Add(-1)
	}
}

// dial connects to a target. Its connection closes with a reset (linger
// 0), as HAProxy's checks do: at thousands of probes a second, TIME_WAIT
// sockets would fill the ephemeral ports and make every connect slower.
func (p *prober) dial(ctx context.Context, target string, deadline time.Time) (*net.TCPConn, error) {
	d := net.Dialer{KeepAlive: -1, Deadline: deadline} // a probe's own request is the liveness test; no keep-alive timers
	c, err := d.DialContext(ctx, "tcp", target)
	if err != nil {
		return nil, err
	}
	tc := c.(*net.TCPConn)
	tc.SetLinger(0)
	return tc, nil
}

func (p *prober) tcp(ctx context.Context, target string, deadline time.Time) Result {
	conn, err := p.dial(ctx, target, deadline)
	if err != nil {
		return Result{Reason: reason(err)}
	}
	conn.Close()
	return Result{OK: true, Reason: "connected"}
}

// http sends one GET. With keep-alive (the default) it goes on the
// connection the last probe left open, if any, and leaves the connection
// open for the next; otherwise on a fresh connection with Connection: close.
func (p *prober) http(ctx context.Context, target string, c *zones.Check, kept *conn, deadline time.Time) (Result, *conn) {
	if kept != nil {
		r, kept, stale := p.exchange(kept, target, c, deadline)
		if !stale {
			return r, kept
		}
		// The server closed the idle connection (its keep-alive timeout,
		// or a restart): that says nothing of its health, a new one will.
	}
	cn, err := p.open(ctx, target, c, deadline)
	if err != nil {
		return Result{Reason: reason(err)}, nil
	}
	r, cn, _ := p.exchange(cn, target, c, deadline)
	return r, cn
}

// open connects to an http(s) target; https checks do the TLS handshake.
func (p *prober) open(ctx context.Context, target string, c *zones.Check, deadline time.Time) (*conn, error) {
	tcp, err := p.dial(ctx, target, deadline)
	if err != nil {
		return nil, err
	}
	nc := rawconn.Wrap(tcp)
	if c.Type == "https" {
		name := c.Host
		if name == "" {
			ap, _ := netip.ParseAddrPort(target)
			name = ap.Addr().String() // verified against the certificate's IP SANs
		}
		tc := tls.Client(nc, &tls.Config{ServerName: name, InsecureSkipVerify: c.Insecure, RootCAs: p.rootCAs, MinVersion: tls.VersionTLS12})
		tc.SetDeadline(deadline)
		if err := tc.Handshake(); err != nil {
			tcp.Close()
			return nil, fmt.Errorf("TLS: %s", reason(err))
		}
		nc = tc
	}
	p.kept.Add(1) // counted from here; release uncounts it
	return &conn{Conn: nc}, nil
}

// exchange sends the request on cn and reads the response. It returns the
// connection if it may serve the next probe, else closes it. stale reports
// a connection the server had closed before the request was sent.
func (p *prober) exchange(cn *conn, target string, c *zones.Check, deadline time.Time) (r Result, next *conn, stale bool) {
	keep := c.KeepAlive && p.kept.Load() <= p.maxKept
	defer func() {
		if next == nil {
			p.release(cn)
		}
	}()
	cn.SetDeadline(deadline)
	if _, err := io.WriteString(cn, request(target, c, keep)); err != nil {
		return Result{Reason: reason(err)}, nil, closedByPeer(err)
	}
	br := readers.Get().(*bufio.Reader)
	br.Reset(cn)
	resp, err := readResponse(br, c.ExpectBody != "", bodyLimit(c, keep))
	extra := br.Buffered() // bytes past the response: nothing a reused connection may carry
	br.Reset(nil)
	readers.Put(br)
	if err != nil {
		if r := reason(err); r == "timeout" {
			return Result{Reason: "timeout waiting for response"}, nil, false
		}
		return Result{Reason: "bad response: " + reason(err)}, nil, closedByPeer(err) && extra == 0
	}
	if keep && resp.reusable && extra == 0 {
		cn.SetDeadline(time.Time{})
		next = cn
	}
	return judge(resp, c), next, false
}

// request is the GET an http(s) check sends; keep asks the server to keep
// the connection open for the next probe.
func request(target string, c *zones.Check, keep bool) string {
	return string(appendRequest(nil, target, c, keep))
}

func appendRequest(b []byte, target string, c *zones.Check, keep bool) []byte {
	host := c.Host
	if host == "" {
		host = target
	}
	b = append(append(append(append(b, "GET "...), c.Path...), " HTTP/1.1\r\nHost: "...), host...)
	b = append(b, "\r\nUser-Agent: geodns-health\r\n"...)
	if !keep {
		b = append(b, "Connection: close\r\n"...)
	}
	return append(b, "\r\n"...)
}

// bodyLimit is how many body bytes a probe reads: what expect_body needs,
// or all of it (up to maxBody) to reuse the connection.
func bodyLimit(c *zones.Check, keep bool) int64 {
	if c.ExpectBody != "" || keep {
		return maxBody
	}
	return 0
}

// statusText names the status codes for results, made once: a result per
// probe, thousands a second, would otherwise build the same strings.
var statusText = func() (t [600]string) {
	for code := 100; code < len(t); code++ {
		t[code] = "HTTP " + strconv.Itoa(code)
	}
	return t
}()

// judge turns a response into the probe's result.
func judge(resp response, c *zones.Check) Result {
	var status string
	if resp.status < len(statusText) {
		status = statusText[resp.status]
	} else {
		status = "HTTP " + strconv.Itoa(resp.status)
	}
	if !slices.Contains(c.ExpectStatus, resp.status) {
		return Result{Reason: status}
	}
	if c.ExpectBody != "" && !bytes.Contains(resp.body, []byte(c.ExpectBody)) {
		return Result{Reason: fmt.Sprintf("%s, body lacks %q", status, c.ExpectBody)}
	}
	return Result{OK: true, Reason: status}
}

// closedByPeer tells an error of a connection the other side had closed
// before answering. A response cut short (io.ErrUnexpectedEOF) is not
// one: that server did answer, badly.
func closedByPeer(err error) bool {
	return errors.Is(err, io.EOF) || errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE)
}

func (p *prober) dns(ctx context.Context, target string, c *zones.Check, deadline time.Time) Result {
	ctx, cancel := context.WithDeadline(ctx, deadline)
	defer cancel()
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
