package resolver

import (
	"os"
	"path/filepath"
	"sync"
	"testing"

	dnstap "github.com/dnstap/golang-dnstap"
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
	require.Regexp(t, `^service=web site=(east|west) client=127\.0\.0\.1/32 scope=0$`, extra)
}
