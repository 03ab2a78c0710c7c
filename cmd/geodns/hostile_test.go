package main

import (
	"bytes"
	"context"
	"errors"
	"net"
	"net/http"
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

// TestAPIConnectionFlood: a client holding 1,100 idle connections to the
// HTTP API of a geodns limited to 1,024 file descriptors takes none of the
// descriptors DNS over TCP, zone loads and probes need: a TCP query and a
// new API request are answered, and nothing logs "too many open files".
// Before, the API accepted every connection: the process ran out, TCP
// queries timed out, and probes failed with "too many open files", every
// endpoint down.
func TestAPIConnectionFlood(t *testing.T) {
	prlimit, err := exec.LookPath("prlimit") // util-linux, on every Debian
	require.NoError(t, err)
	dir := t.TempDir()
	staticExample(t, dir)
	addr, httpAddr := freeAddr(t), freeAddr(t)
	log := new(logBuffer)
	startProcess(t, log, prlimit, "--nofile=1024:1024", binary, "serve", "--zones", dir, "--listen", addr,
		"--http", httpAddr, "--probe-allow", "127.0.0.0/8")
	waitSOA(t, addr, "example.com.")

	for range 1100 {
		c, err := net.Dial("tcp", httpAddr)
		require.NoError(t, err)
		defer c.Close()
		_, err = c.Write([]byte("GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"))
		require.NoError(t, err)
	}
	tcp := &dns.Client{Net: "tcp", Timeout: 2 * time.Second}
	r, _, err := tcp.Exchange(question("www.example.com.", dns.TypeA), addr)
	require.NoError(t, err, "DNS over TCP while the API is flooded")
	require.Equal(t, dns.RcodeSuccess, r.Rcode)
	hc := &http.Client{Timeout: 2 * time.Second}
	resp, err := hc.Get("http://" + httpAddr + "/healthz")
	require.NoError(t, err, "a new API request while the API is flooded")
	resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)
	require.NotContains(t, log.String(), "too many open files")
}
