//go:build linux

package resolver

import (
	"bytes"
	"net"
	"net/netip"
	"runtime"
	"testing"
	"time"

	"github.com/miekg/dns"
	"github.com/stretchr/testify/require"
)

// TestTCPConnectionsTakeNoGoroutine: connections that have asked and wait
// for their next query are held by the event loops, not by a goroutine
// each (a goroutine per connection was a trip through the scheduler per
// query; tcploop_linux.go).
func TestTCPConnectionsTakeNoGoroutine(t *testing.T) {
	addr := startServer(t)
	before := runtime.NumGoroutine()
	for range 100 {
		c, err := net.Dial("tcp", addr)
		require.NoError(t, err)
		defer c.Close()
		r, err := ask(c, new(dns.Msg).SetQuestion("www.example.net.", dns.TypeA), 2*time.Second)
		require.NoError(t, err)
		require.Len(t, r.Answer, 2)
	}
	require.Less(t, runtime.NumGoroutine()-before, 10, "100 connections waiting for a query")
}

// slowStreamer answers AXFR questions with a stream of messages, each
// after a value from step, and everything else with its handler.
type slowStreamer struct {
	*Handler
	step chan struct{}
}

func (s slowStreamer) Claims(q []byte) bool {
	var m dns.Msg
	return m.Unpack(q) == nil && len(m.Question) == 1 && m.Question[0].Qtype == dns.TypeAXFR
}

func (s slowStreamer) Stream(q []byte, _ netip.Addr, send func([]byte) bool) bool {
	var m dns.Msg
	if m.Unpack(q) != nil {
		return false
	}
	for i := range 3 {
		<-s.step
		r := new(dns.Msg).SetReply(&m)
		r.Answer = []dns.RR{&dns.TXT{Hdr: dns.RR_Header{Name: m.Question[0].Name, Rrtype: dns.TypeTXT, Class: dns.ClassINET},
			Txt: []string{string(rune('a' + i))}}}
		b, err := r.Pack()
		if err != nil || !send(b) {
			return false
		}
	}
	return true
}

// TestTCPTransferLeavesTheLoopFree: a transfer, which can take long, is
// streamed from a goroutine of its own: while it waits, every other
// connection (on every loop) is answered; and its connection answers the
// queries pipelined before and after it, in order.
func TestTCPTransferLeavesTheLoopFree(t *testing.T) {
	s := slowStreamer{Handler: newTestHandler(t, Config{}), step: make(chan struct{})}
	addr := serveHandler(t, s, ServeOptions{})
	x, err := net.Dial("tcp", addr)
	require.NoError(t, err)
	defer x.Close()
	before := new(dns.Msg).SetQuestion("www.example.net.", dns.TypeA)
	axfr := new(dns.Msg).SetQuestion("example.net.", dns.TypeAXFR)
	after := new(dns.Msg).SetQuestion("nope.example.net.", dns.TypeA)
	before.Id, axfr.Id, after.Id = 1, 2, 3
	_, err = x.Write(bytes.Join([][]byte{framed(t, before), framed(t, axfr), framed(t, after)}, nil))
	require.NoError(t, err)
	x.SetDeadline(time.Now().Add(5 * time.Second))
	require.Equal(t, uint16(1), readFramed(t, x).Id)

	// The transfer waits for its first step: the loops serve the rest.
	for range 2 * runtime.GOMAXPROCS(0) {
		c, err := net.Dial("tcp", addr)
		require.NoError(t, err)
		defer c.Close()
		_, err = ask(c, new(dns.Msg).SetQuestion("www.example.net.", dns.TypeA), time.Second)
		require.NoError(t, err, "another connection, during the transfer")
	}
	for i := range 3 {
		s.step <- struct{}{}
		r := readFramed(t, x)
		require.Equal(t, uint16(2), r.Id)
		require.Equal(t, []string{string(rune('a' + i))}, r.Answer[0].(*dns.TXT).Txt)
	}
	r := readFramed(t, x)
	require.Equal(t, uint16(3), r.Id)
	require.Equal(t, dns.RcodeNameError, r.Rcode)
	r, err = ask(x, new(dns.Msg).SetQuestion("www.example.net.", dns.TypeA), 2*time.Second)
	require.NoError(t, err, "the connection goes on after the transfer")
	require.Len(t, r.Answer, 2)
}
