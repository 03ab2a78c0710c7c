package main

import (
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/miekg/dns"
	"github.com/stretchr/testify/require"
)

// flood sends n queries from src to server as fast as it can for the
// duration, without waiting, and counts what comes back.
type floodResult struct {
	sent, sentBytes         int
	received, receivedBytes int
	truncated               int
}

func flood(t *testing.T, src, server string, q []byte, d time.Duration) floodResult {
	t.Helper()
	conn, err := net.ListenUDP("udp", net.UDPAddrFromAddrPort(mustAddrPort(t, src+":0")))
	require.NoError(t, err)
	defer conn.Close()
	dst, err := net.ResolveUDPAddr("udp", server)
	require.NoError(t, err)
	var res floodResult
	var mu sync.Mutex
	done := make(chan struct{})
	go func() {
		defer close(done)
		buf := make([]byte, 65535)
		for {
			conn.SetReadDeadline(time.Now().Add(500 * time.Millisecond))
			n, err := conn.Read(buf)
			if err != nil {
				return
			}
			m := new(dns.Msg)
			mu.Lock()
			res.received++
			res.receivedBytes += n
			if m.Unpack(buf[:n]) == nil && m.Truncated {
				res.truncated++
			}
			mu.Unlock()
		}
	}()
	for end := time.Now().Add(d); time.Now().Before(end); {
		if _, err := conn.WriteTo(q, dst); err == nil {
			res.sent++
			res.sentBytes += len(q)
		}
		time.Sleep(500 * time.Microsecond) // ~2,000 queries/s
	}
	<-done
	mu.Lock()
	defer mu.Unlock()
	return res
}

// TestRRLReflection: a client flooding a large answer (as an attacker
// spoofing a victim's address would) is limited to the configured rate,
// while a normal client keeps every answer.
func TestRRLReflection(t *testing.T) {
	zdir := t.TempDir()
	src := staticExample(t, zdir)
	big := strings.Repeat("x", 200)
	src = strings.Replace(src, "  sip: {A: [192.0.2.60]}", "  sip: {A: [192.0.2.60]}\n  big: {TXT: ["+big+"1, "+big+"2, "+big+"3]}", 1)
	require.NoError(t, os.WriteFile(filepath.Join(zdir, "example.com.yaml"), []byte(src), 0o644))
	conf := filepath.Join(t.TempDir(), "geodns.yaml")
	require.NoError(t, os.WriteFile(conf, []byte("rrl: {responses_per_second: 10, slip: 2, window: 5s, ipv4_prefix: 32}\n"), 0o644))

	q := question("big.example.com.", dns.TypeTXT)
	q.SetEdns0(4096, false)
	wire, err := q.Pack()
	require.NoError(t, err)

	plain, _ := startGeodns(t, zdir, "example.com.")
	limited, _ := startGeodns(t, zdir, "example.com.", "--config", conf)

	const d = 3 * time.Second
	before := flood(t, "127.0.0.5", plain, wire, d)

	var normalOK, normalSent atomic.Int64
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { // a normal client: 5 queries a second, under the limit
		defer wg.Done()
		laddr, _ := net.ResolveUDPAddr("udp", "127.0.0.6:0")
		c := &dns.Client{Timeout: time.Second, Dialer: &net.Dialer{LocalAddr: laddr}}
		for end := time.Now().Add(d); time.Now().Before(end); time.Sleep(200 * time.Millisecond) {
			normalSent.Add(1)
			r, _, err := c.Exchange(q, limited)
			if err == nil && !r.Truncated && len(r.Answer) == 3 {
				normalOK.Add(1)
			}
		}
	}()
	after := flood(t, "127.0.0.5", limited, wire, d)
	wg.Wait()

	ampBefore := float64(before.receivedBytes) / float64(before.sentBytes)
	ampAfter := float64(after.receivedBytes) / float64(after.sentBytes)
	full := after.received - after.truncated
	t.Logf("flood from 127.0.0.5, %v: without RRL %d queries -> %d answers, amplification %.2fx; "+
		"with RRL (10/s, slip 2) %d queries -> %d full answers + %d truncated, amplification %.2fx; "+
		"normal client on 127.0.0.6: %d/%d answered",
		d, before.sent, before.received, ampBefore, after.sent, full, after.truncated, ampAfter, normalOK.Load(), normalSent.Load())
	require.Greater(t, before.sent, 1000)
	require.Greater(t, ampBefore, 5.0, "a large answer amplifies")
	require.LessOrEqual(t, full, 10*int(d/time.Second)+10+2, "full answers at the configured rate (plus the first second's credit)")
	require.Less(t, ampAfter, 1.0, "limited: fewer bytes out than in")
	require.Greater(t, after.truncated, 0, "slip: some truncated answers let real clients retry over TCP")
	require.Equal(t, normalSent.Load(), normalOK.Load(), "the normal client keeps every answer")
}

func mustAddrPort(t *testing.T, s string) netip.AddrPort {
	t.Helper()
	ap, err := netip.ParseAddrPort(s)
	require.NoError(t, err)
	return ap
}
