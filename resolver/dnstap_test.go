package resolver

import (
	"context"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	dnstap "github.com/dnstap/golang-dnstap"
	"github.com/geodns/geodns/zones"
	"github.com/miekg/dns"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/stretchr/testify/require"
	"google.golang.org/protobuf/proto"
)

// TestDnstapFile: queries served concurrently through ServeWire are
// written to a dnstap file, two messages each (or counted as dropped);
// the file decodes with golang-dnstap's reader, and service answers carry
// their decision.
func TestDnstapFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "tap.fstrm")
	m := NewMetrics(prometheus.NewRegistry())
	tap, err := NewDnstap(DnstapConfig{File: path, Queue: 100}, "ns1", "v1", m)
	require.NoError(t, err)
	h := newTestHandler(t, Config{Metrics: m, Dnstap: tap})
	wires := map[string][]byte{}
	for _, name := range []string{"svc.example.net.", "mail.example.net.", "nope.example.net."} {
		q := new(dns.Msg).SetQuestion(name, dns.TypeA)
		w, err := q.Pack()
		require.NoError(t, err)
		wires[name] = w
	}
	const workers, each = 4, 300
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			buf := make([]byte, 0, 512)
			for i := range each {
				for _, w := range wires {
					require.NotNil(t, h.ServeWire(w, testClient, i%2 == 0, buf))
				}
			}
		})
	}
	wg.Wait()
	tap.Close()
	tap.log(wires["svc.example.net."], nil, testClient, false, nil) // after Close: dropped, not a panic

	f, err := os.Open(path)
	require.NoError(t, err)
	defer f.Close()
	r, err := dnstap.NewReader(f, nil)
	require.NoError(t, err)
	buf := make([]byte, 1<<16)
	counts := map[dnstap.Message_Type]int{}
	var extra string
	for {
		n, err := r.ReadFrame(buf)
		if err != nil {
			break
		}
		var d dnstap.Dnstap
		require.NoError(t, proto.Unmarshal(buf[:n], &d))
		require.Equal(t, "ns1", string(d.GetIdentity()))
		counts[d.GetMessage().GetType()]++
		resp := new(dns.Msg)
		if d.GetMessage().GetType() == dnstap.Message_AUTH_RESPONSE {
			require.NoError(t, resp.Unpack(d.GetMessage().GetResponseMessage()))
			if resp.Question[0].Name == "svc.example.net." {
				extra = string(d.GetExtra())
			} else {
				require.Empty(t, d.GetExtra(), "no decision for a static name")
			}
		}
	}
	dropped := int(testutil.ToFloat64(m.DnstapDropped()))
	total := workers * each * len(wires)
	t.Logf("%d queries: %d logged, %d dropped; svc's extra: %q", total, counts[dnstap.Message_AUTH_QUERY], dropped, extra)
	require.Equal(t, total+1, counts[dnstap.Message_AUTH_QUERY]+dropped)
	require.Equal(t, counts[dnstap.Message_AUTH_QUERY], counts[dnstap.Message_AUTH_RESPONSE])
	require.Positive(t, counts[dnstap.Message_AUTH_QUERY])
	require.Regexp(t, `^service=web site=(east|west) client=127\.0\.0\.1/32 scope=0 order=default$`, extra)
}

// discardFrames is a dnstap.Writer that keeps nothing.
type discardFrames struct{}

func (discardFrames) WriteFrame(p []byte) (int, error) { return len(p), nil }
func (discardFrames) Close() error                     { return nil }

// BenchmarkDnstapWriter measures the writer goroutine's work per query
// logged (both messages encoded; the destination discards them), and the
// query path's (log: copy into the batch); with ServeWire's own cost they
// give the CPU per query with dnstap on.
func BenchmarkDnstapWriter(b *testing.B) {
	q := new(dns.Msg).SetQuestion("www.example.net.", dns.TypeA)
	qw, _ := q.Pack()
	r := new(dns.Msg).SetReply(q)
	r.Answer = append(r.Answer, &dns.A{Hdr: dns.RR_Header{Name: "www.example.net.", Rrtype: dns.TypeA, Class: dns.ClassINET, Ttl: 20}, A: []byte{192, 0, 2, 10}})
	rw, _ := r.Pack()
	d := tapDecision{service: &zones.Service{Name: "web"}, site: "east", client: netip.MustParsePrefix("198.51.100.0/24"), ecs: true, scope: 24}
	b.Run("encode", func(b *testing.B) {
		t := &Dnstap{w: discardFrames{}, identity: []byte("ns1"), version: []byte("geodns")}
		wire := append(append([]byte(nil), qw...), rw...)
		m := tapMsg{at: time.Now(), remote: testClient, qlen: len(qw), rlen: len(rw), dec: d}
		var buf []byte
		b.ReportAllocs()
		for b.Loop() {
			buf = t.write(buf, wire, m)
		}
	})
	b.Run("log", func(b *testing.B) {
		t := &Dnstap{max: 1 << 30, maxBytes: 1 << 40, cur: &tapBatch{}}
		b.ReportAllocs()
		for i := 0; b.Loop(); i++ {
			if i%4096 == 0 { // what the writer does every 5 ms
				t.cur.msgs, t.cur.wire = t.cur.msgs[:0], t.cur.wire[:0]
			}
			t.log(qw, rw, testClient, false, &d)
		}
	})
}

// TestDnstapShutdownLogsNoEmptyQuery: a shutdown wakes the UDP readers
// with empty reads; they are not queries and must not reach the log (they
// showed as AUTH_QUERY messages with an empty DNS message).
func TestDnstapShutdownLogsNoEmptyQuery(t *testing.T) {
	path := filepath.Join(t.TempDir(), "tap.fstrm")
	tap, err := NewDnstap(DnstapConfig{File: path}, "ns1", "v1", nil)
	require.NoError(t, err)
	h := newTestHandler(t, Config{Dnstap: tap})
	ln, err := Listen("127.0.0.1:0")
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- Serve(ctx, h, ServeOptions{}, ln) }()
	c := &dns.Client{Timeout: time.Second}
	require.Eventually(t, func() bool {
		_, _, err := c.Exchange(new(dns.Msg).SetQuestion("mail.example.net.", dns.TypeA), ln.Addr())
		return err == nil
	}, 5*time.Second, 20*time.Millisecond)
	cancel()
	require.NoError(t, <-done)
	tap.Close()

	f, err := os.Open(path)
	require.NoError(t, err)
	defer f.Close()
	r, err := dnstap.NewReader(f, nil)
	require.NoError(t, err)
	buf := make([]byte, 1<<16)
	queries := 0
	for {
		n, err := r.ReadFrame(buf)
		if err != nil {
			break
		}
		var d dnstap.Dnstap
		require.NoError(t, proto.Unmarshal(buf[:n], &d))
		if d.GetMessage().GetType() == dnstap.Message_AUTH_QUERY {
			queries++
			require.GreaterOrEqual(t, len(d.GetMessage().GetQueryMessage()), 12, "an AUTH_QUERY without a DNS header")
		}
	}
	require.Positive(t, queries)
}

// TestDnstapSilentCollector: a collector that accepts the connection but
// never answers the handshake (a stuck or overloaded one) costs dropped,
// counted messages — not a crash. golang-dnstap's socket writer, used
// before, crashed here on the first frame after its handshake timed out.
func TestDnstapSilentCollector(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "tap.sock")
	ln, err := net.Listen("unix", sock)
	require.NoError(t, err)
	t.Cleanup(func() { ln.Close() })
	var conns []net.Conn
	var mu sync.Mutex
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c) // held open, never read
			mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		mu.Lock()
		defer mu.Unlock()
		for _, c := range conns {
			c.Close()
		}
	})
	m := NewMetrics(prometheus.NewRegistry())
	tap, err := NewDnstap(DnstapConfig{Socket: sock, Queue: 64}, "ns1", "v1", m)
	require.NoError(t, err)
	h := newTestHandler(t, Config{Metrics: m, Dnstap: tap})
	q, err := new(dns.Msg).SetQuestion("mail.example.net.", dns.TypeA).Pack()
	require.NoError(t, err)
	buf := make([]byte, 0, 512)
	// Queries for 2.5 s: past the handshake's timeout and a redial.
	for start := time.Now(); time.Since(start) < 2500*time.Millisecond; {
		require.NotNil(t, h.ServeWire(q, testClient, false, buf))
		time.Sleep(time.Millisecond)
	}
	tap.Close()
	require.Positive(t, testutil.ToFloat64(m.DnstapDropped()), "messages that could not be sent are counted")
}
