package resolver

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sync"
	"time"

	"github.com/miekg/dns"
)

// Timeouts for TCP clients. A resolver keeps a connection for several
// queries (no per-connection query cap), but an idle or stalled one is
// closed so it cannot hold a slot forever.
const (
	tcpIdleTimeout = 10 * time.Second
	readTimeout    = 2 * time.Second
	writeTimeout   = 2 * time.Second
)

// Listener is a bound UDP socket and TCP listener on the same address.
type Listener struct {
	UDP net.PacketConn
	TCP net.Listener
}

// Addr returns the address both sockets are bound to.
func (l Listener) Addr() string { return l.UDP.LocalAddr().String() }

// Listen binds UDP and TCP on addr. With port 0 it finds a port free for
// both, so tests can ask for any port and query it over either transport.
func Listen(addr string) (Listener, error) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return Listener{}, err
	}
	var last error
	for range 20 {
		pc, err := net.ListenPacket("udp", addr)
		if err != nil {
			return Listener{}, err
		}
		p := port
		if p == "0" {
			_, p, _ = net.SplitHostPort(pc.LocalAddr().String())
		}
		ln, err := net.Listen("tcp", net.JoinHostPort(host, p))
		if err == nil {
			return Listener{UDP: pc, TCP: ln}, nil
		}
		pc.Close()
		last = err
		if port != "0" {
			break
		}
	}
	return Listener{}, fmt.Errorf("listen %s: %w", addr, last)
}

// DefaultMaxTCPConns caps concurrent TCP connections per listener.
const DefaultMaxTCPConns = 1000

// ServeOptions tune Serve; the zero value gives the defaults.
type ServeOptions struct {
	// MaxTCPConns caps concurrent TCP connections per listener; one more is
	// accepted and closed at once. Default DefaultMaxTCPConns.
	MaxTCPConns int
}

// Serve answers DNS on the listeners until ctx is cancelled, then stops
// accepting, lets in-flight queries finish (up to 5 s) and returns.
func Serve(ctx context.Context, h dns.Handler, opts ServeOptions, lns ...Listener) error {
	if opts.MaxTCPConns <= 0 {
		opts.MaxTCPConns = DefaultMaxTCPConns
	}
	var servers []*dns.Server
	for _, l := range lns {
		servers = append(servers,
			&dns.Server{PacketConn: l.UDP, Handler: h, UDPSize: 65535,
				ReadTimeout: readTimeout, WriteTimeout: writeTimeout},
			&dns.Server{Listener: limit(l.TCP, opts.MaxTCPConns), Handler: h, MaxTCPQueries: -1,
				ReadTimeout: readTimeout, WriteTimeout: writeTimeout,
				IdleTimeout: func() time.Duration { return tcpIdleTimeout }},
		)
	}
	errc := make(chan error, len(servers))
	var wg sync.WaitGroup
	for _, s := range servers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := s.ActivateAndServe(); err != nil {
				errc <- err
			}
		}()
	}
	var err error
	select {
	case <-ctx.Done():
	case err = <-errc:
	}
	sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	for _, s := range servers {
		if e := s.ShutdownContext(sctx); e != nil && !errors.Is(e, context.DeadlineExceeded) && err == nil && ctx.Err() == nil {
			err = e
		}
	}
	wg.Wait()
	return err
}

// limitListener accepts at most a fixed number of connections at once. One
// more is accepted and closed at once: the client learns immediately, and a
// flood of idle connections cannot hold every slot of the kernel backlog.
type limitListener struct {
	net.Listener
	slots chan struct{}
}

func limit(l net.Listener, n int) net.Listener {
	return &limitListener{Listener: l, slots: make(chan struct{}, n)}
}

func (l *limitListener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		select {
		case l.slots <- struct{}{}:
			return &limitedConn{Conn: c, release: func() { <-l.slots }}, nil
		default:
			c.Close()
		}
	}
}

type limitedConn struct {
	net.Conn
	once    sync.Once
	release func()
}

func (c *limitedConn) Close() error {
	err := c.Conn.Close()
	c.once.Do(c.release)
	return err
}
