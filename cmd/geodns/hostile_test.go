package main

import (
	"bytes"
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/miekg/dns"
	"github.com/stretchr/testify/require"
)

// TestHostileZoneFiles: a zone directory holding a link to /dev/zero, a
// FIFO, a YAML alias bomb, a link to a secret and an import of it neither
// stops `geodns check` (it reports each, positioned, without the secret)
// nor `geodns serve`: it listens, answers the good zone, never logs the
// secret and stops on SIGTERM. Before, the FIFO blocked both forever and
// /dev/zero ran them out of memory.
func TestHostileZoneFiles(t *testing.T) {
	base := t.TempDir()
	dir := filepath.Join(base, "zones")
	require.NoError(t, os.Mkdir(dir, 0o755))
	staticExample(t, dir)
	const secret = "SECRET-TOKEN-52e1"
	token := filepath.Join(base, "api.token")
	require.NoError(t, os.WriteFile(token, []byte(secret+"\n"), 0o600))
	require.NoError(t, os.Symlink(token, filepath.Join(dir, "token.example.yaml")))
	require.NoError(t, os.WriteFile(filepath.Join(dir, "passwd.example.yaml"),
		[]byte("import: ../api.token\nsoa: {ns: a.example., mbox: b.example.}\nrecords: {\"@\": {NS: [ns1.example.]}}\n"), 0o644))
	require.NoError(t, syscall.Mkfifo(filepath.Join(dir, "a-fifo.example.yaml"), 0o644))
	require.NoError(t, os.Symlink("/dev/zero", filepath.Join(dir, "zero.example.yaml")))
	require.NoError(t, os.WriteFile(filepath.Join(dir, "alias.example.yaml"),
		[]byte("soa: {ns: a.example., mbox: b.example.}\nrecords:\n  \"@\": &ns {NS: [ns1.example.]}\n  www: *ns\n"), 0o644))

	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	var stdout, stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, binary, "check", "--zones", dir)
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	require.NoError(t, ctx.Err(), "geodns check did not finish")
	var ee *exec.ExitError
	require.True(t, errors.As(err, &ee), "%v", err)
	t.Logf("geodns check exit %d:\n%s%s", ee.ExitCode(), stdout.String(), stderr.String())
	require.Equal(t, 1, ee.ExitCode())
	require.Contains(t, stdout.String(), "example.com.yaml: ok")
	require.NotContains(t, stderr.String(), secret)
	for _, want := range []string{
		"a-fifo.example.yaml: is not a regular file; not read",
		"zero.example.yaml: is outside the allowed directories",
		"token.example.yaml: is outside the allowed directories",
		"passwd.example.yaml:1:9: import: " + token + " is outside the allowed directories",
		"alias.example.yaml:4:8: yaml alias *ns: aliases (and merge keys) are not allowed",
		"5 of 6 zone files have errors",
	} {
		require.Contains(t, stderr.String(), want)
	}

	addr, log := startGeodns(t, dir, "example.com.")
	r, _, err := (&dns.Client{}).Exchange(question("www.example.com.", dns.TypeA), addr)
	require.NoError(t, err)
	require.Equal(t, dns.RcodeSuccess, r.Rcode)
	require.NotContains(t, log.String(), secret)
	v, _ := servers.Load(addr)
	p := v.(*process)
	require.NoError(t, p.cmd.Process.Signal(syscall.SIGTERM))
	select {
	case <-p.done:
	case <-time.After(10 * time.Second):
		t.Fatal("geodns did not exit within 10 s of SIGTERM")
	}
	require.Equal(t, 0, p.cmd.ProcessState.ExitCode())
}

// TestZoneImportDirs: serve reads an import from a directory the config's
// zone_import_dirs allows, and check does with --import-dir; without it
// the import is refused.
func TestZoneImportDirs(t *testing.T) {
	base := t.TempDir()
	dir, shared := filepath.Join(base, "zones"), filepath.Join(base, "shared")
	require.NoError(t, os.Mkdir(dir, 0o755))
	require.NoError(t, os.Mkdir(shared, 0o755))
	require.NoError(t, os.WriteFile(filepath.Join(shared, "imp.zone"), []byte("www 60 IN A 192.0.2.77\n"), 0o644))
	require.NoError(t, os.WriteFile(filepath.Join(dir, "imp.example.yaml"), []byte("import: "+filepath.Join(shared, "imp.zone")+
		"\nsoa: {ns: a.example., mbox: b.example.}\nrecords: {\"@\": {NS: [ns1.example.]}}\n"), 0o644))

	code, _, stderr := runGeodns(t, "check", "--zones", dir)
	require.Equal(t, 1, code)
	require.Contains(t, stderr, "imp.zone is outside the allowed directories")
	code, stdout, stderr := runGeodns(t, "check", "--zones", dir, "--import-dir", shared)
	require.Equal(t, 0, code, stderr)
	require.Contains(t, stdout, "imp.example.yaml: ok")

	conf := filepath.Join(base, "geodns.yaml")
	require.NoError(t, os.WriteFile(conf, []byte("zone_import_dirs: ["+shared+"]\n"), 0o644))
	addr, _ := startGeodns(t, dir, "imp.example.", "--config", conf)
	r, _, err := (&dns.Client{}).Exchange(question("www.imp.example.", dns.TypeA), addr)
	require.NoError(t, err)
	require.Len(t, r.Answer, 1)
	require.Equal(t, "192.0.2.77", r.Answer[0].(*dns.A).A.String())
}
