package resolver

import (
	"log/slog"
	"net"
	"net/netip"
	"strings"
	"sync/atomic"

	"github.com/geodns/geodns/zones"
	"github.com/miekg/dns"
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
}

// DefaultMaxUDPSize is the UDP response cap when Config.MaxUDPSize is 0.
const DefaultMaxUDPSize = 1232

// Handler answers queries from the zone set it reads through an atomic
// pointer. It is safe for concurrent use.
type Handler struct {
	zones  *atomic.Pointer[zones.Set]
	cfg    Config
	log    *slog.Logger
	panics atomic.Uint64
}

// NewHandler returns a handler serving the zone set held by zs.
func NewHandler(zs *atomic.Pointer[zones.Set], cfg Config, log *slog.Logger) *Handler {
	if cfg.MaxUDPSize == 0 {
		cfg.MaxUDPSize = DefaultMaxUDPSize
	}
	if log == nil {
		log = slog.Default()
	}
	return &Handler{zones: zs, cfg: cfg, log: log}
}

// Panics returns how many queries panicked in the handler so far.
func (h *Handler) Panics() uint64 { return h.panics.Load() }

// ServeDNS implements dns.Handler: one answer, one write. A panic while
// answering is recovered, counted and logged, and the client gets SERVFAIL.
func (h *Handler) ServeDNS(w dns.ResponseWriter, req *dns.Msg) {
	defer func() {
		if p := recover(); p != nil {
			h.panics.Add(1)
			h.log.Error("panic answering query", "panic", p, "query", queryString(req))
			m := new(dns.Msg)
			m.SetRcode(req, dns.RcodeServerFailure)
			w.WriteMsg(m)
		}
	}()
	_, tcp := w.RemoteAddr().(*net.TCPAddr)
	w.WriteMsg(h.Answer(req, tcp))
}

func queryString(req *dns.Msg) string {
	if req == nil || len(req.Question) == 0 {
		return "?"
	}
	return req.Question[0].String()
}

// Answer builds the response to req. tcp says whether it will go back over
// TCP (no size limit, full ANY answers).
func (h *Handler) Answer(req *dns.Msg, tcp bool) *dns.Msg {
	m := new(dns.Msg)
	m.SetReply(req)
	m.Compress = true
	if req.Opcode != dns.OpcodeQuery {
		m.Rcode = dns.RcodeNotImplemented
		return m
	}
	if len(req.Question) != 1 {
		m.Rcode = dns.RcodeFormatError
		return m
	}
	opt, ok := requestOPT(req)
	if !ok {
		m.Rcode = dns.RcodeFormatError
		return m
	}
	if opt != nil {
		m.Extra = append(m.Extra, h.responseOPT(opt))
		if opt.Version() != 0 {
			m.Rcode = dns.RcodeBadVers // RFC 6891 6.1.3
			return m
		}
	}
	q := req.Question[0]
	switch q.Qclass {
	case dns.ClassINET:
		h.answerIN(m, q, tcp)
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
	return m
}

// requestOPT returns the query's OPT record; ok is false when the EDNS part
// is malformed (more than one OPT, or an OPT not owned by the root).
func requestOPT(req *dns.Msg) (opt *dns.OPT, ok bool) {
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

func (h *Handler) answerIN(m *dns.Msg, q dns.Question, tcp bool) {
	switch q.Qtype {
	case dns.TypeAXFR, dns.TypeIXFR:
		m.Rcode = dns.RcodeRefused // zone transfers are not offered
		return
	case dns.TypeOPT, dns.TypeTSIG, dns.TypeTKEY:
		m.Rcode = dns.RcodeFormatError // meta types are not questions
		return
	}
	qname := strings.ToLower(q.Name)
	set := h.zones.Load()
	var z *zones.Zone
	if set != nil {
		z = set.Find(qname, q.Qtype)
	}
	if z == nil {
		m.Rcode = dns.RcodeRefused // not ours, and we never recurse
		return
	}
	a := z.Lookup(qname, q.Qtype, !tcp, firstSite)
	m.Authoritative = a.Result != zones.Delegation
	if a.Result == zones.NXDomain {
		m.Rcode = dns.RcodeNameError
	}
	m.Answer, m.Ns = a.Answer, a.Ns
	if len(a.Extra) > 0 {
		// The OPT record goes last; copy so the zone's slice is never appended to.
		extra := make([]dns.RR, 0, len(a.Extra)+len(m.Extra))
		extra = append(extra, a.Extra...)
		m.Extra = append(extra, m.Extra...)
	}
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
	if m.Len() <= size {
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

// firstSite answers a service name from the first site in the service's
// order that has addresses of the asked family; geo routing replaces it.
func firstSite(svc *zones.Service, owner string, qtype uint16) []dns.RR {
	want4 := qtype == dns.TypeA
	for _, site := range svc.SiteOrder {
		var out []dns.RR
		for _, ep := range svc.Endpoints {
			if ep.Site != site || ep.Address.Is4() != want4 || len(out) == svc.Answers {
				continue
			}
			out = append(out, addrRR(owner, svc.TTL, ep.Address))
		}
		if len(out) > 0 {
			return out
		}
	}
	return nil
}

func addrRR(owner string, ttl uint32, a netip.Addr) dns.RR {
	hdr := dns.RR_Header{Name: owner, Class: dns.ClassINET, Ttl: ttl}
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
