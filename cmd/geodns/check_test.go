package main

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestCheckWarnings: `geodns check` prints a zone's warnings, prefixed
// "warning:" with file:line:col, and passes it; --strict fails it.
func TestCheckWarnings(t *testing.T) {
	dir := t.TempDir()
	zone := filepath.Join(dir, "occ.example.yaml")
	require.NoError(t, os.WriteFile(zone, []byte(`soa: {ns: ns1.example.net., mbox: h.example.net.}
records:
  "@": {NS: [ns1.example.net.]}
  sub: {NS: [ns.sub]}
  ns.sub: {A: [192.0.2.53]}
  www.sub: {TXT: [occluded]}
`), 0o644))
	var out, errOut bytes.Buffer
	require.Equal(t, 0, run([]string{"check", zone}, &out, &errOut), errOut.String())
	require.Contains(t, errOut.String(), "warning: "+zone+`:6:19: name "www.sub": TXT record below the delegation at sub.occ.example. is occluded`)
	require.Contains(t, out.String(), "ok: zone occ.example.")

	out.Reset()
	errOut.Reset()
	require.Equal(t, 1, run([]string{"check", "--strict", zone}, &out, &errOut))
	require.Contains(t, errOut.String(), "warning: "+zone+":6:19:")
	require.NotContains(t, out.String(), "ok: zone")
}
