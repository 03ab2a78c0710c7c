package main

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/miekg/dns"
	"github.com/stretchr/testify/require"
)

// The DNSSEC end-to-end tests put real parts around a signed geodns zone,
// geo.test.: a parent zone test. signed and served by Knot (with a child,
// sub.geo.test., that geo.test. delegates to securely), and a validating
// Unbound whose only trust anchor is test.'s KSK. Every answer Unbound
// gives for geo.test. must be secure (AD): the chain runs from the anchor
// through the DS Knot serves for geo.test. to the keys geodns made.

// signedKnot is a Knot that signs its zones itself (automatic DNSSEC).
type signedKnot struct {
	addr, dir, conf string
}

// startSigningKnot serves zone files (zone -> content) signed by Knot.
func startSigningKnot(t *testing.T, files map[string]string) *signedKnot {
	t.Helper()
	k := &signedKnot{addr: freeAddr(t), dir: t.TempDir()}
	var conf strings.Builder
	conf.WriteString(knotServerConf(k.addr, k.dir))
	fmt.Fprintf(&conf, `control:
  listen: %q
policy:
  - id: test
    algorithm: ecdsap256sha256
    nsec3: off
    ksk-lifetime: 0
    zsk-lifetime: 0
template:
  - id: default
    storage: %q
    zonefile-sync: -1
    zonefile-load: whole
    journal-content: none
    dnssec-signing: on
    dnssec-policy: test
zone:
`, filepath.Join(k.dir, "knot.sock"), k.dir)
	for zone, content := range files {
		file := filepath.Join(k.dir, zone+"zone")
		require.NoError(t, os.WriteFile(file, []byte(content), 0o644))
		fmt.Fprintf(&conf, "  - domain: %q\n    file: %q\n", zone, file)
	}
	k.conf = filepath.Join(k.dir, "knot.conf")
	require.NoError(t, os.WriteFile(k.conf, []byte(conf.String()), 0o644))
	startProcess(t, new(logBuffer), sbinTool(t, "knotd"), "-c", k.conf)
	for zone := range files {
		waitSOA(t, k.addr, zone)
	}
	return k
}

// update rewrites zone's file and has Knot load and re-sign it.
func (k *signedKnot) update(t *testing.T, zone, content string) {
	t.Helper()
	require.NoError(t, os.WriteFile(filepath.Join(k.dir, zone+"zone"), []byte(content), 0o644))
	out, err := exec.Command(sbinTool(t, "knotc"), "-c", k.conf, "zone-reload", zone).CombinedOutput()
	require.NoError(t, err, "%s", out)
}

// ksk returns the zone's key-signing DNSKEY served at addr.
func ksk(t *testing.T, addr, zone string) *dns.DNSKEY {
	t.Helper()
	var key *dns.DNSKEY
	require.Eventually(t, func() bool {
		r, err := dns.Exchange(question(zone, dns.TypeDNSKEY), addr)
		if err != nil {
			return false
		}
		for _, rr := range r.Answer {
			if k, ok := rr.(*dns.DNSKEY); ok && k.Flags&dns.SEP != 0 {
				key = k
			}
		}
		return key != nil
	}, 10*time.Second, 50*time.Millisecond)
	return key
}

// parentZone is test., delegating geo.test. to geodns with ds.
func parentZone(serial int, ds []string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "$TTL 2\ntest. SOA ns.test. h.test. %d 60 60 600 2\ntest. NS ns.test.\nns.test. A 127.0.0.1\n", serial)
	b.WriteString("geo.test. NS ns1.geo.test.\nns1.geo.test. A 127.0.0.1\n")
	for _, d := range ds {
		b.WriteString(d + "\n")
	}
	return b.String()
}

const childZone = `$TTL 60
sub.geo.test. SOA ns1.sub.geo.test. h.test. 1 60 60 600 60
sub.geo.test. NS ns1.sub.geo.test.
ns1.sub.geo.test. A 127.0.0.1
www.sub.geo.test. A 192.0.2.99
`

// signedGeoZone is geo.test.: a service routed east/west with an east
// site the test can kill, a CNAME into it, a wildcard, a secure
// delegation (sub, with ds) and an insecure one (ins).
func signedGeoZone(eastTarget, subDS, extra string) string {
	return fmt.Sprintf(`origin: geo.test.
ttl: 60
soa: {ns: ns1.geo.test., mbox: hostmaster.geo.test., minttl: 10}
dnssec: {algorithm: ECDSAP256SHA256%s}
records:
  "@": {NS: [ns1.geo.test.]}
  ns1: {A: [127.0.0.1]}
  www: {service: web}
  alias: {CNAME: www}
  "*.wild": {A: [192.0.2.80], TXT: [wild]}
  sub: {NS: [ns1.sub.geo.test.], DS: [%q]}
  ns1.sub: {A: [127.0.0.1]}
  ins: {NS: [ns.elsewhere.example.]}
sites:
  us-east: {lat: 39.04, lon: -77.49}
  us-west: {lat: 37.34, lon: -121.89}
services:
  web:
    ttl: 2
    endpoints:
      - {site: us-east, address: 192.0.2.10, check: east, target: %q}
      - {site: us-west, address: 198.51.100.10}
checks:
  east: {type: tcp, port: %s, interval: 100ms, timeout: 80ms, rise: 1, fall: 1}
`, extra, subDS, eastTarget, portOf(eastTarget))
}

// startValidatingUnbound runs Unbound validating from anchor, sending
// each stub zone to its server, client subnets forwarded (ECS).
func startValidatingUnbound(t *testing.T, anchor string, stubs map[string]string) (string, *logBuffer) {
	t.Helper()
	return runUnbound(t, "subnetcache validator iterator", fmt.Sprintf(`  val-log-level: 2
  send-client-subnet: 127.0.0.1
  trust-anchor: %q
  local-zone: "test." nodefault
`, anchor), stubs, "test.")
}

// resolve asks the resolver at addr with DO (and ECS when subnet is set).
func resolve(addr, name string, qtype uint16, subnet string) (*dns.Msg, error) {
	q := new(dns.Msg).SetQuestion(name, qtype)
	q.SetEdns0(1232, true)
	if subnet != "" {
		_, n, _ := net.ParseCIDR(subnet)
		ones, _ := n.Mask.Size()
		q.IsEdns0().Option = append(q.IsEdns0().Option, &dns.EDNS0_SUBNET{Code: dns.EDNS0SUBNET, Family: 1,
			SourceNetmask: uint8(ones), Address: n.IP.To4()})
	}
	c := &dns.Client{Timeout: 3 * time.Second}
	r, _, err := c.Exchange(q, addr)
	return r, err
}

// logTool runs dig or delv and logs what it printed.
func logTool(t *testing.T, name string, args ...string) string {
	t.Helper()
	out, err := exec.Command(name, args...).CombinedOutput()
	t.Logf("$ %s %s\n%s", name, strings.Join(args, " "), out)
	require.NoError(t, err, "%s", out)
	return string(out)
}

// signedSetup is the parent, child, geodns and the validating Unbound.
type signedSetup struct {
	knot    *signedKnot
	geodns  string
	unbound string
	anchor  string // delv's trust-anchors file
	zoneDir string
	keyDir  string
	ubLog   *logBuffer
	geoLog  *logBuffer
}

func setupSigned(t *testing.T, eastTarget, extraPolicy string, extraArgs ...string) *signedSetup {
	t.Helper()
	s := &signedSetup{}
	s.knot = startSigningKnot(t, map[string]string{"test.": parentZone(1, nil), "sub.geo.test.": childZone})
	subDS := ksk(t, s.knot.addr, "sub.geo.test.").ToDS(dns.SHA256)
	dsText := fmt.Sprintf("%d %d %d %s", subDS.KeyTag, subDS.Algorithm, subDS.DigestType, subDS.Digest)

	s.zoneDir = t.TempDir()
	state := t.TempDir()
	s.keyDir = filepath.Join(state, "dnssec")
	require.NoError(t, os.WriteFile(filepath.Join(s.zoneDir, "geo.test.yaml"), []byte(signedGeoZone(eastTarget, dsText,
		strings.ReplaceAll(extraPolicy, "KNOT", s.knot.addr))), 0o644))
	args := append([]string{"--state-dir", state}, extraArgs...)
	s.geodns, s.geoLog = startGeodns(t, s.zoneDir, "geo.test.", args...)

	// The registrar: our DS into the parent, from `geodns dnssec ds`.
	code, out, errOut := runGeodns(t, "dnssec", "ds", "--zone", "geo.test", "--key-dir", s.keyDir)
	require.Equal(t, 0, code, errOut)
	t.Logf("$ geodns dnssec ds --zone geo.test\n%s", out)
	ds := strings.Split(strings.TrimSpace(out), "\n")
	require.Len(t, ds, 1)
	s.knot.update(t, "test.", parentZone(2, ds))
	require.Eventually(t, func() bool {
		r, err := dns.Exchange(question("geo.test.", dns.TypeDS), s.knot.addr)
		return err == nil && len(r.Answer) == 1
	}, 10*time.Second, 50*time.Millisecond, "Knot serves our DS")

	key := ksk(t, s.knot.addr, "test.")
	s.unbound, s.ubLog = startValidatingUnbound(t, strings.ReplaceAll(key.String(), "\t", " "), map[string]string{
		"test.": s.knot.addr, "geo.test.": s.geodns, "sub.geo.test.": s.knot.addr})
	s.anchor = filepath.Join(t.TempDir(), "anchors.conf")
	require.NoError(t, os.WriteFile(s.anchor, []byte(fmt.Sprintf("trust-anchors {\n  \"test.\" static-key %d %d %d %q;\n};\n",
		key.Flags, key.Protocol, key.Algorithm, key.PublicKey)), 0o644))
	return s
}

var fullyValidated = regexp.MustCompile(`; (fully validated|negative response, fully validated)`)

// TestDNSSECValidated: a validating Unbound (and delv through it) finds
// every kind of geodns answer secure.
func TestDNSSECValidated(t *testing.T) {
	files := realDB(t)
	east, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	s := setupSigned(t, east.Addr().String(), "", "--geoip", files[0], "--geoip", files[1])
	host, port, _ := net.SplitHostPort(s.unbound)

	secure := func(name string, qtype uint16, subnet string) *dns.Msg {
		t.Helper()
		r, err := resolve(s.unbound, name, qtype, subnet)
		require.NoError(t, err)
		require.Equal(t, dns.RcodeSuccess, r.Rcode, "%s %s: %v\nunbound:\n%s", name, dns.TypeToString[qtype], r, s.ubLog.String())
		require.True(t, r.AuthenticatedData, "%s %s not secure: %v\nunbound:\n%s", name, dns.TypeToString[qtype], r, s.ubLog.String())
		return r
	}
	addrOf := func(r *dns.Msg) string {
		for _, rr := range r.Answer {
			if a, ok := rr.(*dns.A); ok {
				return a.A.String()
			}
		}
		return ""
	}
	dig := func(args ...string) string {
		return logTool(t, "dig", append([]string{"@" + host, "-p", port, "+dnssec", "+multiline", "+tries=1", "+time=3"}, args...)...)
	}
	delv := func(name, qtype string) {
		t.Helper()
		out := logTool(t, "delv", "@"+host, "-p", port, "-a", s.anchor, "+root=test.", name, qtype)
		require.Regexp(t, fullyValidated, out)
	}

	// Geo answers: Berkeley (DB-IP 128.32.0.0/16) is west, Princeton east.
	const westAddr, eastAddr = "198.51.100.10", "192.0.2.10"
	require.Equal(t, westAddr, addrOf(secure("www.geo.test.", dns.TypeA, "128.32.0.0/24")))
	require.Equal(t, eastAddr, addrOf(secure("www.geo.test.", dns.TypeA, "128.112.0.0/24")))
	out := dig("+subnet=128.32.0.0/24", "www.geo.test", "A")
	require.Contains(t, out, " ad;")
	require.Contains(t, out, westAddr)
	out = dig("+subnet=128.112.0.0/24", "www.geo.test", "A")
	require.Contains(t, out, eastAddr)
	delv("www.geo.test", "A")

	// A CNAME chain into the service, a wildcard, NODATA, compact NXDOMAIN.
	r := secure("alias.geo.test.", dns.TypeA, "128.112.0.0/24")
	require.Equal(t, eastAddr, addrOf(r))
	dig("alias.geo.test", "A")
	delv("alias.geo.test", "A")
	require.Equal(t, "192.0.2.80", addrOf(secure("anything.wild.geo.test.", dns.TypeA, "")))
	dig("anything.wild.geo.test", "A")
	delv("anything.wild.geo.test", "A")
	r = secure("www.geo.test.", dns.TypeTXT, "")
	require.Empty(t, r.Answer)
	dig("www.geo.test", "TXT")
	delv("www.geo.test", "TXT")
	r = secure("nope.geo.test.", dns.TypeA, "")
	require.Empty(t, r.Answer)
	nx := false
	for _, rr := range r.Ns {
		if n, ok := rr.(*dns.NSEC); ok && strings.EqualFold(n.Hdr.Name, "nope.geo.test.") {
			nx = strings.Contains(n.String(), "TYPE128") || strings.Contains(n.String(), "NXNAME")
		}
	}
	require.True(t, nx, "the proof Unbound passes on lists NXNAME: %v", r)
	dig("nope.geo.test", "A")
	delv("nope.geo.test", "A")
	// Asked directly with CO, geodns restores the NXDOMAIN rcode.
	q := question("nope.geo.test.", dns.TypeA)
	q.SetEdns0(1232, true)
	q.IsEdns0().SetCo()
	direct, err := dns.Exchange(q, s.geodns)
	require.NoError(t, err)
	require.Equal(t, dns.RcodeNameError, direct.Rcode)

	// NSEC and RRSIG asked for: the name's own NSEC, signed (a NODATA here
	// used to list the very type it denied: bogus).
	for _, name := range []string{"ns1.geo.test.", "www.geo.test.", "geo.test.", "alias.geo.test.", "anything.wild.geo.test."} {
		r := secure(name, dns.TypeNSEC, "")
		require.Len(t, r.Answer, 2, "the NSEC and its RRSIG: %v", r)
		require.Equal(t, dns.TypeNSEC, r.Answer[0].Header().Rrtype, "%v", r)
		require.True(t, strings.EqualFold(name, r.Answer[0].Header().Name))
		delv(strings.TrimSuffix(name, "."), "NSEC")
		// RRSIG: the signatures, passed on unvalidated (nothing signs
		// signatures), never bogus.
		r, err := resolve(s.unbound, name, dns.TypeRRSIG, "")
		require.NoError(t, err)
		require.Equal(t, dns.RcodeSuccess, r.Rcode, "%s RRSIG: %v\nunbound:\n%s", name, r, s.ubLog.String())
		require.NotEmpty(t, r.Answer, "%s RRSIG: %v", name, r)
	}
	dig("ns1.geo.test", "NSEC")
	dig("ns1.geo.test", "RRSIG")
	// delv is not asked for RRSIG: it gives up on any RRSIG question
	// ("shut down hung fetch"), one for Knot's signed test. too.

	// A name of 255 octets that does not exist: its denial's next name
	// stays within 255 octets (it was \000. in front: 257, a packet no
	// one could read), and validates.
	long := strings.Repeat("y", 52) + strings.Repeat("."+strings.Repeat("x", 63), 3) + ".geo.test."
	lq := question(long, dns.TypeA)
	lq.SetEdns0(1232, true)
	direct, err = dns.Exchange(lq, s.geodns)
	require.NoError(t, err, "miekg reads the answer")
	require.NotNil(t, nsecIn(direct.Ns, long), "%v", direct)
	out = logTool(t, "dig", "@127.0.0.1", "-p", portOf(s.geodns), "+dnssec", "+norec", "+tries=1", long, "A")
	require.Contains(t, out, "status: NOERROR")
	require.Empty(t, secure(long, dns.TypeA, "").Answer)
	delv(long, "A")

	// The referral: its DS validates, and so does the child behind it; an
	// insecure delegation is proven to have no DS.
	secure("sub.geo.test.", dns.TypeDS, "")
	require.Equal(t, "192.0.2.99", addrOf(secure("www.sub.geo.test.", dns.TypeA, "")))
	delv("www.sub.geo.test", "A")
	r = secure("ins.geo.test.", dns.TypeDS, "")
	require.Empty(t, r.Answer)
	delv("ins.geo.test", "DS")
	logTool(t, "dig", "@127.0.0.1", "-p", portOf(s.geodns), "+dnssec", "+norec", "+multiline", "www.sub.geo.test", "A")

	// Failover: the east site dies; Princeton gets the west answer, secure.
	require.NoError(t, east.Close())
	require.Eventually(t, func() bool {
		r, err := resolve(s.unbound, "www.geo.test.", dns.TypeA, "128.112.0.0/24")
		return err == nil && r.AuthenticatedData && addrOf(r) == westAddr
	}, 15*time.Second, 100*time.Millisecond, "east's clients move west, validated")
	out = dig("+subnet=128.112.0.0/24", "www.geo.test", "A")
	require.Contains(t, out, westAddr)
	require.Contains(t, out, " ad;")
	require.NotContains(t, s.ubLog.String(), "validation failure", "no bogus answer")
}

// nsecIn returns the NSEC owned by name in rrs, nil if none.
func nsecIn(rrs []dns.RR, name string) *dns.NSEC {
	for _, rr := range rrs {
		if n, ok := rr.(*dns.NSEC); ok && strings.EqualFold(n.Hdr.Name, name) {
			return n
		}
	}
	return nil
}

func portOf(addr string) string { _, p, _ := net.SplitHostPort(addr); return p }

// TestDNSSECRollover rolls geo.test.'s CSK in accelerated time while
// Unbound validates continuously: the new key's CDS appears, the test
// (the registrar) puts its DS in the parent, geodns sees the parent's DS
// and only then removes the old key; not one answer is bogus.
func TestDNSSECRollover(t *testing.T) {
	conf := filepath.Join(t.TempDir(), "geodns.yaml")
	require.NoError(t, os.WriteFile(conf, []byte("dnssec: {interval: 100ms}\n"), 0o644))
	s := setupSigned(t, "127.0.0.1:9", ", dnskey_ttl: 2, propagation: 1s, parent: [KNOT]", "--config", conf)

	oldTags := keyTags(t, s.geodns)
	require.Len(t, oldTags, 1)

	// Unbound validates continuously: names of every kind, DS and DNSKEY
	// fetched again as their 2 s TTLs run out.
	var answered, bogus atomic.Int64
	var bogusMu sync.Mutex
	var bogusSeen []string
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		names := []struct {
			name  string
			qtype uint16
		}{{"www.geo.test.", dns.TypeA}, {"alias.geo.test.", dns.TypeA}, {"x.wild.geo.test.", dns.TypeA},
			{"nope.geo.test.", dns.TypeA}, {"www.geo.test.", dns.TypeTXT}, {"geo.test.", dns.TypeSOA}}
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			case <-time.After(50 * time.Millisecond):
			}
			n := names[i%len(names)]
			r, err := resolve(s.unbound, n.name, n.qtype, "")
			if err != nil {
				continue
			}
			answered.Add(1)
			if r.Rcode != dns.RcodeSuccess || !r.AuthenticatedData {
				bogus.Add(1)
				bogusMu.Lock()
				bogusSeen = append(bogusSeen, fmt.Sprintf("%s %s: %s ad=%v", n.name, dns.TypeToString[n.qtype], dns.RcodeToString[r.Rcode], r.AuthenticatedData))
				bogusMu.Unlock()
			}
		}
	}()
	defer func() {
		select {
		case <-stop:
		default:
			close(stop)
		}
		<-done
	}()

	code, out, errOut := runGeodns(t, "dnssec", "rollover", "--zone", "geo.test", "--key-dir", s.keyDir)
	require.Equal(t, 0, code, errOut)
	t.Logf("$ geodns dnssec rollover --zone geo.test\n%s", out)
	start := time.Now()
	require.Eventually(t, func() bool { return len(keyTags(t, s.geodns)) == 2 }, 5*time.Second, 50*time.Millisecond,
		"the server follows the key file: the new key is published")

	// The registrar: when CDS appears, the parent gets its DS (and only it).
	var cds *dns.CDS
	require.Eventually(t, func() bool {
		r, err := dns.Exchange(question("geo.test.", dns.TypeCDS), s.geodns)
		if err == nil && len(r.Answer) == 1 {
			cds, _ = r.Answer[0].(*dns.CDS)
		}
		return cds != nil
	}, 15*time.Second, 50*time.Millisecond, "CDS published")
	t.Logf("CDS after %v: %v", time.Since(start).Round(time.Millisecond), cds)
	require.NotContains(t, oldTags, cds.KeyTag)
	require.Len(t, keyTags(t, s.geodns), 2, "both keys while the parent has the old DS")
	_, out, _ = runGeodns(t, "dnssec", "status", "--zone", "geo.test", "--key-dir", s.keyDir)
	t.Logf("$ geodns dnssec status --zone geo.test\n%s", out)
	require.Contains(t, out, "phase ds")
	time.Sleep(1500 * time.Millisecond) // the old key must stay while the parent has not moved, however long
	require.Len(t, keyTags(t, s.geodns), 2, "the old key stays until the parent's DS moves")

	ds := fmt.Sprintf("geo.test. DS %d %d %d %s", cds.KeyTag, cds.Algorithm, cds.DigestType, cds.Digest)
	swapped := time.Now()
	s.knot.update(t, "test.", parentZone(3, []string{ds}))
	t.Logf("parent DS swapped after %v: %s", time.Since(start).Round(time.Millisecond), ds)
	require.Eventually(t, func() bool {
		tags := keyTags(t, s.geodns)
		return len(tags) == 1 && tags[0] == cds.KeyTag
	}, 20*time.Second, 50*time.Millisecond, "the old key is removed")
	removed := time.Now()
	t.Logf("old key removed %v after the DS swap (DS TTL 2 s + propagation 1 s)", removed.Sub(swapped).Round(time.Millisecond))
	require.GreaterOrEqual(t, removed.Sub(swapped), 3*time.Second, "not before the parent's DS TTL and propagation")
	r, _ := dns.Exchange(question("geo.test.", dns.TypeCDS), s.geodns)
	require.Empty(t, r.Answer, "CDS withdrawn")
	// Caches holding the old DNSKEY RRset or the new DS run out: keep validating.
	time.Sleep(4 * time.Second)
	close(stop)
	<-done
	_, out, _ = runGeodns(t, "dnssec", "status", "--zone", "geo.test", "--key-dir", s.keyDir)
	t.Logf("$ geodns dnssec status --zone geo.test\n%s", out)
	t.Logf("%d answers validated across the roll, %d bogus", answered.Load(), bogus.Load())
	require.Greater(t, answered.Load(), int64(100))
	require.Zero(t, bogus.Load(), "%v\nunbound:\n%s", bogusSeen, s.ubLog.String())
}

func keyTags(t *testing.T, addr string) []uint16 {
	t.Helper()
	r, err := dns.Exchange(question("geo.test.", dns.TypeDNSKEY), addr)
	require.NoError(t, err)
	var tags []uint16
	for _, rr := range r.Answer {
		if k, ok := rr.(*dns.DNSKEY); ok {
			tags = append(tags, k.KeyTag())
		}
	}
	return tags
}
