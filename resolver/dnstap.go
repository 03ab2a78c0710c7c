package resolver

import (
	"errors"
	"fmt"
	"math"
	"net"
	"net/netip"
	"os"
	"strconv"
	"sync"
	"time"

	dnstap "github.com/dnstap/golang-dnstap"
	framestream "github.com/farsightsec/golang-framestream"
	"github.com/geodns/geodns/geo"
	"github.com/geodns/geodns/zones"
	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/protobuf/encoding/protowire"
)

// DnstapConfig is the dnstap query log (https://dnstap.info): one of a
// unix socket (a collector such as fstrm_capture or dnstap -u listening
// there; geodns reconnects when it comes back) or a file. Default: off.
type DnstapConfig struct {
	Socket string `yaml:"socket"`
	File   string `yaml:"file"`
	// Queue is how many queries wait for the writer (a batch of up to
	// 5 ms); past it, messages are dropped and counted
	// (geodns_dnstap_dropped_total). Default 8192.
	Queue int `yaml:"queue"`
}

// Enabled reports whether a destination is set.
func (c DnstapConfig) Enabled() bool { return c.Socket != "" || c.File != "" }

// Dnstap writes AUTH_QUERY and AUTH_RESPONSE messages for the queries a
// Handler answers. The query path only appends the messages to a bounded
// batch under a short lock and never waits or wakes anyone: the writer
// goroutine takes the batch every few milliseconds, encodes and writes it.
// A slow or absent reader costs dropped messages (counted), not delayed
// answers.
type Dnstap struct {
	mu       sync.Mutex
	cur      *tapBatch // the batch being filled; queries append under mu; nil once closed
	max      int       // queries in a batch, at most
	maxBytes int       // bytes of messages in a batch, at most
	stop     chan struct{}
	done     chan struct{}
	once     sync.Once
	w        dnstap.Writer
	identity []byte
	version  []byte
	dropped  prometheus.Counter
}

// tapBatch is the queries of one flush: their messages are in one buffer.
type tapBatch struct {
	msgs []tapMsg
	wire []byte
}

// tapMsg is one query of a batch.
type tapMsg struct {
	at         time.Time
	remote     netip.Addr
	tcp        bool
	off        int // the query at wire[off:off+qlen], the response after it
	qlen, rlen int
	dec        tapDecision
}

// tapFlush is how often the writer takes a batch.
const tapFlush = 5 * time.Millisecond

// tapDecision is the routing decision of a service answer, as cheaply
// known when answering. service nil means no service answered.
type tapDecision struct {
	service  *zones.Service // the service answered; its sites' places give the distance, worked out by the writer, off the query path
	site     string         // the first answering site, "all-down" for the policy
	scope    int            // ECS scope returned (prefix bits the decision holds for)
	client   netip.Prefix
	ecs      bool // client is the query's ECS source
	degraded bool
	why      zones.Why
}

// NewDnstap opens cfg's destination (a socket is dialed by the writer, and
// redialed, so the collector may start later) and starts the writer.
// identity and version go in every message; drops are counted in m.
func NewDnstap(cfg DnstapConfig, identity, version string, m *Metrics) (*Dnstap, error) {
	var w dnstap.Writer
	switch {
	case cfg.Socket != "" && cfg.File != "":
		return nil, errors.New("dnstap: socket and file are exclusive")
	case cfg.Socket != "":
		w = &sockWriter{path: cfg.Socket}
	case cfg.File != "":
		f, err := os.OpenFile(cfg.File, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o640)
		if err != nil {
			return nil, fmt.Errorf("dnstap: %w", err)
		}
		if w, err = dnstap.NewWriter(f, nil); err != nil {
			f.Close()
			return nil, fmt.Errorf("dnstap: %s: %w", cfg.File, err)
		}
		w = fileWriter{w, f}
	default:
		return nil, errors.New("dnstap: no socket or file")
	}
	if cfg.Queue <= 0 {
		cfg.Queue = 8192
	}
	t := &Dnstap{max: cfg.Queue, maxBytes: cfg.Queue * 1024, cur: &tapBatch{}, stop: make(chan struct{}), done: make(chan struct{}),
		w: w, identity: []byte(identity), version: []byte(version)}
	if m != nil {
		t.dropped = m.dnstapDropped
	}
	go t.run()
	return t, nil
}

// fileWriter closes the file after the frame stream's end.
type fileWriter struct {
	dnstap.Writer
	f *os.File
}

func (w fileWriter) Flush() error {
	if f, ok := w.Writer.(interface{ Flush() error }); ok {
		return f.Flush()
	}
	return nil
}

func (w fileWriter) Close() error {
	err := w.Writer.Close()
	return errors.Join(err, w.f.Close())
}

// log queues the messages of one query; it never blocks on the writer.
func (t *Dnstap) log(q, resp []byte, remote netip.Addr, tcp bool, d *tapDecision) {
	at := time.Now()
	t.mu.Lock()
	b := t.cur
	if b == nil || len(b.msgs) >= t.max || len(b.wire)+len(q)+len(resp) > t.maxBytes {
		t.mu.Unlock()
		if t.dropped != nil {
			t.dropped.Inc()
		}
		return
	}
	m := tapMsg{at: at, remote: remote, tcp: tcp, off: len(b.wire), qlen: len(q), rlen: len(resp)}
	if d != nil {
		m.dec = *d
	}
	// Copies: q and resp are the caller's buffers, reused after we return.
	b.wire = append(append(b.wire, q...), resp...)
	b.msgs = append(b.msgs, m)
	t.mu.Unlock()
}

// run takes the batch every tapFlush and writes it; the emptied batch is
// the next one (its storage reused).
func (t *Dnstap) run() {
	defer close(t.done)
	var buf []byte
	spare := &tapBatch{}
	tick := time.NewTicker(tapFlush)
	defer tick.Stop()
	for {
		stopping := false
		select {
		case <-tick.C:
		case <-t.stop:
			stopping = true
		}
		t.mu.Lock()
		b := t.cur
		t.cur = spare
		if stopping {
			t.cur = nil // closed: later queries are dropped
		}
		t.mu.Unlock()
		for _, m := range b.msgs {
			buf = t.write(buf, b.wire, m)
		}
		if f, ok := t.w.(interface{ Flush() error }); ok && len(b.msgs) > 0 {
			f.Flush() // a file's frames are readable (tail, fstrm_replay) a batch later
		}
		clear(b.msgs) // drop the decisions' string references
		b.msgs, b.wire = b.msgs[:0], b.wire[:0]
		spare = b
		if stopping {
			t.w.Close()
			return
		}
	}
}

// Close writes what is queued and closes the destination, waiting at most
// a second: a socket writer waits for an absent collector forever, and
// must not hold up a shutdown. Queries logged after it are dropped.
func (t *Dnstap) Close() {
	t.once.Do(func() { close(t.stop) })
	select {
	case <-t.done:
	case <-time.After(time.Second):
	}
}

// write appends the frames of m to the destination: AUTH_QUERY, then
// AUTH_RESPONSE with the decision in extra if a response was sent. The
// protobuf is encoded by hand (dnstap.proto's field numbers), reusing buf:
// the writer allocates nothing per message.
func (t *Dnstap) write(buf, wire []byte, m tapMsg) []byte {
	sec, nsec := uint64(m.at.Unix()), uint32(m.at.Nanosecond())
	fam, prot := dnstap.SocketFamily_INET, dnstap.SocketProtocol_UDP
	if m.remote.Is6() && !m.remote.Is4In6() {
		fam = dnstap.SocketFamily_INET6
	}
	if m.tcp {
		prot = dnstap.SocketProtocol_TCP
	}
	addr := m.remote.Unmap().AsSlice()
	q := wire[m.off : m.off+m.qlen]
	failed := false
	frame := func(typ dnstap.Message_Type, resp, extra []byte) {
		var mb [64]byte // the message's fields but the DNS messages
		msg := protowire.AppendTag(mb[:0], 1, protowire.VarintType)
		msg = protowire.AppendVarint(msg, uint64(typ))
		msg = protowire.AppendTag(msg, 2, protowire.VarintType)
		msg = protowire.AppendVarint(msg, uint64(fam))
		msg = protowire.AppendTag(msg, 3, protowire.VarintType)
		msg = protowire.AppendVarint(msg, uint64(prot))
		msg = protowire.AppendTag(msg, 4, protowire.BytesType)
		msg = protowire.AppendBytes(msg, addr)
		msg = protowire.AppendTag(msg, 8, protowire.VarintType)
		msg = protowire.AppendVarint(msg, sec)
		msg = protowire.AppendTag(msg, 9, protowire.Fixed32Type)
		msg = protowire.AppendFixed32(msg, nsec)
		n := len(msg) + protowire.SizeTag(10) + protowire.SizeBytes(len(q))
		if resp != nil {
			msg = protowire.AppendTag(msg, 12, protowire.VarintType)
			msg = protowire.AppendVarint(msg, sec)
			msg = protowire.AppendTag(msg, 13, protowire.Fixed32Type)
			msg = protowire.AppendFixed32(msg, nsec)
			n = len(msg) + protowire.SizeTag(10) + protowire.SizeBytes(len(q)) + protowire.SizeTag(14) + protowire.SizeBytes(len(resp))
		}
		b := buf[:0]
		if len(t.identity) > 0 {
			b = protowire.AppendTag(b, 1, protowire.BytesType)
			b = protowire.AppendBytes(b, t.identity)
		}
		if len(t.version) > 0 {
			b = protowire.AppendTag(b, 2, protowire.BytesType)
			b = protowire.AppendBytes(b, t.version)
		}
		if len(extra) > 0 {
			b = protowire.AppendTag(b, 3, protowire.BytesType)
			b = protowire.AppendBytes(b, extra)
		}
		b = protowire.AppendTag(b, 14, protowire.BytesType)
		b = protowire.AppendVarint(b, uint64(n))
		b = append(b, msg...)
		b = protowire.AppendTag(b, 10, protowire.BytesType)
		b = protowire.AppendBytes(b, q)
		if resp != nil {
			b = protowire.AppendTag(b, 14, protowire.BytesType)
			b = protowire.AppendBytes(b, resp)
		}
		b = protowire.AppendTag(b, 15, protowire.VarintType)
		b = protowire.AppendVarint(b, uint64(dnstap.Dnstap_MESSAGE))
		if _, err := t.w.WriteFrame(b); err != nil {
			failed = true // no collector (a socket's is redialed at most once a second)
		}
		buf = b
	}
	frame(dnstap.Message_AUTH_QUERY, nil, nil)
	if m.rlen > 0 { // a response was sent (not dropped)
		var eb [256]byte
		frame(dnstap.Message_AUTH_RESPONSE, wire[m.off+m.qlen:m.off+m.qlen+m.rlen], m.dec.extra(eb[:0]))
	}
	if failed && t.dropped != nil {
		t.dropped.Inc()
	}
	return buf
}

// extra is the decision as key=value pairs, space separated, for the
// dnstap extra field (docs/operations.md lists them): service, site; the
// client network routed on (ecs= and its source= length when it was the
// query's ECS option, else client=) and the scope answered; what chose
// the site: rule=N (the service's N-th rule), else distance_km= from the
// client's location to the site, else order=default (an unlocated
// client); spill=1 for a spillover pick; bucket=SITE:B when a dial or
// return ramp decided by the client network's bucket; degraded=1. Nil
// when no service answered.
func (d *tapDecision) extra(b []byte) []byte {
	if d.service == nil {
		return nil
	}
	b = append(b, "service="...)
	b = append(b, d.service.Name...)
	b = append(b, " site="...)
	b = append(b, d.site...)
	if d.ecs {
		b = append(b, " ecs="...)
		b = d.client.AppendTo(b)
		b = append(b, " source="...)
		b = strconv.AppendInt(b, int64(d.client.Bits()), 10)
	} else {
		b = append(b, " client="...)
		b = d.client.AppendTo(b)
	}
	b = append(b, " scope="...)
	b = strconv.AppendInt(b, int64(d.scope), 10)
	switch km, ok := d.distance(); {
	case d.why.Rule > 0:
		b = append(b, " rule="...)
		b = strconv.AppendInt(b, int64(d.why.Rule), 10)
	case ok:
		b = append(b, " distance_km="...)
		b = strconv.AppendInt(b, int64(math.Round(km)), 10)
	case !d.why.Located:
		b = append(b, " order=default"...)
	}
	if d.why.Spilled {
		b = append(b, " spill=1"...)
	}
	if d.why.Bucket >= 0 {
		b = append(b, " bucket="...)
		b = append(b, d.why.BucketSite...)
		b = append(b, ':')
		b = strconv.AppendFloat(b, d.why.Bucket, 'f', 4, 64)
	}
	if d.degraded {
		b = append(b, " degraded=1"...)
	}
	return b
}

// distance is how far the answering site is from the client's location;
// ok false when the client had no coordinates or no site answered.
func (d *tapDecision) distance() (km float64, ok bool) {
	if !d.why.Located || d.service == nil {
		return 0, false
	}
	for _, s := range d.service.Sites {
		if s.Name == d.site {
			return geo.Distance(d.why.Lat, d.why.Lon, s.Lat, s.Lon), true
		}
	}
	return 0, false
}

// set fills d from a service answer's decision.
func (d *tapDecision) set(r Router, svc *zones.Service, client netip.Prefix, ecs bool, dec zones.Decision, scope int) {
	d.service, d.client, d.ecs, d.scope, d.degraded = svc, client, ecs, scope, dec.Degraded
	d.why = dec.Why
	if d.why.Mapped {
		// A site map's decision: the coordinates are the router's to find.
		d.why.Lat, d.why.Lon, d.why.Located = r.Where(client.Addr())
		d.why.Mapped = false
	}
	switch {
	case dec.AllDown:
		d.site = "all-down"
	case len(dec.Sites) > 0:
		d.site = dec.Sites[0]
	default:
		d.site = "-"
	}
}

// sockWriter writes Frame Streams to a collector's unix socket (the
// bidirectional handshake), dialing it when needed: after a failure, at
// most once a second, and meanwhile frames fail at once (counted as
// drops) rather than wait. golang-dnstap's SocketWriter is not used: when
// the handshake timed out it kept a nil writer and crashed on the next
// frame (seen on a loaded machine), and a failed write never redialed.
// Used by the writer goroutine only.
type sockWriter struct {
	path  string
	c     net.Conn
	w     *framestream.Writer
	retry time.Time // no dial before
}

var errNoCollector = errors.New("dnstap: no collector connected")

// sockTimeout bounds a dial, the handshake and each write.
const sockTimeout = time.Second

func (s *sockWriter) WriteFrame(p []byte) (int, error) {
	if s.w == nil {
		if time.Now().Before(s.retry) {
			return 0, errNoCollector
		}
		if err := s.open(); err != nil {
			s.retry = time.Now().Add(time.Second)
			return 0, err
		}
	}
	n, err := s.w.WriteFrame(p)
	if err != nil {
		s.drop()
	}
	return n, err
}

func (s *sockWriter) open() error {
	c, err := net.DialTimeout("unix", s.path, sockTimeout)
	if err != nil {
		return err
	}
	w, err := framestream.NewWriter(c, &framestream.WriterOptions{ContentTypes: [][]byte{dnstap.FSContentType},
		Bidirectional: true, Timeout: sockTimeout})
	if err != nil {
		c.Close()
		return err
	}
	s.c, s.w = c, w
	return nil
}

// drop forgets a failed connection; the next frame after a second redials.
func (s *sockWriter) drop() {
	if s.c != nil {
		s.c.Close()
	}
	s.c, s.w = nil, nil
	s.retry = time.Now().Add(time.Second)
}

// Flush sends the buffered frames (the writer calls it after each batch).
func (s *sockWriter) Flush() error {
	if s.w == nil {
		return nil
	}
	err := s.w.Flush()
	if err != nil {
		s.drop()
	}
	return err
}

// Close ends the stream (the STOP handshake) and the connection.
func (s *sockWriter) Close() error {
	if s.w == nil {
		return nil
	}
	err := s.w.Close()
	s.c.Close()
	s.c, s.w = nil, nil
	return err
}
