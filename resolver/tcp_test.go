package resolver

import (
	"context"
	"encoding/binary"
	"io"
	"net"
	"testing"
	"time"

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
