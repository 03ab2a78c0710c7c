package resolver

import (
	"log/slog"
	"net"
	"net/netip"
	"strings"
	"sync/atomic"
	"time"

	"github.com/geodns/geodns/route"
	"github.com/geodns/geodns/zones"
	"github.com/miekg/dns"
	"github.com/prometheus/client_golang/prometheus"
)

// Config holds the handler's settings; the zero value is usable.
type Config struct {
	// ServerID answers NSID (RFC 5001) and CHAOS TXT id.server/hostname.bind.
	// Default "": both are off.
	ServerID string
	// Version answers CHAOS TXT version.bind/version.server. Default "": off.
	Version string
	// MaxUDPSize caps UDP responses whatever the client advertises.
	// Default 1232 (the DNS flag day 2020 value, no IP fragmentation).
	MaxUDPSize uint16
	// Metrics counts queries and answers. Default nil: not counted (as
	// for a handler that answers explains rather than traffic).
	Metrics *Metrics
	// RRL limits UDP responses per client network. Default: off.
	RRL RRLConfig
	// Registerer receives the RRL metrics. Default nil: not registered.
	Registerer prometheus.Registerer
	// CacheBytes is the budget of the answer cache of the fast path, per
	// zone set: packed responses, their keys and overhead, negative answers
	// and remembered refusals alike; the least used are evicted. Default
	// DefaultCacheBytes (64 MiB).
	CacheBytes int64
	// CookieSecret (16 bytes) makes DNS server cookies (RFC 9018); servers
	// of one anycast set should share it. Default nil: a random secret.
	CookieSecret []byte
}

// DefaultMaxUDPSize is the UDP response cap when Config.MaxUDPSize is 0.
const DefaultMaxUDPSize = 1232

// Router decides what a service name answers a client; *route.Router is
// one. Implementations must be safe for concurrent use.
type Router interface {
	Route(origin string, svc *zones.Service, client netip.Prefix, v6 bool) route.Decision
}

// Handler answers queries from the zone set it reads through an atomic
// pointer. It is safe for concurrent use.
type Handler struct {
	zones   *atomic.Pointer[zones.Set]
	rrl     *rrl // nil: no rate limiting
	cookies *cookies
	router  Router
	cfg     Config
	log     *slog.Logger
	panics  atomic.Uint64
	// panicLogged is the Unix second a panic was last logged.
	panicLogged atomic.Int64
	fast        atomic.Pointer[fastCache]
	now         func() time.Time // nil: time.Now; tests fix the clock that dates cookies
}

// NewHandler returns a handler serving the zone set held by zs, routing
// service names with router (nil: every client gets each service's
// default site order).
func NewHandler(zs *atomic.Pointer[zones.Set], router Router, cfg Config, log *slog.Logger) *Handler {
	if cfg.MaxUDPSize == 0 {
		cfg.MaxUDPSize = DefaultMaxUDPSize
	}
	if cfg.CacheBytes <= 0 {
		cfg.CacheBytes = DefaultCacheBytes
	}
	if log == nil {
		log = slog.Default()
	}
	if router == nil {
		router = &route.Router{}
	}
	return &Handler{zones: zs, router: router, cfg: cfg, log: log, rrl: newRRL(cfg.RRL, cfg.Registerer),
		cookies: newCookies(cfg.CookieSecret)}
}

func (h *Handler) clock() time.Time {
	if h.now != nil {
		return h.now()
	}
	return time.Now()
}

// Panics returns how many queries panicked in the handler so far.
func (h *Handler) Panics() uint64 { return h.panics.Load() }

// ServeDNS implements dns.Handler (for miekg/dns servers): one answer, one
// write. Like ServeWire, it is an entry: a panic is recovered, counted and
// answered SERVFAIL.
func (h *Handler) ServeDNS(w dns.ResponseWriter, req *dns.Msg) {
	remote := w.RemoteAddr()
	_, tcp := remote.(*net.TCPAddr)
	m := func() (m *dns.Msg) {
		defer func() {
			if p := recover(); p != nil {
				h.panicked(p)
				m = servfail(req, h.cfg.MaxUDPSize)
			}
		}()
		return h.respond(req, addrOf(remote), tcp)
	}()
	if m != nil {
		w.WriteMsg(m)
	}
}

// respond answers req and applies response rate limiting; nil means drop.
// Panics are recovered by the entry that called it (ServeWire, ServeDNS).
func (h *Handler) respond(req *dns.Msg, client netip.Addr, tcp bool) *dns.Msg {
	m, cookie := h.answer(req, client, tcp)
	// Neither TCP nor a query with our cookie can come from a spoofed address.
	if h.rrl != nil && !tcp && cookie != cookieValid {
		switch h.rrl.check(client, h.rrl.class(m), h.clock()) {
		case rrlDrop:
			return nil
		case rrlSlip:
			slip(m)
		}
	}
	return m
}

// servfail answers req with SERVFAIL after a recovered panic: with an
// OPT record and EDE 0 (Other) if req had EDNS, as servfailWire does.
func servfail(req *dns.Msg, udpSize uint16) *dns.Msg {
	m := new(dns.Msg).SetRcode(req, dns.RcodeServerFailure)
	if opt, ok := requestOPT(req); ok && opt != nil {
		o := &dns.OPT{Hdr: dns.RR_Header{Name: ".", Rrtype: dns.TypeOPT}}
		o.SetUDPSize(udpSize)
		o.Option = []dns.EDNS0{&dns.EDNS0_EDE{InfoCode: dns.ExtendedErrorCodeOther}}
		m.Extra = []dns.RR{o}
	}
	return m
}

func queryString(req *dns.Msg) string {
	if req == nil || len(req.Question) == 0 {
		return "?"
	}
	return req.Question[0].String()
}

// Answer builds the response to req from the client at remote. tcp says
// whether it goes back over TCP (no size limit, full ANY answers).
func (h *Handler) Answer(req *dns.Msg, remote netip.Addr, tcp bool) *dns.Msg {
	m, _ := h.answer(req, remote, tcp)
	return m
}

// answer is Answer that also says what the query's DNS cookie was.
func (h *Handler) answer(req *dns.Msg, remote netip.Addr, tcp bool) (m *dns.Msg, cookie cookieStatus) {
	return h.answerTraced(req, remote, tcp, nil)
}

// trace records how an answer was made, for the fast path's cache; a
// traced answer is not counted in the metrics.
type trace struct {
	zone     string          // the zone that answered
	services int             // service names routed
	svc      *zones.Service  // the last one
	owner    string          // its owner name
	fixed    *route.Decision // answer services with this decision instead of routing
}

func (h *Handler) answerTraced(req *dns.Msg, remote netip.Addr, tcp bool, tr *trace) (m *dns.Msg, cookie cookieStatus) {
	zone := "" // the zone that answered, for the query counter; every outcome is counted
	defer func() {
		if tr == nil {
			h.cfg.Metrics.query(zone, qtypeOf(req), m.Rcode)
		} else {
			tr.zone = zone
		}
	}()
	m = new(dns.Msg)
	m.SetReply(req)
	m.Compress = true
	if req.Opcode != dns.OpcodeQuery {
		m.Rcode = dns.RcodeNotImplemented
		return m, cookie
	}
	if len(req.Question) != 1 {
		m.Rcode = dns.RcodeFormatError
		return m, cookie
	}
	opt, ok := requestOPT(req)
	if !ok {
		m.Rcode = dns.RcodeFormatError
		return m, cookie
	}
	var respOPT *dns.OPT
	if opt != nil {
		respOPT = h.responseOPT(opt)
		m.Extra = append(m.Extra, respOPT)
		if opt.Version() != 0 {
			m.Rcode = dns.RcodeBadVers // RFC 6891 6.1.3
			return m, cookie
		}
	}
	ecs, ok := parseECS(opt)
	if !ok {
		m.Rcode = dns.RcodeFormatError
		return m, cookie
	}
	if opt != nil {
		var co *dns.EDNS0_COOKIE
		if cookie, co = h.cookies.check(opt, remote, h.clock()); cookie == cookieMalformed {
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
	case dns.ClassINET:
		var scope int
		var ede *dns.EDNS0_EDE
		scope, zone, ede = h.answerIN(m, q, client, tcp, tr)
		if ede != nil && respOPT != nil {
			// First among the options: the fast path appends a cookie and
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
		h.answerCHAOS(m, q)
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

func qtypeOf(req *dns.Msg) uint16 {
	if len(req.Question) == 0 {
		return dns.TypeNone // counted as "other"
	}
	return req.Question[0].Qtype
}

// requestOPT returns the query's OPT record; ok is false when the EDNS part
// is malformed: more than one OPT, an OPT not owned by the root, or an OPT
// outside the additional section (RFC 6891 6.1.1; NSD and Knot answer
// FORMERR too).
func requestOPT(req *dns.Msg) (opt *dns.OPT, ok bool) {
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

func (h *Handler) responseOPT(req *dns.OPT) *dns.OPT {
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

// Extended DNS Errors (RFC 8914) the handler sends to clients that sent
// EDNS. Shared by every response: never mutated.
var (
	// edeNotAuthoritative: REFUSED for a name outside our zones (as NSD and Knot).
	edeNotAuthoritative = &dns.EDNS0_EDE{InfoCode: dns.ExtendedErrorCodeNotAuthoritative}
	// edeProhibited: REFUSED for a zone transfer, which is never offered.
	edeProhibited = &dns.EDNS0_EDE{InfoCode: dns.ExtendedErrorCodeProhibited}
	// edeAllDown: a service answered under its all_down policy because no
	// site was up. No code fits better: 3 (Stale Answer) is about cached
	// data past its TTL, 22 (No Reachable Authority) about a resolver's
	// upstreams; so 0 (Other), with a text that says what happened.
	edeAllDown = &dns.EDNS0_EDE{InfoCode: dns.ExtendedErrorCodeOther, ExtraText: "all sites down"}
)

// answerIN answers a class IN question. It returns the ECS scope the
// answer holds for (0 unless a service routed by location answered), the
// zone that answered ("" if none) and the Extended DNS Error to send, if
// any.
func (h *Handler) answerIN(m *dns.Msg, q dns.Question, client netip.Prefix, tcp bool, tr *trace) (scope int, zone string, ede *dns.EDNS0_EDE) {
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
		if tr != nil {
			tr.services++
			tr.svc, tr.owner = svc, owner
			if tr.fixed != nil {
				if tr.fixed.AllDown {
					ede = edeAllDown
				}
				return serviceRRs(svc, owner, qtype, *tr.fixed)
			}
			return nil // filling the cache: the caller notes the service
		}
		d := h.router.Route(z.Origin, svc, client, qtype == dns.TypeAAAA)
		scope = max(scope, d.Scope)
		switch {
		case d.AllDown:
			ede = edeAllDown
			h.cfg.Metrics.answer(svc.Name, "all-down")
		case len(d.Sites) > 0:
			h.cfg.Metrics.answer(svc.Name, d.Sites[0])
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

// serviceRRs turns a routing decision into records owned by owner.
func serviceRRs(svc *zones.Service, owner string, qtype uint16, d route.Decision) []dns.RR {
	ttl := svc.TTL
	if d.Degraded {
		ttl = min(ttl, svc.DegradedTTL)
	}
	hdr := dns.RR_Header{Name: owner, Class: dns.ClassINET, Ttl: ttl}
	if svc.CNAME {
		if len(d.Names) == 0 {
			return nil
		}
		hdr.Rrtype = dns.TypeCNAME
		return []dns.RR{&dns.CNAME{Hdr: hdr, Target: d.Names[0]}}
	}
	out := make([]dns.RR, 0, len(d.Addrs))
	for _, a := range d.Addrs {
		out = append(out, addrRR(hdr, a))
	}
	return out
}

func (h *Handler) answerCHAOS(m *dns.Msg, q dns.Question) {
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

// truncate fits m into size bytes. Additional data is dropped first, as it
// is optional, except a referral's glue: without it a referral is useless,
// so a referral that does not fit whole is sent empty with TC (RFC 9471).
// An answer or authority section that does not fit is sent empty with TC so
// the client retries over TCP rather than caching a partial RRset.
func truncate(m *dns.Msg, size int) {
	// The uncompressed length is a cheap upper bound (no compression map):
	// when it fits, the compressed message fits too.
	m.Compress = false
	n := m.Len()
	m.Compress = true
	if n <= size || m.Len() <= size {
		return
	}
	var opt []dns.RR
	for _, rr := range m.Extra {
		if rr.Header().Rrtype == dns.TypeOPT {
			opt = append(opt, rr)
		}
	}
	if m.Authoritative || len(m.Answer) > 0 {
		m.Extra = opt
		if m.Len() <= size {
			return
		}
	}
	m.Truncated = true
	m.Answer, m.Ns, m.Extra = nil, nil, opt
}

func addrRR(hdr dns.RR_Header, a netip.Addr) dns.RR {
	if a.Is4() {
		hdr.Rrtype = dns.TypeA
		b := a.As4()
		return &dns.A{Hdr: hdr, A: net.IP(b[:])}
	}
	hdr.Rrtype = dns.TypeAAAA
	b := a.As16()
	return &dns.AAAA{Hdr: hdr, AAAA: net.IP(b[:])}
}

func hexString(s string) string {
	const digits = "0123456789abcdef"
	b := make([]byte, 0, 2*len(s))
	for i := 0; i < len(s); i++ {
		b = append(b, digits[s[i]>>4], digits[s[i]&15])
	}
	return string(b)
}
