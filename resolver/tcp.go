package resolver

import (
	"encoding/binary"
	"errors"
	"log/slog"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/geodns/geodns/internal/rawconn"
)

// DNS over TCP (RFC 7766) with the same wire path as UDP: each connection
// is read by an event loop (on Linux, tcploop_linux.go) or a goroutine of
// its own (elsewhere, and after a loop hands it over), which reads
// length-prefixed queries (tcpConnLoop.got), answers each with
// ServeWire into the connection's own output buffer and writes that buffer
// when no complete query is left buffered, or when it holds tcpFlushAt
// bytes. So a client that pipelines gets its answers in one write per
// batch, and a query costs no dns.Msg when the cache answers it. Only
// those writes reach the socket: there is no buffered writer to spill on
// its own. Reads go into the connection's own buffer, and after a read
// that drained the socket the connection waits for data rather than
// reading again to find none (rawconn.ReadLoop; a loop's epoll is
// level-triggered): per batch, the poller's wait, one read and one write.
//
// Every input is hostile until bounded:
//   - A write that has to wait for the client is reset when the client
//     takes less than 16 KB (rawconn.MinProgress) in a writeTimeout,
//     counted from when it first has to wait (rawconn.WriteWithin). That is
//     the budget for unread answers: the socket buffers, one batch here,
//     and writeTimeout to take them; a client that keeps reading, a
//     secondary on a slow link, goes on. The deadline is set only for a
//     write that waits, so a write the socket takes at once (nearly all)
//     costs no timer, and none meets a stale one.
//   - A connection waits tcpIdleTimeout for its next query, and readTimeout
//     for its first one, for the rest of a query once part has come, and
//     for its next one when it goes idle with more than half the slots
//     taken (Knot too shortens idle timeouts when it fills up). Only an
//     answer restarts the wait: messages dropped unanswered buy no time.
//   - At the cap, a new connection takes the slot of the connection idle
//     the longest: one waiting for a query, never one answering. With none
//     idle it is closed at once.
//
// Read deadlines are renewed only when half of one has gone: setting one is
// a timer update in the runtime, which cost more than the answer itself
// when done per query. So an idle connection is closed after between half
// and all of its timeout.

// tcpFlushAt is the output a batch of pipelined answers may reach before
// it is written without waiting for the batch to end.
const tcpFlushAt = 16 << 10

// tcpServer serves one listener.
type tcpServer struct {
	ln     net.Listener
	loops  *tcpLoops // on Linux, the event loops its connections are served from
	h      WireHandler
	stream Streamer // h, if it is one: zone transfers
	log    *slog.Logger
	max    int       // connections at once
	epoch  time.Time // idle stamps count from it

	closing atomic.Bool
	live    atomic.Int32 // connections holding a slot; changed under mu
	mu      sync.Mutex
	conns   []*tcpConn           // every connection still running, evicted ones too
	clients map[netip.Prefix]int // connections running per client network (clientNet), under mu
	wg      sync.WaitGroup       // one per connection
}

// tcpConn is a connection and whether it waits for a query.
type tcpConn struct {
	// Conn is nil while an event loop serves the connection (loop, fd; see
	// tcploop_linux.go), and set when the loop hands it to a goroutine.
	// Changed by the connection's owner, under the server's mu.
	net.Conn
	loop *tcpLoop
	fd   int
	// idle is when the connection began waiting for a query (nanoseconds
	// after the server's epoch, > 0), 0 while it answers, or evicted. The
	// connection's goroutine moves it between waiting and answering; an
	// evictor takes it from waiting to evicted, by compare-and-swap, so
	// one answering is never evicted.
	idle   atomic.Int64
	i      int          // index in conns, under mu
	client netip.Prefix // its client's network: clientNet
	born   int64        // its idle stamp when accepted: still that, it has asked nothing yet
}

// A client's share: once half the slots are taken, a client network with
// an eighth of them answering, or not yet asked anything, gets no more. A
// slot answering is never taken back (an idle one is: evictLocked), so one
// client pipelining queries it never reads could otherwise hold every
// slot, a write timeout at a time, from one address (an attack run: 60
// connections against 50 slots answered 7 of 111 others' queries). New
// connections count too: a burst of them is accepted before any has read
// its first query. Clients are told apart by network, as RRL does: /32,
// and /64 for IPv6. Called under mu; it scans the connections only for a
// client with that many.
func (s *tcpServer) fullFor(client netip.Prefix) bool {
	// At least 4: with a handful of slots (tests, a lab) one client's
	// connection caught between its answer and its next wait would do.
	share := max(s.max/8, 4)
	if int(s.live.Load()) < s.max/2 || s.clients[client] < share {
		return false
	}
	answering := 0
	for _, c := range s.conns {
		if v := c.idle.Load(); c.client == client && (v == 0 || v == c.born) {
			answering++
		}
	}
	return answering >= share
}

// clientNet is a client's network: its address, or its /64.
func clientNet(a netip.Addr) netip.Prefix {
	a = a.Unmap()
	if a.Is4() {
		return netip.PrefixFrom(a, 32)
	}
	p, _ := a.Prefix(64)
	return p
}

const evicted = -1

func newTCPServer(ln net.Listener, max int, h WireHandler, log *slog.Logger, loops *tcpLoops) *tcpServer {
	st, _ := h.(Streamer)
	return &tcpServer{ln: ln, h: h, stream: st, log: log, max: max, epoch: time.Now(), loops: loops, clients: map[netip.Prefix]int{}}
}

// stamp returns t as an idle stamp: > 0 and rising with t.
func (s *tcpServer) stamp(t time.Time) int64 { return int64(t.Sub(s.epoch)) + 1 }

// serve accepts connections until shutdown closes the listener.
func (s *tcpServer) serve() error {
	var backoff time.Duration
	for {
		nc, err := s.ln.Accept()
		if err != nil {
			if s.closing.Load() {
				return nil
			}
			if errors.Is(err, net.ErrClosed) {
				return err
			}
			// Out of descriptors or memory, or an aborted handshake: keep
			// serving the connections there are and try again, as net/http
			// does.
			backoff = min(max(2*backoff, 5*time.Millisecond), time.Second)
			s.log.Warn("TCP accept failed", "error", err, "retry_in", backoff)
			time.Sleep(backoff)
			continue
		}
		backoff = 0
		now := time.Now()
		c := &tcpConn{fd: -1, born: s.stamp(now)}
		c.idle.Store(c.born)
		k := &tcpConnLoop{s: s, c: c, remote: addrOf(nc.RemoteAddr()), idle: c.idle.Load(),
			buf: make([]byte, 4096), out: make([]byte, 0, 4096)}
		loop := s.loops.pick()
		if loop != nil {
			// Served by an event loop from its own descriptor; the Go
			// connection goes, leaving the runtime's poller (tcploop_linux.go).
			if c.fd = adopt(nc); c.fd >= 0 {
				c.loop = loop
			}
		}
		if c.loop == nil {
			c.Conn = rawconn.Wrap(nc) // read and written with raw system calls (see rawconn)
		}
		s.mu.Lock()
		if s.closing.Load() {
			s.mu.Unlock()
			c.close()
			return nil
		}
		c.client = clientNet(k.remote)
		if s.fullFor(c.client) {
			s.mu.Unlock()
			c.close()
			continue
		}
		if int(s.live.Load()) >= s.max {
			victim := s.evictLocked()
			if victim == nil {
				// Every slot answers: the client learns at once, and a flood
				// of connections cannot fill the kernel's backlog.
				s.mu.Unlock()
				c.close()
				continue
			}
			// It was waiting for a query: it ends now.
			if victim.loop != nil {
				victim.loop.wake()
			} else {
				victim.Close()
			}
		}
		c.i = len(s.conns)
		s.conns = append(s.conns, c)
		s.clients[c.client]++
		s.live.Add(1)
		s.wg.Add(1)
		s.mu.Unlock()
		if c.loop != nil {
			c.loop.add(k, now.Add(readTimeout)) // for the first query
			continue
		}
		go s.conn(k)
	}
}

// close closes c's connection, from whoever holds it before any loop or
// goroutine serves it.
func (c *tcpConn) close() {
	if c.Conn != nil {
		c.Conn.Close()
	} else if c.fd >= 0 {
		closeFD(c.fd)
	}
}

// stopLocked ends c's wait for a query as the server shuts down: a
// goroutine's read returns at once, and the loop serving it is woken to
// see why. Under s.mu.
func (c *tcpConn) stopLocked() {
	if c.loop != nil {
		c.loop.wake()
		return
	}
	c.SetReadDeadline(time.Now())
}

// evictLocked takes the slot of the connection waiting for a query the
// longest and returns it to be closed; nil if every connection is
// answering. A scan of every connection, made only at the cap: at 1,000
// connections a few microseconds, next to the accept's system calls.
func (s *tcpServer) evictLocked() *tcpConn {
	for {
		var oldest *tcpConn
		var since int64
		for _, c := range s.conns {
			if v := c.idle.Load(); v > 0 && (oldest == nil || v < since) {
				oldest, since = c, v
			}
		}
		if oldest == nil {
			return nil
		}
		// It may have just got a query: then it is answering, and another
		// one goes.
		if oldest.idle.CompareAndSwap(since, evicted) {
			s.live.Add(-1)
			return oldest
		}
	}
}

// shutdown stops accepting, wakes connections waiting for a query and
// waits for those answering one until done is closed; then it closes the
// rest.
func (s *tcpServer) shutdown(done <-chan struct{}) {
	s.mu.Lock()
	s.closing.Store(true)
	s.ln.Close()
	for _, c := range s.conns {
		c.stopLocked()
	}
	s.mu.Unlock()
	finished := make(chan struct{})
	go func() {
		s.wg.Wait()
		close(finished)
	}()
	select {
	case <-finished:
		return
	case <-done:
	}
	s.mu.Lock()
	for _, c := range s.conns {
		if c.loop == nil {
			c.Close() // a loop closes its own at once (stopLocked, above)
		}
	}
	s.mu.Unlock()
	<-finished
}

// idleTimeout is how long a connection that has answered may wait for its
// next query: tcpIdleTimeout, or readTimeout when more than half the slots
// are taken.
func (s *tcpServer) idleTimeout() time.Duration {
	if 2*int(s.live.Load()) > s.max {
		return readTimeout
	}
	return tcpIdleTimeout
}

// conn serves a connection from its own goroutine.
func (s *tcpServer) conn(k *tcpConnLoop) {
	c := k.c
	defer s.release(c)
	if c.idle.Load() == evicted {
		return // before it started
	}
	if !k.readUntil(time.Now().Add(readTimeout)) { // for the first query
		return
	}
	rawconn.ReadLoop(c.Conn, k.room, k.got)
}

// resume serves, from its own goroutine, a connection an event loop handed
// over (tcploop_linux.go): it first writes the answers the socket would not
// take at once, then answers what is buffered (a transfer among it), and
// then reads as conn does.
func (s *tcpServer) resume(k *tcpConnLoop, more bool) {
	c := k.c
	defer s.release(c)
	if len(k.pending) > 0 {
		if !c.write(k.pending) {
			return
		}
		k.pending = nil
	}
	if !more {
		return
	}
	if more, _ = k.got(0, nil); !more {
		return
	}
	if !k.readUntil(k.readBy) { // the loop kept the deadline itself
		return
	}
	rawconn.ReadLoop(c.Conn, k.room, k.got)
}

// release closes c and gives up its slot.
func (s *tcpServer) release(c *tcpConn) {
	c.close()
	s.mu.Lock()
	if c.idle.Swap(evicted) != evicted {
		s.live.Add(-1)
	}
	last := s.conns[len(s.conns)-1]
	last.i = c.i
	s.conns[c.i] = last
	s.conns[len(s.conns)-1] = nil
	s.conns = s.conns[:len(s.conns)-1]
	if s.clients[c.client]--; s.clients[c.client] <= 0 {
		delete(s.clients, c.client)
	}
	s.mu.Unlock()
	s.wg.Done()
}

// tcpConnLoop is the state of a connection between its reads: the queries
// read and not yet answered are buf[r:w], the answers not yet written out.
type tcpConnLoop struct {
	s      *tcpServer
	c      *tcpConn
	remote netip.Addr
	buf    []byte
	r, w   int
	asked  int    // the room the last read was given
	out    []byte // answers not yet written, framed
	readBy time.Time
	idle   int64 // as stored in c.idle: 0 while answering
	// pending is what a loop's socket would not take at once; a
	// goroutine writes it, and answers what is left (handOff: a
	// transfer, which would hold the loop up).
	pending []byte
	handOff bool
}

// room is where the next read goes: after what is buffered, which is
// moved to the front when the message it starts does not fit after it.
func (k *tcpConnLoop) room() []byte {
	if k.r == k.w {
		k.r, k.w = 0, 0
	}
	if k.w == len(k.buf) || k.w-k.r >= 2 && k.r+2+int(binary.BigEndian.Uint16(k.buf[k.r:])) > len(k.buf) {
		k.w = copy(k.buf, k.buf[k.r:k.w])
		k.r = 0
		if k.w >= 2 {
			if need := 2 + int(binary.BigEndian.Uint16(k.buf)); need > len(k.buf) {
				// One query longer than the buffer: room for it alone.
				k.buf = append(k.buf, make([]byte, need-len(k.buf))...)
			}
		}
	}
	k.asked = len(k.buf) - k.w
	return k.buf[k.w:]
}

// got takes a read of n bytes: it answers every whole query buffered, and
// writes the answers out before the connection waits for the client.
// False when the connection is to close.
func (k *tcpConnLoop) got(n int, err error) (more, drained bool) {
	if err != nil {
		return false, false // closed, idle too long, evicted or shut down
	}
	k.w += n
	drained = n < k.asked
	s, c := k.s, k.c
	for k.w-k.r >= 2 {
		if len(k.pending) > 0 {
			return true, false // the client is slow to read: a goroutine goes on (resume)
		}
		size := int(binary.BigEndian.Uint16(k.buf[k.r:]))
		if k.w-k.r < 2+size {
			break
		}
		q := k.buf[k.r+2 : k.r+2+size]
		k.r += 2 + size
		waited := k.idle
		if k.idle != 0 {
			if !c.idle.CompareAndSwap(k.idle, 0) {
				return false, false // evicted as the query came in
			}
			k.idle = 0
		}
		if s.stream != nil && s.stream.Claims(q) {
			if c.loop != nil {
				// Left for a goroutine (resume), the loop's other
				// connections not waiting on it.
				k.r -= 2 + size
				k.handOff = true
				return k.flush(), false
			}
			// A transfer: any number of messages, written as they are
			// made, after the answers before it.
			if !k.flush() {
				return false, false
			}
			if !s.stream.Stream(q, k.remote, c.send) || s.closing.Load() {
				return false, false
			}
			continue
		}
		// Answered in place, after room for its length.
		out := k.out
		at := len(out) + 2
		out = append(out, 0, 0)
		resp := s.h.ServeWire(q, k.remote, true, out[at:])
		switch {
		case len(resp) == 0: // dropped, as over UDP
			k.out = out[:at-2]
			if waited != 0 {
				k.idle = waited // still waiting since then
				c.idle.Store(k.idle)
			}
			continue
		case len(resp) <= cap(out)-at && &out[:at+1][at] == &resp[0]:
			out = out[:at+len(resp)]
		default: // it did not fit
			out = append(out, resp...)
		}
		binary.BigEndian.PutUint16(out[at-2:], uint16(len(resp)))
		k.out = out
		if s.closing.Load() {
			// Answer this one, and no more: the shutdown's deadline is set.
			k.flush()
			return false, false
		}
		if len(k.out) >= tcpFlushAt && k.w-k.r >= 2 {
			// A long pipelined batch: written now, so the answers waiting
			// here stay bounded.
			if !k.flush() {
				return false, false
			}
		}
	}
	// No whole query left: about to wait for the client, so send what is
	// answered first.
	if !k.flush() {
		return false, false
	}
	if len(k.pending) > 0 {
		return true, false // still answering: resume writes the rest
	}
	if k.idle == 0 {
		// Answered: the idle time starts. (Messages that get no answer
		// leave the connection as it was: they buy no time.)
		now := time.Now()
		k.idle = s.stamp(now)
		c.idle.Store(k.idle) // from here on, it may be evicted
		waitFor := s.idleTimeout()
		if left := k.readBy.Sub(now); (left < waitFor/2 || left > waitFor) && !k.readUntil(now.Add(waitFor)) {
			return false, false
		}
	}
	if k.w > k.r {
		// Part of a query: the rest gets readTimeout, not what is left of
		// the idle timeout. (Also where a pipelined stream is cut by the
		// buffer's end: one clock reading per 4 KB of queries.)
		if now := time.Now(); k.readBy.Sub(now) > readTimeout && !k.readUntil(now.Add(readTimeout)) {
			return false, false
		}
	}
	return true, drained
}

// readUntil sets the connection's read deadline to t; false when the
// server is shutting down. Checked after the deadline is set: a shutdown
// in between set its own deadline first, which this one replaced.
func (k *tcpConnLoop) readUntil(t time.Time) bool {
	k.readBy = t
	if l := k.c.loop; l != nil {
		l.due(t) // no deadline on the socket: the loop closes it in time
	} else {
		k.c.SetReadDeadline(t)
	}
	return !k.s.closing.Load()
}

// flush writes the answers buffered; false when the connection is to close.
func (k *tcpConnLoop) flush() bool {
	if len(k.out) == 0 {
		return true
	}
	if k.c.loop != nil {
		if !k.push() {
			return false
		}
	} else if !k.c.write(k.out) {
		return false
	}
	k.out = k.out[:0]
	return true
}

// write writes b, or reports that it could not (the client is gone, or
// did not take its answers within writeTimeout). Then the connection is to
// be closed, by a reset: what it still holds to send is dropped at once,
// not kept by the kernel, and the client learns, though its window is shut.
func (c *tcpConn) write(b []byte) bool {
	if rawconn.WriteWithin(c.Conn, b, writeTimeout) == nil {
		return true
	}
	if l, ok := c.Conn.(interface{ SetLinger(int) error }); ok {
		l.SetLinger(0)
	}
	return false
}

// send writes one message, framed; false when the connection is to close.
func (c *tcpConn) send(m []byte) bool {
	if len(m) == 0 {
		return true
	}
	if len(m) > 65535 {
		return false // cannot be framed: close rather than send a wrapped length
	}
	b := make([]byte, 2+len(m))
	binary.BigEndian.PutUint16(b, uint16(len(m)))
	copy(b[2:], m)
	return c.write(b)
}
