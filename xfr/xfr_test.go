package xfr

import (
	"context"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"net"
	"os"
	"path/filepath"
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

const (
	keyName   = "sec1."
	keySecret = "c2VjcmV0LXNlY3JldC1zZWNyZXQtc2VjcmV0IQ=="
	zoneSrc   = `origin: t.test.
soa: {ns: ns1.t.test., mbox: h.t.test., serial: 100}
transfer:
  allow: [127.0.0.2/32, "key:sec1"]
  notify: [NOTIFY]
records:
  "@": {NS: [ns1.t.test.]}
  ns1: {A: [192.0.2.53]}
  www: {service: web}
  fb: {service: back}
sites:
  a: {lat: 1, lon: 1}
  b: {lat: 2, lon: 2}
services:
  web:
    endpoints:
      - {site: a, address: 192.0.2.1}
      - {site: b, address: 192.0.2.2}
      - {site: b, address: "2001:db8::2"}
  back:
    export: all
    all_down: fallback
    fallback: [192.0.2.9]
    endpoints:
      - {site: a, address: 192.0.2.1}
      - {site: b, address: 192.0.2.2}
`
)

type harness struct {
	t      testing.TB
	set    atomic.Pointer[zones.Set]
	srv    *Server
	addr   string
	notify chan *dns.Msg
	mtime  time.Time
}

// newHarness serves a zone with transfers on 127.0.0.1:0 over real
// sockets, NOTIFY going to a UDP listener of the test's.
func newHarness(t testing.TB, stateDir string) *harness { return newHarnessSrc(t, stateDir, zoneSrc) }

// newHarnessSrc is newHarness serving src (NOTIFY: where NOTIFY goes);
// opts change the server's options and its inner handler's config before
// either starts (the zone is loaded by then).
func newHarnessSrc(t testing.TB, stateDir, src string, opts ...func(*Options, *resolver.Config)) *harness {
	h := &harness{t: t, notify: make(chan *dns.Msg, 100), mtime: time.Unix(1000, 0)}
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	require.NoError(t, err)
	ns := &dns.Server{PacketConn: pc, TsigSecret: map[string]string{keyName: keySecret},
		Handler: dns.HandlerFunc(func(w dns.ResponseWriter, m *dns.Msg) {
			if w.TsigStatus() != nil {
				return
			}
			h.notify <- m
			r := new(dns.Msg).SetReply(m)
			r.SetTsig(keyName, dns.HmacSHA256, 300, time.Now().Unix())
			w.WriteMsg(r)
		})}
	go ns.ActivateAndServe()
	t.Cleanup(func() { ns.Shutdown() })
	h.load(strings.Replace(src, "NOTIFY", `"`+pc.LocalAddr().String()+`"`, 1))
	keys, err := ParseKeys(map[string]KeyConfig{"sec1": {Algorithm: "hmac-sha256", Secret: keySecret}})
	require.NoError(t, err)
	o := Options{Zones: &h.set, Keys: keys, StateDir: stateDir,
		Catalog: Catalog{Zone: "catalog.invalid.", Allow: []string{"127.0.0.2/32"}}}
	var cfg resolver.Config
	for _, f := range opts {
		f(&o, &cfg)
	}
	o.Inner = resolver.NewHandler(&h.set, &route.Router{}, cfg, nil)
	h.srv, err = New(o)
	require.NoError(t, err)
	ln, err := resolver.Listen("127.0.0.1:0")
	require.NoError(t, err)
	h.addr = ln.Addr()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{}, 2)
	go func() { resolver.Serve(ctx, h.srv, resolver.ServeOptions{}, ln); done <- struct{}{} }()
	go func() { h.srv.Run(ctx); done <- struct{}{} }()
	t.Cleanup(func() { cancel(); <-done; <-done })
	require.Eventually(t, func() bool { return h.srv.Built() == h.set.Load() }, 5*time.Second, 10*time.Millisecond)
	return h
}

func (h *harness) load(src string) {
	h.mtime = h.mtime.Add(time.Second)
	var prev *zones.Zone
	if h.set.Load() != nil {
		prev = h.set.Load().Zone("t.test.")
	}
	z, err := zones.Compile("t.yaml", []byte(src), "t.test.", h.mtime, prev)
	require.NoError(h.t, err)
	if h.set.Load() == nil {
		h.set.Store(zones.NewSet(z))
	} else {
		h.set.Store(h.set.Load().With(z))
	}
	if h.srv != nil {
		h.srv.Changed(nil)
	}
}

// xfr transfers zone from h over TCP from 127.0.0.1, signed with the key
// (secret "" for unsigned).
func (h *harness) xfr(zone string, qtype uint16, serial uint32, name, alg, secret string) ([]dns.RR, error) {
	m := new(dns.Msg)
	if qtype == dns.TypeIXFR {
		m.SetIxfr(zone, serial, "ns1.t.test.", "h.t.test.")
	} else {
		m.SetAxfr(zone)
	}
	m.SetEdns0(1232, false)
	tr := &dns.Transfer{}
	if secret != "" {
		m.SetTsig(name, alg, 300, time.Now().Unix())
		tr.TsigSecret = map[string]string{name: secret}
	}
	ch, err := tr.In(m, h.addr)
	if err != nil {
		return nil, err
	}
	var out []dns.RR
	for env := range ch {
		if env.Error != nil {
			return out, env.Error
		}
		out = append(out, env.RR...)
	}
	return out, nil
}

func texts(rrs []dns.RR) string {
	var b strings.Builder
	for _, rr := range rrs {
		b.WriteString(rr.String() + "\n")
	}
	return b.String()
}

func TestAXFRExportedView(t *testing.T) {
	h := newHarness(t, t.TempDir())
	rrs, err := h.xfr("t.test.", dns.TypeAXFR, 0, keyName, dns.HmacSHA256, keySecret)
	require.NoError(t, err)
	require.Equal(t, `t.test.	3600	IN	SOA	ns1.t.test. h.t.test. 100 3600 600 1209600 60
t.test.	3600	IN	NS	ns1.t.test.
fb.t.test.	3600	IN	A	192.0.2.1
fb.t.test.	3600	IN	A	192.0.2.2
ns1.t.test.	3600	IN	A	192.0.2.53
www.t.test.	3600	IN	A	192.0.2.1
www.t.test.	3600	IN	AAAA	2001:db8::2
t.test.	3600	IN	SOA	ns1.t.test. h.t.test. 100 3600 600 1209600 60
`, texts(rrs))

	// A wrong secret under our key name, an unknown key, an unlisted client.
	_, err = h.xfr("t.test.", dns.TypeAXFR, 0, keyName, dns.HmacSHA256, "d3Jvbmctd3Jvbmctd3Jvbmctd3Jvbmc=")
	require.Error(t, err)
	_, err = h.xfr("t.test.", dns.TypeAXFR, 0, "other.", dns.HmacSHA256, keySecret)
	require.Error(t, err)
	r, err := dns.Exchange(func() *dns.Msg {
		m := new(dns.Msg).SetAxfr("t.test.")
		m.SetEdns0(1232, false)
		return m
	}(), h.addr) // over UDP: the resolver's refusal
	require.NoError(t, err)
	require.Equal(t, dns.RcodeRefused, r.Rcode)
	c := &dns.Client{Net: "tcp"}
	m := new(dns.Msg).SetAxfr("t.test.")
	m.SetEdns0(1232, false)
	r, _, err = c.Exchange(m, h.addr)
	require.NoError(t, err)
	require.Equal(t, dns.RcodeRefused, r.Rcode)
	require.Equal(t, uint16(dns.ExtendedErrorCodeProhibited), r.IsEdns0().Option[0].(*dns.EDNS0_EDE).InfoCode)

	// Unsigned from an allowed address (127.0.0.2/32): transferred.
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.IPv4(127, 0, 0, 2)}, Timeout: 2 * time.Second}
	nc, err := d.Dial("tcp", h.addr)
	require.NoError(t, err)
	m = new(dns.Msg).SetAxfr("t.test.")
	ch, err := (&dns.Transfer{Conn: &dns.Conn{Conn: nc}}).In(m, h.addr)
	require.NoError(t, err)
	n := 0
	for env := range ch {
		require.NoError(t, env.Error)
		n += len(env.RR)
	}
	require.Equal(t, 8, n)

	// A signed SOA query over UDP gets a signed answer.
	m = new(dns.Msg).SetQuestion("t.test.", dns.TypeSOA)
	m.SetTsig(keyName, dns.HmacSHA256, 300, time.Now().Unix())
	c = &dns.Client{TsigSecret: map[string]string{keyName: keySecret}}
	r, _, err = c.Exchange(m, h.addr)
	require.NoError(t, err)
	require.NotNil(t, r.IsTsig())
	require.Equal(t, uint32(100), r.Answer[0].(*dns.SOA).Serial)
}

func TestSerialNOTIFYAndIXFR(t *testing.T) {
	dir := t.TempDir()
	h := newHarness(t, dir)
	first := <-h.notify // the first version is announced too
	require.Equal(t, uint32(100), first.Answer[0].(*dns.SOA).Serial)
	require.NotNil(t, first.IsTsig())

	src := strings.Replace(zoneSrc, "NOTIFY", `"`+first.Answer[0].Header().Name+`"`, 1)
	_ = src
	cur := h.set.Load().Zone("t.test.")
	// Content that is not exported (a rule, a site's capacity) moves no
	// serial and sends no NOTIFY.
	notifySrc := func(s string) string {
		return strings.Replace(s, "NOTIFY", `"`+h.srv.opts.Zones.Load().Zone("t.test.").Transfer.Notify[0].String()+`"`, 1)
	}
	h.load(notifySrc(strings.Replace(zoneSrc, "b: {lat: 2, lon: 2}", "b: {lat: 2, lon: 2, capacity: 7}", 1)))
	require.Eventually(t, func() bool { return h.srv.Built() == h.set.Load() }, 5*time.Second, 10*time.Millisecond)
	require.NotSame(t, cur, h.set.Load().Zone("t.test."))
	s, _ := h.srv.Serial("t.test.")
	require.Equal(t, uint32(100), s)

	// An exported change: a new serial, NOTIFY, and IXFR carries one record.
	changed := strings.Replace(zoneSrc, "serial: 100", "serial: 101", 1)
	changed = strings.Replace(changed, "ns1: {A: [192.0.2.53]}", "ns1: {A: [192.0.2.54]}", 1)
	start := time.Now()
	h.load(notifySrc(changed))
	n := <-h.notify
	t.Logf("NOTIFY %v after the change", time.Since(start))
	require.Equal(t, uint32(101), n.Answer[0].(*dns.SOA).Serial)
	select {
	case m := <-h.notify:
		t.Fatalf("a second NOTIFY: %v", m)
	default:
	}
	rrs, err := h.xfr("t.test.", dns.TypeIXFR, 100, keyName, dns.HmacSHA256, keySecret)
	require.NoError(t, err)
	require.Equal(t, `t.test.	3600	IN	SOA	ns1.t.test. h.t.test. 101 3600 600 1209600 60
t.test.	3600	IN	SOA	ns1.t.test. h.t.test. 100 3600 600 1209600 60
ns1.t.test.	3600	IN	A	192.0.2.53
t.test.	3600	IN	SOA	ns1.t.test. h.t.test. 101 3600 600 1209600 60
ns1.t.test.	3600	IN	A	192.0.2.54
t.test.	3600	IN	SOA	ns1.t.test. h.t.test. 101 3600 600 1209600 60
`, texts(rrs))
	// From a serial the journal does not reach: the whole zone.
	rrs, err = h.xfr("t.test.", dns.TypeIXFR, 50, keyName, dns.HmacSHA256, keySecret)
	require.NoError(t, err)
	require.Len(t, rrs, 8)
	// Up to date: the SOA alone.
	rrs, err = h.xfr("t.test.", dns.TypeIXFR, 101, keyName, dns.HmacSHA256, keySecret)
	require.NoError(t, err)
	require.Len(t, rrs, 1)

	// The catalog lists the zone.
	cat, err := h.xfr("catalog.invalid.", dns.TypeAXFR, 0, keyName, dns.HmacSHA256, keySecret)
	require.Error(t, err) // the catalog allows 127.0.0.2 only
	_ = cat
}

// TestSOASaysExportedSerial: an edit of an exported record under a
// serial the operator did not move (a file with serial: 100) moves the
// exported serial past the zone's own, and SOA answers, signed or not,
// say the exported one.
func TestSOASaysExportedSerial(t *testing.T) {
	h := newHarness(t, t.TempDir())
	changed := strings.Replace(zoneSrc, "ns1: {A: [192.0.2.53]}", "ns1: {A: [192.0.2.54]}", 1)
	h.load(strings.Replace(changed, "NOTIFY", `"`+h.set.Load().Zone("t.test.").Transfer.Notify[0].String()+`"`, 1))
	require.Eventually(t, func() bool { return h.srv.Built() == h.set.Load() }, 5*time.Second, 10*time.Millisecond)
	own := h.set.Load().Zone("t.test.").Serial
	exp, _ := h.srv.Serial("t.test.")
	require.Equal(t, uint32(100), own)
	require.Equal(t, uint32(101), exp, "the exported serial did not move")

	for _, signed := range []bool{false, true} {
		m := new(dns.Msg).SetQuestion("t.test.", dns.TypeSOA)
		c := &dns.Client{}
		if signed {
			m.SetTsig(keyName, dns.HmacSHA256, 300, time.Now().Unix())
			c.TsigSecret = map[string]string{keyName: keySecret}
		}
		r, _, err := c.Exchange(m, h.addr)
		require.NoError(t, err)
		require.Equal(t, exp, r.Answer[0].(*dns.SOA).Serial, "signed %v", signed)
	}
}

// TestJournalSurvivesRestart: the serial and the IXFR journal are read
// back from the state directory.
func TestJournalSurvivesRestart(t *testing.T) {
	dir := t.TempDir()
	h := newHarness(t, dir)
	changed := strings.Replace(zoneSrc, "serial: 100", "serial: 101", 1)
	changed = strings.Replace(changed, "ns1: {A: [192.0.2.53]}", "ns1: {A: [192.0.2.54]}", 1)
	h.load(strings.Replace(changed, "NOTIFY", `"`+h.set.Load().Zone("t.test.").Transfer.Notify[0].String()+`"`, 1))
	require.Eventually(t, func() bool { s, _ := h.srv.Serial("t.test."); return s == 101 }, 5*time.Second, 10*time.Millisecond)

	h2 := newHarnessSrc(t, dir, changed) // the same state, the zone as the first had it last
	s, _ := h2.srv.Serial("t.test.")
	require.Equal(t, uint32(101), s)
	rrs, err := h2.xfr("t.test.", dns.TypeIXFR, 100, keyName, dns.HmacSHA256, keySecret)
	require.NoError(t, err)
	require.Len(t, rrs, 6, texts(rrs)) // the journal reached back to 100
}

// TestMalformedTransferQueriesAnswered: messages that look like a
// transfer or a signed query but are not one (an AXFR of another class,
// another opcode, a TSIG record that is not the last) are answered as any
// query is, over TCP and UDP. They used to reach the signing code without
// a key and crash the process.
func TestMalformedTransferQueriesAnswered(t *testing.T) {
	h := newHarness(t, t.TempDir())
	chaos := new(dns.Msg).SetQuestion("t.test.", dns.TypeAXFR)
	chaos.Question[0].Qclass = dns.ClassCHAOS
	notify := new(dns.Msg).SetQuestion("t.test.", dns.TypeIXFR)
	notify.Opcode = dns.OpcodeNotify
	tsigFirst := new(dns.Msg).SetQuestion("www.t.test.", dns.TypeA)
	tsigFirst.SetTsig(keyName, dns.HmacSHA256, 300, time.Now().Unix())
	tsigFirst.Extra = append(tsigFirst.Extra, &dns.A{Hdr: dns.RR_Header{Name: "x.", Rrtype: dns.TypeA, Class: dns.ClassINET}, A: net.IPv4(192, 0, 2, 1)})
	for _, q := range []*dns.Msg{chaos, notify, tsigFirst} {
		wire, err := q.Pack()
		require.NoError(t, err)
		for _, network := range []string{"tcp", "udp"} {
			b, err := sendRaw(t, network, h.addr, wire)
			r := new(dns.Msg)
			if err == nil {
				err = r.Unpack(b)
			}
			if err != nil && strings.Contains(err.Error(), "TSIG") {
				err = nil // an answer came; miekg checks the TSIG it does not hold
			}
			require.NoError(t, err, "%s over %s: an answer, and the server still running", q.Question[0].String(), network)
			if r != nil {
				require.Equal(t, q.Id, r.Id)
			}
		}
	}
	// Still serving.
	r, err := dns.Exchange(new(dns.Msg).SetQuestion("ns1.t.test.", dns.TypeA), h.addr)
	require.NoError(t, err)
	require.Len(t, r.Answer, 1)
}

// TestAXFRLargeRecords: a zone of large records (6 KB TXT records) is sent
// in messages that each fit a TCP frame; sixteen of them used to go out
// in one message of over 64 KiB, its length wrapped.
func TestAXFRLargeRecords(t *testing.T) {
	src := zoneSrc
	var recs []string
	for i := range 40 {
		recs = append(recs, fmt.Sprintf("%q", fmt.Sprintf("%02d%s", i, strings.Repeat("x", 6000))))
	}
	src = strings.Replace(src, "  ns1: {A: [192.0.2.53]}\n", "  ns1: {A: [192.0.2.53]}\n  big: {TXT: ["+strings.Join(recs, ", ")+"]}\n", 1)
	h := newHarnessSrc(t, t.TempDir(), src)
	rrs, err := h.xfr("t.test.", dns.TypeAXFR, 0, keyName, dns.HmacSHA256, keySecret)
	require.NoError(t, err)
	n := 0
	for _, rr := range rrs {
		if rr.Header().Rrtype == dns.TypeTXT {
			n++
		}
	}
	require.Equal(t, 40, n, "every large record transferred")
}

// TestCorruptTransferStateKeepsSerials: a damaged xfr.json (a crash in
// the middle of a write, a full disk) is kept aside and the previous copy
// read, so the exported serial does not fall back to the zone's own, below
// what the secondaries already hold (they would ignore every update).
func TestCorruptTransferStateKeepsSerials(t *testing.T) {
	dir := t.TempDir()
	h := newHarness(t, dir)
	notify := `"` + h.set.Load().Zone("t.test.").Transfer.Notify[0].String() + `"`
	// New content, the same serial in the file: the export moves to 101.
	changed := strings.Replace(zoneSrc, "ns1: {A: [192.0.2.53]}", "ns1: {A: [192.0.2.54]}", 1)
	h.load(strings.Replace(changed, "NOTIFY", notify, 1))
	require.Eventually(t, func() bool { s, _ := h.srv.Serial("t.test."); return s == 101 }, 5*time.Second, 10*time.Millisecond)
	h.load(strings.Replace(changed, "NOTIFY", notify, 1)) // saved again: the copy kept beside says 101 too
	require.Eventually(t, func() bool {
		b, err := os.ReadFile(filepath.Join(dir, "xfr.json.prev"))
		return err == nil && strings.Contains(string(b), "101")
	}, 5*time.Second, 10*time.Millisecond)
	require.NoError(t, os.WriteFile(filepath.Join(dir, "xfr.json"), []byte(`{"t.test.": {"ser`), 0o644))

	h2 := newHarnessSrc(t, dir, changed)
	s, _ := h2.srv.Serial("t.test.")
	require.Equal(t, uint32(101), s, "the serial secondaries hold, not the zone's own 100")
}

// sendRaw sends the message wire to addr over network and returns the
// answer's bytes, unchecked.
func sendRaw(t *testing.T, network, addr string, wire []byte) ([]byte, error) {
	t.Helper()
	c, err := net.Dial(network, addr)
	require.NoError(t, err)
	defer c.Close()
	co := &dns.Conn{Conn: c}
	_, err = co.Write(wire)
	require.NoError(t, err)
	co.SetReadDeadline(time.Now().Add(2 * time.Second))
	return co.ReadMsgHeader(nil)
}

// TestUnreadableTSIGIsFormErr: a query whose TSIG cannot be read, or
// whose TSIG is not the last record, gets FORMERR (RFC 8945 5.1, 5.2), as
// from NSD and Knot. Before, both got an ordinary unsigned answer.
func TestUnreadableTSIGIsFormErr(t *testing.T) {
	h := newHarness(t, t.TempDir())
	q := new(dns.Msg).SetQuestion("ns1.t.test.", dns.TypeA)
	base, err := q.Pack()
	require.NoError(t, err)
	q.SetTsig(keyName, dns.HmacSHA256, 300, time.Now().Unix())
	garbled, err := q.Pack()
	require.NoError(t, err)
	// The TSIG's RDLENGTH, after its owner name, type, class and TTL:
	// shortened, the algorithm name runs past the rdata.
	at := len(base) + len(dns.Fqdn(keyName)) + 1 + 8
	binary.BigEndian.PutUint16(garbled[at:], 3)
	garbled = garbled[:at+2+3]

	first := new(dns.Msg).SetQuestion("ns1.t.test.", dns.TypeA)
	first.SetTsig(keyName, dns.HmacSHA256, 300, time.Now().Unix())
	first.SetEdns0(1232, false) // the OPT after the TSIG
	tsigFirst, err := first.Pack()
	require.NoError(t, err)

	for name, wire := range map[string][]byte{"unreadable": garbled, "not last": tsigFirst} {
		for _, network := range []string{"udp", "tcp"} {
			b, err := sendRaw(t, network, h.addr, wire)
			require.NoError(t, err, "%s over %s", name, network)
			r := new(dns.Msg)
			require.NoError(t, r.Unpack(b))
			require.Equal(t, binary.BigEndian.Uint16(wire), r.Id)
			require.Equal(t, dns.RcodeFormatError, r.Rcode, "%s over %s", name, network)
		}
	}
}

// TestSOAOnlyEditFollowsZoneSerial: an edit of the SOA alone, the serial
// bumped by the operator (10 -> 11, a new minimum TTL), moves the exported
// serial with it: NOTIFY, the SOA query, a negative answer and IXFR (an
// empty difference, the new SOA) all say 11 and the new fields. The
// export used to stay at 10, the digest leaving the SOA out, so the
// secondaries never saw the edit.
func TestSOAOnlyEditFollowsZoneSerial(t *testing.T) {
	h := newHarness(t, t.TempDir())
	notify := `"` + h.set.Load().Zone("t.test.").Transfer.Notify[0].String() + `"`
	for first := range h.notify {
		if first.Answer[0].(*dns.SOA).Serial == 100 {
			break
		}
	}
	edited := strings.Replace(zoneSrc, "serial: 100}", "serial: 101, minttl: 5}", 1)
	h.load(strings.Replace(edited, "NOTIFY", notify, 1))
	require.Eventually(t, func() bool { return h.srv.Built() == h.set.Load() }, 5*time.Second, 10*time.Millisecond)
	s, _ := h.srv.Serial("t.test.")
	require.Equal(t, uint32(101), s, "the exported serial follows the zone's")
	select {
	case n := <-h.notify:
		require.Equal(t, uint32(101), n.Answer[0].(*dns.SOA).Serial)
	case <-time.After(3 * time.Second):
		t.Fatal("no NOTIFY for the SOA edit")
	}
	r, err := dns.Exchange(new(dns.Msg).SetQuestion("t.test.", dns.TypeSOA), h.addr)
	require.NoError(t, err)
	require.Equal(t, uint32(101), r.Answer[0].(*dns.SOA).Serial)
	require.Equal(t, uint32(5), r.Answer[0].(*dns.SOA).Minttl)
	r, err = dns.Exchange(new(dns.Msg).SetQuestion("nx.t.test.", dns.TypeA), h.addr)
	require.NoError(t, err)
	require.Equal(t, dns.RcodeNameError, r.Rcode)
	require.Equal(t, uint32(101), r.Ns[0].(*dns.SOA).Serial, "a negative answer says the serial an SOA query says")

	rrs, err := h.xfr("t.test.", dns.TypeIXFR, 100, keyName, dns.HmacSHA256, keySecret)
	require.NoError(t, err)
	// The difference deletes version 100's SOA as it was (minimum 60).
	require.Equal(t, `t.test.	3600	IN	SOA	ns1.t.test. h.t.test. 101 3600 600 1209600 5
t.test.	3600	IN	SOA	ns1.t.test. h.t.test. 100 3600 600 1209600 60
t.test.	3600	IN	SOA	ns1.t.test. h.t.test. 101 3600 600 1209600 5
t.test.	3600	IN	SOA	ns1.t.test. h.t.test. 101 3600 600 1209600 5
`, texts(rrs))

	// A rule-only edit under an automatic serial moves the export too:
	// the SOA served and the one transferred never differ.
	auto := strings.Replace(edited, ", serial: 101", "", 1)
	h.load(strings.Replace(auto, "NOTIFY", notify, 1))
	require.Eventually(t, func() bool { return h.srv.Built() == h.set.Load() }, 5*time.Second, 10*time.Millisecond)
	own := h.set.Load().Zone("t.test.").Serial
	s, _ = h.srv.Serial("t.test.")
	require.Equal(t, own, s)
}

// TestReaddedZoneKeepsSerial: a zone removed and added back continues
// after its last exported serial. Its state used to be dropped with it,
// so the export went back to the zone's own serial (100, below the 101
// the secondaries hold) and 100 named a second, different content.
func TestReaddedZoneKeepsSerial(t *testing.T) {
	h := newHarness(t, t.TempDir())
	notify := `"` + h.set.Load().Zone("t.test.").Transfer.Notify[0].String() + `"`
	changed := strings.Replace(zoneSrc, "ns1: {A: [192.0.2.53]}", "ns1: {A: [192.0.2.54]}", 1)
	h.load(strings.Replace(changed, "NOTIFY", notify, 1))
	require.Eventually(t, func() bool { s, _ := h.srv.Serial("t.test."); return s == 101 }, 5*time.Second, 10*time.Millisecond)

	removeReadd := func(src string) uint32 {
		h.set.Store(h.set.Load().Without("t.test."))
		h.srv.Changed(nil)
		require.Eventually(t, func() bool { _, ok := h.srv.Serial("t.test."); return !ok }, 5*time.Second, 10*time.Millisecond)
		h.load(strings.Replace(src, "NOTIFY", notify, 1))
		require.Eventually(t, func() bool { return h.srv.Built() == h.set.Load() }, 5*time.Second, 10*time.Millisecond)
		s, ok := h.srv.Serial("t.test.")
		require.True(t, ok)
		return s
	}
	require.Equal(t, uint32(102), removeReadd(zoneSrc), "the first content back, under serial 100: after 101")
	require.Equal(t, uint32(102), removeReadd(zoneSrc), "the same content back: the same serial")
	r, err := dns.Exchange(new(dns.Msg).SetQuestion("t.test.", dns.TypeSOA), h.addr)
	require.NoError(t, err)
	require.Equal(t, uint32(102), r.Answer[0].(*dns.SOA).Serial)
}

// TestCatalogListsTransferableZonesOnly: the catalog lists the zones
// with a transfer: setting, not the others. It used to list every zone,
// so a catalog consumer (Knot) kept retrying a transfer always refused,
// and answered SERVFAIL for the zone.
func TestCatalogListsTransferableZonesOnly(t *testing.T) {
	h := newHarness(t, t.TempDir())
	z, err := zones.Compile("u.yaml", []byte("origin: u.test.\nsoa: {ns: ns1.u.test., mbox: h.u.test., serial: 1}\nrecords:\n  \"@\": {NS: [ns1.u.test.]}\n  ns1: {A: [192.0.2.53]}\n"), "u.test.", h.mtime, nil)
	require.NoError(t, err)
	h.set.Store(h.set.Load().With(z))
	h.srv.Changed(nil)
	require.Eventually(t, func() bool { return h.srv.Built() == h.set.Load() }, 5*time.Second, 10*time.Millisecond)

	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.IPv4(127, 0, 0, 2)}, Timeout: 2 * time.Second}
	nc, err := d.Dial("tcp", h.addr)
	require.NoError(t, err)
	ch, err := (&dns.Transfer{Conn: &dns.Conn{Conn: nc}}).In(new(dns.Msg).SetAxfr("catalog.invalid."), h.addr)
	require.NoError(t, err)
	var members []string
	for env := range ch {
		require.NoError(t, env.Error)
		for _, rr := range env.RR {
			if p, ok := rr.(*dns.PTR); ok {
				members = append(members, p.Ptr)
			}
		}
	}
	require.Equal(t, []string{"t.test."}, members)
}

// TestTransferWaitsForCurrentView: a transfer asked right after an edit
// loaded, before the transfer loop has built its view (here: the loop not
// told, its next poll up to 200 ms away), gets the new version: SOA
// queries already say its serial. It used to get the old content (and an
// IXFR from the old serial the SOA alone), so a secondary refreshing in
// that window stayed stale until its next refresh.
func TestTransferWaitsForCurrentView(t *testing.T) {
	h := newHarness(t, t.TempDir())
	notify := `"` + h.set.Load().Zone("t.test.").Transfer.Notify[0].String() + `"`
	changed := strings.Replace(zoneSrc, "serial: 100", "serial: 101", 1)
	changed = strings.Replace(changed, "ns1: {A: [192.0.2.53]}", "ns1: {A: [192.0.2.54]}", 1)
	changed = strings.Replace(changed, "NOTIFY", notify, 1)
	h.mtime = h.mtime.Add(time.Second)
	z, err := zones.Compile("t.yaml", []byte(changed), "t.test.", h.mtime, h.set.Load().Zone("t.test."))
	require.NoError(t, err)
	h.set.Store(h.set.Load().With(z)) // the loop not told (no Changed)
	require.Equal(t, uint32(101), soaSerial(t, h.addr))
	rrs, err := h.xfr("t.test.", dns.TypeIXFR, 100, keyName, dns.HmacSHA256, keySecret)
	require.NoError(t, err)
	require.Equal(t, uint32(101), rrs[0].(*dns.SOA).Serial, "the transfer gives the version the SOA announces")
	require.Len(t, rrs, 6, texts(rrs))
}

func soaSerial(t *testing.T, addr string) uint32 {
	r, err := dns.Exchange(new(dns.Msg).SetQuestion("t.test.", dns.TypeSOA), addr)
	require.NoError(t, err)
	return r.Answer[0].(*dns.SOA).Serial
}

// TestReloadReusesExportedRecords: a zone reloaded with the same content
// (a SIGHUP reloads every zone) keeps its view's exported records rather
// than sorting and digesting them again: on a 100k-record zone that took
// seconds, and every other zone's new view waited for it.
func TestReloadReusesExportedRecords(t *testing.T) {
	h := newHarness(t, t.TempDir())
	before := (*h.srv.views.Load())["t.test."]
	h.load(strings.Replace(zoneSrc, "NOTIFY", `"`+h.set.Load().Zone("t.test.").Transfer.Notify[0].String()+`"`, 1))
	require.Eventually(t, func() bool { return h.srv.Built() == h.set.Load() }, 5*time.Second, 10*time.Millisecond)
	after := (*h.srv.views.Load())["t.test."]
	require.NotSame(t, before.src, after.src, "a new version of the zone")
	require.Equal(t, before.src.Hash, after.src.Hash)
	require.Same(t, &before.rrs[0], &after.rrs[0], "the exported records built again")
	require.Equal(t, before.soa.Serial, after.soa.Serial)
}

// TestIXFROverUDPGetsSOA: an IXFR over UDP from an allowed client gets the
// current SOA (RFC 1995 2: the client then transfers over TCP), signed if
// asked signed, as from NSD and Knot. It used to get REFUSED, and NSD with
// "request-xfr: UDP" never updated. Other clients still get REFUSED.
func TestIXFROverUDPGetsSOA(t *testing.T) {
	h := newHarness(t, t.TempDir())
	m := new(dns.Msg)
	m.SetIxfr("t.test.", 99, "ns1.t.test.", "h.t.test.")
	m.SetTsig(keyName, dns.HmacSHA256, 300, time.Now().Unix())
	c := &dns.Client{TsigSecret: map[string]string{keyName: keySecret}}
	r, _, err := c.Exchange(m, h.addr)
	require.NoError(t, err)
	require.Equal(t, dns.RcodeSuccess, r.Rcode, r.String())
	require.NotNil(t, r.IsTsig())
	require.Len(t, r.Answer, 1, r.String())
	require.Equal(t, uint32(100), r.Answer[0].(*dns.SOA).Serial)
	require.True(t, r.Authoritative)

	// Unsigned, from an allowed address: the SOA; from another: REFUSED.
	for _, from := range []net.IP{net.IPv4(127, 0, 0, 2), net.IPv4(127, 0, 0, 1)} {
		m := new(dns.Msg)
		m.SetIxfr("t.test.", 99, "ns1.t.test.", "h.t.test.")
		d := &net.Dialer{LocalAddr: &net.UDPAddr{IP: from}}
		r, _, err := (&dns.Client{Dialer: d}).Exchange(m, h.addr)
		require.NoError(t, err)
		if from[15] == 2 {
			require.Equal(t, dns.RcodeSuccess, r.Rcode)
			require.Equal(t, uint32(100), r.Answer[0].(*dns.SOA).Serial)
		} else {
			require.Equal(t, dns.RcodeRefused, r.Rcode)
		}
	}
}

// TestDefaultExportPerFamily: a service exported by default (no export:,
// no fallback) exports, for each address family, the endpoints of the
// first site in its order that has that family: what geodns answers a
// client with no known location while all is up. The first site here has
// an IPv4 address only; its AAAA used to be dropped from the export while
// geodns served the next site's.
func TestDefaultExportPerFamily(t *testing.T) {
	h := newHarness(t, t.TempDir())
	rrs, err := h.xfr("t.test.", dns.TypeAXFR, 0, keyName, dns.HmacSHA256, keySecret)
	require.NoError(t, err)
	var www []string
	for _, rr := range rrs {
		if rr.Header().Name == "www.t.test." {
			www = append(www, rr.String())
		}
	}
	served := func(qtype uint16) []string {
		r, err := dns.Exchange(new(dns.Msg).SetQuestion("www.t.test.", qtype), h.addr)
		require.NoError(t, err)
		var out []string
		for _, rr := range r.Answer {
			out = append(out, rr.String())
		}
		return out
	}
	require.Equal(t, append(served(dns.TypeA), served(dns.TypeAAAA)...), www)
	require.Equal(t, []string{"www.t.test.\t3600\tIN\tA\t192.0.2.1", "www.t.test.\t3600\tIN\tAAAA\t2001:db8::2"}, www)
}

// TestBADTIMEEchoesTimeSigned: a query signed with a time out of the fudge
// gets NOTAUTH with the TSIG error BADTIME, the request's Time Signed
// echoed, the server's current time in Other Data (6 octets), and a MAC
// over it all (RFC 8945 5.2.3), so the client can tell its clock is off.
// The answer used to carry the server's time as Time Signed and no Other
// Data.
func TestBADTIMEEchoesTimeSigned(t *testing.T) {
	h := newHarness(t, t.TempDir())
	m := new(dns.Msg).SetQuestion("t.test.", dns.TypeSOA)
	signed := time.Now().Add(-time.Hour).Unix()
	m.SetTsig(keyName, dns.HmacSHA256, 300, signed)
	wire, reqMAC, err := dns.TsigGenerate(m, keySecret, "", false)
	require.NoError(t, err)
	for _, network := range []string{"udp", "tcp"} {
		b, err := sendRaw(t, network, h.addr, wire)
		require.NoError(t, err)
		r := new(dns.Msg)
		require.NoError(t, r.Unpack(b))
		ts := r.IsTsig()
		require.NotNil(t, ts, network)
		require.Equal(t, dns.RcodeNotAuth, r.Rcode)
		require.Equal(t, uint16(dns.RcodeBadTime), ts.Error)
		require.Equal(t, uint64(signed), ts.TimeSigned, "%s: the request's Time Signed echoed", network)
		require.Equal(t, uint16(6), ts.OtherLen, network)
		other, err := hex.DecodeString(ts.OtherData)
		require.NoError(t, err)
		require.Len(t, other, 6)
		now := int64(binary.BigEndian.Uint16(other))<<32 | int64(binary.BigEndian.Uint32(other[2:]))
		require.InDelta(t, time.Now().Unix(), now, 5, "%s: the server's time in Other Data", network)
		// The MAC covers it all: made again over the same message and
		// TSIG fields, it is the one sent (miekg/dns does not verify a
		// NOTAUTH message itself).
		again := r.Copy()
		again.Extra = again.Extra[:len(again.Extra)-1]
		again.SetTsig(ts.Hdr.Name, ts.Algorithm, ts.Fudge, int64(ts.TimeSigned))
		x := again.Extra[len(again.Extra)-1].(*dns.TSIG)
		x.Error, x.OrigId, x.OtherLen, x.OtherData = ts.Error, ts.OrigId, ts.OtherLen, ts.OtherData
		_, mac, err := dns.TsigGenerate(again, keySecret, reqMAC, false)
		require.NoError(t, err)
		require.Equal(t, mac, ts.MAC, "%s: the MAC", network)
	}
}

// TestSOAOnlyEditUnderSameSerial: the SOA's other fields edited while its
// serial stays (or goes back) move the export past it, as a record's edit
// does: secondaries kept the old SOA under the same serial for good
// (geodns served "100 ... 5", Knot held "100 ... 60").
func TestSOAOnlyEditUnderSameSerial(t *testing.T) {
	h := newHarness(t, t.TempDir())
	notify := `"` + h.set.Load().Zone("t.test.").Transfer.Notify[0].String() + `"`
	edited := strings.Replace(zoneSrc, "serial: 100}", "serial: 100, minttl: 5}", 1)
	h.load(strings.Replace(edited, "NOTIFY", notify, 1))
	require.Eventually(t, func() bool { return h.srv.Built() == h.set.Load() }, 5*time.Second, 10*time.Millisecond)
	s, _ := h.srv.Serial("t.test.")
	require.Equal(t, uint32(101), s, "the export moves past the unchanged serial")
	r, err := dns.Exchange(new(dns.Msg).SetQuestion("t.test.", dns.TypeSOA), h.addr)
	require.NoError(t, err)
	require.Equal(t, uint32(101), r.Answer[0].(*dns.SOA).Serial)
	require.Equal(t, uint32(5), r.Answer[0].(*dns.SOA).Minttl)
	rrs, err := h.xfr("t.test.", dns.TypeIXFR, 100, keyName, dns.HmacSHA256, keySecret)
	require.NoError(t, err)
	require.Equal(t, uint32(101), rrs[0].(*dns.SOA).Serial, "IXFR from 100 brings the new SOA")
	require.Equal(t, uint32(5), rrs[0].(*dns.SOA).Minttl)

	// Back to the first SOA under a serial that went back: one more.
	back := strings.Replace(zoneSrc, "serial: 100}", "serial: 99}", 1)
	h.load(strings.Replace(back, "NOTIFY", notify, 1))
	require.Eventually(t, func() bool { return h.srv.Built() == h.set.Load() }, 5*time.Second, 10*time.Millisecond)
	s, _ = h.srv.Serial("t.test.")
	require.Equal(t, uint32(102), s)
}
