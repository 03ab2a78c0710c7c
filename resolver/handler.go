package resolver

import (
	"encoding/binary"
	"log/slog"
	"net"
	"net/netip"
	"runtime/debug"
	"slices"
	"strings"
	"sync/atomic"
	"time"

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
	// CacheBytes is the budget of the answer cache, per zone set: packed
	// responses, their keys and overhead, negative answers alike; the
	// least used are evicted. Default
	// DefaultCacheBytes (64 MiB).
	CacheBytes int64
	// CookieSecret (16 bytes) makes DNS server cookies (RFC 9018); servers
	// of one anycast set should share it. Default nil: a random secret.
	CookieSecret []byte
	// Dnstap logs every query answered through ServeWire (NewDnstap).
	// Default nil: off.
	Dnstap *Dnstap
	// Signer signs the RRsets of answers to queries with DO=1 (DNSSEC).
	// Default nil: answers are not signed.
	Signer Signer
	// QueryLog logs a sample of the queries answered through ServeWire as
	// JSON lines (NewQueryLog). Default nil: off.
	QueryLog *QueryLog
}

// Signer is the DNSSEC seam of the writer. For a query with the DO bit,
// write hands it each RRset of the answer and authority sections (records
// of one owner and type, in zone order; for a service name, the variant
// of one routing decision) and appends the RRSIGs it returns after the
// set. write runs on cache misses only, and the signed response is cached
// with its packed bytes under the question's key (DO is part of it) and,
// for a service name, the decision: each answer variant is signed once
// per zone version, when first needed; a signer may keep its own side
// table for what it signs ahead (at zone build). Implementations must be
// safe for concurrent use and must not mutate rrs; nil means unsigned.
type Signer interface {
	Sign(z *zones.Zone, rrs []dns.RR) []dns.RR
}

// DefaultMaxUDPSize is the UDP response cap when Config.MaxUDPSize is 0.
const DefaultMaxUDPSize = 1232

// Router decides what a service name answers a client; *route.Router is
// one. Implementations must be safe for concurrent use.
type Router interface {
	Route(origin string, svc *zones.Service, client netip.Prefix, v6 bool) zones.Decision
	// Where gives a client's coordinates for a decision made without them
	// (Why.Mapped): query logs report the distance to the site.
	Where(client netip.Addr) (lat, lon float64, ok bool)
}

// noRouter answers every service with nothing (NODATA).
type noRouter struct{}

func (noRouter) Route(string, *zones.Service, netip.Prefix, bool) zones.Decision {
	return zones.Decision{}
}

func (noRouter) Where(netip.Addr) (lat, lon float64, ok bool) { return 0, 0, false }

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
	// onResolve, if not nil, is called each time the engine resolves a
	// query (a cache miss): tests count the answers made per query.
	onResolve func()
}

// NewHandler returns a handler serving the zone set held by zs, routing
// service names with router (nil: no router, service names answer
// NODATA; cmd/geodns plugs in *route.Router).
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
		router = noRouter{}
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

// ServeWire answers the query q from remote into out and returns the
// response; nil means no response (dropped). out is reused storage. It is
// the entry of every query, from the network and from the other entries
// (ServeDNS, Answer): a panic while answering is recovered here, counted,
// and answered SERVFAIL.
func (h *Handler) ServeWire(q []byte, remote netip.Addr, tcp bool, out []byte) (resp []byte) {
	return h.entry(q, remote, tcp, out, traffic, nil, time.Time{})
}

// ServeWireAt is ServeWire for a query read at time now: the UDP readers
// read the clock once per batch of queries, and a query that needs the
// time (a DNS cookie is dated, RRL accounts by it) takes that reading
// rather than its own, which cost 87 ns here — more than half of what a
// cached answer costs.
func (h *Handler) ServeWireAt(q []byte, remote netip.Addr, tcp bool, out []byte, now time.Time) []byte {
	return h.entry(q, remote, tcp, out, traffic, nil, now)
}

// entry is ServeWire in mode md, routing with rt (nil: the handler's
// router): the one recover.
func (h *Handler) entry(q []byte, remote netip.Addr, tcp bool, out []byte, md mode, rt routeFunc, at time.Time) (resp []byte) {
	defer func() {
		if p := recover(); p != nil {
			h.panicked(p)
			resp = servfailWire(q, out, h.cfg.MaxUDPSize)
		}
	}()
	if md != traffic {
		return h.serve(q, remote, tcp, out, nil, md, rt, at)
	}
	t, ql := h.cfg.Dnstap, h.cfg.QueryLog
	if ql != nil && !ql.sampled() {
		ql = nil // most queries: not in the sample
	}
	if t != nil || ql != nil {
		var d tapDecision
		resp = h.serve(q, remote, tcp, out, &d, md, rt, at)
		if t != nil {
			t.log(q, resp, remote, tcp, &d)
		}
		if ql != nil {
			ql.log(q, resp, remote, tcp, &d)
		}
		return resp
	}
	return h.serve(q, remote, tcp, out, nil, md, rt, at)
}

// ServeDNS implements dns.Handler (for miekg/dns servers): the query is
// answered through ServeWire and written once.
func (h *Handler) ServeDNS(w dns.ResponseWriter, req *dns.Msg) {
	remote := w.RemoteAddr()
	_, tcp := remote.(*net.TCPAddr)
	bp := wireBufs.Get().(*[]byte)
	defer wireBufs.Put(bp)
	q, out := wireSplit(*bp)
	q, err := packRequest(req, q)
	if err != nil {
		m := new(dns.Msg).SetRcode(req, dns.RcodeFormatError)
		w.WriteMsg(m)
		return
	}
	if resp := h.ServeWire(q, addrOf(remote), tcp, out); resp != nil {
		w.Write(resp)
	}
}

// Recovered counts and logs (at most once a second) a panic recovered
// while answering a query, as ServeWire does with its own: for a handler
// that wraps this one (zone transfers).
func (h *Handler) Recovered(p any) { h.panicked(p) }

// panicked counts a panic, and logs it at most once a second: a query
// that makes the handler panic may come in a flood.
func (h *Handler) panicked(p any) {
	h.panics.Add(1)
	if h.cfg.Metrics != nil {
		h.cfg.Metrics.panics.Inc()
	}
	now := time.Now().Unix()
	if last := h.panicLogged.Load(); now > last && h.panicLogged.CompareAndSwap(last, now) {
		h.log.Error("panic answering a query; answered SERVFAIL", "panic", p, "stack", string(debug.Stack()))
	}
}

// servfailWire answers q with SERVFAIL, built from its bytes alone: the
// header, the question if there is one to copy, and an OPT record if the
// query had one. Nil when q is not a query with a header.
func servfailWire(q, out []byte, udpSize uint16) []byte {
	if len(q) < 12 || q[2]&0x80 != 0 {
		return nil
	}
	resp := append(out[:0], q[:12]...)
	resp[2] = 0x80 | q[2]&0x79 // QR, opcode, RD
	resp[3] = q[3]&0x10 | dns.RcodeServerFailure
	clear(resp[4:12])
	if binary.BigEndian.Uint16(q[4:]) != 1 {
		return resp
	}
	off := 12
	for off < len(q) && q[off] != 0 && q[off] <= 63 {
		off += int(q[off]) + 1
	}
	if off+5 > len(q) || q[off] != 0 {
		return resp // a name we cannot copy as is (a pointer, cut short)
	}
	off += 5
	resp = append(resp, q[12:off]...)
	resp[5] = 1
	if off+11 <= len(q) && q[off] == 0 && binary.BigEndian.Uint16(q[off+1:]) == dns.TypeOPT {
		// An OPT record with EDE 0 (Other), no text (RFC 8914): the
		// client sees the failure is ours, not its resolver's.
		resp = append(resp, 0, 0, 41, byte(udpSize>>8), byte(udpSize), 0, 0, 0, 0, 0, 6,
			0, 15, 0, 2, 0, 0)
		resp[11] = 1
	}
	return resp
}

// Answer builds the response to req from the client at remote, through
// the engine (counted as a query, not rate limited). tcp says whether it
// goes back over TCP (no size limit, full ANY answers). Nil if req is a
// response. The message is the caller's, its sections too (an append
// copies), but its records other than the OPT are shared with other
// answers, as the zone's own records were: they must not be modified
// (replace one with a copy, as xfr does to patch a serial).
func (h *Handler) Answer(req *dns.Msg, remote netip.Addr, tcp bool) *dns.Msg {
	return h.answerMsg(req, remote, tcp, direct, nil)
}

func (h *Handler) answerMsg(req *dns.Msg, remote netip.Addr, tcp bool, md mode, rt routeFunc) *dns.Msg {
	// Packed and answered in a pooled buffer: the response is decoded
	// into a message of its own, which keeps no reference to it.
	bp := wireBufs.Get().(*[]byte)
	defer wireBufs.Put(bp)
	q, out := wireSplit(*bp)
	q, err := packRequest(req, q)
	if err != nil {
		return new(dns.Msg).SetRcode(req, dns.RcodeFormatError)
	}
	resp := h.entry(q, remote, tcp, out, md, rt, time.Time{})
	if resp == nil {
		return nil
	}
	m, err := msgFromWire(resp, req)
	if err != nil {
		h.log.Error("cannot unpack our response", "error", err, "query", queryString(req))
		return new(dns.Msg).SetRcode(req, dns.RcodeServerFailure)
	}
	return m
}

func queryString(req *dns.Msg) string {
	if req == nil || len(req.Question) == 0 {
		return "?"
	}
	return req.Question[0].String()
}

// Uncounted is a view of a handler that answers without counting: for
// explains, which run the server's own engine on its own state but are
// not traffic. Answer it with the same zones, router and settings as the
// handler; nothing reaches the metrics, the rate limiter, dnstap or the
// cache.
type Uncounted struct{ h *Handler }

// Uncounted returns h's view that answers without counting.
func (h *Handler) Uncounted() Uncounted { return Uncounted{h} }

// Answer is Handler.Answer, not counted in the query or answer metrics.
func (u Uncounted) Answer(req *dns.Msg, remote netip.Addr, tcp bool) *dns.Msg {
	return u.h.answerMsg(req, remote, tcp, explain, nil)
}

// Explain is Answer with each service name met routed by route instead
// of the handler's router (given the name it answers and the type), so an
// explain records the decisions of the one answer it shows: the same
// engine, the same lookup, run once.
func (u Uncounted) Explain(req *dns.Msg, remote netip.Addr, tcp bool,
	route func(origin string, svc *zones.Service, owner string, qtype uint16, client netip.Prefix) zones.Decision) *dns.Msg {
	return u.h.answerMsg(req, remote, tcp, explain, route)
}

// routeFunc routes a service name for an explain (Uncounted.Explain).
type routeFunc = func(origin string, svc *zones.Service, owner string, qtype uint16, client netip.Prefix) zones.Decision

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

// serviceRRs turns a routing decision into records owned by owner.
func serviceRRs(svc *zones.Service, owner string, qtype uint16, d zones.Decision) []dns.RR {
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

// answerCHAOS answers the CHAOS TXT questions that name the server.
func (h *Handler) answerCHAOS(o *outcome, qtype uint16) {
	var text string
	if qtype == dns.TypeTXT || qtype == dns.TypeANY {
		switch o.qname {
		case "id.server.", "hostname.bind.":
			text = h.cfg.ServerID
		case "version.server.", "version.bind.":
			text = h.cfg.Version
		}
	}
	if text == "" {
		o.rcode = dns.RcodeRefused
		return
	}
	o.aa = true
	o.answer = []dns.RR{&dns.TXT{
		Hdr: dns.RR_Header{Name: o.qname, Rrtype: dns.TypeTXT, Class: dns.ClassCHAOS},
		Txt: []string{text},
	}}
}

// truncate fits m into size bytes. Additional data is dropped first, as it
// is optional: whole RRsets from the end, keeping as many as fit (RFC 2181
// 9: no TC for it), except a referral's glue: without it a referral is
// useless, so a referral that does not fit whole is sent empty with TC (RFC
// 9471). An answer or authority section that does not fit is sent empty
// with TC so the client retries over TCP rather than caching a partial
// RRset. It reports whether anything was dropped.
func truncate(m *dns.Msg, size int) (trimmed bool) {
	// The uncompressed length is a cheap upper bound (no compression map):
	// when it fits, the compressed message fits too.
	m.Compress = false
	n := m.Len()
	m.Compress = true
	if n <= size || fits(m, size) {
		return false
	}
	var opt []dns.RR
	for _, rr := range m.Extra {
		if rr.Header().Rrtype == dns.TypeOPT {
			opt = append(opt, rr)
		}
	}
	if m.Authoritative || len(m.Answer) > 0 {
		extra := m.Extra
		m.Extra = opt
		if fits(m, size) {
			m.Extra = keepExtra(m, extra, opt, size)
			return true
		}
	}
	m.Truncated = true
	m.Answer, m.Ns, m.Extra = nil, nil, opt
	return true
}

// fits reports whether m, compressed, packs into size bytes. m.Len() is
// only an estimate, and one that counts more than is written for signed
// data (two bytes of base64 padding per RRSIG signature, more per NSEC3
// record): a message it puts over the limit is packed and measured, or a
// signed answer that fits would be sent empty with TC (NSD and Knot send
// it whole).
func fits(m *dns.Msg, size int) bool {
	if m.Len() <= size {
		return true
	}
	wire, err := m.Pack()
	return err == nil && len(wire) <= size
}

// keepExtra returns the longest run of extra's RRsets, from the first,
// that m fits in size with (and opt, the OPT record, last); m fits with
// opt alone. A binary search over the RRsets' ends: a packing per step.
func keepExtra(m *dns.Msg, extra, opt []dns.RR, size int) []dns.RR {
	var ends []int // where each RRset of extra ends, OPT left out
	var rrs []dns.RR
	for i, rr := range extra {
		if rr.Header().Rrtype == dns.TypeOPT {
			continue
		}
		rrs = append(rrs, rr)
		if i+1 == len(extra) || extra[i+1].Header().Rrtype != rr.Header().Rrtype || !strings.EqualFold(extra[i+1].Header().Name, rr.Header().Name) {
			ends = append(ends, len(rrs))
		}
	}
	with := func(k int) []dns.RR { return append(slices.Clip(rrs[:k]), opt...) }
	lo, hi := 0, len(ends) // ends[:lo] fit; ends[:hi+1] do not
	for lo < hi {
		mid := (lo + hi + 1) / 2
		if m.Extra = with(ends[mid-1]); fits(m, size) {
			lo = mid
		} else {
			hi = mid - 1
		}
	}
	if lo == 0 {
		return opt
	}
	return with(ends[lo-1])
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
