package resolver

import (
	"bufio"
	"encoding/binary"
	"errors"
	"io"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"time"
)

// DNS over TCP (RFC 7766) with the same wire path as UDP: each connection
// has a goroutine that reads length-prefixed queries, answers each with
// ServeWire and writes the answers to a buffer flushed when no complete
// query is left buffered. So a client that pipelines gets its answers in
// one write per batch, and a query costs no dns.Msg when the fast path
// answers it.
//
// Deadlines are renewed only when half of one has gone: setting one is a
// timer update in the runtime, which cost more than the answer itself
// when done per query. So a connection idle for between half and all of
// tcpIdleTimeout is closed, and a stalled write fails after between half
// and all of writeTimeout.

// tcpServer serves one listener.
type tcpServer struct {
	ln  net.Listener
	h   WireHandler
	log *slog.Logger

	closing atomic.Bool
	mu      sync.Mutex
	conns   map[net.Conn]struct{}
	wg      sync.WaitGroup // one per connection
}

func newTCPServer(ln net.Listener, h WireHandler, log *slog.Logger) *tcpServer {
	return &tcpServer{ln: ln, h: h, log: log, conns: map[net.Conn]struct{}{}}
}

// serve accepts connections until shutdown closes the listener.
func (s *tcpServer) serve() error {
	var backoff time.Duration
	for {
		c, err := s.ln.Accept()
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
		s.mu.Lock()
		if s.closing.Load() {
			s.mu.Unlock()
			c.Close()
			return nil
		}
		s.conns[c] = struct{}{}
		s.wg.Add(1)
		s.mu.Unlock()
		go s.conn(c)
	}
}

// shutdown stops accepting, wakes connections waiting for a query and
// waits for those answering one until done is closed; then it closes the
// rest.
func (s *tcpServer) shutdown(done <-chan struct{}) {
	s.mu.Lock()
	s.closing.Store(true)
	s.ln.Close()
	now := time.Now()
	for c := range s.conns {
		c.SetReadDeadline(now)
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
	for c := range s.conns {
		c.Close()
	}
	s.mu.Unlock()
	<-finished
}

func (s *tcpServer) conn(c net.Conn) {
	defer func() {
		c.Close()
		s.mu.Lock()
		delete(s.conns, c)
		s.mu.Unlock()
		s.wg.Done()
	}()
	remote := addrOf(c.RemoteAddr())
	br := bufio.NewReaderSize(c, 4096)
	bw := bufio.NewWriterSize(c, 4096)
	var (
		q                []byte
		out              []byte
		readBy, writeBy  time.Time
		readFor, lenHead = readTimeout, [2]byte{}
	)
	for {
		if !buffered(br) {
			// About to wait for the client: send what is answered first.
			if bw.Buffered() > 0 {
				if now := time.Now(); writeBy.Sub(now) < writeTimeout/2 {
					writeBy = now.Add(writeTimeout)
					c.SetWriteDeadline(writeBy)
				}
				if bw.Flush() != nil {
					return
				}
			}
			if now := time.Now(); readBy.Sub(now) < readFor/2 {
				readBy = now.Add(readFor)
				c.SetReadDeadline(readBy)
				// Checked after the deadline is set: a shutdown in between
				// set its own deadline first, which this one replaced.
				if s.closing.Load() {
					return
				}
			}
		}
		if _, err := io.ReadFull(br, lenHead[:]); err != nil {
			return // closed, idle too long, or shut down
		}
		n := int(binary.BigEndian.Uint16(lenHead[:]))
		if cap(q) < n {
			q = make([]byte, n)
		}
		q = q[:n]
		if _, err := io.ReadFull(br, q); err != nil {
			return
		}
		readFor = tcpIdleTimeout // the first query gets readTimeout
		resp := s.h.ServeWire(q, remote, true, out[:0])
		if len(resp) == 0 {
			continue // dropped, as over UDP
		}
		if cap(resp) > cap(out) {
			out = resp[:0]
		}
		bw.Write(binary.BigEndian.AppendUint16(lenHead[:0], uint16(len(resp))))
		bw.Write(resp)
		if s.closing.Load() {
			// Answer this one, and no more: the shutdown's deadline is set.
			c.SetWriteDeadline(time.Now().Add(writeTimeout))
			bw.Flush()
			return
		}
	}
}

// buffered reports whether br holds a whole message, length included.
func buffered(br *bufio.Reader) bool {
	head, err := br.Peek(min(2, br.Buffered()))
	if err != nil || len(head) < 2 {
		return false
	}
	return br.Buffered() >= 2+int(binary.BigEndian.Uint16(head))
}
