package resolver

import (
	"encoding/binary"
	"hash/maphash"
	"math/bits"
	"net/netip"
	"strings"
	"sync/atomic"
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
	Slip               int           `yaml:"slip"`                 // every Nth limited response goes out with TC; default 2; 1: every one; -1: none; at most 15
	Window             time.Duration `yaml:"window"`               // how much debt an account can run up; default 15s
	IPv4Prefix         int           `yaml:"ipv4_prefix"`          // client network size; default 24
	IPv6Prefix         int           `yaml:"ipv6_prefix"`          // default 56
	TableSize          int           `yaml:"table_size"`           // account slots, rounded up to a power of two; default 100000 (131072 slots, 1 MiB)
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

// rrlClass is the part of a response's account that does not depend on
// the client: its kind, and the hash of the kind, type and name. The
// writer computes it once per packed response.
type rrlClass struct {
	kind uint8
	hash uint64
}

// The limiter is Knot's mod-rrl table with a GCRA bucket: a fixed array
// of power-of-two slots, one 64-bit word each, indexed by the hash of
// (client network, class). A word holds a tag (more bits of the hash),
// the count of limited responses (for slip) and the account's
// theoretical arrival time (TAT): when, at its rate, it will have paid off
// every response sent so far. A response is sent when the TAT, advanced
// by one response, is at most a second (the rate's burst) ahead of now.
// Accounts that collide share or take over a slot: the table never grows,
// and a check is a hash, a load and a compare-and-swap, without locks.
const (
	rrlTagShift = 52 // tag: bits 52-63
	rrlCntShift = 48 // limited count: bits 48-51
	rrlTimeMask = 1<<48 - 1
	rrlUnit     = 1024 // nanoseconds per time unit: 48 bits last 9 years, and wrap safely
	rrlSecond   = int64(time.Second / rrlUnit)
	maxSlip     = 15 // the count has 4 bits
)

// rrl is the limiter; safe for concurrent use.
type rrl struct {
	cfg      RRLConfig
	interval [5]int64  // time units per response at each kind's rate
	debt     int64     // how far past the burst the TAT may run: the window
	mask4    uint32    // client network masks
	mask6    [2]uint64 // (high, low 64 bits)
	seed     maphash.Seed
	slots    []atomic.Uint64
	mask     uint64
	base     time.Time
	recent   atomic.Int64 // a recent reading of the clock, for checkLazy; 0: none yet
	dropped  prometheus.Counter
	slipped  prometheus.Counter
}

func newRRL(cfg RRLConfig, reg prometheus.Registerer) *rrl {
	if cfg.ResponsesPerSecond <= 0 {
		return nil
	}
	def := func(v int) int64 {
		if v <= 0 {
			v = cfg.ResponsesPerSecond
		}
		return rrlSecond / int64(v) // 0 for rates past a million a second: never limited
	}
	if cfg.Slip == 0 {
		cfg.Slip = 2
	}
	cfg.Slip = min(cfg.Slip, maxSlip)
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
	n := 1 << bits.Len(uint(max(cfg.TableSize, 64)-1)) // a power of two, at least TableSize
	r := &rrl{cfg: cfg, seed: maphash.MakeSeed(), mask4: ^uint32(0) << (32 - cfg.IPv4Prefix),
		interval: [5]int64{def(cfg.ResponsesPerSecond), def(cfg.NodataPerSecond), def(cfg.NXDomainsPerSecond), def(cfg.ReferralsPerSecond), def(cfg.ErrorsPerSecond)},
		debt:     int64(cfg.Window / rrlUnit),
		slots:    make([]atomic.Uint64, n),
		mask:     uint64(n - 1),
		base:     time.Now().Add(-time.Second), // times in units are positive: 0 is "no reading"
		dropped:  prometheus.NewCounter(prometheus.CounterOpts{Name: "geodns_rrl_dropped_total", Help: "UDP responses dropped by response rate limiting."}),
		slipped:  prometheus.NewCounter(prometheus.CounterOpts{Name: "geodns_rrl_slipped_total", Help: "UDP responses sent truncated (TC) instead, by response rate limiting."}),
	}
	for i, b := range [2]int{min(cfg.IPv6Prefix, 64), max(cfg.IPv6Prefix-64, 0)} {
		r.mask6[i] = ^uint64(0) << (64 - b) // 0 for b == 0: Go shifts past the width to 0
	}
	if reg != nil {
		reg.MustRegister(r.dropped, r.slipped)
	}
	return r
}

// class classes a response the way BIND does: answers by name and type,
// NODATA by name, NXDOMAIN by zone, referrals by delegation, errors alone.
func (r *rrl) class(m *dns.Msg) rrlClass {
	var q dns.Question
	if len(m.Question) > 0 {
		q = m.Question[0]
	}
	var kind uint8
	var qtype uint16
	var name string
	switch {
	case m.Rcode != dns.RcodeSuccess && m.Rcode != dns.RcodeNameError:
		kind = kindError
	case len(m.Answer) > 0:
		kind, qtype, name = kindAnswer, q.Qtype, q.Name
	case m.Rcode == dns.RcodeNameError:
		kind = kindNXDomain
		if len(m.Ns) > 0 {
			name = m.Ns[0].Header().Name
		}
	case !m.Authoritative && len(m.Ns) > 0:
		kind, qtype, name = kindReferral, q.Qtype, m.Ns[0].Header().Name
	default:
		kind, name = kindNodata, q.Name
	}
	return r.classOf(kind, qtype, name)
}

// classOf is the class of responses of a kind, for a type and a name.
func (r *rrl) classOf(kind uint8, qtype uint16, name string) rrlClass {
	var mh maphash.Hash
	mh.SetSeed(r.seed)
	mh.WriteString(strings.ToLower(name))
	return rrlClass{kind: kind, hash: mh.Sum64() ^ uint64(kind)<<56 ^ uint64(qtype)<<32}
}

// slot returns the index and tag of the account of class c for client.
func (r *rrl) slot(client netip.Addr, c rrlClass) (int, uint64) {
	var x uint64
	if client.Is4() {
		a := client.As4()
		x = uint64(binary.BigEndian.Uint32(a[:])&r.mask4) | 4<<32
	} else {
		a := client.As16()
		x = (binary.BigEndian.Uint64(a[:8])&r.mask6[0])*0x9e3779b97f4a7c15 ^ binary.BigEndian.Uint64(a[8:])&r.mask6[1]
	}
	h := mix(c.hash ^ x*0xc2b2ae3d27d4eb4f)
	return int(h & r.mask), h >> rrlTagShift
}

// mix is the splitmix64 finalizer: every input bit flips about half the
// output bits.
func mix(x uint64) uint64 {
	x ^= x >> 30
	x *= 0xbf58476d1ce4e5b9
	x ^= x >> 27
	x *= 0x94d049bb133111eb
	return x ^ x>>31
}

// units returns now in the table's time units.
func (r *rrl) units(now time.Time) int64 { return int64(now.Sub(r.base) / rrlUnit) }

// check debits the response's account and says what to do with it.
func (r *rrl) check(client netip.Addr, c rrlClass, now time.Time) rrlAction {
	return r.account(client, c, r.units(now), nil)
}

// checkLazy is check for a cached response, where reading the clock would
// cost about as much as the rest of the answer. It uses a recent reading
// of the clock instead, which is never ahead of the time: an account that
// has credit at that time has credit now, and is sent at once. Only an
// account that looks limited reads the clock, to decide exactly (and to
// refresh the reading for everyone); so does a sample of queries (sample,
// about one in 64), so that the reading is never stale for long: an
// account idle since before it gets full credit from the reading's time
// rather than from now, which can let one extra second's worth of
// responses out before the exact time catches up.
func (r *rrl) checkLazy(client netip.Addr, c rrlClass, clock func() time.Time, sample bool) rrlAction {
	t := r.recent.Load()
	if sample || t == 0 {
		t = r.units(clock())
		r.recent.Store(t)
	}
	return r.account(client, c, t, clock)
}

// account runs the GCRA step on the slot of client and c at time t. With
// a clock, t is a recent reading: a response limited at t is decided
// again at the clock's time.
func (r *rrl) account(client netip.Addr, c rrlClass, t int64, clock func() time.Time) rrlAction {
	i, tag := r.slot(client, c)
	interval := r.interval[c.kind]
	s := &r.slots[i]
	for {
		old := s.Load()
		tat, cnt := t, uint64(0) // a new account (or one taking over the slot) has full credit
		if old != 0 && old>>rrlTagShift == tag {
			// The stored time is the TAT's low 48 bits; the difference,
			// sign extended from 48 bits, survives the wrap.
			d := int64((old-uint64(t))<<16) >> 16
			tat, cnt = t+max(d, 0), old>>rrlCntShift&0xF
		}
		tat += interval
		send := tat-t <= rrlSecond
		if !send && clock != nil {
			t = r.units(clock())
			r.recent.Store(t)
			clock = nil
			continue
		}
		tat = min(tat, t+rrlSecond+r.debt) // debt is bounded by the window
		act := rrlSend
		if !send {
			act = rrlDrop
			// Counted only to slip: with slip off (-1) an unbounded count
			// would carry out of its 4 bits into the tag, and the account,
			// no longer recognised, would start again with full credit.
			if r.cfg.Slip > 0 {
				if cnt++; cnt >= uint64(r.cfg.Slip) {
					act, cnt = rrlSlip, 0
				}
			}
		}
		if s.CompareAndSwap(old, tag<<rrlTagShift|cnt<<rrlCntShift|uint64(tat)&rrlTimeMask) {
			switch act {
			case rrlSlip:
				r.slipped.Inc()
			case rrlDrop:
				r.dropped.Inc()
			}
			return act
		}
	}
}

// slipWire is slip for a packed response whose question ends at qend and
// whose OPT record, if any, starts at opt (-1: none) and ends it.
func slipWire(resp []byte, qend, opt int) []byte {
	resp[2] |= 0x02 // TC
	clear(resp[6:10])
	resp[10], resp[11] = 0, 0
	if opt < 0 {
		return resp[:qend]
	}
	resp[11] = 1
	n := copy(resp[qend:], resp[opt:])
	return resp[:qend+n]
}
