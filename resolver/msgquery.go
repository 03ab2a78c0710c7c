package resolver

import (
	"encoding/binary"
	"encoding/hex"
	"net"
	"strings"

	"github.com/miekg/dns"
)

// Header bits as miekg/dns packs them (its constants are not exported).
const (
	hdrQR = 1 << 15
	hdrAA = 1 << 10
	hdrTC = 1 << 9
	hdrRD = 1 << 8
	hdrRA = 1 << 7
	hdrZ  = 1 << 6
	hdrAD = 1 << 5
	hdrCD = 1 << 4
)

// packQuery appends req to buf in the bytes req.PackBuffer writes, for
// the queries the dns.Msg API is asked (a header, at most one question
// whose name needs no escape, an OPT record with no option or ECS and
// COOKIE ones): PackBuffer builds a length pass and writes each part
// through an interface, a quarter of what a cached Answer costs. ok is
// false for any other message: the caller packs it with PackBuffer. Unlike
// PackBuffer it does not write to req (PackBuffer resets the OPT record's
// extended rcode bits; here they are left out of the bytes alone).
func packQuery(req *dns.Msg, buf []byte) (_ []byte, ok bool) {
	if req.Opcode < 0 || req.Opcode > 0xF || req.Rcode < 0 || req.Rcode > 0xF ||
		len(req.Question) > 1 || len(req.Answer) > 0 || len(req.Ns) > 0 || len(req.Extra) > 1 {
		return nil, false
	}
	var opt *dns.OPT
	if len(req.Extra) == 1 {
		// Pack writes the header's type as set, and an OPT whose type is
		// not 41 is no EDNS to it: Pack's bytes, not ours.
		if opt, ok = req.Extra[0].(*dns.OPT); !ok || opt.Hdr.Name != "." || opt.Hdr.Rrtype != dns.TypeOPT {
			return nil, false
		}
	}
	bits := uint16(req.Opcode)<<11 | uint16(req.Rcode)
	for _, f := range [...]struct {
		set bool
		bit uint16
	}{{req.Response, hdrQR}, {req.Authoritative, hdrAA}, {req.Truncated, hdrTC},
		{req.RecursionDesired, hdrRD}, {req.RecursionAvailable, hdrRA}, {req.Zero, hdrZ},
		{req.AuthenticatedData, hdrAD}, {req.CheckingDisabled, hdrCD}} {
		if f.set {
			bits |= f.bit
		}
	}
	b := binary.BigEndian.AppendUint16(buf[:0], req.Id)
	b = binary.BigEndian.AppendUint16(b, bits)
	b = append(b, 0, byte(len(req.Question)), 0, 0, 0, 0, 0, byte(len(req.Extra)))
	if len(req.Question) == 1 {
		q := &req.Question[0]
		if b, ok = appendPlainName(b, q.Name); !ok {
			return nil, false
		}
		b = binary.BigEndian.AppendUint16(b, q.Qtype)
		b = binary.BigEndian.AppendUint16(b, q.Qclass)
	}
	if opt == nil {
		return b, true
	}
	b = append(b, 0) // the root
	b = binary.BigEndian.AppendUint16(b, dns.TypeOPT)
	b = binary.BigEndian.AppendUint16(b, opt.Hdr.Class)
	b = binary.BigEndian.AppendUint32(b, opt.Hdr.Ttl&0x00FFFFFF) // extended rcode: 0, as Rcode <= 0xF
	rdlen := len(b)
	b = append(b, 0, 0)
	for _, o := range opt.Option {
		at := len(b)
		b = append(b, 0, 0, 0, 0)
		switch o := o.(type) {
		case *dns.EDNS0_SUBNET:
			if b, ok = appendSubnet(b, o); !ok {
				return nil, false
			}
		case *dns.EDNS0_COOKIE:
			var err error
			if b, err = hex.AppendDecode(b, []byte(o.Cookie)); err != nil {
				return nil, false
			}
		default:
			return nil, false
		}
		binary.BigEndian.PutUint16(b[at:], o.Option())
		binary.BigEndian.PutUint16(b[at+2:], uint16(len(b)-at-4))
	}
	if len(b)-rdlen-2 > 0xFFFF {
		return nil, false
	}
	binary.BigEndian.PutUint16(b[rdlen:], uint16(len(b)-rdlen-2))
	return b, true
}

// packRequest packs req into buf, as req.PackBuffer(buf[:cap(buf)]) does.
func packRequest(req *dns.Msg, buf []byte) ([]byte, error) {
	if q, ok := packQuery(req, buf); ok {
		return q, nil
	}
	return req.PackBuffer(buf[:cap(buf)])
}

// appendPlainName appends name in wire form, uncompressed, when it is a
// fully qualified name without escapes, empty labels or labels over 63
// bytes; ok false otherwise (PackBuffer then writes it, or says why not).
func appendPlainName(b []byte, name string) (_ []byte, ok bool) {
	if name == "." {
		return append(b, 0), true
	}
	if len(name) < 2 || len(name) > 254 || name[len(name)-1] != '.' || strings.IndexByte(name, '\\') >= 0 {
		return nil, false
	}
	for start := 0; start < len(name); {
		end := start + strings.IndexByte(name[start:], '.')
		if l := end - start; l == 0 || l > 63 {
			return nil, false
		}
		b = append(b, byte(end-start))
		b = append(b, name[start:end]...)
		start = end + 1
	}
	return append(b, 0), true
}

// appendSubnet appends an ECS option's data as EDNS0_SUBNET.pack does:
// the address cut to the bytes its source prefix needs, masked.
func appendSubnet(b []byte, o *dns.EDNS0_SUBNET) (_ []byte, ok bool) {
	var ip net.IP
	switch o.Family {
	case 0:
		if o.SourceNetmask != 0 {
			return nil, false
		}
		return append(b, 0, 0, 0, o.SourceScope), true
	case 1:
		if ip = o.Address.To4(); len(ip) != net.IPv4len || o.SourceNetmask > 32 {
			return nil, false
		}
	case 2:
		if ip = o.Address; len(ip) != net.IPv6len || o.SourceNetmask > 128 {
			return nil, false
		}
	default:
		return nil, false
	}
	b = binary.BigEndian.AppendUint16(b, o.Family)
	b = append(b, o.SourceNetmask, o.SourceScope)
	bits := int(o.SourceNetmask)
	for i := 0; bits > 0; i++ {
		m := byte(0xFF)
		if bits < 8 {
			m <<= 8 - bits
		}
		b = append(b, ip[i]&m)
		bits -= 8
	}
	return b, true
}
