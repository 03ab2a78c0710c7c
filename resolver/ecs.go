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
// a non-zero source prefix of a global unicast, non-private address, and
// not one of the other networks no client is reached at (local).
func (c *clientSubnet) usable() bool {
	if c == nil || c.source == 0 || c.family == 0 {
		return false
	}
	a := c.prefix.Addr()
	if a.Is4() {
		// Most first octets decide alone; the others go through the checks
		// below (a tenth of an ECS answer's time).
		switch b := a.As4()[0]; {
		case b == 0 || b == 10 || b == 127 || b >= 224:
			return false
		case b != 100 && b != 169 && b != 172 && b != 192 && b != 198:
			return true
		}
	}
	return usableAddr(a)
}

// usableAddr is usable's verdict on an address, by the checks alone.
func usableAddr(a netip.Addr) bool {
	return a.IsGlobalUnicast() && !a.IsPrivate() && !local(a)
}

// notGlobal are the networks of IANA's special-purpose address registries
// that are not globally reachable, beyond those netip's IsGlobalUnicast
// and IsPrivate exclude. A resolver behind carrier-grade NAT sends
// 100.64.0.0/10: where that is says nothing of where its clients are, and
// the query's source address is the better guess. The documentation
// ranges (192.0.2.0/24, 2001:db8::/32, ...) stay usable: no real client
// has them, and examples and tests stand them for real networks.
var notGlobal6 = []netip.Prefix{
	netip.MustParsePrefix("100::/64"),       // discard-only
	netip.MustParsePrefix("64:ff9b:1::/48"), // local-use IPv4/IPv6 translation
	netip.MustParsePrefix("2001:2::/48"),    // benchmarking
	netip.MustParsePrefix("5f00::/16"),      // segment routing SIDs
}

// local reports whether a is in one of those networks. IPv4 by its first
// octets: this runs for every query with ECS.
func local(a netip.Addr) bool {
	if a.Is4() {
		b := a.As4()
		switch b[0] {
		case 0: // this network, 0.0.0.0/8
			return true
		case 100: // shared address space (RFC 6598), 100.64.0.0/10
			return b[1]&0xc0 == 64
		case 192: // IETF protocol assignments, 192.0.0.0/24
			return b[1] == 0 && b[2] == 0
		case 198: // benchmarking, 198.18.0.0/15
			return b[1]&0xfe == 18
		}
		return b[0] >= 240 // reserved, 240.0.0.0/4
	}
	for _, p := range notGlobal6 {
		if p.Contains(a) {
			return true
		}
	}
	return false
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
