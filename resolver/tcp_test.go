package resolver

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/geodns/geodns/route"
	"github.com/geodns/geodns/zones"
	"github.com/miekg/dns"
	"github.com/stretchr/testify/require"
)

// framed packs m with its TCP length prefix.
func framed(t *testing.T, m *dns.Msg) []byte {
	t.Helper()
	b, err := m.Pack()
	require.NoError(t, err)
	return append(binary.BigEndian.AppendUint16(nil, uint16(len(b))), b...)
}

// readFramed reads one length-prefixed response.
func readFramed(t *testing.T, c net.Conn) *dns.Msg {
	t.Helper()
	var head [2]byte
	_, err := io.ReadFull(c, head[:])
	require.NoError(t, err)
	b := make([]byte, binary.BigEndian.Uint16(head[:]))
	_, err = io.ReadFull(c, b)
	require.NoError(t, err)
	m := new(dns.Msg)
	require.NoError(t, m.Unpack(b))
	return m
}

// TestTCPPipelined: queries sent in one write, and queries cut at every
// byte, are all answered, in order, each with its own ID and question.
func TestTCPPipelined(t *testing.T) {
	addr := startServer(t)
	c, err := net.Dial("tcp", addr)
	require.NoError(t, err)
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	names := []string{"www.example.net.", "nope.example.net.", "big.example.net.", "WwW.ExAmPlE.NeT."}
	var all []byte
	var sent []*dns.Msg
	for i := range 200 {
		q := new(dns.Msg).SetQuestion(names[i%len(names)], dns.TypeA)
		if i%3 == 0 {
			q.SetQuestion(names[i%len(names)], dns.TypeTXT)
		}
		q.Id = uint16(i + 1)
		sent = append(sent, q)
		all = append(all, framed(t, q)...)
	}
	_, err = c.Write(all)
	require.NoError(t, err)
	for _, q := range sent {
		r := readFramed(t, c)
		require.Equal(t, q.Id, r.Id)
		require.Equal(t, q.Question, r.Question)
		require.False(t, r.Truncated, "no truncation over TCP")
	}
	// One query a byte at a time.
	q := new(dns.Msg).SetQuestion("www.example.net.", dns.TypeA)
	for _, b := range framed(t, q) {
		_, err := c.Write([]byte{b})
		require.NoError(t, err)
		time.Sleep(time.Millisecond)
	}
	r := readFramed(t, c)
	require.Equal(t, q.Id, r.Id)
	require.Len(t, r.Answer, 2)
}

// TestTCPQueriesLargerThanTheBuffer: queries longer than the connection's
// 4 KB read buffer (EDNS padding makes them up to 60 KB), pipelined
// between small ones so that each starts part way into the buffer, and
// sent in uneven pieces, are all answered in order.
func TestTCPQueriesLargerThanTheBuffer(t *testing.T) {
	addr := startServer(t)
	c, err := net.Dial("tcp", addr)
	require.NoError(t, err)
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	var all []byte
	var ids []uint16
	for i, pad := range []int{0, 5000, 0, 0, 60000, 3000, 0, 4090, 4100, 0} {
		q := new(dns.Msg).SetQuestion("www.example.net.", dns.TypeA)
		q.Id = uint16(100 + i)
		if pad > 0 {
			q.SetEdns0(1232, false)
			q.IsEdns0().Option = append(q.IsEdns0().Option, &dns.EDNS0_PADDING{Padding: make([]byte, pad)})
		}
		ids = append(ids, q.Id)
		all = append(all, framed(t, q)...)
	}
	go func() {
		for len(all) > 0 {
			n := min(len(all), 1+len(all)%3001)
			if _, err := c.Write(all[:n]); err != nil {
				return
			}
			all = all[n:]
		}
	}()
	for _, id := range ids {
		r := readFramed(t, c)
		require.Equal(t, id, r.Id)
		require.Equal(t, dns.RcodeSuccess, r.Rcode)
		require.Len(t, r.Answer, 2)
	}
}

// TestTCPGarbage: messages that are not queries get FORMERR or nothing,
// and the connection goes on answering.
func TestTCPGarbage(t *testing.T) {
	addr := startServer(t)
	c, err := net.Dial("tcp", addr)
	require.NoError(t, err)
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	var all []byte
	for _, p := range [][]byte{
		{},
		{0x12},
		{0x12, 0x34, 0x01, 0x00, 0x00, 0x01, 0, 0, 0, 0, 0, 0, 0xc0, 0x0c}, // a name pointing at itself: FORMERR
	} {
		all = append(all, binary.BigEndian.AppendUint16(nil, uint16(len(p)))...)
		all = append(all, p...)
	}
	q := new(dns.Msg).SetQuestion("www.example.net.", dns.TypeA)
	all = append(all, framed(t, q)...)
	_, err = c.Write(all)
	require.NoError(t, err)
	r := readFramed(t, c)
	require.Equal(t, uint16(0x1234), r.Id)
	require.Equal(t, dns.RcodeFormatError, r.Rcode)
	r = readFramed(t, c)
	require.Equal(t, q.Id, r.Id)
	require.Equal(t, dns.RcodeSuccess, r.Rcode)
}

// TestTCPSilentClientClosed: a connection that never sends a query is
// closed after readTimeout, so it cannot hold a slot.
func TestTCPSilentClientClosed(t *testing.T) {
	addr := startServer(t)
	c, err := net.Dial("tcp", addr)
	require.NoError(t, err)
	defer c.Close()
	c.SetDeadline(time.Now().Add(3 * readTimeout))
	start := time.Now()
	_, err = c.Read(make([]byte, 1))
	require.ErrorIs(t, err, io.EOF, "the server closes the connection")
	require.GreaterOrEqual(t, time.Since(start), readTimeout/2)
}

// TestTCPShutdown: stopping the server closes its connections waiting
// for a query at once (one cut mid-query too), and Serve returns.
func TestTCPShutdown(t *testing.T) {
	ln, err := Listen("127.0.0.1:0")
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- Serve(ctx, newTestHandler(t, Config{}), ServeOptions{}, ln) }()
	dial := func() net.Conn {
		var c net.Conn
		require.Eventually(t, func() bool {
			c, err = net.Dial("tcp", ln.Addr())
			return err == nil
		}, 5*time.Second, 10*time.Millisecond)
		c.SetDeadline(time.Now().Add(5 * time.Second))
		return c
	}
	idle, partial := dial(), dial()
	defer idle.Close()
	defer partial.Close()
	q := new(dns.Msg).SetQuestion("www.example.net.", dns.TypeA)
	_, err = idle.Write(framed(t, q))
	require.NoError(t, err)
	readFramed(t, idle)
	b := framed(t, q)
	_, err = partial.Write(b[:len(b)-1])
	require.NoError(t, err)
	time.Sleep(50 * time.Millisecond)

	start := time.Now()
	cancel()
	for _, c := range []net.Conn{idle, partial} {
		_, err = c.Read(make([]byte, 1))
		require.ErrorIs(t, err, io.EOF, "the connection is closed")
	}
	select {
	case err := <-done:
		require.NoError(t, err)
	case <-time.After(5 * time.Second):
		t.Fatal("Serve did not return")
	}
	require.Less(t, time.Since(start), time.Second, "nothing waited for a timeout")
	_, err = net.Dial("tcp", ln.Addr())
	require.Error(t, err, "the listener is closed")
}

// bigZone has answers larger than any buffer of the server: medium.example.net
// TXT (about 6 KB) and huge.example.net TXT (about 58 KB).
var bigZone = func() string {
	txt := func(n int) string {
		var s []string
		for i := range n {
			s = append(s, fmt.Sprintf("%s%03d", strings.Repeat("x", 236), i))
		}
		return strings.Join(s, ", ")
	}
	return `
ttl: 300
soa: {ns: ns1.example.net., mbox: hostmaster.example.net., serial: 42, minttl: 60}
records:
  "@": {NS: [ns1.example.net.]}
  ns1: {A: [192.0.2.1]}
  www: {A: [192.0.2.80, 192.0.2.81]}
  medium: {TXT: [` + txt(24) + `]}
  huge: {TXT: [` + txt(230) + `]}
`
}()

// serveBig serves bigZone on a loopback port with at most max TCP
// connections (0: the default).
func serveBig(t *testing.T, max int) string {
	t.Helper()
	z, err := zones.Compile("example.net.yaml", []byte(bigZone), "example.net.", time.Unix(1700000000, 0), nil)
	require.NoError(t, err)
	var set atomic.Pointer[zones.Set]
	set.Store(zones.NewSet(z))
	return serveHandler(t, NewHandler(&set, &route.Router{}, Config{}, nil), ServeOptions{MaxTCPConns: max})
}

// ask sends q on c and reads its answer, within d.
func ask(c net.Conn, q *dns.Msg, d time.Duration) (*dns.Msg, error) {
	b, err := q.Pack()
	if err != nil {
		return nil, err
	}
	c.SetDeadline(time.Now().Add(d))
	if _, err := c.Write(append(binary.BigEndian.AppendUint16(nil, uint16(len(b))), b...)); err != nil {
		return nil, err
	}
	var head [2]byte
	if _, err := io.ReadFull(c, head[:]); err != nil {
		return nil, err
	}
	b = make([]byte, binary.BigEndian.Uint16(head[:]))
	if _, err := io.ReadFull(c, b); err != nil {
		return nil, err
	}
	m := new(dns.Msg)
	return m, m.Unpack(b)
}

// waitClosed waits (up to d) for the server to close c, reading and
// discarding what it sends, and returns how long that took.
func waitClosed(c net.Conn, d time.Duration) (time.Duration, error) {
	start := time.Now()
	c.SetReadDeadline(start.Add(d))
	_, err := io.Copy(io.Discard, c)
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return 0, err
	}
	return time.Since(start), nil // EOF, or reset
}

// TestTCPIdleThenLargeAnswer: a connection idle for more than half the idle
// timeout, then asked for answers bigger than the server's 4 KB buffer,
// gets them whole. (The write deadline of the last answer, long past, once
// failed the write: the connection closed with nothing sent.)
func TestTCPIdleThenLargeAnswer(t *testing.T) {
	addr := serveBig(t, 0)
	c, err := net.Dial("tcp", addr)
	require.NoError(t, err)
	defer c.Close()
	_, err = ask(c, new(dns.Msg).SetQuestion("www.example.net.", dns.TypeA), 2*time.Second)
	require.NoError(t, err)
	time.Sleep(tcpIdleTimeout/2 + 500*time.Millisecond) // the time being tested
	for _, name := range []string{"medium.example.net.", "huge.example.net."} {
		r, err := ask(c, new(dns.Msg).SetQuestion(name, dns.TypeTXT), 2*time.Second)
		require.NoError(t, err, name)
		require.False(t, r.Truncated)
		require.NotEmpty(t, r.Answer)
	}
}

// TestTCPPartialQueryTimesOut: a client that sends a length and then
// nothing more is closed after readTimeout, not after the idle timeout.
func TestTCPPartialQueryTimesOut(t *testing.T) {
	addr := startServer(t)
	c, err := net.Dial("tcp", addr)
	require.NoError(t, err)
	defer c.Close()
	_, err = ask(c, new(dns.Msg).SetQuestion("www.example.net.", dns.TypeA), 2*time.Second)
	require.NoError(t, err)
	_, err = c.Write([]byte{0, 40})
	require.NoError(t, err)
	took, err := waitClosed(c, tcpIdleTimeout/2)
	require.NoError(t, err, "the server waits for the rest of a query for less than half the idle timeout")
	t.Logf("closed %v after the length", took.Round(time.Millisecond))
}

// TestTCPEmptyMessagesBuyNoTime: messages that get no answer (length 0,
// less than a header) do not count as queries: a client sending only those
// is closed after readTimeout, as one sending nothing is. (They once
// switched the connection to the idle timeout, 10 s, renewed by each.)
func TestTCPEmptyMessagesBuyNoTime(t *testing.T) {
	addr := startServer(t)
	c, err := net.Dial("tcp", addr)
	require.NoError(t, err)
	defer c.Close()
	go func() {
		for _, m := range [][]byte{{0, 0}, {0, 1, 0x12}, {0, 0}, {0, 0}, {0, 0}, {0, 0}, {0, 0}, {0, 0}} {
			if _, err := c.Write(m); err != nil {
				return
			}
			time.Sleep(500 * time.Millisecond)
		}
	}()
	took, err := waitClosed(c, tcpIdleTimeout/2)
	require.NoError(t, err, "still open after half the idle timeout")
	require.GreaterOrEqual(t, took, readTimeout/2)
	t.Logf("closed after %v", took.Round(time.Millisecond))
}

// TestTCPIdleConnectionsYieldToNewOnes: with every slot held by an idle
// connection, each new client takes the slot of the longest-idle one and
// gets its answer (it was closed at once: 0 of 20 answered).
func TestTCPIdleConnectionsYieldToNewOnes(t *testing.T) {
	const slots, fresh = 100, 20
	addr := serveBig(t, slots)
	q := new(dns.Msg).SetQuestion("www.example.net.", dns.TypeA)
	idle := make([]net.Conn, slots)
	for i := range idle {
		c, err := net.Dial("tcp", addr)
		require.NoError(t, err)
		defer c.Close()
		_, err = ask(c, q, 2*time.Second)
		require.NoError(t, err, "idle connection %d", i)
		idle[i] = c
	}
	start := time.Now()
	freed := make(chan time.Duration, slots)
	for _, c := range idle {
		go func() {
			if _, err := waitClosed(c, time.Minute); err == nil {
				freed <- time.Since(start)
			}
		}()
	}
	answered := 0
	for range fresh {
		c, err := net.Dial("tcp", addr)
		require.NoError(t, err)
		defer c.Close() // held: the next one has to take an idle slot too
		if r, err := ask(c, q, 2*time.Second); err == nil && len(r.Answer) == 2 {
			answered++
		}
	}
	t.Logf("%d/%d new clients answered in %v", answered, fresh, time.Since(start).Round(time.Millisecond))
	require.Equal(t, fresh, answered)
	for i := range fresh {
		select {
		case d := <-freed:
			t.Logf("slot %d freed at %v", i+1, d.Round(time.Microsecond))
		case <-time.After(5 * time.Second):
			t.Fatalf("only %d idle connections closed", i)
		}
	}
}

// TestTCPIdleTimeoutShrinksWhenBusy: a connection that goes idle while
// more than half the slots are taken gets readTimeout, not tcpIdleTimeout;
// the ones that went idle before keep theirs.
func TestTCPIdleTimeoutShrinksWhenBusy(t *testing.T) {
	addr := serveBig(t, 4)
	q := new(dns.Msg).SetQuestion("www.example.net.", dns.TypeA)
	var conns []net.Conn
	for range 3 {
		c, err := net.Dial("tcp", addr)
		require.NoError(t, err)
		defer c.Close()
		_, err = ask(c, q, 2*time.Second)
		require.NoError(t, err)
		conns = append(conns, c)
	}
	took, err := waitClosed(conns[2], tcpIdleTimeout/2)
	require.NoError(t, err, "the third of four slots idles for less than half the idle timeout")
	t.Logf("third connection closed %v after its answer", took.Round(time.Millisecond))
	_, err = ask(conns[0], q, 2*time.Second)
	require.NoError(t, err, "the first, idle since before, still answers")
}

// benchConn serves the test zone and returns a connection to it.
func benchConn(b *testing.B) net.Conn {
	h := newTestHandler(b, Config{})
	ln, err := Listen("127.0.0.1:0")
	require.NoError(b, err)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- Serve(ctx, h, ServeOptions{}, ln) }()
	b.Cleanup(func() { cancel(); <-done })
	var c net.Conn
	require.Eventually(b, func() bool {
		c, err = net.Dial("tcp", ln.Addr())
		return err == nil
	}, 5*time.Second, 10*time.Millisecond)
	b.Cleanup(func() { c.Close() })
	return c
}

// BenchmarkTCPQuery: one query at a time on one connection (client and
// server in this process): a round trip per op.
func BenchmarkTCPQuery(b *testing.B) {
	for _, bc := range []struct {
		name, qname string
		qtype       uint16
	}{{"A", "www.example.net.", dns.TypeA}, {"TXT1200B", "big.example.net.", dns.TypeTXT}} {
		b.Run(bc.name, func(b *testing.B) {
			c := benchConn(b)
			q, err := new(dns.Msg).SetQuestion(bc.qname, bc.qtype).Pack()
			require.NoError(b, err)
			q = append(binary.BigEndian.AppendUint16(nil, uint16(len(q))), q...)
			buf := make([]byte, 64<<10)
			var head [2]byte
			b.ReportAllocs()
			for b.Loop() {
				if _, err := c.Write(q); err != nil {
					b.Fatal(err)
				}
				if _, err := io.ReadFull(c, head[:]); err != nil {
					b.Fatal(err)
				}
				if _, err := io.ReadFull(c, buf[:binary.BigEndian.Uint16(head[:])]); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkTCPPipelined: 64 queries per write on one connection; an op is
// one query.
func BenchmarkTCPPipelined(b *testing.B) {
	c := benchConn(b)
	var batch []byte
	for i := range 64 {
		q, err := new(dns.Msg).SetQuestion([]string{"www.example.net.", "nope.example.net."}[i%2], dns.TypeA).Pack()
		require.NoError(b, err)
		batch = append(append(batch, byte(len(q)>>8), byte(len(q))), q...)
	}
	br := bufio.NewReaderSize(c, 64<<10)
	buf := make([]byte, 64<<10)
	var head [2]byte
	b.ReportAllocs()
	n := 0
	for b.Loop() {
		if n%64 == 0 {
			if _, err := c.Write(batch); err != nil {
				b.Fatal(err)
			}
		}
		n++
		if _, err := io.ReadFull(br, head[:]); err != nil {
			b.Fatal(err)
		}
		if _, err := io.ReadFull(br, buf[:binary.BigEndian.Uint16(head[:])]); err != nil {
			b.Fatal(err)
		}
	}
	for ; n%64 != 0; n++ { // the rest of the last batch
		io.ReadFull(br, head[:])
		io.ReadFull(br, buf[:binary.BigEndian.Uint16(head[:])])
	}
}
