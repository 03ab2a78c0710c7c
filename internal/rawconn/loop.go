package rawconn

import "net"

// ReadLoop reads c until got says to stop: each read fills room() (not
// empty), and got is given what it read (n bytes, or the error that ended
// the reading: EOF, a deadline, the connection closed, which got sees
// last). got returns whether to go on, and whether the read drained the
// socket (it got less than room had space for).
//
// A drained socket is waited on before it is read again (on Linux, for a
// connection from Wrap): a server answering what one read brought, then
// reading again, would otherwise make a read per batch that finds nothing
// — a system call in four at one query per segment. The wait cannot miss
// data that came after the draining read: it is made within the one
// RawConn.Read, whose readiness is reset only when it starts, so an edge
// after the read stays noticed. After a read that did not drain the socket
// the loop goes round through a new RawConn.Read, so closing and deadlines
// are checked between reads as with net.Conn.Read, however fast data comes;
// so it does after a read that took the peer's FIN with its last data
// (which no readiness follows: see conn.readLoop).
func ReadLoop(c net.Conn, room func() []byte, got func(n int, err error) (more, drained bool)) {
	if rawReadLoop(c, room, got) {
		return
	}
	for {
		n, err := c.Read(room())
		if n > 0 {
			err = nil // the error comes again with the next read
		}
		if more, _ := got(n, err); !more {
			return
		}
	}
}
