package main

import (
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"testing"
	"time"

	dnstap "github.com/dnstap/golang-dnstap"
	"github.com/miekg/dns"
	"github.com/stretchr/testify/require"
	"google.golang.org/protobuf/proto"
)

const dnstapZone = `soa: {ns: ns1.example.com., mbox: hostmaster.example.com.}
records:
  "@": {NS: [ns1.example.com.]}
  mail: {A: [192.0.2.25]}
  www: {service: web}
sites:
  east: {lat: 39.04, lon: -77.49}
checks:
  up: {type: static, up: true}
services:
  web:
    endpoints:
      - {site: east, address: 192.0.2.10, check: up}
`

// startTapped serves dnstapZone with the given dnstap config line.
func startTapped(t *testing.T, tapConf string) (server, base string) {
	t.Helper()
	zdir := t.TempDir()
	require.NoError(t, os.WriteFile(filepath.Join(zdir, "example.com.yaml"), []byte(dnstapZone), 0o644))
	conf := filepath.Join(t.TempDir(), "geodns.yaml")
	require.NoError(t, os.WriteFile(conf, []byte("server_id: ns-test\n"+tapConf+"\n"), 0o644))
	httpAddr := freeLoopback(t, "127.0.0.1")
	server, _ = startGeodns(t, zdir, "example.com.", "--http", httpAddr, "--config", conf)
	return server, "http://" + httpAddr
}

// tapCollector listens on a unix socket as a dnstap collector does; each
// connection's frames are decoded and sent on the returned channel. With
// stall not nil, it reads one frame and then waits for stall to close: a
// collector that stops reading but keeps its connection.
func tapCollector(t *testing.T, path string, stall <-chan struct{}) <-chan *dnstap.Dnstap {
	t.Helper()
	ln, err := net.Listen("unix", path)
	require.NoError(t, err)
	t.Cleanup(func() { ln.Close() })
	out := make(chan *dnstap.Dnstap, 1<<16)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			t.Cleanup(func() { c.Close() })
			go func() {
				r, err := dnstap.NewReader(c, &dnstap.ReaderOptions{Bidirectional: true, Timeout: 5 * time.Second})
				if err != nil {
					return
				}
				buf := make([]byte, 1<<16)
				for n := 0; ; n++ {
					if stall != nil && n == 1 {
						<-stall // one frame read, then no more
					}
					k, err := r.ReadFrame(buf)
					if err != nil {
						return
					}
					m := new(dnstap.Dnstap)
					if proto.Unmarshal(buf[:k], m) == nil {
						select {
						case out <- m:
						default:
						}
					}
				}
			}()
		}
	}()
	return out
}

// TestDnstapQueryLog: with `dnstap: {socket: PATH}`, a collector on the
// socket receives AUTH_QUERY and AUTH_RESPONSE messages; the response to a
// service name carries the decision in extra (service, site, the ECS
// network routed on, scope), and its DNS message is the answer sent.
func TestDnstapQueryLog(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "tap.sock")
	msgs := tapCollector(t, sock, nil)
	server, _ := startTapped(t, "dnstap: {socket: "+sock+"}")

	q := question("www.example.com.", dns.TypeA)
	q.SetEdns0(1232, false)
	q.IsEdns0().Option = []dns.EDNS0{&dns.EDNS0_SUBNET{Code: dns.EDNS0SUBNET, Family: 1, SourceNetmask: 24, Address: net.ParseIP("198.51.100.0").To4()}}
	c := &dns.Client{Timeout: time.Second}
	r, _, err := c.Exchange(q, server)
	require.NoError(t, err)
	require.Len(t, r.Answer, 1)

	var query, resp *dnstap.Dnstap
	deadline := time.After(10 * time.Second)
	for query == nil || resp == nil {
		select {
		case m := <-msgs:
			dm := new(dns.Msg)
			switch m.GetMessage().GetType() {
			case dnstap.Message_AUTH_QUERY:
				require.NoError(t, dm.Unpack(m.GetMessage().GetQueryMessage()))
				if dm.Question[0].Name == "www.example.com." && dm.Id == q.Id {
					query = m
				}
			case dnstap.Message_AUTH_RESPONSE:
				require.NoError(t, dm.Unpack(m.GetMessage().GetResponseMessage()))
				if dm.Question[0].Name == "www.example.com." && dm.Id == q.Id {
					resp = m
				}
			}
		case <-deadline:
			t.Fatal("no dnstap messages of the query within 10s")
		}
	}
	require.Equal(t, "ns-test", string(resp.GetIdentity()))
	require.Equal(t, []byte{127, 0, 0, 1}, resp.GetMessage().GetQueryAddress())
	require.Equal(t, dnstap.SocketProtocol_UDP, resp.GetMessage().GetSocketProtocol())
	require.Equal(t, "service=web site=east ecs=198.51.100.0/24 scope=0", string(resp.GetExtra()))
	require.Empty(t, query.GetExtra())
	sent := new(dns.Msg)
	require.NoError(t, sent.Unpack(resp.GetMessage().GetResponseMessage()))
	require.Equal(t, "192.0.2.10", sent.Answer[0].(*dns.A).A.String())
	text, ok := dnstap.TextFormat(resp)
	require.True(t, ok)
	js, ok := dnstap.JSONFormat(resp)
	require.True(t, ok)
	t.Logf("decoded AUTH_RESPONSE:\n%s%s\nextra: %s\nresponse message:\n%s", text, js, resp.GetExtra(), sent)
}

// TestDnstapReaderStopped: a collector that stops reading (keeping its
// connection), and none at all, delay no query: every one of a stream of
// queries is answered within the client's timeout, and the messages that
// did not fit in the queue are counted in geodns_dnstap_dropped_total.
func TestDnstapReaderStopped(t *testing.T) {
	for _, tc := range []string{"stalled", "absent"} {
		t.Run(tc, func(t *testing.T) {
			sock := filepath.Join(t.TempDir(), "tap.sock")
			if tc == "stalled" {
				stall := make(chan struct{})
				t.Cleanup(func() { close(stall) })
				tapCollector(t, sock, stall)
			}
			server, base := startTapped(t, "dnstap: {socket: "+sock+", queue: 64}")
			c := &dns.Client{Timeout: time.Second}
			var slowest time.Duration
			const n = 4000
			for i := range n {
				r, rtt, err := c.Exchange(question("mail.example.com.", dns.TypeA), server)
				require.NoError(t, err, "query %d", i)
				require.Len(t, r.Answer, 1)
				slowest = max(slowest, rtt)
			}
			dropped := regexp.MustCompile(`(?m)^geodns_dnstap_dropped_total (\S+)$`)
			var drops float64
			require.Eventually(t, func() bool {
				code, metrics := call(t, "GET", base+"/metrics", "")
				m := dropped.FindStringSubmatch(metrics)
				if code != http.StatusOK || m == nil {
					return false
				}
				drops, _ = strconv.ParseFloat(m[1], 64)
				return drops > 0
			}, 5*time.Second, 20*time.Millisecond, "drops are counted")
			t.Logf("%s reader: %d queries answered, none timed out (slowest %v); %.0f dropped", tc, n, slowest, drops)
			require.LessOrEqual(t, drops, float64(n))
		})
	}
}
