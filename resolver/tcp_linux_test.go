package resolver

import (
	"context"
	"net"
	"syscall"
	"testing"
	"time"

	"github.com/miekg/dns"
	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"
)

// Clients that do not read their answers, seen from the client side: the
// kernel's TCP state tells when the server closed the connection (FIN or
// RST) without the client reading a byte.

// dialSmallWindow connects with a 4 KB receive buffer, as an attacker
// that wants the server's writes to block soon would.
func dialSmallWindow(t *testing.T, addr string) net.Conn { return dialSmallWindowFrom(t, addr, nil) }

// dialSmallWindowFrom is dialSmallWindow from the address from (nil: any).
func dialSmallWindowFrom(t *testing.T, addr string, from net.IP) net.Conn {
	t.Helper()
	d := net.Dialer{Control: func(_, _ string, rc syscall.RawConn) error {
		var serr error
		err := rc.Control(func(fd uintptr) {
			serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_RCVBUF, 4096)
		})
		if err != nil {
			return err
		}
		return serr
	}}
	if from != nil {
		d.LocalAddr = &net.TCPAddr{IP: from}
	}
	c, err := d.DialContext(context.Background(), "tcp", addr)
	require.NoError(t, err)
	t.Cleanup(func() { c.Close() })
	return c
}

// tcpInfo returns c's TCP state and the bytes waiting in its receive queue.
func tcpInfo(t *testing.T, c net.Conn) (state uint8, unread int) {
	rc, err := c.(*net.TCPConn).SyscallConn()
	require.NoError(t, err)
	var info *unix.TCPInfo
	var ierr error
	require.NoError(t, rc.Control(func(fd uintptr) {
		info, ierr = unix.GetsockoptTCPInfo(int(fd), unix.IPPROTO_TCP, unix.TCP_INFO)
		if ierr == nil {
			unread, ierr = unix.IoctlGetInt(int(fd), unix.SIOCINQ)
		}
	}))
	if ierr != nil { // the socket is gone: closed
		return unix.BPF_TCP_CLOSE, 0
	}
	return info.State, unread
}

// pipelineHuge sends n queries for the 58 KB answer in one write.
func pipelineHuge(t *testing.T, c net.Conn, n int) {
	t.Helper()
	var b []byte
	for i := range n {
		q := new(dns.Msg).SetQuestion("huge.example.net.", dns.TypeTXT)
		q.Id = uint16(i)
		b = append(b, framed(t, q)...)
	}
	_, err := c.Write(b)
	require.NoError(t, err)
}

// waitServerClosed waits for the server to close each of conns and
// returns when each was closed, after start (0: not within d).
func waitServerClosed(t *testing.T, conns []net.Conn, start time.Time, d time.Duration) []time.Duration {
	freed := make([]time.Duration, len(conns))
	left := len(conns)
	for deadline := time.Now().Add(d); left > 0 && time.Now().Before(deadline); time.Sleep(5 * time.Millisecond) {
		for i, c := range conns {
			if freed[i] == 0 {
				if state, _ := tcpInfo(t, c); state != unix.BPF_TCP_ESTABLISHED {
					freed[i] = time.Since(start)
					left--
				}
			}
		}
	}
	return freed
}

// TestTCPNeverReadingClients: as many clients as there are slots, each
// from an address of its own, pipeline queries for 58 KB answers and never
// read. Each is closed within about writeTimeout of its writes blocking,
// and a new client then gets answers. (The server's writes once had no
// deadline when its buffer spilled: the slots were held for as long as the
// clients stayed.)
func TestTCPNeverReadingClients(t *testing.T) {
	const slots = 20
	addr := serveBig(t, slots)
	start := time.Now()
	var attackers []net.Conn
	for i := range slots {
		c := dialSmallWindowFrom(t, addr, net.IPv4(127, 0, 1, byte(10+i)))
		pipelineHuge(t, c, 64)
		attackers = append(attackers, c)
	}
	// Every attacker holds a slot: the server has written to each.
	require.Eventually(t, func() bool {
		for _, c := range attackers {
			if _, unread := tcpInfo(t, c); unread == 0 {
				return false
			}
		}
		return true
	}, 5*time.Second, 5*time.Millisecond)
	t.Logf("all %d slots held at %v", slots, time.Since(start).Round(time.Millisecond))
	if time.Since(start) < writeTimeout/2 { // else some may have been closed already
		c, err := net.Dial("tcp", addr)
		require.NoError(t, err)
		_, err = ask(c, new(dns.Msg).SetQuestion("www.example.net.", dns.TypeA), time.Second)
		c.Close()
		require.Error(t, err, "with every slot answering, a new client is closed at once")
	}

	answered := make(chan time.Duration, 1)
	go func() {
		q := new(dns.Msg).SetQuestion("www.example.net.", dns.TypeA)
		for time.Since(start) < 15*time.Second {
			c, err := net.Dial("tcp", addr)
			if err == nil {
				r, err := ask(c, q, time.Second)
				c.Close()
				if err == nil && len(r.Answer) == 2 {
					answered <- time.Since(start)
					return
				}
			}
			time.Sleep(20 * time.Millisecond)
		}
		close(answered)
	}()
	freed := waitServerClosed(t, attackers, start, 15*time.Second)
	for i, d := range freed {
		t.Logf("attacker %2d: slot freed at %v", i, d.Round(time.Millisecond))
	}
	for i, d := range freed {
		require.NotZero(t, d, "attacker %d still holds its slot after 15 s", i)
	}
	d, ok := <-answered
	require.True(t, ok, "no new client was answered in 15 s")
	t.Logf("a new client answered at %v", d.Round(time.Millisecond))
}

// TestTCPSlowReader: a client that reads one byte a second cannot hold a
// connection stuck in a write: it is closed within about writeTimeout of
// the server's writes blocking.
func TestTCPSlowReader(t *testing.T) {
	addr := serveBig(t, 0)
	c := dialSmallWindow(t, addr)
	start := time.Now()
	pipelineHuge(t, c, 64)
	go func() {
		b := make([]byte, 1)
		for {
			if _, err := c.Read(b); err != nil {
				return
			}
			time.Sleep(time.Second)
		}
	}()
	freed := waitServerClosed(t, []net.Conn{c}, start, 10*time.Second)
	require.NotZero(t, freed[0], "the connection is still open after 10 s")
	t.Logf("closed at %v", freed[0].Round(time.Millisecond))
}

// TestTCPOneClientCannotTakeEverySlot: one client address opening more
// connections than there are slots, each pipelining queries it never
// reads, holds no more than half the slots (once half are taken, a client
// network holding an eighth gets no more), and a client from another
// address is answered at once. Before, the one client held every slot, a
// write timeout at a time, and the other was closed at once.
func TestTCPOneClientCannotTakeEverySlot(t *testing.T) {
	const slots = 16
	addr := serveBig(t, slots)
	var attackers []net.Conn
	for range slots + 4 {
		c := dialSmallWindowFrom(t, addr, net.IPv4(127, 0, 0, 1))
		pipelineHuge(t, c, 64)
		attackers = append(attackers, c)
	}
	held := 0
	require.Eventually(t, func() bool {
		held = 0
		for _, c := range attackers {
			if _, unread := tcpInfo(t, c); unread > 0 {
				held++
			}
		}
		return held >= slots/2
	}, 5*time.Second, 5*time.Millisecond)
	time.Sleep(50 * time.Millisecond)
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.IPv4(127, 0, 0, 2)}}
	c, err := d.Dial("tcp", addr)
	require.NoError(t, err)
	defer c.Close()
	r, err := ask(c, new(dns.Msg).SetQuestion("www.example.net.", dns.TypeA), time.Second)
	require.NoError(t, err, "another client is answered while the first holds its share")
	require.Len(t, r.Answer, 2)
	held = 0
	for _, a := range attackers {
		if _, unread := tcpInfo(t, a); unread > 0 {
			held++
		}
	}
	t.Logf("one address, %d connections: %d held slots of %d", len(attackers), held, slots)
	require.LessOrEqual(t, held, slots/2)
}
