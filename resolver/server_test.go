package resolver

import (
	"context"
	"net"
	"runtime"
	"testing"
	"time"

	"github.com/miekg/dns"
	"github.com/stretchr/testify/require"
)

// startServer serves the test zone on a loopback port until the test ends.
func startServer(t *testing.T) string {
	t.Helper()
	return serveHandler(t, newTestHandler(t, Config{}), ServeOptions{})
}

// serveHandler serves h on a loopback port until the test ends.
func serveHandler(t *testing.T, h WireHandler, opts ServeOptions) string {
	t.Helper()
	ln, err := Listen("127.0.0.1:0")
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- Serve(ctx, h, opts, ln) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			require.NoError(t, err)
		case <-time.After(10 * time.Second):
			t.Error("Serve did not return after cancel")
		}
	})
	c := &dns.Client{Timeout: time.Second}
	require.Eventually(t, func() bool {
		_, _, err := c.Exchange(new(dns.Msg).SetQuestion("www.example.net.", dns.TypeA), ln.Addr())
		return err == nil
	}, 5*time.Second, 20*time.Millisecond)
	return ln.Addr()
}

func TestServerUDPAndTCP(t *testing.T) {
	addr := startServer(t)
	for _, proto := range []string{"udp", "tcp"} {
		c := &dns.Client{Net: proto, Timeout: 2 * time.Second}
		r, _, err := c.Exchange(new(dns.Msg).SetQuestion("www.example.net.", dns.TypeA), addr)
		require.NoError(t, err, proto)
		require.Len(t, r.Answer, 2, proto)
		require.True(t, r.Authoritative)
	}
}

func TestServerTruncatesThenTCPWorks(t *testing.T) {
	addr := startServer(t)
	q := new(dns.Msg).SetQuestion("big.example.net.", dns.TypeTXT)
	r, _, err := (&dns.Client{Timeout: 2 * time.Second}).Exchange(q, addr)
	require.NoError(t, err)
	require.True(t, r.Truncated)
	r, _, err = (&dns.Client{Net: "tcp", Timeout: 2 * time.Second}).Exchange(q, addr)
	require.NoError(t, err)
	require.False(t, r.Truncated)
	require.Len(t, r.Answer, 6)
}

// miekg/dns closes a TCP connection after 128 queries unless told not to;
// resolvers pipeline many more over one connection.
func TestServerTCPNoQueryCap(t *testing.T) {
	addr := startServer(t)
	conn, err := dns.Dial("tcp", addr)
	require.NoError(t, err)
	defer conn.Close()
	for i := range 300 {
		q := new(dns.Msg).SetQuestion("www.example.net.", dns.TypeA)
		require.NoError(t, conn.SetDeadline(time.Now().Add(2*time.Second)))
		require.NoError(t, conn.WriteMsg(q), "query %d", i)
		r, err := conn.ReadMsg()
		require.NoError(t, err, "query %d", i)
		require.Equal(t, q.Id, r.Id)
	}
}

func TestServerSurvivesGarbage(t *testing.T) {
	addr := startServer(t)
	conn, err := net.Dial("udp", addr)
	require.NoError(t, err)
	defer conn.Close()
	qd2 := new(dns.Msg).SetQuestion("www.example.net.", dns.TypeA)
	qd2.Question = append(qd2.Question, qd2.Question[0])
	twoQuestions, err := qd2.Pack()
	require.NoError(t, err)
	packets := [][]byte{
		{},
		{0x12},
		{0x12, 0x34, 0x01, 0x00, 0x00, 0x01}, // header cut short
		{0x12, 0x34, 0x01, 0x00, 0x00, 0x01, 0, 0, 0, 0, 0, 0, 0xc0, 0x0c}, // name pointing at itself
		append([]byte{0x12, 0x34, 0x01, 0x00, 0x00, 0x01, 0, 0, 0, 0, 0, 0}, make([]byte, 300)...),
		twoQuestions,
	}
	for _, p := range packets {
		_, err := conn.Write(p)
		require.NoError(t, err)
	}
	// A multi-question query gets FORMERR; the rest are dropped or FORMERR.
	buf := make([]byte, 2048)
	sawFormErr := false
	for {
		conn.SetReadDeadline(time.Now().Add(300 * time.Millisecond))
		n, err := conn.Read(buf)
		if err != nil {
			break
		}
		m := new(dns.Msg)
		if m.Unpack(buf[:n]) == nil && m.Rcode == dns.RcodeFormatError {
			sawFormErr = true
		}
	}
	require.True(t, sawFormErr)
	// And the server still answers.
	r, _, err := (&dns.Client{Timeout: 2 * time.Second}).Exchange(new(dns.Msg).SetQuestion("www.example.net.", dns.TypeA), addr)
	require.NoError(t, err)
	require.Equal(t, dns.RcodeSuccess, r.Rcode)
}

func TestListenSamePort(t *testing.T) {
	ln, err := Listen("127.0.0.1:0")
	require.NoError(t, err)
	defer ln.Close()
	require.Equal(t, ln.UDP.LocalAddr().String(), ln.TCP.Addr().String())
	// Another server cannot take the port, not even with SO_REUSEPORT.
	_, err = Listen(ln.Addr())
	require.Error(t, err)
}

func TestServerUnknownOpcode(t *testing.T) {
	addr := startServer(t)
	for _, op := range []int{dns.OpcodeIQuery, dns.OpcodeStatus, dns.OpcodeUpdate, 15} {
		for _, edns := range []bool{false, true} {
			m := new(dns.Msg).SetQuestion("www.example.net.", dns.TypeA)
			m.Opcode = op
			if edns {
				m.SetEdns0(1232, false)
			}
			r, _, err := (&dns.Client{Timeout: 2 * time.Second}).Exchange(m, addr)
			require.NoError(t, err, "opcode %d", op)
			require.Equal(t, dns.RcodeNotImplemented, r.Rcode, "opcode %d", op)
			require.Equal(t, edns, r.IsEdns0() != nil, "opcode %d, EDNS %v: an OPT back exactly when one came (RFC 6891 6.1.1)", op, edns)
		}
	}
}

// TestServerFormErrKeepsOPT: a FORMERR for the question count to a request
// with an OPT carries one (RFC 6891 6.1.1, as Knot); one for two OPTs does
// not (the request's OPT part is what is wrong). Before, no error had one.
func TestServerFormErrKeepsOPT(t *testing.T) {
	addr := startServer(t)
	withOPT := func(qs ...dns.Question) *dns.Msg {
		m := new(dns.Msg)
		m.Id = dns.Id()
		m.Question = qs
		return m.SetEdns0(1232, false)
	}
	q := dns.Question{Name: "www.example.net.", Qtype: dns.TypeA, Qclass: dns.ClassINET}
	twoOPT := withOPT(q)
	twoOPT.Extra = append(twoOPT.Extra, twoOPT.Extra[0])
	for _, c := range []struct {
		what string
		m    *dns.Msg
		opt  bool
	}{
		{"no question", withOPT(), true},
		{"two questions", withOPT(q, q), true},
		{"two OPTs", twoOPT, false},
	} {
		for _, proto := range []string{"udp", "tcp"} {
			r, _, err := (&dns.Client{Net: proto, Timeout: 2 * time.Second}).Exchange(c.m, addr)
			require.NoError(t, err, "%s over %s", c.what, proto)
			require.Equal(t, dns.RcodeFormatError, r.Rcode, "%s over %s", c.what, proto)
			require.Equal(t, c.opt, r.IsEdns0() != nil, "%s over %s: OPT in the FORMERR", c.what, proto)
		}
	}
}

// TestServerTCPConnectionCap: at MaxTCPConns, a new connection takes the
// slot of the connection idle the longest; the others keep working.
func TestServerTCPConnectionCap(t *testing.T) {
	addr := serveHandler(t, newTestHandler(t, Config{}), ServeOptions{MaxTCPConns: 3})
	ask := func(conn *dns.Conn) error {
		conn.SetDeadline(time.Now().Add(2 * time.Second))
		if err := conn.WriteMsg(new(dns.Msg).SetQuestion("www.example.net.", dns.TypeA)); err != nil {
			return err
		}
		_, err := conn.ReadMsg()
		return err
	}
	var held []*dns.Conn
	require.Eventually(t, func() bool {
		c, err := dns.Dial("tcp", addr)
		if err != nil {
			return false
		}
		if ask(c) != nil {
			c.Close()
			return false
		}
		held = append(held, c)
		return len(held) == 3
	}, 5*time.Second, 20*time.Millisecond)
	defer func() {
		for _, c := range held {
			c.Close()
		}
	}()
	extra, err := dns.Dial("tcp", addr)
	require.NoError(t, err)
	defer extra.Close()
	require.NoError(t, ask(extra), "a fourth connection is answered")
	require.Error(t, ask(held[0]), "in the slot of the first, idle the longest")
	for _, c := range held[1:] {
		require.NoError(t, ask(c), "the other held connections keep working")
	}
}

// TestGCWithIdleReaders: UDP readers waiting in recvmmsg must not hold off
// a collection's stop-the-world (a reader waiting in a raw system call,
// tried once, hung it forever).
func TestGCWithIdleReaders(t *testing.T) {
	startServer(t)
	time.Sleep(50 * time.Millisecond) // the readers are waiting
	for range 3 {
		done := make(chan time.Duration, 1)
		go func() {
			start := time.Now()
			runtime.GC()
			done <- time.Since(start)
		}()
		select {
		case d := <-done:
			require.Less(t, d, time.Second)
		case <-time.After(5 * time.Second):
			t.Fatal("a garbage collection did not finish: a UDP reader does not yield")
		}
	}
}

// TestUDPAnswersDoNotAllocate: a static answer over UDP allocates nothing
// in the server, reader included. (The reader once boxed its answer
// array at every batch: a collection every few hundred milliseconds at
// 10k qps, and the latency tail with it.)
func TestUDPAnswersDoNotAllocate(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("the portable reader allocates in x/net's batch calls")
	}
	addr := startServer(t)
	c, err := net.Dial("udp", addr)
	require.NoError(t, err)
	defer c.Close()
	q, err := new(dns.Msg).SetQuestion("www.example.net.", dns.TypeA).Pack()
	require.NoError(t, err)
	buf := make([]byte, 1500)
	ask := func(n int) {
		for range n {
			if _, err := c.Write(q); err != nil {
				t.Fatal(err)
			}
			if err := c.SetReadDeadline(time.Now().Add(2 * time.Second)); err != nil {
				t.Fatal(err)
			}
			k, err := c.Read(buf)
			if err != nil || k < 12 { // not require: its messages allocate
				t.Fatalf("read %d bytes: %v", k, err)
			}
		}
	}
	ask(100) // caches filled, buffers grown
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	const n = 2000
	ask(n)
	runtime.ReadMemStats(&after)
	// The client's deadline timer and the test's own bookkeeping allocate
	// a little; one allocation per query would be 2,000.
	require.Less(t, after.Mallocs-before.Mallocs, uint64(n/10), "allocations for %d queries", n)
}
