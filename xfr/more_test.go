package xfr

import (
	"context"
	"net"
	"net/netip"
	"sync/atomic"
	"testing"
	"time"

	"github.com/miekg/dns"
	"github.com/stretchr/testify/require"
)

// TestNOTIFYRetried: a secondary that does not answer the first NOTIFY
// gets it again after the first backoff, signed with the zone's key.
func TestNOTIFYRetried(t *testing.T) {
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	require.NoError(t, err)
	var got atomic.Int32
	at := make(chan time.Time, 10)
	ns := &dns.Server{PacketConn: pc, TsigSecret: map[string]string{"k512.": keySecret},
		Handler: dns.HandlerFunc(func(w dns.ResponseWriter, m *dns.Msg) {
			require.Nil(t, w.TsigStatus())
			at <- time.Now()
			if got.Add(1) == 1 {
				return // lost
			}
			r := new(dns.Msg).SetReply(m)
			r.SetTsig("k512.", dns.HmacSHA512, 300, time.Now().Unix())
			w.WriteMsg(r)
		})}
	go ns.ActivateAndServe()
	defer ns.Shutdown()
	keys, err := ParseKeys(map[string]KeyConfig{"k512": {Algorithm: "hmac-sha512", Secret: keySecret}})
	require.NoError(t, err)
	s, err := New(Options{Keys: keys})
	require.NoError(t, err)
	soa := &dns.SOA{Hdr: dns.RR_Header{Name: "t.test.", Rrtype: dns.TypeSOA, Class: dns.ClassINET}, Ns: "a.", Mbox: "b.", Serial: 7}
	target := netip.MustParseAddrPort(pc.LocalAddr().String())
	done := make(chan struct{})
	go func() {
		s.notifyOne(context.Background(), "t.test.", soa, target, &key{name: "k512.", alg: dns.HmacSHA512, secret: keySecret})
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("NOTIFY still retrying")
	}
	require.Equal(t, int32(2), got.Load())
	first, second := <-at, <-at
	t.Logf("retry after %v", second.Sub(first))
	require.GreaterOrEqual(t, second.Sub(first), time.Second) // the 1 s timeout, then the 1 s backoff
	require.Equal(t, uint64(2), s.Notifies())
}

func TestParseKeysErrors(t *testing.T) {
	for _, c := range []struct {
		cfg  KeyConfig
		want string
	}{
		{KeyConfig{Algorithm: "hmac-md5", Secret: keySecret}, `algorithm "hmac-md5" is not hmac-sha256 or hmac-sha512`},
		{KeyConfig{Algorithm: "hmac-sha256", Secret: "!!"}, "secret must be base64 of at least 16 bytes"},
		{KeyConfig{Algorithm: "hmac-sha256", Secret: "c2hvcnQ="}, "secret must be base64 of at least 16 bytes"},
	} {
		_, err := ParseKeys(map[string]KeyConfig{"k": c.cfg})
		require.ErrorContains(t, err, c.want)
	}
}

// FuzzClaims: the raw scans of the TCP path never panic, and agree with
// a full parse on whether the last record is a TSIG.
func FuzzClaims(f *testing.F) {
	m := new(dns.Msg).SetAxfr("t.test.")
	b, _ := m.Pack()
	f.Add(b)
	m = new(dns.Msg).SetQuestion("t.test.", dns.TypeSOA)
	m.SetEdns0(1232, false)
	m.SetTsig(keyName, dns.HmacSHA256, 300, 1)
	b, _, _ = dns.TsigGenerate(m, keySecret, "", false)
	f.Add(b)
	s := &Server{}
	f.Fuzz(func(t *testing.T, q []byte) {
		s.Claims(q)
		if hasTSIG(q) {
			var m dns.Msg
			if m.Unpack(q) == nil && !m.Response {
				require.NotNil(t, m.IsTsig())
			}
		}
	})
}
