package xfr

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/geodns/geodns/resolver"
	"github.com/geodns/geodns/route"
	"github.com/geodns/geodns/zones"
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

// TestAXFRManyMessages: a zone bigger than one message goes out in
// several, each signed (the next ones over the previous MAC and the
// timers, RFC 8945 5.3.1), and the client verifies them all.
func TestAXFRManyMessages(t *testing.T) {
	var b strings.Builder
	for i := range 3000 {
		fmt.Fprintf(&b, "  n%d: {TXT: [\"record number %d of a big zone\"]}\n", i, i)
	}
	src := strings.Replace(zoneSrc, "records:\n", "records:\n"+b.String(), 1)
	h := newHarnessSrc(t, t.TempDir(), src)
	for _, signed := range []bool{true, false} {
		m := new(dns.Msg).SetAxfr("t.test.")
		tr := &dns.Transfer{}
		if signed {
			m.SetTsig(keyName, dns.HmacSHA256, 300, time.Now().Unix())
			tr.TsigSecret = map[string]string{keyName: keySecret}
		} else {
			d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.IPv4(127, 0, 0, 2)}}
			nc, err := d.Dial("tcp", h.addr)
			require.NoError(t, err)
			tr.Conn = &dns.Conn{Conn: nc}
		}
		ch, err := tr.In(m, h.addr)
		require.NoError(t, err)
		msgs, n := 0, 0
		for env := range ch {
			require.NoError(t, env.Error)
			msgs++
			n += len(env.RR)
		}
		require.Equal(t, 3008, n)
		require.Greater(t, msgs, 5)
		t.Logf("signed %v: %d records in %d messages", signed, n, msgs)
	}
}

// recoverCounter is a handler that counts the panics its wrapper
// recovers, so a fuzz target sees them.
type recoverCounter struct {
	*resolver.Handler
	n atomic.Int64
}

func (r *recoverCounter) Recovered(p any) { r.n.Add(1); r.Handler.Recovered(p) }

// FuzzServe: any message, over UDP or TCP, signed or not, from an address
// allowed transfers or not, is answered without a panic (recovered panics
// are counted as failures: they are bugs the recover only contains).
func FuzzServe(f *testing.F) {
	var set atomic.Pointer[zones.Set]
	z, err := zones.Compile("t.yaml", []byte(strings.Replace(zoneSrc, "NOTIFY", `"127.0.0.1:9"`, 1)), "t.test.", time.Unix(1000, 0), nil)
	require.NoError(f, err)
	set.Store(zones.NewSet(z))
	keys, err := ParseKeys(map[string]KeyConfig{"sec1": {Algorithm: "hmac-sha256", Secret: keySecret}})
	require.NoError(f, err)
	inner := &recoverCounter{Handler: resolver.NewHandler(&set, &route.Router{}, resolver.Config{}, nil)}
	s, err := New(Options{Zones: &set, Inner: inner, Keys: keys})
	require.NoError(f, err)
	s.Changed(nil)
	for _, m := range []*dns.Msg{
		new(dns.Msg).SetAxfr("t.test."),
		new(dns.Msg).SetIxfr("t.test.", 99, "ns1.t.test.", "h.t.test."),
		new(dns.Msg).SetQuestion("t.test.", dns.TypeSOA),
	} {
		b, _ := m.Pack()
		f.Add(b)
		m.SetTsig(keyName, dns.HmacSHA256, 300, time.Now().Unix())
		b, _, _ = dns.TsigGenerate(m, keySecret, "", false)
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, q []byte) {
		for _, remote := range []netip.Addr{netip.MustParseAddr("127.0.0.1"), netip.MustParseAddr("127.0.0.2")} {
			s.ServeWire(q, remote, false, make([]byte, 0, 512))
			s.ServeWire(q, remote, true, nil)
			if s.Claims(q) {
				s.Stream(q, remote, func([]byte) bool { return true })
			}
		}
		require.Zero(t, inner.n.Load(), "a panic was recovered")
	})
}

// TestNotifyFromListenAddress: NOTIFY leaves from the address given
// (serve passes its listen address), which a secondary's allow-notify
// names; the system's pick (127.0.0.1 here, another address on a host
// with several) was refused by NSD as matching no ACL.
func TestNotifyFromListenAddress(t *testing.T) {
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	require.NoError(t, err)
	from := make(chan netip.Addr, 10)
	ns := &dns.Server{PacketConn: pc, Handler: dns.HandlerFunc(func(w dns.ResponseWriter, m *dns.Msg) {
		from <- w.RemoteAddr().(*net.UDPAddr).AddrPort().Addr()
		w.WriteMsg(new(dns.Msg).SetReply(m))
	})}
	go ns.ActivateAndServe()
	t.Cleanup(func() { ns.Shutdown() })
	target := pc.LocalAddr().(*net.UDPAddr).AddrPort()
	soa := &dns.SOA{Hdr: dns.RR_Header{Name: "t.test.", Rrtype: dns.TypeSOA, Class: dns.ClassINET, Ttl: 60}, Ns: "ns1.t.test.", Mbox: "h.t.test.", Serial: 7}
	for _, c := range []struct {
		notifyFrom []netip.Addr
		want       string
	}{
		{[]netip.Addr{netip.MustParseAddr("::1"), netip.MustParseAddr("127.0.0.21")}, "127.0.0.21"}, // the first of the family
		{nil, "127.0.0.1"}, // the system's pick
	} {
		s, err := New(Options{Zones: new(atomic.Pointer[zones.Set]), Inner: resolver.NewHandler(new(atomic.Pointer[zones.Set]), &route.Router{}, resolver.Config{}, nil), NotifyFrom: c.notifyFrom})
		require.NoError(t, err)
		s.notifyOne(context.Background(), "t.test.", soa, target, nil)
		select {
		case got := <-from:
			require.Equal(t, c.want, got.String())
		case <-time.After(5 * time.Second):
			t.Fatal("no NOTIFY")
		}
	}
}

// TestNotifySource: the source fits the target: a loopback listen address
// is not used for a remote secondary (the dial fails: NOTIFY was never
// sent), nor a public one preferred for a secondary on loopback.
func TestNotifySource(t *testing.T) {
	a := netip.MustParseAddr
	listen := []netip.Addr{a("127.0.0.1"), a("::1"), a("fe80::1"), a("192.0.2.53"), a("2001:db8::53")}
	for dst, want := range map[string]string{
		"198.51.100.7": "192.0.2.53",
		"127.0.0.22":   "127.0.0.1",
		"2001:db8::7":  "2001:db8::53",
		"::1":          "::1",
		"fe80::7":      "fe80::1",
	} {
		got, ok := notifySource(listen, a(dst))
		require.True(t, ok, dst)
		require.Equal(t, want, got.String(), dst)
	}
	_, ok := notifySource([]netip.Addr{a("127.0.0.1")}, a("198.51.100.7"))
	require.False(t, ok, "only loopback to listen on: the system picks")
}
