package resolver

import (
	"encoding/binary"
	"net/netip"
	"time"

	"github.com/miekg/dns"
)

// query is a query read from the wire by parseQuery, the one parser every
// entry uses (ServeWire, ServeDNS, Answer, explains): the header, the
// question, and the EDNS record with the options the engine acts on.
type query struct {
	id       uint16
	opcode   uint8
	rd, cd   byte // the RD bit (of header byte 2) and CD bit (of byte 3), copied to the response
	qdcount  uint16
	question bool   // a question was read (the first, when qdcount > 1)
	name     []byte // the name as asked, in wire form (no compression), inside the query
	// lower is the name in lower case, then (key) its type and flags: the
	// cache key, written where the name is, with room for readQname's
	// eight-byte steps past the name.
	lower  [255 + 3 + 8]byte
	qtype  uint16
	qclass uint16

	edns    bool
	badOPT  bool // two OPT records, one not owned by the root, or one outside the additional section; or a TSIG not last
	version uint8
	do      bool
	co      bool // Compact Answers OK (RFC 9824)
	udpSize uint16
	nsid    bool // the query asks for the server's NSID (RFC 5001)
	// ecs is the ECS option's data (family, prefixes, address), or nil;
	// subnet is what it says, when ecsBad is false. ecsBad: malformed
	// (RFC 7871 7.1.2: FORMERR), or two ECS options.
	ecs       []byte
	ecsBad    bool
	subnet    clientSubnet
	ecsUsable bool // subnet.usable()
	// cookie is the first COOKIE option's data, or nil; cookieBad: its
	// length is not a client cookie's or a client and server cookie's
	// (RFC 7873 5.2.2: FORMERR).
	cookie    []byte
	cookieBad bool

	at time.Time // when the query was read, if the entry knows; else zero
}

// lowerName returns the question's name in lower case, wire form.
func (fq *query) lowerName() []byte { return fq.lower[:len(fq.name)] }

// parseStatus is what parseQuery made of a message.
type parseStatus uint8

const (
	parsedOK   parseStatus = iota // a query: the engine answers it
	parseDrop                     // shorter than a header, or a response: no answer (no reflection loops)
	parseError                    // a header, then nothing readable: FORMERR, header only
)

// parseQuery reads q into fq, which must be zero. It reads every section
// (so a TSIG or any other record in the additional section is skipped, and
// an OPT record anywhere is found) but keeps only what the engine needs.
// It does not allocate.
func parseQuery(q []byte, fq *query) parseStatus {
	if len(q) < 12 || q[2]&0x80 != 0 {
		return parseDrop
	}
	fq.id = binary.BigEndian.Uint16(q)
	fq.opcode = q[2] >> 3 & 0xF
	fq.rd, fq.cd = q[2]&0x01, q[3]&0x10
	fq.qdcount = binary.BigEndian.Uint16(q[4:])
	off := 12
	for i := range int(fq.qdcount) {
		if i == 0 {
			end, ok := readQname(q, off, fq)
			if !ok || end+4 > len(q) {
				return parseError
			}
			fq.qtype = binary.BigEndian.Uint16(q[end:])
			fq.qclass = binary.BigEndian.Uint16(q[end+2:])
			fq.question = true
			off = end + 4
			continue
		}
		end, ok := skipName(q, off)
		if !ok || end+4 > len(q) {
			return parseError
		}
		off = end + 4
	}
	an, ns, ar := int(binary.BigEndian.Uint16(q[6:])), int(binary.BigEndian.Uint16(q[8:])), int(binary.BigEndian.Uint16(q[10:]))
	for i := range an + ns + ar {
		owner := off
		end, ok := skipName(q, off)
		if !ok || end+10 > len(q) {
			return parseError
		}
		rtype := binary.BigEndian.Uint16(q[end:])
		rdlen := int(binary.BigEndian.Uint16(q[end+8:]))
		rdata := end + 10
		if rdata+rdlen > len(q) {
			return parseError
		}
		off = rdata + rdlen
		if rtype == dns.TypeTSIG && i != an+ns+ar-1 {
			fq.badOPT = true // a TSIG must come last (RFC 8945 5.1): FORMERR, as NSD and Knot
			continue
		}
		if rtype != dns.TypeOPT {
			continue
		}
		if i < an+ns || fq.edns || q[owner] != 0 {
			fq.badOPT = true // RFC 6891 6.1.1; NSD and Knot answer FORMERR too
			continue
		}
		fq.edns = true
		fq.udpSize = binary.BigEndian.Uint16(q[end+2:])
		fq.version = q[end+5]
		fq.do = q[end+6]&0x80 != 0
		fq.co = q[end+6]&0x40 != 0
		if !fq.options(q[rdata:off]) {
			return parseError
		}
	}
	return parsedOK
}

// options reads the OPT record's options; false if they overrun it.
func (fq *query) options(b []byte) bool {
	for o := 0; o < len(b); {
		if o+4 > len(b) {
			return false
		}
		code, l := binary.BigEndian.Uint16(b[o:]), int(binary.BigEndian.Uint16(b[o+2:]))
		if o+4+l > len(b) {
			return false
		}
		data := b[o+4 : o+4+l]
		switch code {
		case dns.EDNS0SUBNET:
			if fq.ecs != nil {
				fq.ecsBad = true // one ECS option at most
				break
			}
			fq.ecs = data
			ok := parseSubnet(data, &fq.subnet) // the first ECS option: fq.subnet is zero
			fq.ecsBad = fq.ecsBad || !ok
			fq.ecsUsable = fq.subnet.usable() // once: routing and the answer's scope both ask
		case dns.EDNS0COOKIE:
			if fq.cookie == nil && !fq.cookieBad { // only the first counts (RFC 7873 5.2)
				fq.cookie, fq.cookieBad = data, !cookieLen(l)
				if fq.cookieBad {
					fq.cookie = nil
				}
			}
		case dns.EDNS0NSID:
			fq.nsid = true
		}
		o += 4 + l
	}
	return true
}

// readQname reads the question's name at off into fq (name as asked and in
// lower case) and returns where it ends. Compression is refused: nothing
// precedes the question that a pointer could name.
//
// The labels are walked by their lengths only; the name is then lower-cased
// into fq.lower eight bytes at a time. Length bytes (at most 63) are never
// letters, so the name can be folded as one string: this was a quarter of
// a cache hit's time when done a byte and a branch at a time.
func readQname(q []byte, off int, fq *query) (int, bool) {
	start := off
	for {
		if off >= len(q) {
			return 0, false
		}
		l := int(q[off])
		if l == 0 {
			off++
			break
		}
		if l > 63 || off+1+l >= len(q) || off-start+l+1 > 254 {
			return 0, false // pointers, bad lengths, names too long
		}
		off += l + 1
	}
	fq.name = q[start:off]
	i := 0
	for ; i < len(fq.name) && start+i+8 <= len(q); i += 8 {
		// Eight bytes of the query, some past the name's end: those are
		// overwritten by the key's type and flags, or never read.
		binary.LittleEndian.PutUint64(fq.lower[i:], lowerASCII(binary.LittleEndian.Uint64(q[start+i:])))
	}
	if i < len(fq.name) {
		// The query ends within eight bytes of the name: the rest one
		// byte at a time.
		var w [8]byte
		copy(w[:], fq.name[i:])
		binary.LittleEndian.PutUint64(fq.lower[i:], lowerASCII(binary.LittleEndian.Uint64(w[:])))
	}
	return off, true
}

// lowerASCII lower-cases the ASCII letters among the eight bytes of w and
// leaves every other byte as it is.
func lowerASCII(w uint64) uint64 {
	const (
		ones = 0x0101010101010101
		high = 0x8080808080808080
	)
	low7 := w &^ high                 // each byte below 0x80, so the sums below do not carry over
	geA := low7 + ones*(0x80-'A')     // high bit: byte >= 'A'
	gtZ := low7 + ones*(0x80-'Z'-1)   // high bit: byte > 'Z'
	upper := (geA &^ gtZ) &^ w & high // 'A'..'Z', and not a byte of 0x80 or more
	return w | upper>>2               // 0x80 >> 2 is 0x20: 'A' + 0x20 is 'a'
}

// skipName returns where the (maybe compressed) name at off ends.
func skipName(q []byte, off int) (int, bool) {
	for off < len(q) {
		l := int(q[off])
		switch {
		case l == 0:
			return off + 1, true
		case l&0xC0 == 0xC0:
			return off + 2, off+2 <= len(q)
		case l > 63:
			return 0, false
		}
		off += l + 1
	}
	return 0, false
}

// parseSubnet reads an ECS option's data (RFC 7871 6) into cs, which it
// leaves as it is (zero) when the option is malformed: false, which RFC
// 7871 7.1.2 answers with FORMERR: an unknown family, a source prefix
// longer than the family allows, a non-zero scope, an address in more
// bytes than the prefix needs, or address bits set past the prefix.
// Family 0 with prefix 0 ("do not use ECS") is accepted. cs is written in
// place, field by field: a subnet returned and copied into the query was
// read back by wide loads over its fresh stores, which the store buffer
// cannot forward (7 ns of an ECS query's cached answer).
func parseSubnet(b []byte, cs *clientSubnet) bool {
	if len(b) < 4 || b[3] != 0 {
		return false
	}
	family, source, a := binary.BigEndian.Uint16(b), b[2], b[4:]
	if family == 0 {
		// Some clients send family 0 with prefix 0: "do not use ECS".
		return source == 0 && len(a) == 0
	}
	bits := familyBits(family)
	if bits == 0 || int(source) > bits || len(a) != (int(source)+7)/8 {
		return false // the address in as many bytes as the prefix needs, as RFC 7871 asks
	}
	// Only the last byte can hold bits past the prefix. (Checked on the
	// bytes: netip's Masked was a quarter of reading an option.)
	if r := source % 8; r != 0 && a[len(a)-1]&(0xff>>r) != 0 {
		return false
	}
	var addr netip.Addr
	if family == 1 {
		var x [4]byte
		copy(x[:], a)
		addr = netip.AddrFrom4(x)
	} else {
		var x [16]byte
		copy(x[:], a)
		addr = netip.AddrFrom16(x)
	}
	cs.family, cs.source = family, source
	cs.prefix = netip.PrefixFrom(addr, int(source))
	return true
}

// limit returns the size a response to fq may have.
func (fq *query) limit(tcp bool, maxUDP uint16) int {
	if tcp {
		return 65535
	}
	if fq.edns {
		return max(512, min(int(fq.udpSize), int(maxUDP)))
	}
	return 512
}

// key returns the cache key of the question: the lower-case name, its
// type and flags, written after the name in fq.lower.
func (fq *query) key(tcp bool) []byte {
	n := len(fq.name)
	b := fq.lower[:n+3]
	b[n], b[n+1] = byte(fq.qtype>>8), byte(fq.qtype)
	var f byte
	if fq.edns {
		f |= 1
	}
	if fq.do {
		f |= 2
	}
	if tcp {
		f |= 4
	}
	b[n+2] = f
	return b
}
