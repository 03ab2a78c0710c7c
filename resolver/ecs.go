package resolver

import (
	"net"
	"net/netip"

	"github.com/miekg/dns"
)

// clientSubnet is the EDNS Client Subnet option of a query (RFC 7871).
type clientSubnet struct {
	family uint16
	source uint8
	prefix netip.Prefix // the address masked to the source prefix
}

// parseECS finds the query's ECS option. ok is false when it is malformed,
// which RFC 7871 7.1.2 answers with FORMERR: an unknown family, a source
// prefix longer than the family allows, a non-zero scope, address bits set
// past the source prefix, or more than one ECS option.
func parseECS(opt *dns.OPT) (ecs *clientSubnet, ok bool) {
	if opt == nil {
		return nil, true
	}
	for _, o := range opt.Option {
		e, isECS := o.(*dns.EDNS0_SUBNET)
		if !isECS {
			continue
		}
		if ecs != nil || e.SourceScope != 0 {
			return nil, false
		}
		var addr netip.Addr
		switch e.Family {
		case 0: // some clients send family 0 with prefix 0: "do not use ECS"
			if e.SourceNetmask != 0 {
				return nil, false
			}
			ecs = &clientSubnet{}
			continue
		case 1:
			addr, _ = netip.AddrFromSlice(e.Address.To4())
		case 2:
			addr, _ = netip.AddrFromSlice(e.Address.To16())
		}
		cs, good := newSubnet(e.Family, e.SourceNetmask, addr)
		if !good {
			return nil, false
		}
		ecs = &cs
	}
	return ecs, true
}

// newSubnet checks an ECS option's family, source prefix and address (the
// full path's parser and the fast path's both end here): ok is false for
// an unknown family, a prefix longer than the family's addresses, or
// address bits set past the prefix.
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

// option returns the ECS option for the response: the query's family,
// source prefix and address, with the scope the answer holds for.
func (c *clientSubnet) option(scope int) *dns.EDNS0_SUBNET {
	e := &dns.EDNS0_SUBNET{Code: dns.EDNS0SUBNET, Family: c.family, SourceNetmask: c.source, SourceScope: uint8(scope)}
	switch c.family {
	case 1:
		b := c.prefix.Addr().As4()
		e.Address = net.IP(b[:])
	case 2:
		b := c.prefix.Addr().As16()
		e.Address = net.IP(b[:])
	default:
		e.Address = net.IPv4zero.To4()
		e.Family = 1
	}
	return e
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
