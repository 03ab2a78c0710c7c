//go:build linux

package main

import (
	"net"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/miekg/dns"
	"github.com/stretchr/testify/require"
)

// TestLoopCountsAndVariesECS runs the generator's loop against a real UDP
// server that answers every query but those of one network in fifty: every
// network of the file must reach the server in its own ECS option, every
// answer count as completed and every unanswered query as lost.
func TestLoopCountsAndVariesECS(t *testing.T) {
	var nets []byte
	for i := range 500 {
		nets = append(nets, 10, byte(i>>8), byte(i), 0)
	}
	file := filepath.Join(t.TempDir(), "nets.bin")
	require.NoError(t, os.WriteFile(file, nets, 0o644))

	var mu sync.Mutex
	seen := map[string]bool{}
	answered, dropped := 0, 0
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	require.NoError(t, err)
	srv := &dns.Server{PacketConn: pc, Handler: dns.HandlerFunc(func(w dns.ResponseWriter, q *dns.Msg) {
		var subnet net.IP
		if o := q.IsEdns0(); o != nil {
			for _, opt := range o.Option {
				if s, ok := opt.(*dns.EDNS0_SUBNET); ok && s.SourceNetmask == 24 {
					subnet = s.Address
				}
			}
		}
		mu.Lock()
		defer mu.Unlock()
		require.NotNil(t, subnet, "every query carries a /24 ECS option")
		seen[subnet.String()] = true
		if subnet.To4()[2]%50 == 0 {
			dropped++
			return
		}
		answered++
		w.WriteMsg(new(dns.Msg).SetReply(q))
	})}
	go srv.ActivateAndServe()
	t.Cleanup(func() { srv.Shutdown() })

	*server, *port, *netsFile, *verbose = "127.0.0.1", pc.LocalAddr().(*net.UDPAddr).Port, file, true
	tmpl := templates()
	require.Len(t, tmpl, 500)
	start := time.Now()
	st := loop(tmpl, 2*time.Second, 0, 2, 100, 0, start, start.Add(time.Second))

	mu.Lock()
	defer mu.Unlock()
	require.Greater(t, st.sent, int64(500), "a second of load sends each network at least once")
	require.Len(t, seen, 500, "every network reached the server")
	require.Equal(t, int64(answered), st.completed, "completed = answers sent")
	require.Equal(t, int64(dropped), st.lost, "lost = queries left unanswered")
	require.Equal(t, st.sent, st.completed+st.lost)
	require.Len(t, st.lat, int(st.completed), "a latency per answer")
}
