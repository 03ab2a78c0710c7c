package resolver

import (
	"hash/maphash"
	"net/netip"
	"strings"
	"sync"
	"time"

	"github.com/miekg/dns"
	"github.com/prometheus/client_golang/prometheus"
)

// RRLConfig configures response rate limiting (the ISC/BIND algorithm) for
// UDP. Responses are grouped into accounts by client network, kind and
// name; each account may send Rate responses a second. Over that, a
// response is dropped, except every Slip-th, which is sent truncated so a
// real client (whose address is not spoofed) retries over TCP, where no
// limit applies. A zero Rate turns limiting off.
type RRLConfig struct {
	ResponsesPerSecond int           `yaml:"responses_per_second"` // answers for one name and type; 0: off
	NXDomainsPerSecond int           `yaml:"nxdomains_per_second"` // NXDOMAIN per zone; default as responses
	NodataPerSecond    int           `yaml:"nodata_per_second"`    // NODATA per name; default as responses
	ReferralsPerSecond int           `yaml:"referrals_per_second"` // referrals per delegation; default as responses
	ErrorsPerSecond    int           `yaml:"errors_per_second"`    // errors (REFUSED, FORMERR, ...); default as responses
	Slip               int           `yaml:"slip"`                 // every Nth limited response goes out with TC; default 2; 1: every one; -1: none
	Window             time.Duration `yaml:"window"`               // how much debt an account can run up; default 15s
	IPv4Prefix         int           `yaml:"ipv4_prefix"`          // client network size; default 24
	IPv6Prefix         int           `yaml:"ipv6_prefix"`          // default 56
	TableSize          int           `yaml:"table_size"`           // accounts kept at most; default 100000
}

// RRL decisions.
type rrlAction uint8

const (
	rrlSend rrlAction = iota
	rrlDrop
	rrlSlip
)

// Response kinds, as BIND classes them.
const (
	kindAnswer uint8 = iota
	kindNodata
	kindNXDomain
	kindReferral
	kindError
)

type rrlKey struct {
	client netip.Addr // masked to the configured prefix
	kind   uint8
	qtype  uint16 // answers and referrals only
	name   string // lower case; "" for errors
}

type rrlAccount struct {
	balance float64 // responses it may still send now
	last    time.Time
	limited uint32 // responses limited so far, for slip
}

type rrlShard struct {
	mu       sync.Mutex
	accounts map[rrlKey]*rrlAccount
}

// rrl is the limiter; safe for concurrent use.
type rrl struct {
	cfg     RRLConfig
	rates   [5]float64
	seed    maphash.Seed
	shards  [64]rrlShard
	dropped prometheus.Counter
	slipped prometheus.Counter
}

func newRRL(cfg RRLConfig, reg prometheus.Registerer) *rrl {
	if cfg.ResponsesPerSecond <= 0 {
		return nil
	}
	def := func(v int) float64 {
		if v <= 0 {
			return float64(cfg.ResponsesPerSecond)
		}
		return float64(v)
	}
	if cfg.Slip == 0 {
		cfg.Slip = 2
	}
	if cfg.Window <= 0 {
		cfg.Window = 15 * time.Second
	}
	if cfg.IPv4Prefix <= 0 || cfg.IPv4Prefix > 32 {
		cfg.IPv4Prefix = 24
	}
	if cfg.IPv6Prefix <= 0 || cfg.IPv6Prefix > 128 {
		cfg.IPv6Prefix = 56
	}
	if cfg.TableSize <= 0 {
		cfg.TableSize = 100000
	}
	r := &rrl{cfg: cfg, seed: maphash.MakeSeed(),
		rates:   [5]float64{def(cfg.ResponsesPerSecond), def(cfg.NodataPerSecond), def(cfg.NXDomainsPerSecond), def(cfg.ReferralsPerSecond), def(cfg.ErrorsPerSecond)},
		dropped: prometheus.NewCounter(prometheus.CounterOpts{Name: "geodns_rrl_dropped_total", Help: "UDP responses dropped by response rate limiting."}),
		slipped: prometheus.NewCounter(prometheus.CounterOpts{Name: "geodns_rrl_slipped_total", Help: "UDP responses sent truncated (TC) instead, by response rate limiting."}),
	}
	for i := range r.shards {
		r.shards[i].accounts = map[rrlKey]*rrlAccount{}
	}
	if reg != nil {
		reg.MustRegister(r.dropped, r.slipped)
	}
	return r
}

// key classes a response the way BIND does: answers by name and type,
// NODATA by name, NXDOMAIN by zone, referrals by delegation, errors alone.
func (r *rrl) key(client netip.Addr, m *dns.Msg) rrlKey {
	bits := r.cfg.IPv6Prefix
	if client.Is4() {
		bits = r.cfg.IPv4Prefix
	}
	p, _ := client.Prefix(bits)
	k := rrlKey{client: p.Addr()}
	var q dns.Question
	if len(m.Question) > 0 {
		q = m.Question[0]
	}
	switch {
	case m.Rcode != dns.RcodeSuccess && m.Rcode != dns.RcodeNameError:
		k.kind = kindError
	case len(m.Answer) > 0:
		k.kind, k.qtype, k.name = kindAnswer, q.Qtype, q.Name
	case m.Rcode == dns.RcodeNameError:
		k.kind = kindNXDomain
		if len(m.Ns) > 0 {
			k.name = m.Ns[0].Header().Name
		}
	case !m.Authoritative && len(m.Ns) > 0:
		k.kind, k.qtype, k.name = kindReferral, q.Qtype, m.Ns[0].Header().Name
	default:
		k.kind, k.name = kindNodata, q.Name
	}
	k.name = strings.ToLower(k.name)
	return k
}

// check debits the response's account and says what to do with it.
func (r *rrl) check(client netip.Addr, m *dns.Msg, now time.Time) rrlAction {
	k := r.key(client, m)
	rate := r.rates[k.kind]
	sh := &r.shards[maphash.String(r.seed, k.name)%uint64(len(r.shards))]
	sh.mu.Lock()
	defer sh.mu.Unlock()
	a := sh.accounts[k]
	if a == nil {
		if len(sh.accounts) >= r.cfg.TableSize/len(r.shards) {
			r.evict(sh, now)
		}
		a = &rrlAccount{balance: rate, last: now}
		sh.accounts[k] = a
	}
	// Credit the time since the last response, at most one second's worth;
	// debt is bounded by the window.
	a.balance = min(rate, a.balance+now.Sub(a.last).Seconds()*rate) - 1
	a.balance = max(a.balance, -rate*r.cfg.Window.Seconds())
	a.last = now
	if a.balance >= 0 {
		return rrlSend
	}
	a.limited++
	if r.cfg.Slip > 0 && a.limited%uint32(r.cfg.Slip) == 0 {
		r.slipped.Inc()
		return rrlSlip
	}
	r.dropped.Inc()
	return rrlDrop
}

// evict forgets accounts that have been quiet for a window: they are back
// to full credit anyway.
func (r *rrl) evict(sh *rrlShard, now time.Time) {
	for k, a := range sh.accounts {
		if now.Sub(a.last) > r.cfg.Window {
			delete(sh.accounts, k)
		}
	}
}

// slip turns a response into an empty truncated one: the client retries
// over TCP, and a spoofed victim receives next to nothing.
func slip(m *dns.Msg) {
	m.Truncated = true
	m.Answer, m.Ns = nil, nil
	var opt []dns.RR
	for _, rr := range m.Extra {
		if rr.Header().Rrtype == dns.TypeOPT {
			opt = append(opt, rr)
		}
	}
	m.Extra = opt
}
