package resolver

// The oracle is the answer path geodns had before the one engine (the
// "full path" of main at 8a5944a): miekg/dns unpacks the query, the
// response is built as a dns.Msg and packed. Every entry of the engine is
// compared with it (TestEngineMatchesOracle, FuzzEngine): an independent
// parser and writer, kept as a test.

import (
	"encoding/hex"
	"net"
	"net/netip"
	"strings"
	"time"

	"github.com/geodns/geodns/zones"
	"github.com/miekg/dns"
)

// oracleWire answers q as the old full path did, with its response rate
// limiting.
func oracleWire(h *Handler, q []byte, remote netip.Addr, tcp bool) []byte {
	req := new(dns.Msg)
	if err := req.Unpack(q); err != nil {
		if len(q) < 12 || q[2]&0x80 != 0 {
			return nil
		}
		resp := append([]byte(nil), q[:12]...)
		resp[2] = 0x80 | q[2]&0x79
		resp[3] = dns.RcodeFormatError
		clear(resp[4:12])
		return resp
	}
	if req.Response {
		return nil
	}
	m, cookie := oracleAnswer(h, req, remote, tcp)
	if h.rrl != nil && !tcp && cookie != cookieValid {
		switch h.rrl.check(remote, h.rrl.class(m), h.clock()) {
		case rrlDrop:
			return nil
		case rrlSlip:
			oracleSlip(m)
		}
	}
	resp, err := m.Pack()
	if err != nil {
		panic(err)
	}
	return resp
}

func oracleAnswer(h *Handler, req *dns.Msg, remote netip.Addr, tcp bool) (m *dns.Msg, cookie cookieStatus) {
	m = new(dns.Msg)
	m.SetReply(req)
	m.Compress = true
	opt, ok := oracleRequestOPT(req)
	if req.Opcode != dns.OpcodeQuery || len(req.Question) != 1 {
		m.Rcode = dns.RcodeFormatError
		if req.Opcode != dns.OpcodeQuery {
			m.Rcode = dns.RcodeNotImplemented
		}
		if ok && opt != nil {
			m.Extra = append(m.Extra, oracleResponseOPT(h, opt)) // RFC 6891 6.1.1
		}
		return m, cookie
	}
	if !ok {
		m.Rcode = dns.RcodeFormatError
		return m, cookie
	}
	var respOPT *dns.OPT
	if opt != nil {
		respOPT = oracleResponseOPT(h, opt)
		m.Extra = append(m.Extra, respOPT)
		if opt.Version() != 0 {
			m.Rcode = dns.RcodeBadVers // RFC 6891 6.1.3
			return m, cookie
		}
	}
	ecs, ok := oracleParseECS(opt)
	if !ok {
		m.Rcode = dns.RcodeFormatError
		return m, cookie
	}
	if opt != nil {
		var co *dns.EDNS0_COOKIE
		if cookie, co = oracleCookie(h.cookies, opt, remote, h.clock()); cookie == cookieMalformed {
			m.Rcode = dns.RcodeFormatError
			return m, cookie
		}
		if co != nil {
			respOPT.Option = append(respOPT.Option, co)
		}
	}
	client := netip.PrefixFrom(remote, remote.BitLen())
	if ecs.usable() {
		client = ecs.prefix
	}
	q := req.Question[0]
	switch q.Qclass {
	case dns.ClassINET, dns.ClassANY:
		var scope int
		var ede *dns.EDNS0_EDE
		scope, _, ede = oracleIN(h, m, q, client, tcp)
		if ede != nil && respOPT != nil {
			// First among the options: the engine appends a cookie and
			// ECS after the options it cached, in this order.
			respOPT.Option = append([]dns.EDNS0{ede}, respOPT.Option...)
		}
		if ecs != nil {
			if !ecs.usable() {
				scope = 0 // the option was not used: say so (RFC 7871 7.2.1)
			}
			respOPT.Option = append(respOPT.Option, ecs.option(scope))
		}
	case dns.ClassCHAOS:
		oracleCHAOS(h, m, q)
	default:
		m.Rcode = dns.RcodeRefused
	}
	size := 65535
	if !tcp {
		size = 512
		if opt != nil {
			size = max(512, min(int(opt.UDPSize()), int(h.cfg.MaxUDPSize)))
		}
	}
	truncate(m, size)
	return m, cookie
}

func oracleRequestOPT(req *dns.Msg) (opt *dns.OPT, ok bool) {
	for _, sec := range [][]dns.RR{req.Answer, req.Ns} {
		for _, rr := range sec {
			if rr.Header().Rrtype == dns.TypeOPT {
				return nil, false
			}
		}
	}
	for _, rr := range req.Extra {
		if o, isOpt := rr.(*dns.OPT); isOpt {
			if opt != nil || o.Hdr.Name != "." {
				return nil, false
			}
			opt = o
		}
	}
	return opt, true
}

func oracleResponseOPT(h *Handler, req *dns.OPT) *dns.OPT {
	o := &dns.OPT{Hdr: dns.RR_Header{Name: ".", Rrtype: dns.TypeOPT}}
	o.SetUDPSize(h.cfg.MaxUDPSize)
	if req.Do() {
		o.SetDo() // RFC 3225: the DO bit is echoed
	}
	if h.cfg.ServerID != "" {
		for _, e := range req.Option {
			if e.Option() == dns.EDNS0NSID {
				o.Option = append(o.Option, &dns.EDNS0_NSID{Code: dns.EDNS0NSID, Nsid: hexString(h.cfg.ServerID)})
				break
			}
		}
	}
	return o
}

func oracleIN(h *Handler, m *dns.Msg, q dns.Question, client netip.Prefix, tcp bool) (scope int, zone string, ede *dns.EDNS0_EDE) {
	switch q.Qtype {
	case dns.TypeAXFR, dns.TypeIXFR:
		m.Rcode = dns.RcodeRefused // zone transfers are not offered
		return 0, "", edeProhibited
	case dns.TypeOPT, dns.TypeTSIG, dns.TypeTKEY:
		m.Rcode = dns.RcodeFormatError // meta types are not questions
		return 0, "", nil
	}
	qname := zones.CanonicalName(q.Name)
	set := h.zones.Load()
	var z *zones.Zone
	if set != nil {
		z = set.Find(qname, q.Qtype)
	}
	if z == nil {
		m.Rcode = dns.RcodeRefused // not ours, and we never recurse
		return 0, "", edeNotAuthoritative
	}
	svcFn := func(svc *zones.Service, owner string, qtype uint16) []dns.RR {
		d := h.router.Route(z.Origin, svc, client, qtype == dns.TypeAAAA)
		scope = max(scope, d.Scope)
		var metrics *Metrics // the oracle counts nothing
		switch {
		case d.AllDown:
			ede = edeAllDown
			metrics.answer(svc.Name, "all-down")
		case len(d.Sites) > 0:
			metrics.answer(svc.Name, d.Sites[0])
		}
		return serviceRRs(svc, owner, qtype, d)
	}
	a := z.LookupAs(qname, q.Name, q.Qtype, !tcp, svcFn)
	m.Authoritative = a.Result != zones.Delegation
	switch a.Result {
	case zones.NXDomain:
		m.Rcode = dns.RcodeNameError
	case zones.YXDomain:
		m.Rcode = dns.RcodeYXDomain
	}
	m.Answer, m.Ns = a.Answer, a.Ns
	if len(a.Extra) > 0 {
		// The OPT record goes last; copy so the zone's slice is never appended to.
		extra := make([]dns.RR, 0, len(a.Extra)+len(m.Extra))
		extra = append(extra, a.Extra...)
		m.Extra = append(extra, m.Extra...)
	}
	return scope, z.Origin, ede
}

func oracleCHAOS(h *Handler, m *dns.Msg, q dns.Question) {
	var text string
	if q.Qtype == dns.TypeTXT || q.Qtype == dns.TypeANY {
		switch strings.ToLower(q.Name) {
		case "id.server.", "hostname.bind.":
			text = h.cfg.ServerID
		case "version.server.", "version.bind.":
			text = h.cfg.Version
		}
	}
	if text == "" {
		m.Rcode = dns.RcodeRefused
		return
	}
	m.Authoritative = true
	m.Answer = []dns.RR{&dns.TXT{
		Hdr: dns.RR_Header{Name: q.Name, Rrtype: dns.TypeTXT, Class: dns.ClassCHAOS},
		Txt: []string{text},
	}}
}

// parseECS finds the query's ECS option. ok is false when it is malformed,
// which RFC 7871 7.1.2 answers with FORMERR: an unknown family, a source
// prefix longer than the family allows, a non-zero scope, address bits set
// past the source prefix, or more than one ECS option.
func oracleParseECS(opt *dns.OPT) (ecs *clientSubnet, ok bool) {
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

// check reads the query's COOKIE option and returns its status and the
// COOKIE option for the response, as reply makes it.
func oracleCookie(c *cookies, opt *dns.OPT, ip netip.Addr, now time.Time) (cookieStatus, *dns.EDNS0_COOKIE) {
	if opt == nil {
		return cookieNone, nil
	}
	var raw []byte
	found := false
	for _, o := range opt.Option {
		if co, ok := o.(*dns.EDNS0_COOKIE); ok {
			b, err := hex.DecodeString(co.Cookie)
			if err != nil {
				return cookieMalformed, nil
			}
			raw, found = b, true
			break // only the first COOKIE option counts (RFC 7873 5.2)
		}
	}
	if !found {
		return cookieNone, nil
	}
	if !cookieLen(len(raw)) {
		return cookieMalformed, nil
	}
	var out [cookieReplyLen]byte
	status := c.reply(&out, raw, ip, now)
	return status, &dns.EDNS0_COOKIE{Code: dns.EDNS0COOKIE, Cookie: hex.EncodeToString(out[:])}
}

// slip turns a response into an empty truncated one: the client retries
// over TCP, and a spoofed victim receives next to nothing.
func oracleSlip(m *dns.Msg) {
	m.Truncated = true
	m.Answer, m.Ns = nil, nil
	var opt []dns.RR
	for _, r := range m.Extra {
		if r.Header().Rrtype == dns.TypeOPT {
			opt = append(opt, r)
		}
	}
	m.Extra = opt
}
