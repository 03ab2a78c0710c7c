package main

import (
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
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

// dnstapGeoZone routes by distance, with a rule for one network and a
// dial on us-east, so that every kind of decision shows in the log.
const dnstapGeoZone = `soa: {ns: ns1.example.com., mbox: hostmaster.example.com.}
records:
  "@": {NS: [ns1.example.com.]}
  www: {service: web}
sites:
  us-east: {lat: 39.04, lon: -77.49}
  us-west: {lat: 37.34, lon: -121.89}
services:
  web:
    dials: {us-east: 50}
    rules:
      - {match: {cidr: [203.0.113.0/24]}, sites: [us-west]}
    endpoints:
      - {site: us-east, address: 192.0.2.10}
      - {site: us-west, address: 198.51.100.10}
`

// startTapped serves dnstapZone with the given config lines.
func startTapped(t *testing.T, conf string, args ...string) (server, base string) {
	return startTappedZone(t, dnstapZone, conf, args...)
}

// startTappedZone serves zone as example.com with the given config lines.
func startTappedZone(t *testing.T, zone, conf string, args ...string) (server, base string) {
	t.Helper()
	zdir := t.TempDir()
	require.NoError(t, os.WriteFile(filepath.Join(zdir, "example.com.yaml"), []byte(zone), 0o644))
	cf := filepath.Join(t.TempDir(), "geodns.yaml")
	require.NoError(t, os.WriteFile(cf, []byte("server_id: ns-test\n"+conf+"\n"), 0o644))
	httpAddr := freeLoopback(t, "127.0.0.1")
	server, _ = startGeodns(t, zdir, "example.com.", append([]string{"--http", httpAddr, "--config", cf}, args...)...)
	return server, "http://" + httpAddr
}

// ecsQuery is www.example.com A with an ECS option for the IPv4 network.
func ecsQuery(network string) *dns.Msg {
	q := question("www.example.com.", dns.TypeA)
	q.SetEdns0(1232, false)
	ip, ipnet, _ := net.ParseCIDR(network)
	bits, _ := ipnet.Mask.Size()
	q.IsEdns0().Option = []dns.EDNS0{&dns.EDNS0_SUBNET{Code: dns.EDNS0SUBNET, Family: 1, SourceNetmask: uint8(bits), Address: ip.To4()}}
	return q
}

// TestDnstapDecisions: the extra field of the responses carries what
// chose the site — the distance from the client's place (real DB-IP
// data), a rule, a dial's bucket — with the ECS source and scope; the
// sampled JSON query log (every query sampled here) has the same.
func TestDnstapDecisions(t *testing.T) {
	files := realDB(t)
	sock := filepath.Join(t.TempDir(), "tap.sock")
	qlog := filepath.Join(t.TempDir(), "queries.json")
	msgs := tapCollector(t, sock, nil)
	server, _ := startTappedZone(t, dnstapGeoZone, "dnstap: {socket: "+sock+"}\nquery_log: {path: "+qlog+", sample: 1}",
		"--geoip", files[0], "--geoip", files[1])
	c := &dns.Client{Timeout: time.Second}
	ids := map[uint16]string{}
	// Berkeley (west, by distance), a rule's network, and east-coast
	// networks: us-east keeps half of its clients by their bucket.
	for _, n := range append([]string{"128.32.0.0/24", "203.0.113.0/24"}, eastClients...) {
		q := ecsQuery(n)
		_, _, err := c.Exchange(q, server)
		require.NoError(t, err)
		ids[q.Id] = n
	}
	extras := map[string]string{}
	deadline := time.After(10 * time.Second)
	for len(extras) < len(ids) {
		select {
		case m := <-msgs:
			if m.GetMessage().GetType() != dnstap.Message_AUTH_RESPONSE {
				continue
			}
			dm := new(dns.Msg)
			require.NoError(t, dm.Unpack(m.GetMessage().GetResponseMessage()))
			if n, ok := ids[dm.Id]; ok {
				extras[n] = string(m.GetExtra())
			}
		case <-deadline:
			t.Fatalf("only %d of %d responses logged within 10s", len(extras), len(ids))
		}
	}
	for _, n := range append([]string{"128.32.0.0/24", "203.0.113.0/24"}, eastClients...) {
		t.Logf("%-16s %s", n, extras[n])
	}
	require.Regexp(t, `^service=web site=us-west ecs=128\.32\.0\.0/24 source=24 scope=\d+ distance_km=\d+$`, extras["128.32.0.0/24"], "no dial at us-west: no bucket")
	require.Regexp(t, `^service=web site=us-west ecs=203\.0\.113\.0/24 source=24 scope=24 rule=1$`, extras["203.0.113.0/24"])
	kept, dialed := 0, 0
	for _, n := range eastClients {
		e := extras[n]
		m := regexp.MustCompile(`^service=web site=(us-east|us-west) ecs=\S+ source=24 scope=24 distance_km=(\d+) bucket=us-east:(0\.\d{4})( degraded=1)?$`).FindStringSubmatch(e)
		require.NotNil(t, m, "%s: %s", n, e)
		b, _ := strconv.ParseFloat(m[3], 64)
		km, _ := strconv.Atoi(m[2])
		if m[1] == "us-east" {
			kept++
			require.Less(t, b, 0.5, "kept by the dial: the bucket is under 50 %%")
			require.Less(t, km, 800, "the distance is to us-east")
		} else {
			dialed++
			require.GreaterOrEqual(t, b, 0.5, "dialed away: the bucket is 50 %% or more")
			require.Greater(t, km, 3000, "the distance is to us-west")
		}
	}
	t.Logf("east clients: %d kept by us-east's 50 %% dial, %d sent on", kept, dialed)

	// The JSON query log: one line per query, the same decisions.
	var lines []map[string]any
	require.Eventually(t, func() bool {
		b, err := os.ReadFile(qlog)
		if err != nil {
			return false
		}
		lines = lines[:0]
		for _, l := range strings.Split(strings.TrimSpace(string(b)), "\n") {
			var m map[string]any
			if json.Unmarshal([]byte(l), &m) == nil && m["qname"] == "www.example.com." {
				lines = append(lines, m)
			}
		}
		return len(lines) == len(ids)
	}, 5*time.Second, 20*time.Millisecond, "a line per query")
	for _, l := range lines {
		n := l["network"].(string)
		e := extras[n]
		require.Contains(t, e, "site="+l["site"].(string)+" ", n)
		require.Equal(t, 24.0, l["ecs_source"], n)
		switch {
		case n == "203.0.113.0/24":
			require.Equal(t, 1.0, l["rule"])
		default:
			require.Contains(t, e, fmt.Sprintf("distance_km=%.0f", l["distance_km"]), n)
		}
		if b, ok := l["bucket"]; ok {
			require.Contains(t, e, fmt.Sprintf("bucket=us-east:%.4f", b), n)
		}
	}
	js, _ := json.Marshal(lines[len(lines)-1])
	t.Logf("a query log line: %s", js)
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
	require.Equal(t, "service=web site=east ecs=198.51.100.0/24 source=24 scope=0 order=default", string(resp.GetExtra()))
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
			// At most one per query: these and startGeodns's own SOA queries
			// (with no collector every message is dropped at once).
			require.LessOrEqual(t, drops, float64(n+20))
		})
	}
}
