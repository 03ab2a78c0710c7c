package resolver

import (
	"encoding/binary"
	"net/netip"
	"slices"
	"strings"
	"time"

	"github.com/geodns/geodns/zones"
	"github.com/miekg/dns"
	"github.com/prometheus/client_golang/prometheus"
)

// The engine answers every query the same way, whatever the entry
// (ServeWire, ServeDNS, Answer, an explain through Uncounted):
//
//	parseQuery  wire → query (header, question, EDNS, ECS, cookie): one parser
//	cache       (name, type, EDNS, DO, TCP) → packed response, or a service
//	            entry whose packed variants are keyed by routing decision
//	resolve     on a miss: the zone lookup (zones.Zone.LookupAs, pure),
//	            services routed once each → an outcome
//	write       outcome → packed response (header, question, sections,
//	            OPT with EDE/NSID, truncated to the client's size): one writer
//	deliver     packed → response: ID, RD/CD, the question's letter case,
//	            COOKIE and ECS options appended, counted, rate limited
//
// A miss answers the query once and keeps what it wrote (when the answer
// does not depend on the client, or depends only on the routing decision
// of the one service at the name asked): the cache holds responses real
// queries were answered with, never a second run of the handler.
//
// DNSSEC: write is where RRSIGs are appended, per RRset, when the query
// has DO=1 and Config.Signer is set (see Signer); the signed response is
// cached with its packed bytes under the (name, type, DO) key and, for a
// service name, its routing decision, so every answer variant is signed
// once per zone version, when first needed.

// mode is how a query is answered.
type mode uint8

const (
	traffic mode = iota // from the network: counted, cached, rate limited
	direct              // Handler.Answer: counted and cached, not rate limited
	explain             // Uncounted: none of those (not traffic)
)

// outcome is what resolve decided for a query: everything write needs.
type outcome struct {
	rcode             int
	aa                bool
	co                bool // NXDOMAIN because the query set CO (RFC 9824): CO is echoed
	opt               bool // the response carries an OPT record (the query had one, and was read that far)
	answer, ns, extra []dns.RR
	ede               *dns.EDNS0_EDE
	qname             string // the question's name, canonical; "" when there is none
	zone              string // the zone that answered, for the query counter
	z                 *zones.Zone
	// echoCookie, echoECS: the query got that far, so its COOKIE and ECS
	// options are answered (deliver appends them).
	echoCookie, echoECS bool
	scope               int // the ECS scope the answer holds for

	// For the cache: class IN, answered from a zone (or refused as not
	// ours), with at most one service routed, at the name asked.
	in       bool
	services int
	svc      *zones.Service
	svcAt    bool // the service routed is the one at the name asked
	svcV6    bool
	decision zones.Decision
}

// packed is a response as written, with what deliver must still patch:
// the query's ID, RD/CD bits and letter case, and the COOKIE and ECS
// options, which go at the end of its OPT record (its last record).
type packed struct {
	wire []byte
	opt  int // where the OPT record starts; -1: none
	qend int // where the question ends (12: no question)
	// addrAt: where the answer's addresses are (rdata of its A or AAAA
	// records, in the decision's order), for a variant of an address
	// service: deliver writes the query's decision's addresses there.
	addrAt []int
	// echoCookie, echoECS: deliver appends the query's COOKIE and ECS
	// options (the query was read that far).
	echoCookie, echoECS bool
	queries             prometheus.Counter // nil: not counted
	answers             prometheus.Counter // service variants: the answer's service and site, counted on cache hits
	rrl                 rrlClass           // the response's RRL class, when limiting is on
	trimmed             bool               // truncate dropped records: not for the cache
}

// preDecision is a routing decision the cache made for a service name
// before finding no packed variant for it: resolve uses it rather than
// route the same client again.
type preDecision struct {
	svc  *zones.Service
	v6   bool
	d    zones.Decision
	used bool
}

// serve answers the query q: the engine.
func (h *Handler) serve(q []byte, remote netip.Addr, tcp bool, out []byte, tap *tapDecision, md mode, rt routeFunc, at time.Time) []byte {
	var fq query
	switch parseQuery(q, &fq) {
	case parseDrop:
		return nil
	case parseError:
		return FormErrWire(q, out)
	}
	fq.at = at
	limit := fq.limit(tcp, h.cfg.MaxUDPSize)
	set := h.zones.Load()
	var c *fastCache
	var key []byte
	var kh uint64 // key's hash: its shard, its doorkeeper slots
	var nh uint64 // the name's (zones.WireHash), which kh is made from
	var pre *preDecision
	var e *entry
	if md != explain && set != nil && h.cacheable(&fq) {
		c = h.cache(set)
		key = fq.key(tcp)
		nh = zones.WireHash(fq.lowerName())
		kh = keyHash(nh, key[len(fq.name):], false)
		if e = c.getH(key, kh); e != nil {
			p, scope := e.static, 0
			var addrs []netip.Addr
			if e.svc != nil {
				client, ecs := clientOf(&fq, remote)
				d := h.router.Route(e.origin, e.svc, client, e.v6)
				scope = d.Scope
				if tap != nil {
					tap.set(h.router, e.svc, client, ecs, d, ecsScope(&fq, scope))
				}
				if p = c.variant(e, &d); p == nil {
					pre = &preDecision{svc: e.svc, v6: e.v6, d: d}
				}
				addrs = d.Addrs
			}
			if p != nil && len(p.wire)+reserve(&fq, p.echoCookie, p.echoECS) <= limit {
				return h.deliver(p, &fq, remote, tcp, out, scope, addrs, true, md)
			}
		}
	}
	if c != nil && e == nil {
		if resp, ok := h.serveAbsent(c, set, key, kh, nh, &fq, remote, tcp, out, limit, md); ok {
			return resp
		}
	}
	if h.onResolve != nil {
		h.onResolve()
	}
	o := h.resolve(set, &fq, remote, tcp, pre, md, tap, rt)
	// Kept: an answer that does not depend on the client, or one service's
	// variant at the name asked; while the cache has room, or when asked
	// before (a flood of names asked once does not churn it).
	store := c != nil && o.in && (o.services == 0 || o.services == 1 && o.svcAt) &&
		(e == nil && c.admitH(kh) || e != nil && e.svc != nil && e.svc == o.svc && o.services == 1)
	var buf []byte
	if !store {
		buf = out[:cap(out)] // written where it is sent
	}
	p := h.write(&fq, &o, limit-reserve(&fq, o.echoCookie, o.echoECS), buf, store, md)
	if store && !p.trimmed {
		h.keep(c, key, kh, e, &o, p, &fq)
	}
	return h.deliver(p, &fq, remote, tcp, out, o.scope, nil, false, md)
}

// cacheable reports whether answers to fq may come from the cache: a
// standard query of class IN whose EDNS part, if any, is well formed and
// asks for nothing per server (NSID).
func (h *Handler) cacheable(fq *query) bool {
	return fq.opcode == dns.OpcodeQuery && fq.qdcount == 1 && fq.qclass == dns.ClassINET && !fq.badOPT &&
		fq.version == 0 && !fq.ecsBad && !fq.cookieBad && (!fq.nsid || h.cfg.ServerID == "") &&
		!fq.co // Compact Answers OK (RFC 9824) changes a signed zone's NXDOMAIN; rare, so not cached
}

// keep stores p, written for o, in the cache under key (of hash kh),
// where e (if not nil) is the service entry found there.
func (h *Handler) keep(c *fastCache, key []byte, kh uint64, e *entry, o *outcome, p *packed, fq *query) {
	if o.services == 0 {
		c.putH(key, kh, &entry{static: p})
		return
	}
	if h.cfg.Metrics != nil {
		switch d := o.decision; {
		case d.AllDown:
			p.answers = h.cfg.Metrics.answers.WithLabelValues(o.svc.Name, "all-down")
		case len(d.Sites) > 0:
			p.answers = h.cfg.Metrics.answers.WithLabelValues(o.svc.Name, d.Sites[0])
		}
	}
	if e == nil {
		e = c.putH(key, kh, &entry{svc: o.svc, origin: o.zone, v6: o.svcV6,
			// Signed answers are kept per address set: RRSIGs cover them.
			addrs: !o.svc.CNAME && (fq.qtype == dns.TypeA || fq.qtype == dns.TypeAAAA) && !(fq.do && h.cfg.Signer != nil)})
	}
	if e.svc != o.svc {
		return
	}
	if e.addrs {
		if p.addrAt = addrOffsets(p.wire, p.qend); len(p.addrAt) != len(o.decision.Addrs) {
			return // not the shape deliver patches: not kept
		}
	}
	c.addVariant(kh, e, o.decision, p)
}

// reserve is what deliver appends to a response to fq: its COOKIE and
// ECS options.
func reserve(fq *query, cookie, ecs bool) int {
	n := 0
	if cookie && fq.cookie != nil {
		n += 4 + cookieReplyLen
	}
	if ecs && fq.ecs != nil {
		n += 4 + len(fq.ecs)
	}
	return n
}

// clientOf returns the network a query is routed by: its ECS source when
// usable (ecs true), else the remote address.
func clientOf(fq *query, remote netip.Addr) (client netip.Prefix, ecs bool) {
	if fq.ecs != nil && !fq.ecsBad && fq.ecsUsable {
		return fq.subnet.prefix, true
	}
	return netip.PrefixFrom(remote, remote.BitLen()), false
}

// ecsScope is the scope answered in the ECS option: 0 when the option was
// not used (RFC 7871 7.2.1).
func ecsScope(fq *query, scope int) int {
	if fq.ecs != nil && !fq.ecsUsable {
		return 0
	}
	return scope
}

// resolve decides the answer to fq: the checks of the header and EDNS
// part, then the zone lookup, routing each service name met once.
func (h *Handler) resolve(set *zones.Set, fq *query, remote netip.Addr, tcp bool, pre *preDecision, md mode, tap *tapDecision, rt routeFunc) (o outcome) {
	if fq.question {
		o.qname = zones.NameFromWire(fq.lowerName())
	}
	// RFC 6891 6.1.1: a request with an OPT gets one back, its errors
	// too (as Knot); a malformed OPT part is answered without.
	o.opt = fq.edns && !fq.badOPT
	switch {
	case fq.opcode != dns.OpcodeQuery:
		o.rcode = dns.RcodeNotImplemented
		return o
	case fq.qdcount != 1, fq.badOPT:
		o.rcode = dns.RcodeFormatError
		return o
	}
	if fq.edns && fq.version != 0 {
		o.rcode = dns.RcodeBadVers // RFC 6891 6.1.3
		return o
	}
	if fq.ecsBad || fq.cookieBad {
		o.rcode = dns.RcodeFormatError
		return o
	}
	o.echoCookie = true
	switch fq.qclass {
	case dns.ClassINET, dns.ClassANY: // QCLASS * matches IN, the only class served (RFC 1035 3.2.5; NSD, Knot)
		o.in, o.echoECS = true, true
		h.answerIN(set, &o, fq, remote, tcp, pre, md, tap, rt)
		if fq.ecs != nil {
			o.scope = ecsScope(fq, o.scope)
		}
	case dns.ClassCHAOS:
		h.answerCHAOS(&o, fq.qtype)
	default:
		o.rcode = dns.RcodeRefused
	}
	return o
}

// answerIN answers a class IN question into o.
func (h *Handler) answerIN(set *zones.Set, o *outcome, fq *query, remote netip.Addr, tcp bool, pre *preDecision, md mode, tap *tapDecision, rt routeFunc) {
	switch fq.qtype {
	case dns.TypeAXFR, dns.TypeIXFR:
		o.rcode, o.ede = dns.RcodeRefused, edeProhibited // zone transfers are not offered here
		return
	case dns.TypeOPT, dns.TypeTSIG, dns.TypeTKEY:
		o.rcode = dns.RcodeFormatError // meta types are not questions
		return
	}
	var z *zones.Zone
	if set != nil {
		z = set.FindWire(fq.lowerName(), fq.qtype)
	}
	if z == nil {
		o.rcode, o.ede = dns.RcodeRefused, edeNotAuthoritative // not ours, and we never recurse
		return
	}
	o.zone, o.z = z.Origin, z
	zs := h.dnssec()
	signed := zs != nil && zs.s.Signs(z.Origin)
	if signed && fq.qtype == dns.TypeNXNAME {
		o.rcode = dns.RcodeFormatError // RFC 9824 3.5: a meta type, not a question
		return
	}
	client, ecs := clientOf(fq, remote)
	metrics := h.cfg.Metrics
	if md == explain {
		metrics = nil
	}
	svcFn := func(svc *zones.Service, owner string, qtype uint16) []dns.RR {
		v6 := qtype == dns.TypeAAAA
		o.services++
		o.svc, o.svcAt, o.svcV6 = svc, owner == o.qname, v6
		var d zones.Decision
		switch {
		case rt != nil:
			d = rt(z.Origin, svc, owner, qtype, client)
		case pre != nil && !pre.used && pre.svc == svc && pre.v6 == v6:
			d, pre.used = pre.d, true
		default:
			d = h.router.Route(z.Origin, svc, client, v6)
		}
		o.decision = d
		o.scope = max(o.scope, d.Scope)
		if tap != nil {
			tap.set(h.router, svc, client, ecs, d, ecsScope(fq, d.Scope))
		}
		switch {
		case d.AllDown:
			o.ede = edeAllDown
			metrics.answer(svc.Name, "all-down")
		case len(d.Sites) > 0:
			metrics.answer(svc.Name, d.Sites[0])
		}
		return serviceRRs(svc, owner, qtype, d)
	}
	// The name is looked up as asked in lower case: records synthesized
	// for it compress to the question, whose letter case deliver restores.
	a := z.LookupAs(o.qname, o.qname, fq.qtype, !tcp, svcFn)
	nx := a.Result == zones.NXDomain
	if signed {
		a, nx = zs.signedAnswer(z, o.qname, fq.qtype, a, fq.do, fq.co)
		o.co = nx && fq.co
	}
	if fq.do && z.Presigned() {
		// The file's proofs; write adds their signatures (presignedSigner)
		// as it does the answer's. The additional section's are added
		// here, as NSD and Knot add them (glue has none).
		if pr := z.Proofs(o.qname, fq.qtype, a); len(pr) > 0 {
			a.Ns = append(a.Ns[:len(a.Ns):len(a.Ns)], pr...)
		}
		a.Extra = sign(presignedSigner{}, z, a.Extra)
	}
	if o.decision.AllDown && o.svc != nil && !slices.ContainsFunc(a.Answer, func(rr dns.RR) bool { return rr.Header().Rrtype == fq.qtype }) {
		// An all-down NODATA (the nodata policy, or a family no site has
		// up), maybe at the end of a CNAME chain: resolvers cache it for
		// the SOA's TTL, which must be the
		// degraded TTL as any other all-down answer's, or clients would
		// stay away for the zone's negative TTL after the sites are back.
		a.Ns = shortTTL(a.Ns, o.svc.DegradedTTL)
	}
	o.aa = a.Result != zones.Delegation
	switch {
	case nx:
		o.rcode = dns.RcodeNameError
	case a.Result == zones.YXDomain:
		o.rcode = dns.RcodeYXDomain
	}
	o.answer, o.ns, o.extra = a.Answer, a.Ns, a.Extra
}

// shortTTL returns rrs with every TTL cut to at most ttl: copies, as the
// records may be the zone's own.
func shortTTL(rrs []dns.RR, ttl uint32) []dns.RR {
	out := make([]dns.RR, len(rrs))
	for i, rr := range rrs {
		if rr.Header().Ttl > ttl {
			rr = dns.Copy(rr)
			rr.Header().Ttl = ttl
		}
		out[i] = rr
	}
	return out
}

// write is the one writer: every response but the two written from the
// query's bytes alone (FORMERR for a message that cannot be read,
// SERVFAIL after a panic) is assembled here, from the outcome. It is
// written for ID 0, RD and CD clear and the question in lower case, to fit
// limit bytes; buf, if not nil, is storage for it. keep: it is for the
// cache, in storage of its own.
func (h *Handler) write(fq *query, o *outcome, limit int, buf []byte, keep bool, md mode) *packed {
	m := &dns.Msg{Compress: true}
	m.Response, m.Opcode, m.Authoritative, m.Rcode = true, int(fq.opcode), o.aa, o.rcode
	if fq.question {
		m.Question = []dns.Question{{Name: o.qname, Qtype: fq.qtype, Qclass: fq.qclass}}
	}
	m.Answer, m.Ns = o.answer, o.ns
	if fq.do && o.z != nil {
		if s := h.signerOf(o.z); s != nil {
			m.Answer, m.Ns = sign(s, o.z, m.Answer), sign(s, o.z, m.Ns)
		}
	}
	optLen := 0
	if o.opt {
		opt := &dns.OPT{Hdr: dns.RR_Header{Name: ".", Rrtype: dns.TypeOPT}}
		opt.SetUDPSize(h.cfg.MaxUDPSize)
		if fq.do {
			opt.SetDo() // RFC 3225: the DO bit is echoed
		}
		if o.co {
			opt.SetCo() // RFC 9824 3.4: NXDOMAIN because CO was set
		}
		optLen = 11
		if o.ede != nil {
			// First among the options: deliver appends a cookie and ECS
			// after them, in this order.
			opt.Option = append(opt.Option, o.ede)
			optLen += 4 + 2 + len(o.ede.ExtraText)
		}
		if fq.nsid && h.cfg.ServerID != "" {
			opt.Option = append(opt.Option, &dns.EDNS0_NSID{Code: dns.EDNS0NSID, Nsid: hexString(h.cfg.ServerID)})
			optLen += 4 + len(h.cfg.ServerID)
		}
		// The OPT record goes last; the zone's slices are never appended to.
		extra := make([]dns.RR, 0, len(o.extra)+1)
		m.Extra = append(append(extra, o.extra...), opt)
	} else {
		m.Extra = o.extra
	}
	p := &packed{opt: -1, qend: 12, echoCookie: o.echoCookie, echoECS: o.echoECS}
	p.trimmed = truncate(m, limit)
	wire, err := m.PackBuffer(buf)
	if err != nil {
		// Records the zone compiler accepted always pack; this is a bug.
		// Answer SERVFAIL rather than nothing.
		h.log.Error("cannot pack response", "error", err, "qname", o.qname, "qtype", fq.qtype)
		m = &dns.Msg{Compress: true, Question: m.Question}
		m.Response, m.Opcode, m.Rcode = true, int(fq.opcode), dns.RcodeServerFailure
		wire, _ = m.PackBuffer(buf)
		p.trimmed, o.echoCookie, o.echoECS = true, false, false
		p.echoCookie, p.echoECS = false, false
	} else if o.opt {
		if start := len(wire) - optLen; start >= 12 && wire[start] == 0 && binary.BigEndian.Uint16(wire[start+1:]) == dns.TypeOPT {
			p.opt = start
		}
	}
	if keep {
		wire = append([]byte(nil), wire...) // cap: the size class allocated, which the cache budgets
	}
	p.wire = wire
	if fq.question {
		p.qend = 12 + len(fq.name) + 4
	}
	if md != explain && h.cfg.Metrics != nil {
		p.queries = h.cfg.Metrics.counter(o.zone, fq.qtype, m.Rcode)
	}
	if h.rrl != nil && md == traffic {
		p.rrl = h.rrl.class(m)
	}
	return p
}

// addrOffsets returns where the rdata of each record of wire's answer
// section is, the question ending at qend; nil unless they are all A or
// AAAA records.
func addrOffsets(wire []byte, qend int) []int {
	an := int(binary.BigEndian.Uint16(wire[6:]))
	if an == 0 {
		return nil
	}
	out := make([]int, 0, an)
	off := qend
	for range an {
		end, ok := skipName(wire, off)
		if !ok || end+10 > len(wire) {
			return nil
		}
		t, l := binary.BigEndian.Uint16(wire[end:]), int(binary.BigEndian.Uint16(wire[end+8:]))
		if !(t == dns.TypeA && l == 4 || t == dns.TypeAAAA && l == 16) || end+10+l > len(wire) {
			return nil
		}
		out = append(out, end+10)
		off = end + 10 + l
	}
	return out
}

// signerOf returns what signs z's answers: its own file for a pre-signed
// zone, else the configured signer (nil: none).
func (h *Handler) signerOf(z *zones.Zone) Signer {
	if z.Presigned() {
		return presignedSigner{}
	}
	return h.cfg.Signer
}

// presignedSigner gives the RRSIGs a pre-signed zone's file holds.
type presignedSigner struct{}

func (presignedSigner) Sign(z *zones.Zone, rrs []dns.RR) []dns.RR { return z.Signatures(rrs) }

// sign returns rrs with the RRSIGs signer s gives each of its RRsets after
// the set; rrs itself when it gives none.
func sign(s Signer, z *zones.Zone, rrs []dns.RR) []dns.RR {
	var out []dns.RR
	for i := 0; i < len(rrs); {
		hdr := rrs[i].Header()
		j := i + 1
		for j < len(rrs) && rrs[j].Header().Rrtype == hdr.Rrtype && strings.EqualFold(rrs[j].Header().Name, hdr.Name) {
			j++
		}
		if sigs := s.Sign(z, rrs[i:j:j]); len(sigs) > 0 {
			if out == nil {
				out = append(make([]dns.RR, 0, len(rrs)+len(sigs)), rrs[:i]...)
			}
			out = append(append(out, rrs[i:j]...), sigs...)
		} else if out != nil {
			out = append(out, rrs[i:j]...)
		}
		i = j
	}
	if out == nil {
		return rrs
	}
	return out
}

// deliver writes the response to fq from p into out: the query's ID,
// RD/CD bits (standard queries) and letter case, then its COOKIE and ECS
// options; counts it, and rate limits it (traffic over UDP). addrs, for a
// cached variant of an address service, are the decision's addresses,
// written over the variant's. hit says p came from the cache (its service
// answer is counted here, not by resolve). A nil response means it is
// dropped.
func (h *Handler) deliver(p *packed, fq *query, remote netip.Addr, tcp bool, out []byte, scope int, addrs []netip.Addr, hit bool, md mode) []byte {
	resp := append(out[:0], p.wire...)
	if p.addrAt != nil && len(addrs) == len(p.addrAt) {
		for i, off := range p.addrAt {
			if a := addrs[i]; a.Is4() {
				x := a.As4()
				copy(resp[off:], x[:])
			} else {
				x := a.As16()
				copy(resp[off:], x[:])
			}
		}
	}
	binary.BigEndian.PutUint16(resp, fq.id)
	if fq.opcode == dns.OpcodeQuery {
		resp[2] = resp[2]&^0x01 | fq.rd
		resp[3] = resp[3]&^0x10 | fq.cd
	}
	if fq.question {
		copy(resp[12:], fq.name) // the client's letter case (0x20)
	}
	limited := h.rrl != nil && !tcp && md == traffic
	now := fq.at // zero: the clock is read only if needed
	if h.now != nil {
		now = time.Time{} // a test's clock, read below
	}
	if p.opt >= 0 {
		// Options go at the end of the OPT record, which ends the
		// response: COOKIE, then ECS.
		opts := len(resp)
		if p.echoCookie && fq.cookie != nil {
			if now.IsZero() {
				now = h.clock()
			}
			var co [cookieReplyLen]byte
			if h.cookies.reply(&co, fq.cookie, remote, now) == cookieValid {
				limited = false // a query with our cookie does not come from a spoofed address
			}
			resp = binary.BigEndian.AppendUint16(resp, dns.EDNS0COOKIE)
			resp = binary.BigEndian.AppendUint16(resp, cookieReplyLen)
			resp = append(resp, co[:]...)
		}
		if p.echoECS && fq.ecs != nil {
			l := len(resp)
			resp = binary.BigEndian.AppendUint16(resp, dns.EDNS0SUBNET)
			resp = binary.BigEndian.AppendUint16(resp, uint16(len(fq.ecs)))
			resp = append(resp, fq.ecs...)
			if resp[l+4] == 0 && resp[l+5] == 0 {
				resp[l+5] = 1 // family 0 ("do not use ECS") is answered as IPv4, prefix 0
			}
			resp[l+4+3] = byte(ecsScope(fq, scope)) // family(2) source(1) scope(1)
		}
		if len(resp) > opts {
			rdlen := resp[p.opt+9:]
			binary.BigEndian.PutUint16(rdlen, binary.BigEndian.Uint16(rdlen)+uint16(len(resp)-opts))
		}
	}
	if md != explain {
		if p.queries != nil {
			p.queries.Inc()
		}
		if hit && p.answers != nil {
			p.answers.Inc()
		}
	}
	if limited {
		var act rrlAction
		if !now.IsZero() {
			act = h.rrl.check(remote, p.rrl, now) // the clock is read already
		} else {
			act = h.rrl.checkLazy(remote, p.rrl, h.clock, fq.id&63 == 0)
		}
		switch act {
		case rrlDrop:
			return nil
		case rrlSlip:
			return slipWire(resp, p.qend, p.opt)
		}
	}
	return resp
}

// FormErrWire answers a message whose header can be read but nothing
// after it: FORMERR, the header alone, like miekg/dns's server (and xfr's
// answer to a TSIG it cannot read). q holds at least a header.
func FormErrWire(q, out []byte) []byte {
	resp := append(out[:0], q[:12]...)
	resp[2] = 0x80 | q[2]&0x79 // QR, opcode, RD
	resp[3] = dns.RcodeFormatError
	clear(resp[4:12])
	return resp
}
