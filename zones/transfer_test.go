package zones

import (
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

const transferZone = `origin: t.test.
soa: {ns: ns1.t.test., mbox: h.t.test.}
transfer:
  allow: [127.0.0.1/32, "key:sec1"]
  notify: ["127.0.0.1:5399", "127.0.0.2"]
records:
  "@": {NS: [ns1.t.test.]}
  ns1: {A: [192.0.2.53]}
  www: {service: web}
sites:
  a: {lat: 1, lon: 1}
  b: {lat: 2, lon: 2}
services:
  web:
    export: b
    endpoints:
      - {site: a, address: 192.0.2.1}
      - {site: b, address: 192.0.2.2}
`

func TestTransferKeys(t *testing.T) {
	z, err := Compile("t.yaml", []byte(transferZone), "t.test.", time.Unix(1000, 0), nil)
	require.NoError(t, err)
	require.Equal(t, &Transfer{
		Allow:  []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")},
		Keys:   []string{"sec1."},
		Notify: []netip.AddrPort{netip.MustParseAddrPort("127.0.0.1:5399"), netip.MustParseAddrPort("127.0.0.2:53")},
	}, z.Transfer)
	require.Equal(t, "b", z.Services["web"].Export)

	for _, c := range []struct{ from, to, want string }{
		{"127.0.0.1/32", "127.0.0.1/99", `t.yaml:4:11: transfer: allow: "127.0.0.1/99" is neither a CIDR prefix nor key:NAME`},
		{`"127.0.0.1:5399"`, `"nowhere"`, `t.yaml:5:12: transfer: notify: "nowhere" is not an address or address:port`},
		{"export: b", "export: c", `t.yaml:15:13: service "web": unknown site "c"`},
		{"export: b", "export: fallback", `t.yaml:15:13: service "web": export is fallback but no fallback addresses are given`},
		{"  notify:", "  notifi:", `t.yaml:5:3:`},
	} {
		src := strings.Replace(transferZone, c.from, c.to, 1)
		_, err := Compile("t.yaml", []byte(src), "t.test.", time.Unix(1000, 0), nil)
		require.ErrorContains(t, err, c.want)
	}
}
