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

// newSubnet checks an ECS option's family, source prefix and address
// (parseSubnet ends here): ok is false for an unknown family, a prefix
// longer than the family's addresses, or address bits set past the prefix.
func newSubnet(family uint16, source uint8, addr netip.Addr) (clientSubnet, bool) {
	bits := 0
	switch family {
	case 1:
		bits = 32
	case 2:
		bits = 128
	}
	if bits == 0 || addr.BitLen() != bits || int(source) > bits {
		return clientSubnet{}, false
	}
	p := netip.PrefixFrom(addr, int(source))
	if p.Masked().Addr() != addr {
		return clientSubnet{}, false // bits set beyond the source prefix
	}
	return clientSubnet{family: family, source: source, prefix: p}, true
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
