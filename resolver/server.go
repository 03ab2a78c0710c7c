package resolver

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"runtime"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
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
	// more UDP sockets on the same address (SO_REUSEPORT), one per core:
	// each datagram goes to the socket of the CPU that received it
	// (spread_linux.go), and each socket has its own reader.
	more []net.PacketConn
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
	// One UDP socket per core. With one, no SO_REUSEPORT: a second server
	// started on the same port by mistake then fails instead of silently
	// taking half the traffic.
	sockets := runtime.GOMAXPROCS(0)
	lc := net.ListenConfig{}
	if sockets > 1 {
		lc.Control = reusePort
	}
	var last error
	for range 20 {
		// The first bind is exclusive (no SO_REUSEPORT): it fails if any
		// socket holds the port, and port 0 gets a port nobody shares. The
		// group then binds that port; a foreign socket joining it would
		// silently take a share of the queries.
		pc, err := net.ListenPacket("udp", addr)
		if err != nil {
			return Listener{}, err
		}
		p := port
		if p == "0" {
			_, p, _ = net.SplitHostPort(pc.LocalAddr().String())
		}
		bound := pc.LocalAddr().String()
		if sockets > 1 {
			pc.Close()
			if pc, err = lc.ListenPacket(context.Background(), "udp", bound); err != nil {
				last = err
				continue
			}
		}
		ln, err := net.Listen("tcp", net.JoinHostPort(host, p))
		if err == nil {
			l := Listener{UDP: pc, TCP: ln}
			for range sockets - 1 {
				more, err := lc.ListenPacket(context.Background(), "udp", bound)
				if err != nil {
					l.Close()
					return Listener{}, fmt.Errorf("listen %s: %w", addr, err)
				}
				l.more = append(l.more, more)
			}
			for _, pc := range l.udpSockets() {
				if uc, ok := pc.(*net.UDPConn); ok {
					uc.SetReadBuffer(udpReadBuffer) // the kernel caps it at net.core.rmem_max, silently
					fragments(uc, false)            // best effort, as the buffer
				}
			}
			if n := len(l.more) + 1; n > 1 && steerable(l.UDP.LocalAddr().(*net.UDPAddr).AddrPort().Addr(), n) {
				spread(l.UDP, n) // best effort: without it the kernel hashes
			}
			return l, nil
		}
		pc.Close()
		last = err
		if port != "0" {
			break
		}
	}
	return Listener{}, fmt.Errorf("listen %s: %w", addr, last)
}

// MaxUnfragmentedUDP is the largest UDP response that crosses an Ethernet
// link (MTU 1500) in one IPv6 datagram: 1500 less 40 bytes of IPv6 and 8
// of UDP header.
const MaxUnfragmentedUDP = 1452

// AllowFragments lets the listener's UDP answers leave in fragments when
// they are larger than the interface MTU (Linux; elsewhere the system
// decides). Listen makes them leave whole with Don't Fragment set, which
// loses any answer above the link MTU: a server whose max UDP size is
// above MaxUnfragmentedUDP calls this.
func (l Listener) AllowFragments() error {
	var errs []error
	for _, pc := range l.udpSockets() {
		if uc, ok := pc.(*net.UDPConn); ok {
			errs = append(errs, fragments(uc, true))
		}
	}
	return errors.Join(errs...)
}

// udpSockets returns the listener's UDP sockets: UDP and the more.
func (l Listener) udpSockets() []net.PacketConn {
	return append([]net.PacketConn{l.UDP}, l.more...)
}

// Close closes every socket of the listener.
func (l Listener) Close() {
	l.TCP.Close()
	for _, pc := range l.udpSockets() {
		pc.Close()
	}
}

// udpReadBuffer is the receive buffer asked for each UDP socket. The
// system default (208 KiB on Linux) holds about 270 small queries, 3 ms at
// 100k qps: any pause of a reader longer than that (a big zone compiling on
// the same core, a collection) drops queries in the kernel. 4 MiB holds
// about 50 ms; the kernel gives at most net.core.rmem_max.
const udpReadBuffer = 4 << 20

func reusePort(_, _ string, c syscall.RawConn) error {
	var serr error
	err := c.Control(func(fd uintptr) {
		serr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, unix.SO_REUSEPORT, 1)
	})
	return errors.Join(err, serr)
}

// DefaultMaxTCPConns caps concurrent TCP connections per listener.
const DefaultMaxTCPConns = 1000

// ServeOptions tune Serve; the zero value gives the defaults.
type ServeOptions struct {
	// MaxTCPConns caps concurrent TCP connections per listener. One more
	// takes the slot of the connection idle the longest, or is closed at
	// once when none is idle. Default DefaultMaxTCPConns.
	MaxTCPConns int
	Log         *slog.Logger // default slog.Default()
	// ReaderProcs, where each UDP reader and TCP event loop holds a P of
	// its own while it waits (Linux, udp_linux.go, tcploop_linux.go), is
	// called with the number of them Serve starts; the function it
	// returns is called when they stop.
	// GOMAXPROCS is the program's to set, not a library's: cmd/geodns
	// adds a P per reader so the readers take none from the rest of the
	// program. Default nil: the setting is left as it is.
	ReaderProcs func(readers int) (done func())
}

// WireHandler answers queries in wire format, over UDP and TCP; *Handler
// is one.
type WireHandler interface {
	ServeWire(q []byte, remote netip.Addr, tcp bool, out []byte) []byte
}

// TimedWireHandler is a WireHandler that takes the time a query was read:
// the UDP readers read the clock once per batch and hand that reading to
// ServeWireAt, so a query that needs the time does not read it again.
// *Handler is one.
type TimedWireHandler interface {
	WireHandler
	ServeWireAt(q []byte, remote netip.Addr, tcp bool, out []byte, now time.Time) []byte
}

// Streamer is a WireHandler that also answers some TCP messages with a
// stream of messages (zone transfers; *xfr.Server is one). Claims must be
// cheap: the TCP path asks it for every message.
type Streamer interface {
	Claims(q []byte) bool
	// Stream answers q, handing each message to send, which frames and
	// writes it; false (from send or Stream) closes the connection.
	Stream(q []byte, remote netip.Addr, send func([]byte) bool) bool
}

// Serve answers DNS on the listeners until ctx is cancelled, then stops
// accepting, lets in-flight queries finish (up to 5 s) and returns.
func Serve(ctx context.Context, h WireHandler, opts ServeOptions, lns ...Listener) error {
	if opts.MaxTCPConns <= 0 {
		opts.MaxTCPConns = DefaultMaxTCPConns
	}
	if opts.Log == nil {
		opts.Log = slog.Default()
	}
	var servers []*tcpServer
	var udp []net.PacketConn
	var loops *tcpLoops
	if len(lns) > 0 {
		loops = newTCPLoops(runtime.GOMAXPROCS(0), opts.Log) // one a core, for every listener
		defer loops.stop()
	}
	for _, l := range lns {
		servers = append(servers, newTCPServer(l.TCP, opts.MaxTCPConns, h, opts.Log, loops))
		udp = append(udp, l.udpSockets()...)
	}
	var udpWG sync.WaitGroup
	stopped := make(chan struct{})
	if readers := len(udp) + loops.count(); readersHoldProcs && opts.ReaderProcs != nil && readers > 0 {
		defer opts.ReaderProcs(readers)()
	}
	for _, pc := range udp {
		c, ok := pc.(*net.UDPConn)
		if !ok {
			return fmt.Errorf("serve: %T is not a UDP socket", pc)
		}
		udpWG.Add(1)
		go func() {
			defer udpWG.Done()
			serveUDP(c, h, opts.Log, stopped)
		}()
	}
	defer func() {
		close(stopped)
		for _, pc := range udp {
			pc.Close()
		}
		udpWG.Wait()
	}()
	errc := make(chan error, len(servers))
	var wg sync.WaitGroup
	for _, s := range servers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := s.serve(); err != nil {
				errc <- err
			}
		}()
	}
	var err error
	select {
	case <-ctx.Done():
	case err = <-errc:
	}
	grace, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	var shut sync.WaitGroup
	for _, s := range servers {
		shut.Go(func() { s.shutdown(grace.Done()) })
	}
	shut.Wait()
	wg.Wait()
	return err
}
