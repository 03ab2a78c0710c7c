package resolver

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"net/netip"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/miekg/dns"
)

// QueryLogConfig is the sampled JSON query log: one line per logged
// query, with the routing decision. Default: off.
type QueryLogConfig struct {
	// Path is a file (appended to, created 0640) or "-" for standard
	// output. "": off.
	Path string `yaml:"path"`
	// Sample is the share of queries considered, in (0, 1]. Default 0.01.
	Sample float64 `yaml:"sample"`
	// MaxPerSecond caps the lines written per second; sampled queries past
	// it are counted (geodns_query_log_limited_total), not logged.
	// Default 100.
	MaxPerSecond int `yaml:"max_per_second"`
}

// Enabled reports whether a destination is set.
func (c QueryLogConfig) Enabled() bool { return c.Path != "" }

// Check returns what is wrong with c, if anything.
func (c QueryLogConfig) Check() error {
	switch {
	case c.Sample < 0 || c.Sample > 1 || math.IsNaN(c.Sample):
		return fmt.Errorf("query_log: sample %g is not in (0, 1]", c.Sample)
	case c.MaxPerSecond < 0:
		return fmt.Errorf("query_log: max_per_second %d is negative", c.MaxPerSecond)
	}
	return nil
}

// queryLogQueue is how many sampled queries wait for the writer; past it
// they are dropped and counted: a slow destination never holds a query.
const queryLogQueue = 1024

// QueryLog writes the sampled JSON query log. The query path draws a
// random number (most queries stop there), takes a slot of the second's
// budget, copies the messages and hands them to the writer goroutine
// without waiting; the writer decodes and encodes. Safe for concurrent use.
type QueryLog struct {
	threshold uint64 // a query is sampled when a random uint64 is below it
	max       int64
	sec       atomic.Int64 // the second n counts
	n         atomic.Int64
	ch        chan qlEntry
	stopOnce  sync.Once
	stop      chan struct{}
	done      chan struct{}
	w         *bufio.Writer
	closer    io.Closer // nil for standard output
	m         *Metrics
}

type qlEntry struct {
	at      time.Time
	remote  netip.Addr
	tcp     bool
	q, resp []byte
	dec     tapDecision
}

// NewQueryLog opens cfg's destination and starts the writer; counts go to m.
func NewQueryLog(cfg QueryLogConfig, m *Metrics) (*QueryLog, error) {
	if err := cfg.Check(); err != nil {
		return nil, err
	}
	if cfg.Sample == 0 {
		cfg.Sample = 0.01
	}
	if cfg.MaxPerSecond == 0 {
		cfg.MaxPerSecond = 100
	}
	l := &QueryLog{max: int64(cfg.MaxPerSecond), ch: make(chan qlEntry, queryLogQueue),
		stop: make(chan struct{}), done: make(chan struct{}), m: m}
	l.threshold = math.MaxUint64
	if cfg.Sample < 1 {
		l.threshold = uint64(cfg.Sample * (1 << 64))
	}
	switch cfg.Path {
	case "":
		return nil, errors.New("query_log: no path")
	case "-":
		l.w = bufio.NewWriter(os.Stdout)
	default:
		f, err := os.OpenFile(cfg.Path, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o640)
		if err != nil {
			return nil, fmt.Errorf("query_log: %w", err)
		}
		l.w, l.closer = bufio.NewWriter(f), f
	}
	go l.run()
	return l, nil
}

// sampled decides whether this query is considered for the log.
func (l *QueryLog) sampled() bool { return rand.Uint64() < l.threshold }

// log hands a sampled query to the writer if the second's budget allows;
// it never blocks.
func (l *QueryLog) log(q, resp []byte, remote netip.Addr, tcp bool, d *tapDecision) {
	at := time.Now()
	sec := at.Unix()
	if old := l.sec.Load(); old != sec && l.sec.CompareAndSwap(old, sec) {
		l.n.Store(0)
	}
	if l.n.Add(1) > l.max {
		if l.m != nil {
			l.m.queryLogLimited.Inc()
		}
		return
	}
	e := qlEntry{at: at, remote: remote, tcp: tcp, q: append([]byte(nil), q...)}
	if resp != nil {
		e.resp = append([]byte(nil), resp...)
	}
	if d != nil {
		e.dec = *d
	}
	select {
	case l.ch <- e:
	default:
		if l.m != nil {
			l.m.queryLogDropped.Inc()
		}
	}
}

// QueryLine is one line of the JSON query log.
type QueryLine struct {
	Time      time.Time `json:"time"`
	Client    string    `json:"client"`
	Transport string    `json:"transport"`
	Qname     string    `json:"qname,omitempty"`
	Qtype     string    `json:"qtype,omitempty"`
	Rcode     string    `json:"rcode"` // "-" when no response was sent (dropped, e.g. by RRL)
	Answer    []string  `json:"answer,omitempty"`
	// The routing decision of a service answer (as in dnstap's extra).
	Service    string   `json:"service,omitempty"`
	Site       string   `json:"site,omitempty"`
	Network    string   `json:"network,omitempty"`    // the client network routed on
	ECSSource  *int     `json:"ecs_source,omitempty"` // the ECS option's source length, if the query had one
	Scope      *int     `json:"scope,omitempty"`
	Rule       int      `json:"rule,omitempty"` // the service's rule that chose (1-based)
	DistanceKm *int     `json:"distance_km,omitempty"`
	Bucket     *float64 `json:"bucket,omitempty"`
	BucketSite string   `json:"bucket_site,omitempty"`
	Spill      bool     `json:"spill,omitempty"`
	Degraded   bool     `json:"degraded,omitempty"`
}

func (l *QueryLog) run() {
	defer close(l.done)
	enc := json.NewEncoder(l.w)
	enc.SetEscapeHTML(false)
	write := func(e qlEntry) {
		if enc.Encode(line(e)) == nil && l.m != nil {
			l.m.queryLogLines.Inc()
		}
	}
	for {
		select {
		case e := <-l.ch:
			write(e)
			if len(l.ch) == 0 {
				l.w.Flush() // a line is readable (tail -f) as soon as the queue is empty
			}
		case <-l.stop:
		rest:
			for {
				select {
				case e := <-l.ch:
					write(e)
				default:
					break rest
				}
			}
			l.w.Flush()
			if l.closer != nil {
				l.closer.Close()
			}
			return
		}
	}
}

// line decodes one logged query.
func line(e qlEntry) QueryLine {
	ql := QueryLine{Time: e.at.UTC(), Client: e.remote.Unmap().String(), Transport: "udp", Rcode: "-"}
	if e.tcp {
		ql.Transport = "tcp"
	}
	q := new(dns.Msg)
	if q.Unpack(e.q) == nil && len(q.Question) > 0 {
		ql.Qname, ql.Qtype = q.Question[0].Name, dns.TypeToString[q.Question[0].Qtype]
	}
	if e.resp != nil {
		r := new(dns.Msg)
		if err := r.Unpack(e.resp); err == nil {
			ql.Rcode = dns.RcodeToString[r.Rcode]
			for _, rr := range r.Answer {
				ql.Answer = append(ql.Answer, rrData(rr))
			}
		} else if len(e.resp) >= 4 {
			ql.Rcode = dns.RcodeToString[int(e.resp[3]&0x0f)]
		}
	}
	d := &e.dec
	if d.service != nil {
		ql.Service, ql.Site, ql.Network = d.service.Name, d.site, d.client.String()
		scope := d.scope
		ql.Scope = &scope
		if d.ecs {
			src := d.client.Bits()
			ql.ECSSource = &src
		}
		if d.why.Rule > 0 {
			ql.Rule = d.why.Rule
		} else if km, ok := d.distance(); ok {
			k := int(math.Round(km))
			ql.DistanceKm = &k
		}
		if d.why.Bucket >= 0 {
			b := math.Round(d.why.Bucket*1e4) / 1e4
			ql.Bucket, ql.BucketSite = &b, d.why.BucketSite
		}
		ql.Spill, ql.Degraded = d.why.Spilled, d.degraded
	}
	return ql
}

// rrData is a record's data as text, without its header.
func rrData(rr dns.RR) string {
	s := rr.String()
	h := rr.Header().String()
	if len(s) > len(h) && s[:len(h)] == h {
		return s[len(h):]
	}
	return s
}

// Close writes what is queued and closes the destination, waiting at most
// a second. Queries logged after it are dropped.
func (l *QueryLog) Close() {
	l.stopOnce.Do(func() { close(l.stop) })
	select {
	case <-l.done:
	case <-time.After(time.Second):
	}
}
