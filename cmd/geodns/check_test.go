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

// TestCheckClusterTLS: `geodns check --config` loads the cluster's TLS
// files as serve does, and both report a missing or non-PEM file at its
// key, as file:line:col.
func TestCheckClusterTLS(t *testing.T) {
	dir, zdir := t.TempDir(), t.TempDir()
	require.NoError(t, os.WriteFile(filepath.Join(zdir, "example.com.yaml"), []byte(clusterZone), 0o644))
	notPEM := filepath.Join(dir, "cert.pem")
	require.NoError(t, os.WriteFile(notPEM, []byte("not a certificate\n"), 0o644))
	config := filepath.Join(dir, "geodns.yaml")
	require.NoError(t, os.WriteFile(config, []byte(`cluster:
  etcd: [https://127.0.0.1:2379]
  node: ns1
  tls: {ca: /nonexist/ca.pem, cert: `+notPEM+`, key: /nonexist/key.pem}
`), 0o644))
	want := []string{
		config + ":4:13: cluster.tls.ca: open /nonexist/ca.pem: no such file or directory",
		config + ":4:37: cluster.tls.cert: no PEM certificate in " + notPEM,
	}
	var out, errOut bytes.Buffer
	require.Equal(t, 1, run([]string{"check", "--config", config, "--zones", zdir}, &out, &errOut), out.String())
	t.Logf("check:\n%s", errOut.String())
	for _, w := range want {
		require.Contains(t, errOut.String(), w)
	}
	require.Contains(t, errOut.String(), "cluster.tls.key: open /nonexist/key.pem")
	require.NotContains(t, out.String(), "ok")

	out.Reset()
	errOut.Reset()
	require.NotZero(t, run([]string{"serve", "--config", config, "--zones", zdir, "--http", "off"}, &out, &errOut))
	require.Contains(t, errOut.String(), want[0], "serve reports it the same way")
}

// TestCheckSignatureValidityBound: `geodns check` refuses a
// signature_validity over 3660 days at its position: now + validity as a
// 32-bit signature time would wrap, and validators reject signatures
// whose expiration is not after their inception (RFC 4034 3.1.5).
func TestCheckSignatureValidityBound(t *testing.T) {
	dir := t.TempDir()
	zone := filepath.Join(dir, "ev.example.yaml")
	write := func(validity string) {
		require.NoError(t, os.WriteFile(zone, []byte(`soa: {ns: ns1.example.net., mbox: h.example.net.}
dnssec: {algorithm: ECDSAP256SHA256, signature_validity: `+validity+`}
records:
  "@": {NS: [ns1.example.net.]}
`), 0o644))
	}
	var out, errOut bytes.Buffer
	write("30000d")
	require.Equal(t, 1, run([]string{"check", zone}, &out, &errOut), out.String())
	t.Logf("check:\n%s", errOut.String())
	require.Contains(t, errOut.String(), zone+":2:58: dnssec: signature_validity: 30000d is more than 3660d")
	require.NotContains(t, out.String(), "ok: zone")

	out.Reset()
	errOut.Reset()
	write("3660d")
	require.Equal(t, 0, run([]string{"check", zone}, &out, &errOut), errOut.String())
	require.Contains(t, out.String(), "ok: zone ev.example.")
}
