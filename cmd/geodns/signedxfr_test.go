package main

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"
	"github.com/stretchr/testify/require"
)

// signedXfrZone is sx.test.: signed, transferable with the test key, and
// holding a record of every kind a signed transfer has to get right: the
// apex's NS, MX and TXT, an address, a TXT the test edits, a wildcard, a
// CNAME into a service name (exported as its first site's address), a
// secure delegation (sub: DS and glue) and an insecure one (insec: glue,
// no DS). No endpoint has a check: nothing is probed. serial is the
// zone's own SOA serial; extra, more records (lines of records:).
func signedXfrZone(notify []string, serial uint32, txt, subDS, extra string) string {
	return fmt.Sprintf(`origin: sx.test.
ttl: 300
soa: {ns: ns1.sx.test., mbox: h.sx.test., serial: %d, refresh: 3600, retry: 600, minttl: 60}
dnssec: {algorithm: ECDSAP256SHA256}
transfer:
  allow: ["key:xfr-key"]
  notify: ["%s"]
records:
  "@": {NS: [ns1.sx.test.], MX: ["10 mail.sx.test."], TXT: ["v=spf1 -all"]}
  ns1: {A: [192.0.2.53]}
  mail: {A: [192.0.2.25]}
  x: {TXT: [%q]}
  "*.wild": {A: [192.0.2.80], TXT: [wild]}
  alias: {CNAME: www}
  www: {service: web}
  sub: {NS: [ns1.sub.sx.test.], DS: [%q]}
  ns1.sub: {A: [192.0.2.54]}
  insec: {NS: [ns1.insec.sx.test.]}
  ns1.insec: {A: [192.0.2.55]}
%ssites:
  a: {lat: 1, lon: 1}
  b: {lat: 50, lon: 50}
services:
  web:
    endpoints:
      - {site: a, address: 192.0.2.1}
      - {site: b, address: 192.0.2.2}
`, serial, strings.Join(notify, `", "`), txt, subDS, extra)
}

// TestSignedZoneSecondaries: a signed zone transferred to NSD and Knot
// reaches them signed (DNSKEY, an NSEC chain over every name, an RRSIG
// over every authoritative RRset; delegation NS and glue unsigned, DS
// signed): kzonecheck finds the AXFR sound, every signature verifies, both
// secondaries serve exactly the RRsets and signatures transferred, and
// delv, trusting the zone's own key only, fully validates answers of
// every kind from each secondary; again after each edit of the zone (a
// TXT changed, a name added and removed; the serial left alone, and
// bumped), which the secondaries follow by NOTIFY and IXFR.
func TestSignedZoneSecondaries(t *testing.T) {
	const zone = "sx.test."
	kzonecheck := sbinTool(t, "kzonecheck")
	delvBin := sbinTool(t, "delv")
	nsdAddr, knotAddr := freeAddr(t), freeAddr(t)
	secondaries := []struct{ name, addr string }{{"NSD", nsdAddr}, {"Knot", knotAddr}}

	// sub's DS: of a key made up here, never served by anyone.
	subKey := &dns.DNSKEY{Hdr: dns.RR_Header{Name: "sub." + zone, Rrtype: dns.TypeDNSKEY, Class: dns.ClassINET, Ttl: 300},
		Flags: 257, Protocol: 3, Algorithm: dns.ECDSAP256SHA256}
	_, err := subKey.Generate(256)
	require.NoError(t, err)
	ds := subKey.ToDS(dns.SHA256)
	subDS := fmt.Sprintf("%d %d %d %s", ds.KeyTag, ds.Algorithm, ds.DigestType, strings.ToUpper(ds.Digest))

	zonesDir, stateDir := t.TempDir(), t.TempDir()
	zoneFile := filepath.Join(zonesDir, "sx.test.yaml")
	notify := []string{nsdAddr, knotAddr}
	require.NoError(t, os.WriteFile(zoneFile, []byte(signedXfrZone(notify, 100, "version 1", subDS, "")), 0o644))
	confFile := filepath.Join(t.TempDir(), "geodns.yaml")
	require.NoError(t, os.WriteFile(confFile, []byte(fmt.Sprintf("tsig_keys:\n  %s: {algorithm: hmac-sha256, secret: %q}\n",
		xfrKey, xfrSecret)), 0o644))
	primary, _ := startGeodns(t, zonesDir, zone, "--config", confFile, "--state-dir", stateDir)

	// The trust anchor: the zone's KSK/CSK as geodns serves it, the one
	// `geodns dnssec ds` gives the registrar the DS of.
	key := ksk(t, primary, zone)
	code, out, errOut := runGeodns(t, "dnssec", "ds", "--zone", "sx.test", "--key-dir", filepath.Join(stateDir, "dnssec"))
	require.Equal(t, 0, code, errOut)
	t.Logf("$ geodns dnssec ds --zone sx.test\n%s", out)
	want := key.ToDS(dns.SHA256)
	require.Contains(t, strings.ToUpper(out), fmt.Sprintf("%d %d %d %s", want.KeyTag, want.Algorithm, want.DigestType,
		strings.ToUpper(want.Digest)), "the served KSK is the one whose DS the registrar gets")
	anchors := filepath.Join(t.TempDir(), "anchors.conf")
	require.NoError(t, os.WriteFile(anchors, []byte(fmt.Sprintf("trust-anchors {\n  %q static-key %d %d %d %q;\n};\n",
		zone, key.Flags, key.Protocol, key.Algorithm, key.PublicKey)), 0o644))

	start := time.Now()
	nlog := startNSDSecondary(t, nsdAddr, primary, xfrKey, zone)
	klog := startKnotSecondary(t, knotAddr, primary, "", zone)
	serial := soaSerial(primary, zone)
	require.NotZero(t, serial)
	require.Eventually(t, func() bool {
		return soaSerial(nsdAddr, zone) == serial && soaSerial(knotAddr, zone) == serial
	}, 20*time.Second, 20*time.Millisecond, "the secondaries did not transfer %s serial %d:\nNSD:\n%s\nKnot:\n%s",
		zone, serial, nlog.String(), klog.String())
	t.Logf("NSD and Knot serve %s serial %d %v after they started", zone, serial, time.Since(start))

	// The AXFR, checked by kzonecheck and here.
	checkTransfer := func(what string) []dns.RR {
		t.Helper()
		rrs := axfrAll(t, primary, zone)
		file := filepath.Join(t.TempDir(), "sx.test.zone")
		var b strings.Builder
		for _, rr := range rrs[:len(rrs)-1] { // the closing SOA repeats the first
			b.WriteString(rr.String() + "\n")
		}
		require.NoError(t, os.WriteFile(file, []byte(b.String()), 0o644))
		kz, err := exec.Command(kzonecheck, "-v", "-d", "on", "-o", zone, file).CombinedOutput()
		t.Logf("%s: $ kzonecheck -v -d on -o %s FILE\n%s", what, zone, kz)
		require.NoError(t, err, "%s: kzonecheck finds the AXFR unsound: %s\nthe AXFR:\n%s", what, kz, b.String())
		t.Logf("%s: kzonecheck -d on finds the AXFR (%d records) sound", what, len(rrs)-1)
		checkSignedTransfer(t, what, zone, rrs)
		for _, sec := range secondaries {
			servesTransfer(t, what, sec.name, sec.addr, zone, rrs)
		}
		return rrs
	}
	// geodns's SOA answer (DO): the transferred SOA and its signature
	// (the same, signatures being deterministic, unless the signing window
	// moved in between).
	checkSOA := func(what string, axfr []dns.RR) {
		t.Helper()
		q := question(zone, dns.TypeSOA)
		q.SetEdns0(1232, true)
		r, _, err := (&dns.Client{Net: "tcp", Timeout: 2 * time.Second}).Exchange(q, primary)
		require.NoError(t, err)
		var soa []dns.RR
		var sig *dns.RRSIG
		for _, rr := range r.Answer {
			switch x := rr.(type) {
			case *dns.SOA:
				soa = append(soa, x)
			case *dns.RRSIG:
				if x.TypeCovered == dns.TypeSOA {
					sig = x
				}
			}
		}
		require.Len(t, soa, 1, "%s: %v", what, r)
		require.NotNil(t, sig, "%s: the SOA answer has no RRSIG: %v", what, r)
		require.NoError(t, verifyWithAny(sig, dnskeys(t, primary, zone), soa), "%s: the SOA's RRSIG does not verify: %v", what, r)
		require.True(t, sig.ValidityPeriod(time.Now()), "%s: %v", what, sig)
		require.Equal(t, axfr[0].String(), soa[0].String(), "%s: the SOA served is the SOA transferred", what)
		for _, rr := range axfr {
			if x, ok := rr.(*dns.RRSIG); ok && x.TypeCovered == dns.TypeSOA && x.Inception == sig.Inception {
				require.Equal(t, x.String(), sig.String(), "%s: the SOA's RRSIG served is the one transferred", what)
			}
		}
	}
	// delv, trusting sx.test.'s key only, asking a secondary.
	delv := func(sec, name, qtype string) string {
		t.Helper()
		host, port, _ := net.SplitHostPort(sec)
		out := logTool(t, delvBin, "@"+host, "-p", port, "-a", anchors, "+root="+zone, name, qtype)
		require.Regexp(t, fullyValidated, out, "%s %s from %s", name, qtype, sec)
		return out
	}
	// A referral to insec from a secondary: NS and the NSEC proving no DS, signed.
	insecureReferral := func(sec string) {
		t.Helper()
		q := question("www.insec."+zone, dns.TypeA)
		q.SetEdns0(1232, true)
		r, _, err := (&dns.Client{Net: "tcp", Timeout: 2 * time.Second}).Exchange(q, sec)
		require.NoError(t, err)
		require.Empty(t, r.Answer, "a referral: %v", r)
		require.False(t, r.Authoritative, "a referral: %v", r)
		nsec := nsecIn(r.Ns, "insec."+zone)
		require.NotNil(t, nsec, "the referral to insec proves it has no DS: %v", r)
		require.Contains(t, nsec.TypeBitMap, dns.TypeNS, "%v", nsec)
		require.NotContains(t, nsec.TypeBitMap, dns.TypeDS, "%v", nsec)
		var sig *dns.RRSIG
		for _, rr := range r.Ns {
			if s, ok := rr.(*dns.RRSIG); ok && s.TypeCovered == dns.TypeNSEC && strings.EqualFold(s.Hdr.Name, "insec."+zone) {
				sig = s
			}
			if s, ok := rr.(*dns.RRSIG); ok && s.TypeCovered == dns.TypeNS {
				t.Fatalf("the referral's NS is signed: %v", r)
			}
		}
		require.NotNil(t, sig, "the NSEC is signed: %v", r)
		require.NoError(t, verifyWithAny(sig, dnskeys(t, primary, zone), []dns.RR{nsec}), "%v", r)
		t.Logf("%s: the referral to insec.%s carries its signed NSEC (%v)", sec, zone, nsec)
	}

	axfr := checkTransfer("first transfer")
	require.Equal(t, serial, axfr[0].(*dns.SOA).Serial)
	checkSOA("first transfer", axfr)
	delvStart := time.Now()
	for _, sec := range secondaries {
		require.Contains(t, delv(sec.addr, "ns1.sx.test", "A"), "192.0.2.53")
		require.Contains(t, delv(sec.addr, "www.sx.test", "A"), "192.0.2.1", "the service's export: site a")
		require.Contains(t, delv(sec.addr, "anything.wild.sx.test", "A"), "192.0.2.80")
		out := delv(sec.addr, "alias.sx.test", "A")
		require.Contains(t, out, "CNAME")
		require.Contains(t, out, "192.0.2.1")
		require.Contains(t, delv(sec.addr, "x.sx.test", "TXT"), "version 1")
		require.Contains(t, delv(sec.addr, "sx.test", "MX"), "mail.sx.test.")
		require.Contains(t, delv(sec.addr, "ns1.sx.test", "TXT"), "negative response, fully validated", "NODATA")
		require.Contains(t, delv(sec.addr, "nope.sx.test", "A"), "negative response, fully validated", "NXDOMAIN")
		require.Contains(t, delv(sec.addr, "sub.sx.test", "DS"), fmt.Sprintf("%d 13 2 ", ds.KeyTag))
		require.Contains(t, delv(sec.addr, "insec.sx.test", "DS"), "negative response, fully validated", "no DS at insec")
		insecureReferral(sec.addr)
	}
	t.Logf("delv validated every answer from both secondaries in %v", time.Since(delvStart))

	// Edits: the TXT changed with the serial left at 100 (geodns moves
	// the exported serial itself), then with the serial bumped past it,
	// then again left alone; then a name added (the NSEC chain changes:
	// the IXFR carries the new NSEC, the neighbour's and their
	// signatures), the serial left alone, and removed, the serial bumped.
	const added = "  new.wild: {TXT: [added]}\n" // between *.wild and www
	for i, edit := range []struct {
		serial uint32
		txt    string
		extra  string
	}{{100, "version 2", ""}, {200, "version 3", ""}, {200, "version 4", ""}, {200, "version 4", added}, {300, "version 4", ""}} {
		what := fmt.Sprintf("edit %d (%q, zone serial %d, %q)", i+1, edit.txt, edit.serial, strings.TrimSpace(edit.extra))
		start := time.Now()
		writeByRename(t, zoneFile, signedXfrZone(notify, edit.serial, edit.txt, subDS, edit.extra))
		require.Eventually(t, func() bool {
			s := soaSerial(primary, zone)
			return s != 0 && s != serial
		}, 5*time.Second, 5*time.Millisecond, "%s: geodns's serial stays %d", what, serial)
		next := soaSerial(primary, zone)
		require.Equal(t, 1, serialCompare(next, serial), "%s: serial %d -> %d goes forward", what, serial, next)
		if serialCompare(edit.serial, serial) > 0 {
			require.Equal(t, edit.serial, next, "%s: the zone's own serial, bumped", what)
		}
		var nsdAt, knotAt time.Duration
		require.Eventually(t, func() bool {
			if nsdAt == 0 && soaSerial(nsdAddr, zone) == next {
				nsdAt = time.Since(start)
			}
			if knotAt == 0 && soaSerial(knotAddr, zone) == next {
				knotAt = time.Since(start)
			}
			return nsdAt != 0 && knotAt != 0
		}, 5*time.Second, 5*time.Millisecond, "%s: the secondaries did not follow serial %d:\nNSD:\n%s\nKnot:\n%s",
			what, next, nlog.String(), klog.String())
		t.Logf("%s: serial %d -> %d; NSD serves it after %v, Knot after %v", what, serial, next, nsdAt, knotAt)
		// By IXFR, applied as sent: neither secondary gave up on it.
		require.Eventually(t, func() bool {
			return strings.Count(klog.String(), "IXFR, incoming, remote "+strings.Replace(primary, ":", "@", 1)+", finished") >= i+1 &&
				strings.Contains(klog.String(), fmt.Sprintf("-> %d", next))
		}, 2*time.Second, 10*time.Millisecond, "%s: no IXFR in Knot's log:\n%s", what, klog.String())
		for _, l := range strings.Split(klog.String(), "\n") {
			require.False(t, strings.Contains(l, "fallback to AXFR") || strings.Contains(l, "IXFR") && strings.Contains(l, "failed"),
				"%s: Knot: %s", what, l)
		}
		for _, l := range strings.Split(nlog.String(), "\n") {
			require.NotContains(t, l, "error", "%s: NSD: %s", what, l)
		}
		serial = next
		axfr := checkTransfer(what)
		require.Equal(t, serial, axfr[0].(*dns.SOA).Serial, "%s: the AXFR's serial is the SOA's", what)
		checkSOA(what, axfr)
		for _, sec := range secondaries {
			out := delv(sec.addr, "x.sx.test", "TXT")
			require.Contains(t, out, edit.txt, "%s from %s", what, sec.name)
			delv(sec.addr, "nope.sx.test", "A")
			if edit.extra != "" {
				require.Contains(t, delv(sec.addr, "new.wild.sx.test", "TXT"), "added", "%s from %s", what, sec.name)
			} else {
				out := delv(sec.addr, "new.wild.sx.test", "TXT")
				require.Contains(t, out, `"wild"`, "%s from %s: the wildcard again", what, sec.name)
			}
		}
	}
	for _, l := range strings.Split(nlog.String()+klog.String(), "\n") {
		if strings.Contains(l, "IXFR") || strings.Contains(l, "AXFR") || strings.Contains(l, "received update") {
			t.Logf("secondary log: %s", l)
		}
	}
}

// axfrAll transfers zone from primary with the test key: every record,
// the closing SOA included.
func axfrAll(t *testing.T, primary, zone string) []dns.RR {
	t.Helper()
	m := new(dns.Msg).SetAxfr(zone)
	m.SetTsig(xfrKey, dns.HmacSHA256, 300, time.Now().Unix())
	ch, err := (&dns.Transfer{TsigSecret: map[string]string{xfrKey: xfrSecret}}).In(m, primary)
	require.NoError(t, err)
	var rrs []dns.RR
	for env := range ch {
		require.NoError(t, env.Error)
		rrs = append(rrs, env.RR...)
	}
	require.GreaterOrEqual(t, len(rrs), 2)
	require.Equal(t, dns.TypeSOA, rrs[0].Header().Rrtype)
	require.Equal(t, dns.TypeSOA, rrs[len(rrs)-1].Header().Rrtype)
	return rrs
}

// checkSignedTransfer checks a signed zone's AXFR (the closing SOA
// included): every RRSIG verifies with a DNSKEY of the apex and covers an
// RRset of the transfer; every authoritative RRset is signed, NS at a
// delegation and glue are not; an NSEC at every authoritative name, in one
// chain in canonical order, listing the name's types.
func checkSignedTransfer(t *testing.T, what, zone string, all []dns.RR) {
	t.Helper()
	rrs := all[:len(all)-1]
	type key struct {
		name  string
		rtype uint16
	}
	sets := map[key][]dns.RR{}
	sigs := map[key][]*dns.RRSIG{}
	types := map[string][]uint16{} // name -> its types, NSEC and RRSIG included
	var keys []*dns.DNSKEY
	delegations := map[string]bool{}
	for _, rr := range rrs {
		h := rr.Header()
		name := strings.ToLower(h.Name)
		if !slices.Contains(types[name], h.Rrtype) {
			types[name] = append(types[name], h.Rrtype)
		}
		if sig, ok := rr.(*dns.RRSIG); ok {
			sigs[key{name, sig.TypeCovered}] = append(sigs[key{name, sig.TypeCovered}], sig)
			continue
		}
		sets[key{name, h.Rrtype}] = append(sets[key{name, h.Rrtype}], rr)
		if k, ok := rr.(*dns.DNSKEY); ok && name == zone {
			keys = append(keys, k)
		}
		if h.Rrtype == dns.TypeNS && name != zone {
			delegations[name] = true
		}
	}
	require.NotEmpty(t, keys, "%s: no DNSKEY at the apex in the AXFR", what)
	require.True(t, slices.ContainsFunc(keys, func(k *dns.DNSKEY) bool { return k.Flags&dns.SEP != 0 }),
		"%s: no KSK/CSK (flags 257) in the AXFR", what)
	below := func(name string) bool { // under a zone cut: glue, not authoritative
		for d := range delegations {
			if name != d && dns.IsSubDomain(d, name) {
				return true
			}
		}
		return false
	}

	now := time.Now()
	signed := 0
	for k, set := range sets {
		ss := sigs[k]
		switch {
		case below(k.name):
			require.Empty(t, ss, "%s: glue %s %s is signed", what, k.name, dns.TypeToString[k.rtype])
			continue
		case delegations[k.name] && k.rtype == dns.TypeNS:
			require.Empty(t, ss, "%s: the delegation's NS at %s is signed", what, k.name)
			continue
		case delegations[k.name] && k.rtype != dns.TypeDS && k.rtype != dns.TypeNSEC:
			// Glue at the delegation point itself: not authoritative.
			require.Empty(t, ss, "%s: %s %s at a delegation is signed", what, k.name, dns.TypeToString[k.rtype])
			continue
		}
		require.NotEmpty(t, ss, "%s: %s %s has no RRSIG", what, k.name, dns.TypeToString[k.rtype])
		for _, sig := range ss {
			require.True(t, strings.EqualFold(sig.SignerName, zone), "%s: %v", what, sig)
			require.True(t, sig.ValidityPeriod(now), "%s: not valid now: %v", what, sig)
			require.NoError(t, verifyWithAny(sig, keys, set), "%s: %s %s: %v", what, k.name, dns.TypeToString[k.rtype], sig)
			signed++
		}
	}
	for k, ss := range sigs {
		require.NotEmpty(t, sets[k], "%s: an RRSIG over nothing: %v", what, ss[0])
	}

	// The NSEC chain: exactly the authoritative names (delegations
	// included, glue and empty non-terminals not), in canonical order.
	var names []string
	for name := range types {
		if !below(name) {
			names = append(names, name)
		}
	}
	slices.SortFunc(names, canonicalCompare)
	require.Equal(t, zone, names[0], "%s", what)
	for i, name := range names {
		set := sets[key{name, dns.TypeNSEC}]
		require.Len(t, set, 1, "%s: %s has no NSEC (or more than one)", what, name)
		nsec := set[0].(*dns.NSEC)
		next := names[(i+1)%len(names)]
		require.True(t, strings.EqualFold(next, nsec.NextDomain), "%s: %v: the next name is %s", what, nsec, next)
		wantTypes := slices.Clone(types[name])
		slices.Sort(wantTypes)
		gotTypes := slices.Clone(nsec.TypeBitMap)
		slices.Sort(gotTypes)
		require.Equal(t, typeNames(wantTypes), typeNames(gotTypes), "%s: %v lists the name's types", what, nsec)
	}
	for k := range sets {
		if k.rtype == dns.TypeNSEC {
			require.True(t, slices.Contains(names, k.name), "%s: an NSEC at %s, below a zone cut", what, k.name)
		}
	}
	t.Logf("%s: %d RRSIGs verify with the DNSKEY RRset (tags %v); NSEC chain over %d names: %s", what, signed,
		tagsOf(keys), len(names), strings.Join(names, " "))
}

// dnskeys returns the DNSKEY RRset of zone served at addr.
func dnskeys(t *testing.T, addr, zone string) []*dns.DNSKEY {
	t.Helper()
	q := question(zone, dns.TypeDNSKEY)
	q.SetEdns0(1232, true)
	r, _, err := (&dns.Client{Net: "tcp", Timeout: 2 * time.Second}).Exchange(q, addr)
	require.NoError(t, err)
	var keys []*dns.DNSKEY
	for _, rr := range r.Answer {
		if k, ok := rr.(*dns.DNSKEY); ok {
			keys = append(keys, k)
		}
	}
	require.NotEmpty(t, keys, "no DNSKEY for %s at %s: %v", zone, addr, r)
	return keys
}

// servesTransfer: the secondary at addr answers each authoritative RRset
// of the transfer (not glue, nor NS and NSEC at a delegation: a referral
// has them, checked by the test) with exactly the
// records and RRSIGs transferred: an IXFR applied left no old record or
// signature behind and missed none.
func servesTransfer(t *testing.T, what, name, addr, zone string, all []dns.RR) {
	t.Helper()
	type key struct {
		name  string
		rtype uint16
	}
	want := map[key][]string{}
	cuts := map[string]bool{}
	for _, rr := range all[:len(all)-1] {
		if rr.Header().Rrtype == dns.TypeNS && !strings.EqualFold(rr.Header().Name, zone) {
			cuts[strings.ToLower(rr.Header().Name)] = true
		}
	}
	for _, rr := range all[:len(all)-1] {
		h := rr.Header()
		owner := strings.ToLower(h.Name)
		k := key{owner, h.Rrtype}
		if sig, ok := rr.(*dns.RRSIG); ok {
			k.rtype = sig.TypeCovered
		}
		below := false
		for c := range cuts {
			below = below || (owner != c && dns.IsSubDomain(c, owner))
		}
		if below || cuts[owner] && k.rtype != dns.TypeDS {
			continue // glue, or NS at a cut and its NSEC: answered by a referral
		}
		want[k] = append(want[k], rr.String())
	}
	c := &dns.Client{Net: "tcp", Timeout: 2 * time.Second}
	for k, rrs := range want {
		q := question(k.name, k.rtype)
		q.SetEdns0(1232, true)
		r, _, err := c.Exchange(q, addr)
		require.NoError(t, err)
		var got []string
		for _, rr := range r.Answer {
			got = append(got, rr.String())
		}
		slices.Sort(got)
		slices.Sort(rrs)
		require.Equal(t, rrs, got, "%s: %s serves %s %s otherwise than transferred", what, name, k.name, dns.TypeToString[k.rtype])
	}
	t.Logf("%s: %s serves the %d RRsets transferred, signatures and all", what, name, len(want))
}

// verifyWithAny: sig verifies over set with one of keys (its key tag's).
func verifyWithAny(sig *dns.RRSIG, keys []*dns.DNSKEY, set []dns.RR) error {
	err := fmt.Errorf("no DNSKEY with tag %d", sig.KeyTag)
	for _, k := range keys {
		if k.KeyTag() != sig.KeyTag || k.Algorithm != sig.Algorithm {
			continue
		}
		if err = sig.Verify(k, set); err == nil {
			return nil
		}
	}
	return err
}

func tagsOf(keys []*dns.DNSKEY) []uint16 {
	var tags []uint16
	for _, k := range keys {
		tags = append(tags, k.KeyTag())
	}
	return tags
}

func typeNames(ts []uint16) []string {
	var out []string
	for _, t := range ts {
		out = append(out, dns.TypeToString[t])
	}
	return out
}

// canonicalCompare orders names as DNSSEC does (RFC 4034 6.1): label by
// label from the root, lower-cased octets. The names here have no escapes.
func canonicalCompare(a, b string) int {
	la, lb := dns.SplitDomainName(strings.ToLower(a)), dns.SplitDomainName(strings.ToLower(b))
	for i := 1; i <= len(la) && i <= len(lb); i++ {
		if c := strings.Compare(la[len(la)-i], lb[len(lb)-i]); c != 0 {
			return c
		}
	}
	return len(la) - len(lb)
}

// serialCompare compares SOA serials by RFC 1982: 1 if a is after b.
func serialCompare(a, b uint32) int {
	switch {
	case a == b:
		return 0
	case int32(a-b) > 0:
		return 1
	default:
		return -1
	}
}
