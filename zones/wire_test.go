package zones

import (
	"path/filepath"
	"strings"
	"testing"

	"github.com/miekg/dns"
	"github.com/stretchr/testify/require"
)

// Records that parse but cannot be packed (odd hex, repeated SVCB keys),
// or that pack into what resolvers reject (an SVCB mandatory key the
// record lacks, an empty alpn): NSD and Knot refuse the zone. Before, it
// loaded, and every answer holding one was a SERVFAIL ("cannot pack
// response: encoding/hex: odd length hex string") or a FORMERR to dig.
func TestUnpackableRecordsRefused(t *testing.T) {
	dir := t.TempDir()
	bad := strings.Join([]string{
		"$TTL 300",
		"@ SOA ns1 host 1 3600 600 1209600 120",
		"@ NS ns1",
		"ns1 A 192.0.2.1",
		"t1 TLSA 3 1 1 0C72AAD3D",
		"s SSHFP 1 1 123",
		"k HTTPS 1 . alpn=h3 alpn=h2",
		"u4 HTTPS 1 . mandatory=alpn",
		`u5 HTTPS 1 . alpn=""`,
		"u6 HTTPS 1 . mandatory=mandatory",
		"ok HTTPS 1 . alpn=h2,h3 mandatory=alpn port=443",
	}, "\n") + "\n"
	writeZone(t, dir, "m.zone", bad)
	writeZone(t, dir, "m.test.yaml", "import: m.zone\n")
	_, err := Limits{}.Load(filepath.Join(dir, "m.test.yaml"), nil)
	require.Error(t, err)
	zone := filepath.Join(dir, "m.zone")
	for _, want := range []string{
		zone + `:5:1: name "t1": TLSA record cannot be sent: encoding/hex: odd length hex string`,
		zone + `:6:1: name "s": SSHFP record cannot be sent: encoding/hex: odd length hex string`,
		zone + `:7:1: name "k": HTTPS record cannot be sent: dns: repeated SVCB keys are not allowed`,
		zone + `:8:1: name "u4": HTTPS record cannot be sent: mandatory lists alpn, which the record does not have`,
		zone + `:9:1: name "u5": HTTPS record cannot be sent: an empty alpn id`,
		zone + `:10:1: name "u6": HTTPS record cannot be sent: mandatory lists itself`,
	} {
		require.ErrorContains(t, err, want)
	}
	require.NotContains(t, err.Error(), `"ok"`)

	// The good ones alone load, and answer.
	writeZone(t, dir, "m.zone", strings.Join(strings.Split(bad, "\n")[:4], "\n")+"\nok HTTPS 1 . alpn=h2,h3 mandatory=alpn port=443\n")
	z, err := Limits{}.Load(filepath.Join(dir, "m.test.yaml"), nil)
	require.NoError(t, err)
	require.Len(t, z.Lookup("ok.m.test.", dns.TypeHTTPS, false, nil).Answer, 1)
}
