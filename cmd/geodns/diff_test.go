package main

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/geodns/geodns/resolver"
	"github.com/geodns/geodns/zones"
	"github.com/miekg/dns"
	"github.com/stretchr/testify/require"
)

// TestDifferentialNSD serves the same zone data from geodns and from NSD and
// requires identical rcode, AA/TC flags, answer and authority sections (and
// glue in referrals) for a generated corpus of queries.
//
// The example zone is YAML, exported to a master file for NSD. The test
// zones are master files, converted for geodns with `geodns import`, so the
// corpus also proves the import round trip.
//
// Legitimate differences, each checked rather than ignored:
//   - ANY: NSD answers one RRset over both transports; geodns answers one
//     over UDP (RFC 8482) and all over TCP. Every RRset geodns returns must
//     equal NSD's answer for that type, and NSD's choice must be among them.
//   - Positive answers: NSD adds the zone's NS set to the authority section;
//     geodns sends minimal responses (as BIND's default and Knot do). The
//     authority NSD adds must be exactly the apex NS set.
//   - CNAME loops: NSD goes round the loop to its chain limit; geodns stops
//     at the first repeated name. The distinct records must agree.
//   - Service names: NSD serves the static answer a client without a known
//     location gets (the first site's endpoints); geodns computes it.
//   - Additional data outside referrals is optional and not compared.
//   - Truncated responses: both must set TC; their contents are not compared.
func TestDifferentialNSD(t *testing.T) {
	geoDir, masters, all := diffZones(t)
	ours, _ := startGeodns(t, geoDir, "example.com.")
	theirs := startNSD(t, masters)
	differential(t, "nsd", ours, theirs, all, compareResponses)
}

// diffZones writes the zones of the differential corpus for both sides: the
// YAML zones geodns serves (in geoDir) and the same data as master files
// (zone name -> file) for a reference server.
func diffZones(t *testing.T) (geoDir string, masters map[string]string, all []*zones.Zone) {
	t.Helper()
	geoDir, nsdDir := t.TempDir(), t.TempDir()
	masters = map[string]string{}

	// The example zone, YAML -> master file.
	staticExample(t, geoDir)
	ex, err := zones.LoadFile(filepath.Join(geoDir, "example.com.yaml"), nil)
	require.NoError(t, err)
	masters["example.com."] = writeMaster(t, nsdDir, ex)
	all = append(all, ex)

	// The test zones, master file -> YAML with `geodns import`.
	files, err := filepath.Glob("testdata/diff/*.zone")
	require.NoError(t, err)
	require.GreaterOrEqual(t, len(files), 3)
	for _, m := range files {
		origin := strings.TrimSuffix(filepath.Base(m), "zone")
		code, out, errOut := runGeodns(t, "import", "--origin", origin, m)
		require.Equal(t, 0, code, errOut)
		yamlFile := filepath.Join(geoDir, origin+"yaml")
		require.NoError(t, os.WriteFile(yamlFile, []byte(out), 0o644))
		z, err := zones.LoadFile(yamlFile, nil)
		require.NoError(t, err, "imported YAML of %s does not load:\n%s", m, out)
		masters[origin] = m
		all = append(all, z)
	}
	return geoDir, masters, all
}

// differential asks geodns (ours) and a reference server (theirs, named ref)
// the generated corpus of questions about the zones all, and fails on every
// response that compare finds different. compare's last argument puts
// further questions to the reference.
func differential(t *testing.T, ref, ours, theirs string, all []*zones.Zone,
	compare func(q query, a, b *dns.Msg, ask func(string, uint16) *dns.Msg) string) {
	t.Helper()
	seed := uint64(time.Now().UnixNano())
	t.Logf("corpus seed %d", seed)
	rng := rand.New(rand.NewPCG(seed, 1))
	corpus := buildCorpus(all, rng)
	require.GreaterOrEqual(t, len(corpus), 2000)

	var diffs []string
	counts := map[string]int{}
	withDO := 0 // DO=1 on unsigned zones must change nothing (issue 21)
	for _, q := range corpus {
		if q.do {
			withDO++
		}
		a, err := q.exchange(ours)
		require.NoError(t, err, "geodns: %s", q)
		b, err := q.exchange(theirs)
		require.NoError(t, err, "%s: %s", ref, q)
		counts[resolver.RcodeName(b.Rcode)]++
		if b.Truncated {
			counts["truncated"]++
		}
		if !b.Authoritative && b.Rcode == dns.RcodeSuccess && len(b.Ns) > 0 {
			counts["referral"]++
		}
		if d := compare(q, a, b, nsdAsk(theirs)); d != "" {
			t.Logf("differs: %s: %s", q, strings.SplitN(d, "\n", 2)[0])
			diffs = append(diffs, fmt.Sprintf("%s\n%s\n--- geodns:\n%s\n--- %s:\n%s", q, d, a, ref, b))
		}
	}
	t.Logf("%d queries (%d with DO=1), %d differences; %s answered %v", len(corpus), withDO, len(diffs), ref, counts)
	for i, d := range diffs {
		if i == 10 {
			t.Errorf("... and %d more", len(diffs)-10)
			break
		}
		t.Error(d)
	}
}

type query struct {
	name  string
	qtype uint16
	tcp   bool
	edns  int // 0 = no OPT; else the UDP size advertised
	ver   uint8
	do    bool
}

func (q query) String() string {
	proto := "udp"
	if q.tcp {
		proto = "tcp"
	}
	return fmt.Sprintf("%s %s %s edns=%d v%d do=%v", q.name, dns.TypeToString[q.qtype], proto, q.edns, q.ver, q.do)
}

func (q query) exchange(addr string) (*dns.Msg, error) {
	m := question(q.name, q.qtype)
	if q.edns > 0 {
		m.SetEdns0(uint16(q.edns), q.do)
		m.IsEdns0().SetVersion(q.ver)
	}
	c := &dns.Client{Timeout: 2 * time.Second, UDPSize: 65535}
	if q.tcp {
		c.Net = "tcp"
	}
	var err error
	for range 3 { // UDP on a busy machine: retry a lost datagram
		var r *dns.Msg
		r, _, err = c.Exchange(m, addr)
		if err == nil {
			return r, nil
		}
	}
	return nil, err
}

// askAll asks q of geodns (ours), NSD and Knot, in that order.
func (q query) askAll(t *testing.T, ours, nsd, knot string) (a, b, c *dns.Msg) {
	t.Helper()
	var err error
	a, err = q.exchange(ours)
	require.NoError(t, err, "geodns: %s", q)
	b, err = q.exchange(nsd)
	require.NoError(t, err, "nsd: %s", q)
	c, err = q.exchange(knot)
	require.NoError(t, err, "knot: %s", q)
	return a, b, c
}

var corpusTypes = []uint16{
	dns.TypeA, dns.TypeAAAA, dns.TypeNS, dns.TypeSOA, dns.TypeMX, dns.TypeTXT, dns.TypeCNAME,
	dns.TypeSRV, dns.TypeCAA, dns.TypeDS, dns.TypePTR, dns.TypeNAPTR, dns.TypeHTTPS, dns.TypeSVCB,
	dns.TypeTLSA, dns.TypeSSHFP, 65534, dns.TypeDNSKEY, dns.TypeANY,
}

// buildCorpus asks every type at every name of every zone, at names derived
// from them (below wildcards and delegations, non-existent siblings and
// children, empty non-terminals) and outside every zone, with random case,
// transports and EDNS settings.
func buildCorpus(zs []*zones.Zone, rng *rand.Rand) []query {
	names := map[string]bool{"example.org.": true, "test.": true, "zz.": true, "com.": true}
	for _, z := range zs {
		z.Records(func(rr dns.RR) {
			n := rr.Header().Name
			for p := n; dns.IsSubDomain(z.Origin, p); {
				names[p] = true
				off, end := dns.NextLabel(p, 0)
				if end {
					break
				}
				p = p[off:]
			}
			if strings.HasPrefix(n, "*.") {
				names["x"+n[1:]] = true
				names["a.b"+n[1:]] = true
			}
			names["nx-"+n] = true
			names["zz."+n] = true
		})
		for n := range z.ServiceNames() {
			names[n] = true
		}
	}
	sorted := make([]string, 0, len(names))
	for n := range names {
		sorted = append(sorted, n)
	}
	sort.Strings(sorted)
	var out []query
	for _, n := range sorted {
		for _, t := range corpusTypes {
			q := query{name: randomCase(n, rng), qtype: t}
			switch r := rng.IntN(10); {
			case r < 2:
				q.tcp = true
			}
			switch r := rng.IntN(10); {
			case r < 3: // no EDNS: 512 bytes
			case r < 4:
				q.edns = 512
			case r < 8:
				q.edns = 1232
			default:
				q.edns = 4096
			}
			if q.edns > 0 {
				q.do = rng.IntN(4) == 0
				if rng.IntN(40) == 0 {
					q.ver = 1
				}
			}
			out = append(out, q)
		}
	}
	// Every big answer at every size, over both transports.
	for _, n := range []string{"medium.deleg.test.", "big.deleg.test.", "example.com."} {
		for _, size := range []int{0, 512, 1232, 4096} {
			for _, tcp := range []bool{false, true} {
				for _, t := range []uint16{dns.TypeTXT, dns.TypeANY} {
					out = append(out, query{name: n, qtype: t, tcp: tcp, edns: size})
				}
			}
		}
	}
	return out
}

func randomCase(s string, rng *rand.Rand) string {
	b := []byte(s)
	for i, c := range b {
		if c >= 'a' && c <= 'z' && rng.IntN(2) == 0 {
			b[i] = c - 'a' + 'A'
		}
	}
	return string(b)
}

// nsdAsk returns a function that asks NSD one question over TCP.
func nsdAsk(addr string) func(name string, qtype uint16) *dns.Msg {
	return func(name string, qtype uint16) *dns.Msg {
		r, err := query{name: name, qtype: qtype, tcp: true}.exchange(addr)
		if err != nil {
			return new(dns.Msg)
		}
		return r
	}
}

// compareResponses returns what differs between geodns's (a) and NSD's (b)
// response, or "". ask puts further questions to NSD.
func compareResponses(q query, a, b *dns.Msg, ask func(string, uint16) *dns.Msg) string {
	var d []string
	if a.Rcode != b.Rcode {
		d = append(d, fmt.Sprintf("rcode %s != %s", dns.RcodeToString[a.Rcode], dns.RcodeToString[b.Rcode]))
	}
	if a.Authoritative != b.Authoritative {
		d = append(d, fmt.Sprintf("AA %v != %v", a.Authoritative, b.Authoritative))
	}
	if a.Truncated != b.Truncated {
		d = append(d, fmt.Sprintf("TC %v != %v", a.Truncated, b.Truncated))
	}
	// The client already checked that the IDs match the queries'.
	if len(a.Question) != 1 || !sameWireName(a.Question[0].Name, q.name) || a.Question[0].Qtype != q.qtype {
		d = append(d, "question not echoed as asked")
	}
	if (a.IsEdns0() == nil) != (b.IsEdns0() == nil) {
		d = append(d, "OPT presence differs")
	}
	if a.Truncated || b.Truncated || len(d) > 0 {
		return strings.Join(d, "; ")
	}
	if q.qtype == dns.TypeANY && !substituted(q, b) {
		d = append(d, compareANY(q, a, b, ask)...)
	} else if x, y := rrStrings(a.Answer), dedup(rrStrings(b.Answer)); !slices.Equal(x, y) {
		d = append(d, fmt.Sprintf("answer differs:\n  %s\n  %s", strings.Join(x, "\n  "), strings.Join(y, "\n  ")))
	}
	if x, y := rrStrings(a.Ns), rrStrings(b.Ns); !slices.Equal(x, y) && !slices.Equal(x, rrStrings(withoutApexNS(b))) {
		d = append(d, fmt.Sprintf("authority differs:\n  %s\n  %s", strings.Join(x, "\n  "), strings.Join(y, "\n  ")))
	}
	if !b.Authoritative && len(b.Ns) > 0 {
		if x, y := rrStrings(a.Extra), rrStrings(b.Extra); !slices.Equal(x, y) {
			d = append(d, fmt.Sprintf("referral glue differs:\n  %s\n  %s", strings.Join(x, "\n  "), strings.Join(y, "\n  ")))
		}
	}
	return strings.Join(d, "; ")
}

// substituted reports whether m answers q through a DNAME above the name
// asked (RFC 6672): the answer is the DNAME, its CNAME and what the chase
// found, compared as the answer to any other type.
func substituted(q query, m *dns.Msg) bool {
	for _, rr := range m.Answer {
		if rr.Header().Rrtype == dns.TypeDNAME && !strings.EqualFold(rr.Header().Name, q.name) {
			return true
		}
	}
	return false
}

// compareANY checks an ANY answer set by set against NSD's per-type answers.
func compareANY(q query, a, b *dns.Msg, ask func(string, uint16) *dns.Msg) []string {
	var d []string
	types := map[uint16]bool{}
	for _, rr := range a.Answer {
		if sig, ok := rr.(*dns.RRSIG); ok {
			if !slices.ContainsFunc(a.Answer, func(o dns.RR) bool { return o.Header().Rrtype == sig.TypeCovered }) {
				d = append(d, fmt.Sprintf("ANY: an RRSIG over %s, a set the answer does not hold", dns.TypeToString[sig.TypeCovered]))
			}
			continue // with DO, the signature of a set the answer holds
		}
		types[rr.Header().Rrtype] = true
	}
	if !q.tcp && len(types) > 1 {
		d = append(d, fmt.Sprintf("ANY over UDP answered %d RRsets, not one", len(types)))
	}
	for t := range types {
		var ours []dns.RR
		for _, rr := range a.Answer {
			if rr.Header().Rrtype == t {
				ours = append(ours, rr)
			}
		}
		if x, y := rrStrings(ours), rrStrings(ask(q.name, t).Answer); !slices.Equal(x, y) {
			d = append(d, fmt.Sprintf("ANY's %s set differs from NSD's answer for the type:\n  %s\n  %s",
				dns.TypeToString[t], strings.Join(x, "\n  "), strings.Join(y, "\n  ")))
		}
	}
	if q.tcp && !subset(rrStrings(b.Answer), rrStrings(a.Answer)) {
		d = append(d, "ANY over TCP lacks the RRset NSD chose")
	}
	if (len(a.Answer) == 0) != (len(b.Answer) == 0) {
		d = append(d, "ANY answered by one server only")
	}
	return d
}

// withoutApexNS returns b's authority section without the NS set of the
// zone (and its signature) that NSD adds to a positive answer: its
// non-minimal response.
func withoutApexNS(b *dns.Msg) []dns.RR {
	if !b.Authoritative || len(b.Answer) == 0 || len(b.Question) == 0 {
		return b.Ns
	}
	qname := strings.ToLower(b.Question[0].Name)
	return slices.DeleteFunc(slices.Clone(b.Ns), func(rr dns.RR) bool {
		t := rr.Header().Rrtype
		if sig, ok := rr.(*dns.RRSIG); ok {
			t = sig.TypeCovered
		}
		return t == dns.TypeNS && dns.IsSubDomain(strings.ToLower(rr.Header().Name), qname)
	})
}

// sameWireName reports whether two names in presentation form are the same
// octets, case included: `\#x` and `#x` are one name.
func sameWireName(a, b string) bool {
	x, y := make([]byte, 256), make([]byte, 256)
	n, err1 := dns.PackDomainName(a, x, 0, nil, false)
	m, err2 := dns.PackDomainName(b, y, 0, nil, false)
	return err1 == nil && err2 == nil && bytes.Equal(x[:n], y[:m])
}

func dedup(s []string) []string { return slices.Compact(s) }

// rrStrings renders records for comparison, folded to lower case (NSD
// compresses names onto the question's case, so its case varies), OPT left
// out.
func rrStrings(rrs []dns.RR) []string {
	var out []string
	for _, rr := range rrs {
		if rr.Header().Rrtype == dns.TypeOPT {
			continue
		}
		out = append(out, strings.ToLower(rr.String()))
	}
	sort.Strings(out)
	return out
}

func subset(a, b []string) bool {
	for _, x := range a {
		if !slices.Contains(b, x) {
			return false
		}
	}
	return true
}

// writeMaster writes z as an RFC 1035 master file for NSD. A service name
// becomes the static answer for a client with no known location: the
// endpoints of the first site in the service's order that has the family.
func writeMaster(t *testing.T, dir string, z *zones.Zone) string {
	t.Helper()
	var b strings.Builder
	fmt.Fprintf(&b, "$ORIGIN %s\n%s\n", z.Origin, z.SOA().String())
	z.Records(func(rr dns.RR) {
		if rr.Header().Rrtype != dns.TypeSOA {
			fmt.Fprintln(&b, rr.String())
		}
	})
	for name, svc := range z.ServiceNames() {
		for _, v4 := range []bool{true, false} {
			for _, site := range svc.SiteOrder {
				n := 0
				for _, ep := range svc.Endpoints {
					if ep.Site == site && ep.Address.Is4() == v4 && n < svc.Answers {
						typ := "AAAA"
						if v4 {
							typ = "A"
						}
						fmt.Fprintf(&b, "%s %d IN %s %s\n", name, svc.TTL, typ, ep.Address)
						n++
					}
				}
				if n > 0 {
					break
				}
			}
		}
	}
	file := filepath.Join(dir, z.Origin+"zone")
	require.NoError(t, os.WriteFile(file, []byte(b.String()), 0o644))
	return file
}
