package resolver

import (
	"encoding/binary"
	"errors"
	"hash/maphash"
	"net"
	"sync"
	"sync/atomic"

	"github.com/miekg/dns"
)

// The dns.Msg API (Answer, ServeDNS, explains, zone transfers' inner
// answers) runs the one engine, which writes wire: the request is packed
// into a pooled buffer (packQuery, in the bytes PackBuffer writes), answered
// into another, and the response decoded by msgFromWire. The engine
// answers a question it was asked before from its cache, in the same
// bytes but for the ID, the question's letter case and the OPT record's
// options; so msgFromWire decodes the question and records once (keyed
// by those bytes, ID aside, in decoded) and each message shares them, as
// the engine before issue 18 put the zone's own records in its messages.
// A message is then one allocation (msgBlock: itself, its question, its
// sections and OPT record, an ECS option); dns.Msg.Unpack makes 7 for a
// positive answer. Decoding allocates less than Unpack too: an A or AAAA
// record shares one allocation with its address, and a name written as a
// compression pointer to a name already decoded is the same string, the
// question's name the request's own when it reads the same.

// wireBufs holds the buffers a dns.Msg query is packed and answered in:
// one per query (one Get, one Put), split by wireSplit.
var wireBufs = sync.Pool{New: func() any { b := make([]byte, 4096); return &b }}

// queryRoom is the part of a wireBufs buffer the query is packed in.
const queryRoom = 512

// wireSplit returns b's room for a query and for its response. One that
// outgrows its room is written elsewhere (append reallocates: a query
// never overwrites its response), and b goes back to the pool as it was.
func wireSplit(b []byte) (q, out []byte) { return b[:0:queryRoom], b[queryRoom:queryRoom] }

// msgBlock is a message with room for its question, a few records and
// its OPT record: one allocation per Answer, where Unpack makes one per
// section and record. The records but the OPT are shared (msgRecords).
type msgBlock struct {
	m   dns.Msg
	q   [1]dns.Question
	rr  [6]dns.RR
	opt dns.OPT
}

// ecsBlock is an ECS option echoed (explains, service answers through
// Answer) with its address and the option list that holds it.
type ecsBlock struct {
	opts [1]dns.EDNS0
	ecs  dns.EDNS0_SUBNET
	ip   [net.IPv6len]byte
}

// rrBlock holds the first records of the commonest types that a decoded
// response has (a referral's NS set, an answer's addresses): one
// allocation for them.
type rrBlock struct {
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
	blk   *rrBlock // nil: every record allocated alone
	ns, a int      // records of blk used
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

// msgRecords is what a response says up to its OPT record: the question
// and every other record, decoded once and shared by every message
// msgFromWire makes of the same bytes (ID aside). Immutable once
// published.
type msgRecords struct {
	// key is the response up to its OPT record (the whole of it without
	// one), its ID bytes set to 0x80 0x80: a reserved label type, so a
	// name that points at them does not decode (and is not kept).
	key    []byte
	qd     bool // a question (the header says one)
	q      dns.Question
	rrs    []dns.RR // the answer, authority and additional records, but the OPT
	counts [3]int   // of each section, in rrs
	blk    rrBlock
}

// decoded memoizes decodeRecords, a pure function of the bytes it reads:
// the dns.Msg API is asked the same questions over and over (explains,
// a secondary's SOA checks, the benchmarks), and the engine answers each
// from its cache in the same bytes but for the ID, the letter case of
// the question and the OPT record's options. Direct mapped by the key's
// hash, each slot replaced whole: lock free, bounded (slots x
// maxRecordsKey, about 3 times that decoded).
var decoded struct {
	seed  maphash.Seed
	slots [256]atomic.Pointer[msgRecords]
}

// maxRecordsKey is the longest response kept in decoded: answers, not
// transfers.
const maxRecordsKey = 1024

func init() { decoded.seed = maphash.MakeSeed() }

// msgFromWire decodes resp, a response the engine wrote to req. The
// message is its own; its records but the OPT one are shared with other
// messages decoded from the same bytes, and must not be modified.
func msgFromWire(resp []byte, req *dns.Msg) (*dns.Msg, error) {
	if len(resp) < 12 {
		return nil, errWire
	}
	blk := new(msgBlock)
	m := &blk.m
	// The header as Unpack reads it (Msg.setHdr).
	m.Id = binary.BigEndian.Uint16(resp)
	bits := binary.BigEndian.Uint16(resp[2:])
	m.Response, m.Opcode, m.Authoritative = bits&hdrQR != 0, int(bits>>11)&0xF, bits&hdrAA != 0
	m.Truncated, m.RecursionDesired, m.RecursionAvailable = bits&hdrTC != 0, bits&hdrRD != 0, bits&hdrRA != 0
	m.Zero, m.AuthenticatedData, m.CheckingDisabled = bits&hdrZ != 0, bits&hdrAD != 0, bits&hdrCD != 0
	m.Rcode = int(bits & 0xF)
	if len(resp) == 12 {
		return m, nil // a header alone: Unpack stops after it
	}
	if binary.BigEndian.Uint16(resp[4:]) > 1 {
		return nil, errWire // the engine answers one question
	}
	optAt, ok := recordsEnd(resp)
	var r *msgRecords
	var slot *atomic.Pointer[msgRecords]
	if ok && optAt <= maxRecordsKey {
		slot = &decoded.slots[maphash.Bytes(decoded.seed, resp[2:optAt])%uint64(len(decoded.slots))]
		if r = slot.Load(); r != nil && (len(r.key) != optAt || string(r.key[2:]) != string(resp[2:optAt])) {
			r = nil
		}
	}
	if r == nil {
		var err error
		if slot != nil {
			key := append(make([]byte, 0, optAt), 0x80, 0x80)
			key = append(key, resp[2:optAt]...)
			if r, _, err = decodeRecords(key, req, optAt); err == nil {
				r.key = key
				slot.Store(r)
			}
		}
		if r == nil {
			// Not kept: decoded from the response itself, for the
			// errors and results Unpack would give.
			if !ok {
				optAt = -1
			}
			if r, optAt, err = decodeRecords(resp, req, optAt); err != nil {
				return nil, err
			}
		}
	}
	if r.qd {
		blk.q[0] = r.q
		m.Question = blk.q[:1:1]
	}
	n := len(r.rrs)
	ar := binary.BigEndian.Uint16(resp[10:])
	hasOPT := optAt < len(resp) && int(ar) > r.counts[2]
	if hasOPT {
		n++
	}
	rrs := blk.rr[:]
	if n > len(rrs) {
		rrs = make([]dns.RR, n)
	}
	rrs = rrs[:copy(rrs, r.rrs)]
	if hasOPT {
		opt, err := decodeOPT(resp, optAt, blk)
		if err != nil {
			return nil, err
		}
		rrs = append(rrs, opt)
	}
	// Each section its own window of rrs, capped so that an append by the
	// caller copies rather than overwrites the next section.
	counts := r.counts
	if hasOPT {
		counts[2]++
	}
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

// recordsEnd walks resp's question and records (without decoding them)
// and returns where its last record starts if that is an OPT record, else
// where the records end. ok is false for a response that does not read
// whole, or has an OPT record elsewhere (never written by the engine,
// which writes one, last): decodeRecords then decodes every record.
func recordsEnd(resp []byte) (end int, ok bool) {
	off := 12
	if binary.BigEndian.Uint16(resp[4:]) == 1 {
		if off, ok = skipName(resp, off); !ok || off+4 > len(resp) {
			return 0, false
		}
		off += 4
	}
	total := int(binary.BigEndian.Uint16(resp[6:])) + int(binary.BigEndian.Uint16(resp[8:])) + int(binary.BigEndian.Uint16(resp[10:]))
	for i := range total {
		start := off
		if off, ok = skipName(resp, off); !ok || off+10 > len(resp) {
			return 0, false
		}
		t := binary.BigEndian.Uint16(resp[off:])
		off += 10 + int(binary.BigEndian.Uint16(resp[off+8:]))
		if off > len(resp) {
			return 0, false
		}
		if t == dns.TypeOPT {
			if i != total-1 || binary.BigEndian.Uint16(resp[10:]) == 0 {
				return 0, false
			}
			return start, true
		}
	}
	return off, true
}

// decodeRecords decodes the question and the records of msg, but for a
// last one starting at optAt (-1: every record); it returns where the
// records decoded end.
func decodeRecords(msg []byte, req *dns.Msg, optAt int) (*msgRecords, int, error) {
	r := new(msgRecords)
	d := wireDecoder{msg: msg, blk: &r.blk}
	counts := [3]int{int(binary.BigEndian.Uint16(msg[6:])), int(binary.BigEndian.Uint16(msg[8:])), int(binary.BigEndian.Uint16(msg[10:]))}
	off := 12
	if binary.BigEndian.Uint16(msg[4:]) == 1 {
		var q dns.Question
		if len(req.Question) == 1 && sameName(msg, off, req.Question[0].Name) {
			q.Name = req.Question[0].Name
			d.remember(off, q.Name)
			off += len(q.Name) + 1
			if q.Name == "." {
				off--
			}
		} else {
			var err error
			if q.Name, off, err = d.name(off); err != nil {
				return nil, 0, err
			}
		}
		if off+4 > len(msg) {
			return nil, 0, errWire
		}
		q.Qtype, q.Qclass = binary.BigEndian.Uint16(msg[off:]), binary.BigEndian.Uint16(msg[off+2:])
		off += 4
		r.q, r.qd = q, true
	}
	total := counts[0] + counts[1] + counts[2]
	if total > 65535/11 {
		return nil, 0, errWire // more records than fit
	}
	r.rrs = make([]dns.RR, 0, total)
	for i, n := range counts {
		for range n {
			if off == optAt && i == 2 {
				break // the OPT record, decoded per message
			}
			rr, end, err := d.rr(off)
			if err != nil {
				return nil, 0, err
			}
			r.rrs, off = append(r.rrs, rr), end
			r.counts[i]++
		}
	}
	return r, off, nil
}

// decodeOPT decodes the OPT record at off, the last of resp, into blk;
// options other than one ECS are decoded by UnpackRRWithHeader.
func decodeOPT(resp []byte, off int, blk *msgBlock) (dns.RR, error) {
	d := wireDecoder{msg: resp}
	h, off, end, err := d.header(off)
	if err != nil {
		return nil, err
	}
	o := resp[off:end]
	switch {
	case len(o) == 0:
		blk.opt.Hdr = h
		return &blk.opt, nil
	case len(o) >= 8 && binary.BigEndian.Uint16(o) == dns.EDNS0SUBNET && int(binary.BigEndian.Uint16(o[2:]))+4 == len(o):
		// As EDNS0_SUBNET.unpack, for the families the engine echoes.
		v := o[4:]
		fam, source, scope := binary.BigEndian.Uint16(v), v[2], v[3]
		if !(fam == 1 && source <= 32 && scope <= 32 || fam == 2 && source <= 128 && scope <= 128) {
			break
		}
		eb := new(ecsBlock)
		e := &eb.ecs
		e.Family, e.SourceNetmask, e.SourceScope = fam, source, scope
		if fam == 1 {
			eb.ip[10], eb.ip[11] = 0xFF, 0xFF // net.IP.To16 of the address
			copy(eb.ip[12:], v[4:])
		} else {
			copy(eb.ip[:], v[4:])
		}
		e.Address = net.IP(eb.ip[:])
		eb.opts[0] = e
		blk.opt.Hdr, blk.opt.Option = h, eb.opts[:1:1]
		return &blk.opt, nil
	}
	rr, _, err := dns.UnpackRRWithHeader(h, resp[:end], off)
	return rr, err
}

// header decodes the header of the record at off, and returns where its
// data starts and ends.
func (d *wireDecoder) header(off int) (h dns.RR_Header, data, end int, err error) {
	if h.Name, off, err = d.name(off); err != nil {
		return h, 0, 0, err
	}
	if off+10 > len(d.msg) {
		return h, 0, 0, errWire
	}
	h.Rrtype = binary.BigEndian.Uint16(d.msg[off:])
	h.Class = binary.BigEndian.Uint16(d.msg[off+2:])
	h.Ttl = binary.BigEndian.Uint32(d.msg[off+4:])
	h.Rdlength = binary.BigEndian.Uint16(d.msg[off+8:])
	data = off + 10
	if end = data + int(h.Rdlength); end > len(d.msg) {
		return h, 0, 0, errWire
	}
	return h, data, end, nil
}

// rr decodes the record at off.
func (d *wireDecoder) rr(off int) (dns.RR, int, error) {
	h, off, end, err := d.header(off)
	if err != nil {
		return nil, 0, err
	}
	switch {
	case h.Rrtype == dns.TypeA && h.Rdlength == 4:
		var b *aBlock
		if d.blk != nil && d.a < len(d.blk.a) {
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
			if d.blk != nil && d.ns < len(d.blk.ns) {
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
