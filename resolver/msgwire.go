package resolver

import (
	"encoding/binary"
	"errors"
	"net"
	"sync"

	"github.com/miekg/dns"
)

// The dns.Msg API (Answer, ServeDNS, explains, zone transfers' inner
// answers) runs the one engine, which writes wire: the request is packed
// into a pooled buffer, answered into another, and the response decoded
// by msgFromWire, which allocates less than dns.Msg.Unpack (7 allocations
// for a positive answer through Unpack, 2 here): the message, its
// question and section slices share one allocation; an A or AAAA record
// shares one with its address; and a name written as a compression pointer
// to a name already decoded is the same string, the question's name the
// request's own when it reads the same.

// wireBufs holds the buffers a dns.Msg query is packed and answered in.
var wireBufs = sync.Pool{New: func() any { b := make([]byte, 0, 4096); return &b }}

// putWireBuf returns b to the pool, unless an answer grew it large.
func putWireBuf(p *[]byte, b []byte) {
	if b == nil {
		wireBufs.Put(p) // still the buffer it was
		return
	}
	if cap(b) <= 64<<10 {
		*p = b[:0]
		wireBufs.Put(p)
	}
}

// msgBlock is a message with room for its question and a few records:
// one allocation for what Unpack makes in one per section.
type msgBlock struct {
	m  dns.Msg
	q  [1]dns.Question
	rr [6]dns.RR
	// The first records of the commonest types: a referral's NS set,
	// an answer's addresses.
	ns [2]dns.NS
	a  [2]aBlock
}

type aBlock struct {
	rr dns.A
	ip [4]byte
}

type aaaaBlock struct {
	rr dns.AAAA
	ip [16]byte
}

var errWire = errors.New("malformed response")

// nameAt is a name decoded at an offset of the message.
type nameAt struct {
	off  int
	name string
}

// wireDecoder decodes one message; names remembers decoded names by the
// offset they start at, so pointers to them cost no allocation.
type wireDecoder struct {
	msg   []byte
	blk   *msgBlock
	ns, a int // records of blk used
	names [16]nameAt
	n     int
}

func (d *wireDecoder) remember(off int, s string) {
	if d.n < len(d.names) {
		d.names[d.n] = nameAt{off, s}
		d.n++
	}
}

func (d *wireDecoder) known(off int) (string, bool) {
	for _, e := range d.names[:d.n] {
		if e.off == off {
			return e.name, true
		}
	}
	return "", false
}

// name decodes the name at off; it returns the offset after it.
func (d *wireDecoder) name(off int) (string, int, error) {
	if off >= len(d.msg) {
		return "", 0, errWire
	}
	switch c := d.msg[off]; {
	case c == 0:
		return ".", off + 1, nil
	case c&0xC0 == 0xC0:
		if off+2 > len(d.msg) {
			return "", 0, errWire
		}
		p := int(binary.BigEndian.Uint16(d.msg[off:]) & 0x3FFF)
		if s, ok := d.known(p); ok {
			return s, off + 2, nil
		}
		s, _, err := internedName(d.msg, p)
		if err != nil {
			return "", 0, err
		}
		d.remember(p, s)
		return s, off + 2, nil
	}
	s, end, err := internedName(d.msg, off)
	if err != nil {
		return "", 0, err
	}
	d.remember(off, s)
	return s, end, nil
}

// names maps names, as written in full on the wire, to their presentation
// form: the names of answers (zone apexes, SOA fields, name servers) repeat
// from one message to the next. Bounded: emptied when full.
var names = struct {
	sync.RWMutex
	m map[string]string
}{m: make(map[string]string)}

const maxNames = 4096

// internedName is dns.UnpackDomainName, its result shared with earlier
// messages that had the same name.
func internedName(msg []byte, off int) (string, int, error) {
	var flat [255]byte
	n, end, ok := flatName(msg, off, &flat)
	if !ok {
		return dns.UnpackDomainName(msg, off)
	}
	names.RLock()
	s, hit := names.m[string(flat[:n])]
	names.RUnlock()
	if hit {
		return s, end, nil
	}
	s, end, err := dns.UnpackDomainName(msg, off)
	if err != nil {
		return "", 0, err
	}
	names.Lock()
	if len(names.m) >= maxNames {
		clear(names.m)
	}
	names.m[string(flat[:n])] = s
	names.Unlock()
	return s, end, nil
}

// flatName copies the name at off into flat without its compression
// pointers; it returns its length and the offset after the name as
// written; false for a name that is not well formed (Unpack then says
// why).
func flatName(msg []byte, off int, flat *[255]byte) (n, end int, ok bool) {
	end = -1
	for hops := 0; hops < 64; {
		if off >= len(msg) {
			return 0, 0, false
		}
		c := int(msg[off])
		switch {
		case c == 0:
			if n == len(flat) {
				return 0, 0, false
			}
			flat[n] = 0
			n++
			if end < 0 {
				end = off + 1
			}
			return n, end, true
		case c&0xC0 == 0xC0:
			if off+2 > len(msg) {
				return 0, 0, false
			}
			if end < 0 {
				end = off + 2
			}
			off = int(binary.BigEndian.Uint16(msg[off:]) & 0x3FFF)
			hops++
		case c&0xC0 != 0:
			return 0, 0, false
		default:
			if off+1+c > len(msg) || n+1+c >= len(flat) {
				return 0, 0, false
			}
			n += copy(flat[n:], msg[off:off+1+c])
			off += 1 + c
		}
	}
	return 0, 0, false
}

// msgFromWire decodes resp, a response the engine wrote to req.
func msgFromWire(resp []byte, req *dns.Msg) (*dns.Msg, error) {
	if len(resp) < 12 {
		return nil, errWire
	}
	blk := new(msgBlock)
	m := &blk.m
	// A header alone: Unpack stops after it, allocating nothing.
	if err := m.Unpack(resp[:12]); err != nil {
		return nil, err
	}
	d := wireDecoder{msg: resp, blk: blk}
	qd := int(binary.BigEndian.Uint16(resp[4:]))
	counts := [3]int{int(binary.BigEndian.Uint16(resp[6:])), int(binary.BigEndian.Uint16(resp[8:])), int(binary.BigEndian.Uint16(resp[10:]))}
	off := 12
	if qd > 1 {
		return nil, errWire // the engine answers one question
	}
	if qd == 1 {
		var q dns.Question
		if len(req.Question) == 1 && sameName(resp, off, req.Question[0].Name) {
			q.Name = req.Question[0].Name
			d.remember(off, q.Name)
			off += len(q.Name) + 1
			if q.Name == "." {
				off--
			}
		} else {
			var err error
			if q.Name, off, err = d.name(off); err != nil {
				return nil, err
			}
		}
		if off+4 > len(resp) {
			return nil, errWire
		}
		q.Qtype, q.Qclass = binary.BigEndian.Uint16(resp[off:]), binary.BigEndian.Uint16(resp[off+2:])
		off += 4
		blk.q[0] = q
		m.Question = blk.q[:1:1]
	}
	total := counts[0] + counts[1] + counts[2]
	if total > 65535/11 {
		return nil, errWire // more records than fit
	}
	rrs := blk.rr[:]
	if total > len(rrs) {
		rrs = make([]dns.RR, total)
	}
	rrs = rrs[:0]
	for _, n := range counts {
		for range n {
			rr, end, err := d.rr(off)
			if err != nil {
				return nil, err
			}
			rrs, off = append(rrs, rr), end
		}
	}
	// Each section its own window of rrs, capped so that an append by the
	// caller copies rather than overwrites the next section.
	sections := [3]*[]dns.RR{&m.Answer, &m.Ns, &m.Extra}
	at := 0
	for i, n := range counts {
		if n > 0 {
			*sections[i] = rrs[at : at+n : at+n]
		}
		at += n
	}
	// As Unpack: the extended rcode from the OPT record.
	if opt := m.IsEdns0(); opt != nil {
		m.Rcode |= opt.ExtendedRcode()
	}
	return m, nil
}

// rr decodes the record at off.
func (d *wireDecoder) rr(off int) (dns.RR, int, error) {
	owner, off, err := d.name(off)
	if err != nil {
		return nil, 0, err
	}
	if off+10 > len(d.msg) {
		return nil, 0, errWire
	}
	h := dns.RR_Header{
		Name:     owner,
		Rrtype:   binary.BigEndian.Uint16(d.msg[off:]),
		Class:    binary.BigEndian.Uint16(d.msg[off+2:]),
		Ttl:      binary.BigEndian.Uint32(d.msg[off+4:]),
		Rdlength: binary.BigEndian.Uint16(d.msg[off+8:]),
	}
	off += 10
	end := off + int(h.Rdlength)
	if end > len(d.msg) {
		return nil, 0, errWire
	}
	switch {
	case h.Rrtype == dns.TypeA && h.Rdlength == 4:
		var b *aBlock
		if d.a < len(d.blk.a) {
			b = &d.blk.a[d.a]
			d.a++
		} else {
			b = new(aBlock)
		}
		b.rr.Hdr = h
		copy(b.ip[:], d.msg[off:end])
		b.rr.A = net.IP(b.ip[:])
		return &b.rr, end, nil
	case h.Rrtype == dns.TypeAAAA && h.Rdlength == 16:
		b := new(aaaaBlock)
		b.rr.Hdr = h
		copy(b.ip[:], d.msg[off:end])
		b.rr.AAAA = net.IP(b.ip[:])
		return &b.rr, end, nil
	case h.Rrtype == dns.TypeNS || h.Rrtype == dns.TypeCNAME:
		// One name: the NS targets of a referral are the owners of its
		// glue, decoded once.
		target, e, err := d.name(off)
		if err != nil || e != end {
			break // as Unpack does it, with its errors
		}
		if h.Rrtype == dns.TypeNS {
			if d.ns < len(d.blk.ns) {
				rr := &d.blk.ns[d.ns]
				d.ns++
				rr.Hdr, rr.Ns = h, target
				return rr, end, nil
			}
			return &dns.NS{Hdr: h, Ns: target}, end, nil
		}
		return &dns.CNAME{Hdr: h, Target: target}, end, nil
	case h.Rrtype == dns.TypeSOA:
		// The SOA of every negative answer: its names are the zone's.
		mname, e, err := d.name(off)
		if err != nil {
			break
		}
		rname, e, err := d.name(e)
		if err != nil || e+20 != end {
			break
		}
		v := d.msg[e:end]
		return &dns.SOA{Hdr: h, Ns: mname, Mbox: rname,
			Serial: binary.BigEndian.Uint32(v), Refresh: binary.BigEndian.Uint32(v[4:]),
			Retry: binary.BigEndian.Uint32(v[8:]), Expire: binary.BigEndian.Uint32(v[12:]),
			Minttl: binary.BigEndian.Uint32(v[16:])}, end, nil
	}
	rr, e, err := dns.UnpackRRWithHeader(h, d.msg[:end], off) // as UnpackRR: the data ends with its length
	if err != nil {
		return nil, 0, err
	}
	return rr, e, nil
}

// sameName reports whether the wire name at off reads as name, a name
// that Unpack would give back unchanged (no character it escapes).
func sameName(msg []byte, off int, name string) bool {
	if name == "." {
		return off < len(msg) && msg[off] == 0
	}
	if len(name) == 0 || name[len(name)-1] != '.' || off+len(name)+1 > len(msg) {
		return false
	}
	i := 0
	for i < len(name) {
		l := int(msg[off])
		if l == 0 || l > 63 || i+l >= len(name) || name[i+l] != '.' {
			return false
		}
		for j := range l {
			c := name[i+j]
			if c <= ' ' || c >= 0x7F || c == '.' || c == '(' || c == ')' || c == ';' || c == '@' || c == '"' || c == '\\' || msg[off+1+j] != c {
				return false
			}
		}
		off += l + 1
		i += l + 1
	}
	return msg[off] == 0
}
