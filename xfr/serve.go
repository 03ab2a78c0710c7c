package xfr

import (
	"encoding/binary"
	"encoding/hex"
	"net/netip"
	"slices"
	"time"

	"github.com/geodns/geodns/resolver"
	"github.com/miekg/dns"
)

// ServeWire answers a query as the inner handler does, but a TSIG-signed
// one (a secondary's SOA check) is verified and its answer signed. It is
// the entry of every query when transfers are served: a panic here is
// counted and the query answered by the inner handler alone.
func (s *Server) ServeWire(q []byte, remote netip.Addr, tcp bool, out []byte) (resp []byte) {
	return s.ServeWireAt(q, remote, tcp, out, time.Time{})
}

// ServeWireAt is ServeWire for a query read at time now (zero: unknown),
// which an inner handler that takes it (resolver.TimedWireHandler) is
// given, so a UDP reader's one reading of the clock per batch serves.
func (s *Server) ServeWireAt(q []byte, remote netip.Addr, tcp bool, out []byte, now time.Time) (resp []byte) {
	defer func() {
		if p := recover(); p != nil {
			s.opts.Inner.Recovered(p)
			resp = s.inner(q, remote, tcp, out, now)
		}
	}()
	if !hasTSIG(q) {
		if s.patched.Load() && isSOAQuery(q) {
			if b := s.soaAnswer(q, remote, tcp, out); b != nil {
				return b
			}
		}
		resp := s.inner(q, remote, tcp, out, now)
		// The engine refuses transfers; an IXFR over UDP gets the SOA here
		// (udpIXFR). It is looked for only in what the engine refused or
		// left unanswered (RRL), so no other query parses its question
		// once more.
		if len(resp) < 4 || resp[3]&0x0f == dns.RcodeRefused {
			if qt, ok := qtype(q); ok && qt == dns.TypeIXFR {
				req := new(dns.Msg)
				if req.Unpack(q) == nil && !req.Response {
					if m := s.udpIXFR(req, remote, nil); m != nil {
						if b, err := m.Pack(); err == nil {
							return b
						}
					}
				}
			}
		}
		return resp
	}
	req := new(dns.Msg)
	if err := req.Unpack(q); err != nil {
		return resolver.FormErrWire(q, out) // a TSIG that cannot be read: RFC 8945 5.2
	}
	if req.Response {
		return s.inner(q, remote, tcp, out, now)
	}
	k, errResp := s.verify(req, q)
	if errResp != nil {
		return errResp
	}
	if k == nil { // a TSIG record, but not the last one: not a signed query
		return s.inner(q, remote, tcp, out, now)
	}
	return s.signedAnswer(req, remote, tcp, k)
}

// Claims reports whether a TCP message is Stream's: a transfer, or a
// TSIG-signed query. It reads the header and question only, and the
// additional records' headers when there are some.
func (s *Server) Claims(q []byte) bool {
	qt, ok := qtype(q)
	return ok && (qt == dns.TypeAXFR || qt == dns.TypeIXFR) || hasTSIG(q)
}

// Stream answers a message Claims took, with as many messages as a
// transfer needs, each handed to send (which frames and writes it). It
// returns false when send failed: the connection is to be closed.
func (s *Server) Stream(q []byte, remote netip.Addr, send func([]byte) bool) (ok bool) {
	defer func() {
		if p := recover(); p != nil {
			s.opts.Inner.Recovered(p)
			ok = false // the connection closes: a transfer may be half sent
		}
	}()
	req := new(dns.Msg)
	if err := req.Unpack(q); err != nil && hasTSIG(q) {
		return send(resolver.FormErrWire(q, nil))
	} else if err != nil || req.Response || len(req.Question) != 1 {
		return send(s.opts.Inner.ServeWire(q, remote, true, nil))
	}
	k, errResp := s.verify(req, q)
	if errResp != nil {
		return send(errResp)
	}
	switch req.Question[0].Qtype {
	case dns.TypeAXFR, dns.TypeIXFR:
		if req.Opcode == dns.OpcodeQuery && req.Question[0].Qclass == dns.ClassINET {
			return s.transfer(req, remote, k, send)
		}
	}
	if k == nil { // not a transfer (another class or opcode), and unsigned
		return send(s.opts.Inner.ServeWire(q, remote, true, nil))
	}
	return send(s.signedAnswer(req, remote, true, k))
}

// verify checks req's TSIG, if any: the key it names must be one of ours,
// with its algorithm, and the MAC and time right. It returns the key (nil
// when unsigned), or the error response to send (RFC 8945 5.2).
func (s *Server) verify(req *dns.Msg, q []byte) (*key, []byte) {
	ts := req.IsTsig()
	if ts == nil {
		return nil, nil
	}
	k, ok := s.opts.Keys[dns.CanonicalName(ts.Hdr.Name)]
	tsigErr := uint16(0)
	switch {
	case !ok || dns.CanonicalName(ts.Algorithm) != k.alg:
		tsigErr = dns.RcodeBadKey
	default:
		switch err := dns.TsigVerify(q, k.secret, "", false); err {
		case nil:
			return &k, nil
		case dns.ErrTime:
			tsigErr = dns.RcodeBadTime
		default:
			tsigErr = dns.RcodeBadSig
		}
	}
	m := new(dns.Msg)
	m.SetRcode(req, dns.RcodeNotAuth)
	m.Extra = nil
	m.SetTsig(ts.Hdr.Name, ts.Algorithm, 300, time.Now().Unix())
	rt := m.Extra[0].(*dns.TSIG)
	rt.Error = tsigErr
	rt.OrigId = req.Id
	secret := ""
	mac := ""
	if tsigErr == dns.RcodeBadTime {
		// RFC 8945 5.2.3: the request's Time Signed echoed, our time in
		// Other Data (48 bits), signed, so the client sees the skew.
		secret, mac = k.secret, ts.MAC
		var now [6]byte
		t := uint64(time.Now().Unix())
		binary.BigEndian.PutUint16(now[:], uint16(t>>32))
		binary.BigEndian.PutUint32(now[2:], uint32(t))
		rt.TimeSigned = ts.TimeSigned
		rt.OtherLen, rt.OtherData = 6, hex.EncodeToString(now[:])
	}
	b, _, err := dns.TsigGenerate(m, secret, mac, false)
	if err != nil {
		return nil, nil
	}
	return &k, b
}

// signedAnswer answers a signed query as the inner handler does, and signs
// the answer with the query's key.
func (s *Server) signedAnswer(req *dns.Msg, remote netip.Addr, tcp bool, k *key) []byte {
	ts := req.IsTsig()
	if ts == nil || k == nil {
		return nil
	}
	req.Extra = req.Extra[:len(req.Extra)-1]
	var m *dns.Msg
	if len(req.Question) == 1 && req.Question[0].Qtype == dns.TypeIXFR {
		m = s.udpIXFR(req, remote, k)
	}
	if m == nil {
		m = s.catalogAnswer(req, remote, k)
	}
	if m == nil {
		m = s.opts.Inner.Answer(req, remote, tcp)
		s.patchSOA(m)
	}
	if m == nil {
		return nil
	}
	b, _ := s.pack(m, k, ts.MAC, false)
	if limit := s.udpLimit(req); !tcp && len(b) > limit {
		// The answer was sized for the client without the TSIG. RFC 8945
		// 5.3: one that cannot carry its TSIG is sent as the question
		// and the TSIG with TC, so the client retries over TCP.
		t := new(dns.Msg)
		t.SetReply(req)
		t.Authoritative, t.Truncated, t.Rcode = m.Authoritative, true, m.Rcode
		if opt := m.IsEdns0(); opt != nil {
			o := &dns.OPT{Hdr: dns.RR_Header{Name: ".", Rrtype: dns.TypeOPT}}
			o.SetUDPSize(opt.UDPSize())
			o.SetDo(opt.Do())
			t.Extra = []dns.RR{o} // RFC 6891 6.1.1: an EDNS query gets an OPT back
		}
		b, _ = s.pack(t, k, ts.MAC, false)
	}
	return b
}

// udpLimit is the size a UDP answer to req may have, TSIG included: 512
// without EDNS, else the client's EDNS size within 512 and MaxUDPSize,
// as the inner handler bounds its answers.
func (s *Server) udpLimit(req *dns.Msg) int {
	if opt := req.IsEdns0(); opt != nil {
		return max(512, min(int(opt.UDPSize()), int(s.opts.MaxUDPSize)))
	}
	return 512
}

// soaAnswer answers an SOA query for a zone whose exported serial is not
// the zone's own (an exported record changed under a serial that did not
// move forward, so the export moved past it): the SOA says the exported serial,
// so a secondary checking it sees what a transfer would give it. nil for
// any other query: the inner handler answers it, its fast path untouched.
func (s *Server) soaAnswer(q []byte, remote netip.Addr, tcp bool, out []byte) []byte {
	req := new(dns.Msg)
	if err := req.Unpack(q); err != nil || req.Response || len(req.Question) != 1 {
		return nil
	}
	if v := s.viewFor(req.Question[0].Name); v == nil || v.src == nil || v.src.Serial == v.soa.Serial {
		return nil
	}
	m := s.opts.Inner.Answer(req, remote, tcp)
	if m == nil {
		return nil
	}
	s.patchSOA(m)
	b, err := m.PackBuffer(out[:cap(out)])
	if err != nil {
		return nil
	}
	return b
}

// viewFor returns the view of the zone that answers name, or nil.
func (s *Server) viewFor(name string) *view {
	set := s.opts.Zones.Load()
	if set == nil {
		return nil
	}
	z := set.Find(dns.CanonicalName(name), dns.TypeSOA)
	if z == nil {
		return nil
	}
	return (*s.views.Load())[z.Origin]
}

// patchSOA replaces the zone's own apex SOA in m by the exported one.
func (s *Server) patchSOA(m *dns.Msg) {
	if m == nil || len(m.Question) != 1 {
		return
	}
	v := s.viewFor(m.Question[0].Name)
	if v == nil || v.src == nil || v.src.Serial == v.soa.Serial {
		return
	}
	// The sections may be the zone's own slices, shared by every
	// answer: patched in copies. A signed zone's SOA signatures are the
	// exported SOA's, which cover its serial.
	patch := func(sec []dns.RR) []dns.RR {
		i := slices.IndexFunc(sec, func(rr dns.RR) bool {
			x, ok := rr.(*dns.SOA)
			return ok && dns.CanonicalName(x.Hdr.Name) == v.origin
		})
		if i < 0 {
			return sec
		}
		soa := dns.Copy(sec[i]).(*dns.SOA)
		soa.Serial = v.soa.Serial
		if !dns.IsDuplicate(soa, v.soa) {
			// From a version of the zone the view was not built from
			// (Run has not built it yet), its SOA other than the exported
			// one: left as it is, which the exported signatures would not
			// cover.
			return sec
		}
		out := make([]dns.RR, 0, len(sec)+len(v.soaSigs))
		signed := false
		for j, rr := range sec {
			if x, ok := rr.(*dns.RRSIG); ok && x.TypeCovered == dns.TypeSOA && dns.CanonicalName(x.Hdr.Name) == v.origin {
				signed = true // the zone's own: the exported SOA's go in
				continue
			}
			if j == i {
				rr = soa
			}
			out = append(out, rr)
		}
		if signed {
			out = append(out, v.soaSigs...)
		}
		return out
	}
	m.Answer, m.Ns = patch(m.Answer), patch(m.Ns)
}

// catalogAnswer answers a query for a name in the catalog zone from its
// view; nil if the name is not in it. Only signed queries get here: the
// catalog is for secondaries, which check its SOA with their key. A client
// the catalog's allow: does not let transfer it is refused as its
// transfer is: its member names are not for every key holder to confirm.
func (s *Server) catalogAnswer(req *dns.Msg, remote netip.Addr, k *key) *dns.Msg {
	if s.catalog == nil || len(req.Question) != 1 {
		return nil
	}
	q := req.Question[0]
	name := dns.CanonicalName(q.Name)
	if !dns.IsSubDomain(s.catalog.origin, name) {
		return nil
	}
	v := (*s.views.Load())[s.catalog.origin]
	if v == nil {
		return nil
	}
	if !allowed(v, remote, k) {
		return refusal(req, v)
	}
	m := new(dns.Msg)
	m.SetReply(req)
	m.Authoritative = true
	found := name == v.origin
	if found && q.Qtype == dns.TypeSOA {
		m.Answer = append(m.Answer, v.soa)
	}
	for _, rr := range v.rrs {
		if dns.CanonicalName(rr.Header().Name) == name {
			found = true
			if rr.Header().Rrtype == q.Qtype {
				m.Answer = append(m.Answer, rr)
			}
		}
	}
	if len(m.Answer) == 0 {
		if !found {
			m.Rcode = dns.RcodeNameError
		}
		m.Ns = append(m.Ns, v.soa)
	}
	return m
}

// pack packs m, signed with k if not nil.
func (s *Server) pack(m *dns.Msg, k *key, mac string, timersOnly bool) ([]byte, string) {
	if k == nil {
		b, _ := m.Pack()
		return b, ""
	}
	m.SetTsig(k.name, k.alg, 300, time.Now().Unix())
	b, mac, err := dns.TsigGenerate(m, k.secret, mac, timersOnly)
	if err != nil {
		return nil, ""
	}
	return b, mac
}

// transferBytes is the size a transfer message is filled to.
const transferBytes = 16 << 10

// maxTransferBytes bounds a transfer message's records: a TCP frame holds
// 65,535 bytes, less the header, the question and a TSIG.
const maxTransferBytes = 65535 - 1024

// transfer answers AXFR or IXFR to a client the zone allows, REFUSED with
// EDE 18 (Prohibited) to any other.
func (s *Server) transfer(req *dns.Msg, remote netip.Addr, k *key, send func([]byte) bool) bool {
	q := req.Question[0]
	v := s.current(dns.CanonicalName(q.Name))
	reqMAC := ""
	if ts := req.IsTsig(); ts != nil {
		reqMAC = ts.MAC
	}
	if v == nil || !allowed(v, remote, k) {
		b, _ := s.pack(refusal(req, v), k, reqMAC, false)
		return send(b)
	}
	// The records are read in parts (SOA, the view's own slice, SOA), not
	// copied: a big zone's transfer allocates its messages only.
	parts := s.records(v, req)
	first := true
	for len(parts) > 0 || first {
		m := new(dns.Msg)
		m.SetReply(req)
		m.Authoritative = true
		m.Compress = true
		m.Extra = nil
		// Sizes counted uncompressed (dns.Len), so a message never
		// reaches the 64 KiB a TCP frame can carry, whatever the records.
		size := 0
		for len(parts) > 0 {
			if len(parts[0]) == 0 {
				parts = parts[1:]
				continue
			}
			rr := parts[0][0]
			l := dns.Len(rr)
			if len(m.Answer) > 0 && size+l > maxTransferBytes {
				break
			}
			m.Answer = append(m.Answer, rr)
			parts[0] = parts[0][1:]
			if size += l; size >= transferBytes {
				break
			}
		}
		var b []byte
		b, reqMAC = s.pack(m, k, reqMAC, !first)
		if b == nil || !send(b) {
			return false
		}
		first = false
	}
	return true
}

// refusal is the answer to a transfer of v (nil: a zone not served) the
// client may not have: REFUSED, with EDE 18 (Prohibited) or 20 (Not
// Authoritative) if the request has EDNS.
func refusal(req *dns.Msg, v *view) *dns.Msg {
	m := new(dns.Msg)
	m.SetRcode(req, dns.RcodeRefused)
	m.Extra = nil
	if req.IsEdns0() != nil {
		o := &dns.OPT{Hdr: dns.RR_Header{Name: ".", Rrtype: dns.TypeOPT}}
		o.SetUDPSize(dns.DefaultMsgSize)
		code := uint16(dns.ExtendedErrorCodeProhibited)
		if v == nil {
			code = dns.ExtendedErrorCodeNotAuthoritative
		}
		o.Option = []dns.EDNS0{&dns.EDNS0_EDE{InfoCode: code}}
		m.Extra = append(m.Extra, o)
	}
	return m
}

// udpIXFR answers an IXFR that did not come over TCP (Stream takes
// those): with the zone's current SOA, to a client that may transfer the
// zone (RFC 1995 2: a client told of a serial it does not hold then
// transfers over TCP), REFUSED to any other. nil for a zone without a
// view (not served: the inner handler answers).
func (s *Server) udpIXFR(req *dns.Msg, remote netip.Addr, k *key) *dns.Msg {
	if len(req.Question) != 1 || req.Opcode != dns.OpcodeQuery || req.Question[0].Qclass != dns.ClassINET {
		return nil
	}
	v := (*s.views.Load())[dns.CanonicalName(req.Question[0].Name)]
	if v == nil || v.soa == nil {
		return nil
	}
	if !allowed(v, remote, k) {
		return refusal(req, v)
	}
	m := new(dns.Msg)
	m.SetReply(req)
	m.Authoritative = true
	m.Answer = []dns.RR{v.soa}
	return m
}

// transferWait bounds how long a transfer waits for the view of the zone
// the set holds now.
const transferWait = 5 * time.Second

// current returns the view of origin built from the version of the zone
// the zone set holds now. SOA queries say that version's serial as soon as
// it is loaded, while Run builds the views after: a secondary that saw the
// new serial and asks for the transfer at once would get the old content,
// and stay with it until its next refresh. So when the view is older than
// the zone, Run is kicked and the transfer waits for it (transferWait at
// most, then the view there is).
func (s *Server) current(origin string) *view {
	v := (*s.views.Load())[origin]
	deadline := time.Time{}
	for {
		set := s.opts.Zones.Load()
		if set == nil {
			return v
		}
		z := set.Zone(origin)
		if z == nil || v != nil && v.src == z || s.running.Load() == 0 {
			return v
		}
		if deadline.IsZero() {
			deadline = time.Now().Add(transferWait)
		} else if time.Now().After(deadline) {
			return v
		}
		s.Changed(nil)
		time.Sleep(5 * time.Millisecond)
		v = (*s.views.Load())[origin]
	}
}

// records lists a transfer's answer records: for AXFR (and IXFR the
// journal cannot serve) the SOA, the records, the SOA; for IXFR from a
// serial the journal reaches, each difference since (RFC 1995 4); for an
// IXFR from the current serial, the SOA alone.
func (s *Server) records(v *view, req *dns.Msg) [][]dns.RR {
	soa := []dns.RR{v.soa}
	if req.Question[0].Qtype == dns.TypeIXFR && len(req.Ns) == 1 {
		if have, ok := req.Ns[0].(*dns.SOA); ok {
			if !serialAfter(v.soa.Serial, have.Serial) {
				return [][]dns.RR{soa}
			}
			if i := slices.IndexFunc(v.journal, func(d delta) bool { return d.From == have.Serial }); i >= 0 {
				out := [][]dns.RR{soa}
				for _, d := range v.journal[i:] {
					out = append(out, []dns.RR{soaAt(v, d.FromSOA, d.From)}, d.Del, []dns.RR{soaAt(v, d.ToSOA, d.To)}, d.Add)
				}
				return append(out, soa)
			}
		}
	}
	return [][]dns.RR{soa, v.soaSigs, v.rrs, soa}
}

// soaAt returns a version's SOA as the journal keeps it, or, when it does
// not (a state file from before), the current SOA's fields under that
// version's serial.
func soaAt(v *view, soa *dns.SOA, serial uint32) *dns.SOA {
	if soa != nil && soa.Serial == serial {
		return soa
	}
	x := dns.Copy(v.soa).(*dns.SOA)
	x.Serial = serial
	return x
}

// allowed reports whether a client may transfer v: its address is in an
// allowed prefix, or it signed with an allowed key.
func allowed(v *view, remote netip.Addr, k *key) bool {
	if v.tr == nil {
		return false
	}
	if k != nil && slices.Contains(v.tr.Keys, k.name) {
		return true
	}
	remote = remote.Unmap()
	for _, p := range v.tr.Allow {
		if p.Contains(remote) {
			return true
		}
	}
	return false
}

// isSOAQuery reports whether q asks for an SOA.
func isSOAQuery(q []byte) bool {
	qt, ok := qtype(q)
	return ok && qt == dns.TypeSOA
}

// qtype returns the type of a query's single question.
func qtype(q []byte) (uint16, bool) {
	if len(q) < 12 || q[2]&0x80 != 0 || binary.BigEndian.Uint16(q[4:]) != 1 {
		return 0, false
	}
	off, ok := skipName(q, 12)
	if !ok || off+4 > len(q) {
		return 0, false
	}
	return binary.BigEndian.Uint16(q[off:]), true
}

// hasTSIG reports whether a query's last additional record is a TSIG. It
// costs nothing for a query without additional records, and walks the
// record headers of one with some.
func hasTSIG(q []byte) bool {
	if len(q) < 12 || q[2]&0x80 != 0 {
		return false
	}
	ar := int(binary.BigEndian.Uint16(q[10:]))
	if ar == 0 {
		return false
	}
	off := 12
	for i := 0; i < int(binary.BigEndian.Uint16(q[4:])); i++ {
		var ok bool
		if off, ok = skipName(q, off); !ok || off+4 > len(q) {
			return false
		}
		off += 4
	}
	rrs := int(binary.BigEndian.Uint16(q[6:])) + int(binary.BigEndian.Uint16(q[8:])) + ar
	for i := 0; i < rrs; i++ {
		var ok bool
		if off, ok = skipName(q, off); !ok || off+10 > len(q) {
			return false
		}
		t := binary.BigEndian.Uint16(q[off:])
		off += 10 + int(binary.BigEndian.Uint16(q[off+8:]))
		if off > len(q) {
			return false
		}
		if i == rrs-1 {
			return t == dns.TypeTSIG
		}
	}
	return false
}

// skipName returns the offset after the name at off.
func skipName(b []byte, off int) (int, bool) {
	for n := 0; off < len(b) && n < 128; n++ {
		l := int(b[off])
		switch {
		case l == 0:
			return off + 1, true
		case l&0xC0 == 0xC0:
			return off + 2, off+2 <= len(b)
		case l > 63:
			return 0, false
		}
		off += l + 1
	}
	return 0, false
}

// inner answers q by the inner handler, with the time it was read when
// the handler takes it.
func (s *Server) inner(q []byte, remote netip.Addr, tcp bool, out []byte, now time.Time) []byte {
	if s.timed != nil && !now.IsZero() {
		return s.timed.ServeWireAt(q, remote, tcp, out, now)
	}
	return s.opts.Inner.ServeWire(q, remote, tcp, out)
}

// timedInner is an Inner that takes the time a query was read
// (resolver.TimedWireHandler).
type timedInner interface {
	ServeWireAt(q []byte, remote netip.Addr, tcp bool, out []byte, now time.Time) []byte
}
