package main

import (
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"
	"github.com/stretchr/testify/require"
)

// The TSIG key geodns and its secondaries share in these tests.
const (
	xfrKey    = "xfr-key."
	xfrSecret = "c2VjcmV0LXNlY3JldC1zZWNyZXQtc2VjcmV0IQ=="
)

// secondaryZone is a zone geodns serves to the secondaries: a static part,
// a service whose backend the test flaps (a tcp check on a listener it
// opens and closes), exported as its first site.
func secondaryZone(notify []string, backend string) string {
	return fmt.Sprintf(`origin: sec.test.
ttl: 300
soa: {ns: ns1.sec.test., mbox: h.sec.test., refresh: 3600, retry: 600}
transfer:
  allow: ["key:xfr-key"]
  notify: ["%s"]
records:
  "@": {NS: [ns1.sec.test.], MX: ["10 mail.sec.test."], TXT: ["v=spf1 -all"]}
  ns1: {A: [192.0.2.53]}
  mail: {A: [192.0.2.25]}
  www: {service: web}
  x: {TXT: ["version 1"]}
%s
sites:
  a: {lat: 1, lon: 1}
  b: {lat: 50, lon: 50}
services:
  web:
    site_up_ratio: 1
    return_ramp: 0s
    endpoints:
      - {site: a, address: 192.0.2.1, check: flap, target: "%s"}
      - {site: b, address: 192.0.2.2}
checks:
  flap: {type: tcp, port: %s, interval: 50ms, timeout: 40ms, rise: 1, fall: 1}
`, strings.Join(notify, `", "`), bulk(), backend, backend[strings.LastIndex(backend, ":")+1:])
}

// bulk is 2000 names of records: the zone's AXFR takes several messages,
// each TSIG-signed over the one before.
func bulk() string {
	var b strings.Builder
	for i := range 2000 {
		fmt.Fprintf(&b, "  bulk%d: {TXT: [\"record %d, making the transfer take several messages\"]}\n", i, i)
	}
	return strings.TrimSuffix(b.String(), "\n")
}

// startNSDSecondary runs NSD at addr as a secondary of primary for zones,
// transferring with the test key and taking its NOTIFY (with key "", no
// TSIG: allowed by address).
func startNSDSecondary(t *testing.T, addr, primary, key string, zones ...string) *logBuffer {
	t.Helper()
	nsd := sbinTool(t, "nsd")
	phost, pport, _ := net.SplitHostPort(primary)
	dir := t.TempDir()
	var conf strings.Builder
	conf.WriteString(nsdServerConf(addr, dir, 2))
	fmt.Fprintf(&conf, `key:
  name: %q
  algorithm: hmac-sha256
  secret: %q
`, xfrKey, xfrSecret)
	for _, z := range zones {
		if key == "" {
			key = "NOKEY"
		}
		fmt.Fprintf(&conf, "zone:\n  name: %q\n  zonefile: %q\n  request-xfr: %s@%s %s\n  allow-notify: %s %s\n",
			z, z+"zone", phost, pport, key, phost, key)
	}
	confFile := filepath.Join(dir, "nsd.conf")
	require.NoError(t, os.WriteFile(confFile, []byte(conf.String()), 0o644))
	log := new(logBuffer)
	startProcess(t, log, nsd, "-d", "-c", confFile)
	return log
}

// startKnotSecondary runs Knot at addr as a secondary of primary for
// zones; catalog, if not "", is a catalog zone Knot interprets: its
// members become zones of Knot's, secondaries of primary as well.
func startKnotSecondary(t *testing.T, addr, primary, catalog string, zones ...string) *logBuffer {
	t.Helper()
	knotd := sbinTool(t, "knotd")
	phost, pport, _ := net.SplitHostPort(primary)
	dir := t.TempDir()
	var conf strings.Builder
	conf.WriteString(knotServerConf(addr, dir))
	fmt.Fprintf(&conf, `key:
  - id: %s
    algorithm: hmac-sha256
    secret: %s
remote:
  - id: primary
    address: %s@%s
    key: %s
acl:
  - id: from-primary
    address: %s
    key: %s
    action: notify
template:
  - id: default
    storage: %q
    zonefile-sync: -1
    journal-content: changes
    master: primary
    acl: from-primary
  - id: member
    storage: %q
    zonefile-sync: -1
    journal-content: changes
    master: primary
    acl: from-primary
zone:
`, xfrKey, xfrSecret, phost, pport, xfrKey, phost, xfrKey, dir, dir)
	for _, z := range zones {
		fmt.Fprintf(&conf, "  - domain: %q\n", z)
	}
	if catalog != "" {
		fmt.Fprintf(&conf, "  - domain: %q\n    catalog-role: interpret\n    catalog-template: member\n", catalog)
	}
	confFile := filepath.Join(dir, "knot.conf")
	require.NoError(t, os.WriteFile(confFile, []byte(conf.String()), 0o644))
	log := new(logBuffer)
	startProcess(t, log, knotd, "-c", confFile)
	return log
}

// writeByRename replaces a file whole, as editors and deploy tools do: the
// watcher loads it at once (a file written in place waits to settle).
func writeByRename(t *testing.T, path, content string) {
	t.Helper()
	tmp := filepath.Join(filepath.Dir(path), "."+filepath.Base(path)+".tmp")
	require.NoError(t, os.WriteFile(tmp, []byte(content), 0o644))
	require.NoError(t, os.Rename(tmp, path))
}

// soaSerial asks addr for zone's SOA serial; 0 when it has none to give.
func soaSerial(addr, zone string) uint32 {
	c := &dns.Client{Timeout: 200 * time.Millisecond}
	r, _, err := c.Exchange(question(zone, dns.TypeSOA), addr)
	if err != nil || r.Rcode != dns.RcodeSuccess || len(r.Answer) != 1 {
		return 0
	}
	if soa, ok := r.Answer[0].(*dns.SOA); ok {
		return soa.Serial
	}
	return 0
}

// TestSecondariesNSDKnot runs geodns as the primary of NSD and Knot on
// loopback: both transfer the zone with TSIG, follow an edit through
// NOTIFY and IXFR within 2 s, are refused with a wrong key or none; a
// backend flapping moves no serial and sends no NOTIFY; Knot provisions a
// new zone from the catalog alone.
func TestSecondariesNSDKnot(t *testing.T) {
	nsdAddr, knotAddr := freeAddr(t), freeAddr(t)
	backend, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	backendAddr := backend.Addr().String()

	zonesDir, stateDir := t.TempDir(), t.TempDir()
	zoneFile := filepath.Join(zonesDir, "sec.test.yaml")
	src := secondaryZone([]string{nsdAddr, knotAddr}, backendAddr)
	require.NoError(t, os.WriteFile(zoneFile, []byte(src), 0o644))
	// The example zone too, transferable with the key only.
	ex := staticExample(t, zonesDir) // returns the content
	exFile := filepath.Join(zonesDir, "example.com.yaml")
	require.NoError(t, os.WriteFile(exFile, append([]byte(ex), fmt.Sprintf("\ntransfer: {allow: [\"key:%s\"], notify: [%q, %q]}\n",
		xfrKey, nsdAddr, knotAddr)...), 0o644))
	confFile := filepath.Join(t.TempDir(), "geodns.yaml")
	require.NoError(t, os.WriteFile(confFile, []byte(fmt.Sprintf(`tsig_keys:
  %s: {algorithm: hmac-sha256, secret: %q}
catalog:
  zone: catalog.invalid.
  allow: ["key:%s"]
  notify: [%q]
`, xfrKey, xfrSecret, xfrKey, knotAddr)), 0o644))
	primary, glog := startGeodns(t, zonesDir, "sec.test.", "--config", confFile, "--state-dir", stateDir)

	nlog := startNSDSecondary(t, nsdAddr, primary, xfrKey, "sec.test.", "example.com.")
	klog := startKnotSecondary(t, knotAddr, primary, "catalog.invalid.", "sec.test.", "example.com.")
	want := soaSerial(primary, "sec.test.")
	require.NotZero(t, want)
	exSerial := soaSerial(primary, "example.com.")
	start := time.Now()
	require.Eventually(t, func() bool {
		return soaSerial(nsdAddr, "sec.test.") == want && soaSerial(knotAddr, "sec.test.") == want &&
			soaSerial(nsdAddr, "example.com.") == exSerial && soaSerial(knotAddr, "example.com.") == exSerial
	}, 20*time.Second, 20*time.Millisecond, "first transfer")
	t.Logf("NSD and Knot serve sec.test. %d and example.com. %d %v after they started", want, exSerial, time.Since(start))
	for _, sec := range []string{nsdAddr, knotAddr} {
		r, _, err := (&dns.Client{}).Exchange(question("www.example.com.", dns.TypeA), sec)
		require.NoError(t, err)
		require.Equal(t, "www.example.com.\t30\tIN\tA\t192.0.2.10", r.Answer[0].String(), sec)
	}

	// What they got: the exported view. www is site a's address, fixed.
	for _, sec := range []string{nsdAddr, knotAddr} {
		c := &dns.Client{Timeout: time.Second}
		r, _, err := c.Exchange(question("www.sec.test.", dns.TypeA), sec)
		require.NoError(t, err)
		require.Len(t, r.Answer, 1, sec)
		require.Equal(t, "192.0.2.1", r.Answer[0].(*dns.A).A.String(), sec)
	}

	// An unsigned client and a wrong key are refused.
	m := new(dns.Msg).SetAxfr("sec.test.")
	m.SetEdns0(1232, false)
	r, _, err := (&dns.Client{Net: "tcp"}).Exchange(m, primary)
	require.NoError(t, err)
	require.Equal(t, dns.RcodeRefused, r.Rcode)
	require.Equal(t, []uint16{dns.ExtendedErrorCodeProhibited}, edeCodes(r))
	m = new(dns.Msg).SetAxfr("sec.test.")
	m.SetTsig(xfrKey, dns.HmacSHA256, 300, time.Now().Unix())
	tr := &dns.Transfer{TsigSecret: map[string]string{xfrKey: "d3Jvbmctd3Jvbmctd3Jvbmctd3Jvbmc="}}
	ch, err := tr.In(m, primary)
	require.NoError(t, err)
	wrongAt := time.Now()
	env := <-ch
	require.Error(t, env.Error, "a wrong key transferred the zone")
	t.Logf("wrong key: %v (after %v)", env.Error, time.Since(wrongAt))

	// A one-record edit: NOTIFY, and both serve the new serial within 2 s.
	edited := strings.Replace(src, "version 1", "version 2", 1)
	start = time.Now()
	writeByRename(t, zoneFile, edited)
	require.Eventually(t, func() bool { return soaSerial(primary, "sec.test.") != want }, 5*time.Second, 5*time.Millisecond)
	next := soaSerial(primary, "sec.test.")
	t.Logf("edit: geodns serves serial %d after %v", next, time.Since(start))
	var nsdAt, knotAt time.Duration
	require.Eventually(t, func() bool {
		if nsdAt == 0 && soaSerial(nsdAddr, "sec.test.") == next {
			nsdAt = time.Since(start)
		}
		if knotAt == 0 && soaSerial(knotAddr, "sec.test.") == next {
			knotAt = time.Since(start)
		}
		return nsdAt != 0 && knotAt != 0
	}, 2*time.Second, 5*time.Millisecond, "the secondaries did not follow the edit within 2 s")
	t.Logf("edit: serial %d -> %d; NSD serves it after %v, Knot after %v", want, next, nsdAt, knotAt)
	for _, sec := range []string{nsdAddr, knotAddr} {
		// Eventually: NSD reloads by starting new server processes, and
		// a query during the handover can still reach an old one (one
		// run of 3 saw the new SOA serial, then "version 1" from NSD).
		require.Eventually(t, func() bool {
			r, _, err := (&dns.Client{}).Exchange(question("x.sec.test.", dns.TypeTXT), sec)
			if err != nil || len(r.Answer) != 1 {
				return false
			}
			rr, ok := r.Answer[0].(*dns.TXT)
			return ok && rr.Txt[0] == "version 2"
		}, time.Second, 10*time.Millisecond, "%s: the edited TXT within 1 s of its serial", sec)
	}
	// IXFR carried the one-record change: Knot logs the IXFR, and the
	// same IXFR asked here holds the deleted and the added TXT only.
	require.Eventually(t, func() bool { return strings.Contains(klog.String(), "IXFR, incoming") }, 2*time.Second,
		10*time.Millisecond, "no IXFR in Knot's log")
	for _, l := range strings.Split(nlog.String()+klog.String(), "\n") {
		if strings.Contains(l, "IXFR") || strings.Contains(l, "received update") {
			t.Logf("secondary log: %s", l)
		}
	}
	ixfr := new(dns.Msg).SetIxfr("sec.test.", want, "ns1.sec.test.", "h.sec.test.")
	ixfr.SetTsig(xfrKey, dns.HmacSHA256, 300, time.Now().Unix())
	ch, err = (&dns.Transfer{TsigSecret: map[string]string{xfrKey: xfrSecret}}).In(ixfr, primary)
	require.NoError(t, err)
	var diff []string
	for env := range ch {
		require.NoError(t, env.Error)
		for _, rr := range env.RR {
			diff = append(diff, rr.String())
		}
	}
	t.Logf("IXFR from %d:\n  %s", want, strings.Join(diff, "\n  "))
	require.Len(t, diff, 6) // new SOA, old SOA, the old TXT, new SOA, the new TXT, new SOA

	// Flapping the backend: answers move between sites, the serial stays,
	// and no NOTIFY is sent (geodns logs none; the secondaries get none).
	notifiesBefore := strings.Count(nlog.String(), "notify")
	knotNotifiesBefore := strings.Count(klog.String(), "[sec.test.] notify")
	flips := 0
	up := true
	siteOf := func() string {
		r, _, err := (&dns.Client{Timeout: time.Second}).Exchange(question("www.sec.test.", dns.TypeA), primary)
		if err != nil || len(r.Answer) == 0 {
			return ""
		}
		return r.Answer[0].(*dns.A).A.String()
	}
	flapStart := time.Now()
	for flips < 100 {
		if up {
			backend.Close()
		} else {
			backend, err = net.Listen("tcp", backendAddr)
			require.NoError(t, err)
		}
		up = !up
		want := "192.0.2.1"
		if !up {
			want = "192.0.2.2"
		}
		require.Eventually(t, func() bool { return siteOf() == want }, 5*time.Second, 5*time.Millisecond)
		flips++
	}
	t.Logf("%d health flips in %v", flips, time.Since(flapStart))
	require.Equal(t, next, soaSerial(primary, "sec.test."))
	require.Equal(t, next, soaSerial(nsdAddr, "sec.test."))
	require.Equal(t, next, soaSerial(knotAddr, "sec.test."))
	require.Equal(t, notifiesBefore, strings.Count(nlog.String(), "notify"), "NSD got a NOTIFY during the flapping")
	require.Equal(t, knotNotifiesBefore, strings.Count(klog.String(), "[sec.test.] notify"), "Knot got a NOTIFY during the flapping")
	_ = glog

	// The catalog: a new zone file appears on Knot, Knot's config untouched.
	newZone := strings.Replace(strings.Replace(src, "sec.test.", "new.test.", -1), "transfer:", "transfer:", 1)
	start = time.Now()
	writeByRename(t, filepath.Join(zonesDir, "new.test.yaml"), newZone)
	require.Eventually(t, func() bool { return soaSerial(knotAddr, "new.test.") != 0 }, 10*time.Second, 10*time.Millisecond,
		"Knot did not provision new.test. from the catalog:\n%s", klog.String())
	t.Logf("new zone file -> served by Knot via the catalog after %v", time.Since(start))
}

// TestDifferentialSecondary runs the differential corpus against NSD as a
// secondary of geodns (allowed by address, no TSIG): what NSD got by AXFR
// answers as geodns does, service names included (the default export is
// the static answer the corpus expects for them).
func TestDifferentialSecondary(t *testing.T) {
	geoDir, _, all := diffZones(t)
	var names []string
	for _, z := range all {
		names = append(names, z.Origin)
		f := filepath.Join(geoDir, z.Origin+"yaml")
		src, err := os.ReadFile(f)
		require.NoError(t, err)
		require.NoError(t, os.WriteFile(f, append(src, "\ntransfer: {allow: [127.0.0.1/32]}\n"...), 0o644))
	}
	ours, _ := startGeodns(t, geoDir, "example.com.")
	theirs := freeAddr(t)
	startNSDSecondary(t, theirs, ours, "", names...)
	start := time.Now()
	for _, z := range all {
		want := soaSerial(ours, z.Origin)
		require.Eventually(t, func() bool { return soaSerial(theirs, z.Origin) == want }, 20*time.Second,
			20*time.Millisecond, "NSD did not transfer %s", z.Origin)
	}
	t.Logf("NSD transferred %d zones in %v", len(all), time.Since(start))
	differential(t, "nsd-secondary", ours, theirs, all, compareResponses)
}

// TestConfigTSIGKeyRejected: a bad TSIG key stops the server at start.
func TestConfigTSIGKeyRejected(t *testing.T) {
	conf := filepath.Join(t.TempDir(), "geodns.yaml")
	require.NoError(t, os.WriteFile(conf, []byte("tsig_keys:\n  k1: {algorithm: hmac-md5, secret: \""+xfrSecret+"\"}\n"), 0o644))
	code, _, errOut := runGeodns(t, "serve", "--config", conf, "--zones", t.TempDir(), "--listen", freeAddr(t), "--http", "off")
	require.Equal(t, 2, code, errOut)
	require.Contains(t, errOut, `algorithm \"hmac-md5\" is not hmac-sha256 or hmac-sha512`)
}

// TestSignedZoneTransferSOAVerifies: a signed zone (dnssec:) that is
// transferred serves the SOA it transfers, and its signature verifies. An
// exported record edited under a serial the operator did not bump used to
// move the exported serial to 101 and patch the SOA answers to it, while
// the RRSIG covered the zone's SOA at 100: validators rejected the SOA
// ("RRSIG failed to verify"). The patched SOA now carries the exported
// SOA's signature.
func TestSignedZoneTransferSOAVerifies(t *testing.T) {
	zonesDir, stateDir := t.TempDir(), t.TempDir()
	src := `origin: sig.test.
ttl: 300
soa: {ns: ns1.sig.test., mbox: h.sig.test., serial: 100}
dnssec: {algorithm: ECDSAP256SHA256}
transfer: {allow: ["key:xfr-key"]}
records:
  "@": {NS: [ns1.sig.test.]}
  ns1: {A: [127.0.1.53]}
  x: {TXT: ["version 1"]}
`
	zoneFile := filepath.Join(zonesDir, "sig.test.yaml")
	require.NoError(t, os.WriteFile(zoneFile, []byte(src), 0o644))
	confFile := filepath.Join(t.TempDir(), "geodns.yaml")
	require.NoError(t, os.WriteFile(confFile, []byte(fmt.Sprintf("tsig_keys:\n  %s: {algorithm: hmac-sha256, secret: %q}\n",
		xfrKey, xfrSecret)), 0o644))
	primary, _ := startGeodns(t, zonesDir, "sig.test.", "--config", confFile, "--state-dir", stateDir)

	ask := func(name string, qtype uint16) *dns.Msg {
		q := question(name, qtype)
		q.SetEdns0(1232, true)
		r, _, err := (&dns.Client{Net: "tcp", Timeout: 2 * time.Second}).Exchange(q, primary)
		require.NoError(t, err)
		return r
	}
	var keys []*dns.DNSKEY
	for _, rr := range ask("sig.test.", dns.TypeDNSKEY).Answer {
		if k, ok := rr.(*dns.DNSKEY); ok {
			keys = append(keys, k)
		}
	}
	require.NotEmpty(t, keys)
	verify := func(what string, sec []dns.RR) uint32 {
		t.Helper()
		var soa []dns.RR
		var sig *dns.RRSIG
		for _, rr := range sec {
			switch x := rr.(type) {
			case *dns.SOA:
				soa = append(soa, x)
			case *dns.RRSIG:
				if x.TypeCovered == dns.TypeSOA {
					sig = x
				}
			}
		}
		require.Len(t, soa, 1, what)
		require.NotNil(t, sig, what)
		ok := false
		for _, k := range keys {
			if k.KeyTag() == sig.KeyTag && sig.Verify(k, soa) == nil {
				ok = true
			}
		}
		require.True(t, ok, "%s: the SOA's RRSIG does not verify: %v", what, soa[0])
		return soa[0].(*dns.SOA).Serial
	}
	axfrSerial := func() uint32 {
		m := new(dns.Msg).SetAxfr("sig.test.")
		m.SetTsig(xfrKey, dns.HmacSHA256, 300, time.Now().Unix())
		ch, err := (&dns.Transfer{TsigSecret: map[string]string{xfrKey: xfrSecret}}).In(m, primary)
		require.NoError(t, err)
		var serial uint32
		for env := range ch {
			require.NoError(t, env.Error)
			if serial == 0 {
				serial = env.RR[0].(*dns.SOA).Serial
			}
		}
		return serial
	}
	require.Equal(t, uint32(100), verify("SOA", ask("sig.test.", dns.TypeSOA).Answer))
	require.Equal(t, uint32(100), axfrSerial())

	// An exported record edited, the serial left at 100.
	writeByRename(t, zoneFile, strings.Replace(src, "version 1", "version 2", 1))
	require.Eventually(t, func() bool {
		r := ask("x.sig.test.", dns.TypeTXT)
		return len(r.Answer) > 0 && r.Answer[0].(*dns.TXT).Txt[0] == "version 2"
	}, 5*time.Second, 10*time.Millisecond)
	time.Sleep(500 * time.Millisecond) // the transfer loop rebuilds the view
	served := verify("SOA after the edit", ask("sig.test.", dns.TypeSOA).Answer)
	verify("NXDOMAIN after the edit", ask("nx.sig.test.", dns.TypeA).Ns)
	require.Equal(t, uint32(101), served, "the export moved past 100, its signature with it")
	require.Equal(t, served, axfrSerial(), "the SOA served is the SOA transferred")
	// Signed with the transfer key (a secondary's SOA check): the same SOA.
	q := question("sig.test.", dns.TypeSOA)
	q.SetTsig(xfrKey, dns.HmacSHA256, 300, time.Now().Unix())
	r, _, err := (&dns.Client{TsigSecret: map[string]string{xfrKey: xfrSecret}}).Exchange(q, primary)
	require.NoError(t, err)
	require.Equal(t, served, r.Answer[0].(*dns.SOA).Serial)
}
