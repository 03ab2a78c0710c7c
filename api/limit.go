package api

import (
	"net"
	"net/http"
	"sync"
	"time"
)

// MaxConns bounds the API's connections at once. Each holds one of the
// process's file descriptors, which DNS over TCP, zone loads and health
// probes need too: before, a client holding idle connections open until
// the process ran out (1,000 at a limit of 1,024) stopped all three, and
// the probes' "too many open files" took every site down. At the cap a
// new connection takes the slot of the one idle the longest (between
// requests, or yet to send one), else it is closed at once, as DNS over
// TCP does.
const MaxConns = 512

// connLimit is a listener that holds at most max connections, fed by the
// server's ConnState hook (state).
type connLimit struct {
	net.Listener
	max   int
	mu    sync.Mutex
	conns map[net.Conn]time.Time // idle since; zero while a request is read or answered
}

func limitConns(ln net.Listener, max int) *connLimit {
	return &connLimit{Listener: ln, max: max, conns: map[net.Conn]time.Time{}}
}

// Accept returns the next connection, making room for it.
func (l *connLimit) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		l.mu.Lock()
		if len(l.conns) >= l.max {
			var oldest net.Conn
			var since time.Time
			for o, t := range l.conns {
				if !t.IsZero() && (oldest == nil || t.Before(since)) {
					oldest, since = o, t
				}
			}
			if oldest == nil {
				l.mu.Unlock()
				c.Close() // every slot is answering
				continue
			}
			delete(l.conns, oldest)
			oldest.Close()
		}
		l.conns[c] = time.Now()
		l.mu.Unlock()
		return c, nil
	}
}

// state is the server's ConnState hook.
func (l *connLimit) state(c net.Conn, s http.ConnState) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if _, ok := l.conns[c]; !ok {
		return // evicted
	}
	switch s {
	case http.StateActive:
		l.conns[c] = time.Time{}
	case http.StateIdle:
		l.conns[c] = time.Now()
	case http.StateHijacked, http.StateClosed:
		delete(l.conns, c)
	}
}
