package xfr

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/miekg/dns"
	"github.com/stretchr/testify/require"
)

// TestIXFROldVersionsSOAs: each difference sequence of an IXFR starts
// with the older version's own SOA and ends with the newer one's (RFC
// 1995 4), its refresh and retry as they were, also after a restart
// (the journal in xfr.json keeps them); a state file written before it
// did still serves IXFR. Every SOA used to carry the current version's
// fields under the old serials, which a secondary deleting exactly (as
// BIND does) does not hold.
func TestIXFROldVersionsSOAs(t *testing.T) {
	dir := t.TempDir()
	h := newHarness(t, dir)
	version := func(serial, refresh, retry int, a string) string {
		src := strings.Replace(zoneSrc, "serial: 100}", fmt.Sprintf("serial: %d, refresh: %d, retry: %d}", serial, refresh, retry), 1)
		return strings.Replace(src, "192.0.2.53", a, 1)
	}
	h.load(notifySrc(h, version(101, 7200, 600, "192.0.2.53"))) // the SOA alone
	waitSerial(t, h, 101)
	last := version(102, 7200, 900, "192.0.2.54")
	h.load(notifySrc(h, last))
	waitSerial(t, h, 102)
	want := `t.test.	3600	IN	SOA	ns1.t.test. h.t.test. 102 7200 900 1209600 60
t.test.	3600	IN	SOA	ns1.t.test. h.t.test. 100 3600 600 1209600 60
t.test.	3600	IN	SOA	ns1.t.test. h.t.test. 101 7200 600 1209600 60
t.test.	3600	IN	SOA	ns1.t.test. h.t.test. 101 7200 600 1209600 60
ns1.t.test.	3600	IN	A	192.0.2.53
t.test.	3600	IN	SOA	ns1.t.test. h.t.test. 102 7200 900 1209600 60
ns1.t.test.	3600	IN	A	192.0.2.54
t.test.	3600	IN	SOA	ns1.t.test. h.t.test. 102 7200 900 1209600 60
`
	ixfr := func(h *harness) string {
		t.Helper()
		rrs, err := h.xfr("t.test.", dns.TypeIXFR, 100, keyName, dns.HmacSHA256, keySecret)
		require.NoError(t, err)
		return texts(rrs)
	}
	got := ixfr(h)
	t.Logf("IXFR from 100:\n%s", got)
	require.Equal(t, want, got)

	// Restarted from the state file: the same.
	b, err := os.ReadFile(filepath.Join(dir, "xfr.json"))
	require.NoError(t, err)
	h2 := newHarnessSrc(t, dir, last)
	require.Equal(t, want, ixfr(h2), "after a restart")

	// A state file without the versions' SOAs (written before they were
	// kept): still an IXFR from 100, through 101 to 102.
	var st map[string]map[string]any
	require.NoError(t, json.Unmarshal(b, &st))
	for _, d := range st["t.test."]["journal"].([]any) {
		delete(d.(map[string]any), "from_soa")
		delete(d.(map[string]any), "to_soa")
	}
	b, err = json.Marshal(st)
	require.NoError(t, err)
	old := t.TempDir()
	require.NoError(t, os.WriteFile(filepath.Join(old, "xfr.json"), b, 0o644))
	h3 := newHarnessSrc(t, old, last)
	rrs, err := h3.xfr("t.test.", dns.TypeIXFR, 100, keyName, dns.HmacSHA256, keySecret)
	require.NoError(t, err)
	var serials []uint32
	for _, rr := range rrs {
		if soa, ok := rr.(*dns.SOA); ok {
			serials = append(serials, soa.Serial)
		}
	}
	require.Equal(t, []uint32{102, 100, 101, 101, 102, 102}, serials, "an older state file: %s", texts(rrs))
}
