package dnssec

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/geodns/geodns/internal/testclock"
	"github.com/miekg/dns"
	"github.com/stretchr/testify/require"
)

// TestExportOddNames exports a zone with odd names (escaped octets, a
// wildcard at the apex, empty non-terminals, a DNAME, a delegation with
// DS and an address at the cut, a DS without NS), writes it as a master
// file and has kzonecheck -d on and ldns-verify-zone judge it.
func TestExportOddNames(t *testing.T) {
	c := testclock.New(time.Now())
	m := newTestManager(t, t.TempDir(), c, nil, nil)
	require.NoError(t, m.Sync([]ZoneConfig{{Origin: "ex.test."}}))
	var rrs []dns.RR
	for _, s := range []string{
		"ex.test. 300 IN NS ns1.ex.test.",
		"ns1.ex.test. 300 IN A 192.0.2.53",
		"*.ex.test. 300 IN TXT \"wild at apex\"",
		"\\000.ex.test. 300 IN TXT \"nul\"",
		"a\\000.ex.test. 300 IN TXT \"a nul\"",
		"\\255.ex.test. 300 IN TXT \"high\"",
		"\\ .ex.test. 300 IN TXT \"space\"",
		"\\\\.ex.test. 300 IN TXT \"backslash\"",
		"a\\.b.ex.test. 300 IN TXT \"escaped dot\"",
		"a.b.c.ex.test. 300 IN TXT \"ENTs\"",
		"a.ex.test. 300 IN TXT \"a\"",
		"dn.ex.test. 300 IN DNAME other.test.",
		"sub.ex.test. 300 IN NS ns.sub.ex.test.",
		"sub.ex.test. 300 IN NS sub.ex.test.",
		"sub.ex.test. 300 IN A 192.0.2.60",
		"sub.ex.test. 300 IN DS 12345 13 2 0123456789ABCDEF0123456789ABCDEF0123456789ABCDEF0123456789ABCDEF",
		"ns.sub.ex.test. 300 IN A 192.0.2.54",
		"x.y.deep.sub.ex.test. 300 IN A 192.0.2.55",
		"ds-only.ex.test. 300 IN DS 12345 13 2 0123456789ABCDEF0123456789ABCDEF0123456789ABCDEF0123456789ABCDEF",
		"insec.ex.test. 300 IN NS ns.elsewhere.test.",
	} {
		rrs = append(rrs, rr(t, s))
	}
	soa := rr(t, "ex.test. 3600 IN SOA ns1.ex.test. h.ex.test. 7 3600 600 1209600 300").(*dns.SOA)
	out, signSOA, err := m.Export("ex.test.", soa, rrs)
	require.NoError(t, err)
	var b strings.Builder
	b.WriteString(soa.String() + "\n")
	for _, rr := range signSOA(soa) {
		b.WriteString(rr.String() + "\n")
	}
	for _, rr := range out {
		b.WriteString(rr.String() + "\n")
	}
	f := filepath.Join(t.TempDir(), "ex.test.zone")
	require.NoError(t, os.WriteFile(f, []byte(b.String()), 0o644))
	for _, rr := range out {
		if n, ok := rr.(*dns.NSEC); ok {
			t.Logf("%s -> %s %v", n.Hdr.Name, n.NextDomain, typesString(n.TypeBitMap))
		}
	}
	o1, e1 := exec.Command("kzonecheck", "-d", "on", "-o", "ex.test.", f).CombinedOutput()
	t.Logf("kzonecheck: %v\n%s", e1, o1)
	o2, e2 := exec.Command("ldns-verify-zone", f).CombinedOutput()
	t.Logf("ldns-verify-zone: %v\n%s", e2, o2)
	require.NoError(t, e1)
	require.NoError(t, e2)
}

func typesString(ts []uint16) string {
	var s []string
	for _, x := range ts {
		s = append(s, dns.TypeToString[x])
	}
	return fmt.Sprint(s)
}
