package main

import (
	"context"
	"net/netip"
	"testing"
	"time"

	"github.com/geodns/geodns/resolver"
	"github.com/miekg/dns"
	"github.com/stretchr/testify/require"
)

// TestEcho: served by resolver.Serve on loopback, a query comes back as
// itself with QR set, over UDP and TCP; a response gets no answer.
func TestEcho(t *testing.T) {
	l, err := resolver.Listen("127.0.0.1:0")
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- resolver.Serve(ctx, echo{}, resolver.ServeOptions{}, l) }()
	defer func() {
		cancel()
		<-done
	}()
	q := new(dns.Msg).SetQuestion("www.example.com.", dns.TypeA)
	q.SetEdns0(1232, false)
	for _, net := range []string{"udp", "tcp"} {
		c := &dns.Client{Net: net, Timeout: 2 * time.Second}
		r, _, err := c.Exchange(q, l.Addr())
		require.NoError(t, err, net)
		require.True(t, r.Response, net)
		require.Equal(t, q.Id, r.Id, net)
		require.Equal(t, q.Question, r.Question, net)
		require.Empty(t, r.Answer, net)
	}
	resp := q.Copy()
	resp.Response = true
	wire, err := resp.Pack()
	require.NoError(t, err)
	require.Nil(t, echo{}.ServeWire(wire, netip.MustParseAddr("127.0.0.1"), false, nil))
}
