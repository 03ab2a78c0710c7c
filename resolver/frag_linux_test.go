package resolver

import (
	"errors"
	"net"
	"syscall"
	"testing"
	"time"

	"github.com/miekg/dns"
	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"
)

// sockopts returns the integer socket option level/name of every UDP
// socket of l.
func sockopts(t *testing.T, l Listener, level, name int) (got []int) {
	t.Helper()
	for _, pc := range l.udpSockets() {
		rc, err := pc.(syscall.Conn).SyscallConn()
		require.NoError(t, err)
		var v int
		var gerr error
		require.NoError(t, rc.Control(func(fd uintptr) { v, gerr = unix.GetsockoptInt(int(fd), level, name) }))
		require.NoError(t, gerr)
		got = append(got, v)
	}
	return got
}

// TestUDPDontFragment: a listener's UDP sockets send with DF set and
// ignore path MTU (PROBE), on IPv4 and IPv6; AllowFragments turns them to
// fragmenting at the interface MTU, path MTU still ignored (OMIT).
func TestUDPDontFragment(t *testing.T) {
	for _, c := range []struct {
		addr              string
		level, name       int
		whole, fragmented int
	}{
		{"127.0.0.1:0", unix.IPPROTO_IP, unix.IP_MTU_DISCOVER, unix.IP_PMTUDISC_PROBE, unix.IP_PMTUDISC_OMIT},
		{"[::1]:0", unix.IPPROTO_IPV6, unix.IPV6_MTU_DISCOVER, unix.IPV6_PMTUDISC_PROBE, unix.IPV6_PMTUDISC_OMIT},
	} {
		l, err := Listen(c.addr)
		if err != nil && c.level == unix.IPPROTO_IPV6 {
			t.Logf("no IPv6 loopback: %v", err)
			continue
		}
		require.NoError(t, err)
		for _, m := range sockopts(t, l, c.level, c.name) {
			require.Equal(t, c.whole, m, c.addr)
		}
		require.NoError(t, l.AllowFragments())
		for _, m := range sockopts(t, l, c.level, c.name) {
			require.Equal(t, c.fragmented, m, c.addr)
		}
		l.Close()
	}
}

// TestUDPAnswerLeavesWithDF: an answer read off the wire (a raw socket
// sees every UDP datagram to the host) is an atomic datagram: Don't
// Fragment set, no IP ID.
func TestUDPAnswerLeavesWithDF(t *testing.T) {
	raw, err := unix.Socket(unix.AF_INET, unix.SOCK_RAW, unix.IPPROTO_UDP)
	if errors.Is(err, unix.EPERM) {
		t.Skip("raw sockets need CAP_NET_RAW (root)")
	}
	require.NoError(t, err)
	defer unix.Close(raw)
	require.NoError(t, unix.SetsockoptTimeval(raw, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &unix.Timeval{Sec: 2}))

	addr := startServer(t)
	ap, err := net.ResolveUDPAddr("udp", addr)
	require.NoError(t, err)
	port := ap.Port

	c := &dns.Client{Timeout: 2 * time.Second}
	_, _, err = c.Exchange(new(dns.Msg).SetQuestion("www.example.net.", dns.TypeA), addr)
	require.NoError(t, err)
	buf := make([]byte, 65536)
	for range 1000 { // other datagrams of the host may come first
		n, _, err := unix.Recvfrom(raw, buf, 0)
		require.NoError(t, err, "no answer seen on the raw socket")
		ihl := int(buf[0]&0x0f) * 4
		if n < ihl+8 || int(buf[ihl])<<8|int(buf[ihl+1]) != port {
			continue // not from the server's port
		}
		require.NotZero(t, buf[6]&0x40, "the answer's IPv4 header has DF set")
		// An atomic datagram (DF, never fragmented: RFC 6864): the kernel
		// draws no IP ID for it. With path MTU discovery as the default
		// (WANT), DF is set too but an ID drawn, as fragmenting stays
		// allowed.
		require.Zero(t, int(buf[4])<<8|int(buf[5]), "the answer's IP ID")
		return
	}
	t.Fatal("no answer seen on the raw socket")
}
