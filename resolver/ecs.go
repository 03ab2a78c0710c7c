package resolver

import (
	"net"
	"net/netip"
)

// clientSubnet is the EDNS Client Subnet option of a query (RFC 7871).
type clientSubnet struct {
	family uint16
	source uint8
	prefix netip.Prefix // the address masked to the source prefix
}

// familyBits is the address length of an ECS family (1: IPv4, 2: IPv6);
// 0 for any other.
func familyBits(family uint16) int {
	switch family {
	case 1:
		return 32
	case 2:
		return 128
	}
	return 0
}

// usable reports whether the option names a client network to route by:
// a non-zero source prefix of a global unicast, non-private address.
func (c *clientSubnet) usable() bool {
	if c == nil || c.source == 0 || c.family == 0 {
		return false
	}
	a := c.prefix.Addr()
	return a.IsGlobalUnicast() && !a.IsPrivate()
}

// addrOf returns the IP of a remote address.
func addrOf(a net.Addr) netip.Addr {
	switch x := a.(type) {
	case *net.UDPAddr:
		ip, _ := netip.AddrFromSlice(x.IP)
		return ip.Unmap()
	case *net.TCPAddr:
		ip, _ := netip.AddrFromSlice(x.IP)
		return ip.Unmap()
	}
	if ap, err := netip.ParseAddrPort(a.String()); err == nil {
		return ap.Addr().Unmap()
	}
	return netip.Addr{}
}
