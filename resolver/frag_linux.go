//go:build linux

package resolver

import (
	"errors"
	"net"

	"golang.org/x/sys/unix"
)

// fragments sets how c's datagrams go out. Without allow: with Don't
// Fragment set and never fragmented by this host, whatever path MTU the
// kernel has learnt (IP_PMTUDISC_PROBE), as RFC 9715 advises responders.
// Forged ICMP "fragmentation needed" messages then cannot make answers
// leave in fragments, the way into poisoning a resolver's cache with a
// spoofed one; and a datagram with DF set needs no IP ID, which the
// kernel otherwise draws from a hashed, shared table per answer (3 % of
// the server's CPU at 320k qps). With allow (answers may be larger than
// the link MTU): fragmented here at the interface MTU, path MTU still
// ignored (IP_PMTUDISC_OMIT, as gdnsd).
func fragments(c *net.UDPConn, allow bool) error {
	raw, err := c.SyscallConn()
	if err != nil {
		return err
	}
	v4, v6 := unix.IP_PMTUDISC_PROBE, unix.IPV6_PMTUDISC_PROBE
	if allow {
		v4, v6 = unix.IP_PMTUDISC_OMIT, unix.IPV6_PMTUDISC_OMIT
	}
	ip4 := false
	if a, ok := c.LocalAddr().(*net.UDPAddr); ok {
		ip4 = a.IP.To4() != nil
	}
	var serr error
	err = raw.Control(func(fd uintptr) {
		if ip4 {
			serr = unix.SetsockoptInt(int(fd), unix.IPPROTO_IP, unix.IP_MTU_DISCOVER, v4)
			return
		}
		serr = unix.SetsockoptInt(int(fd), unix.IPPROTO_IPV6, unix.IPV6_MTU_DISCOVER, v6)
		// IPv4 clients of a dual-stack socket go out by the IPv4 setting;
		// a v6-only socket has none to set.
		unix.SetsockoptInt(int(fd), unix.IPPROTO_IP, unix.IP_MTU_DISCOVER, v4)
	})
	return errors.Join(err, serr)
}
