package main

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/miekg/dns"
	"github.com/stretchr/testify/require"
)

// TestHotReloadUnderLoad edits a served zone while clients query it: the
// edit must be answered within 2 s with no failed query; a broken edit must
// leave the previous data answering, and `geodns check` must report it.
func TestHotReloadUnderLoad(t *testing.T) {
	dir := t.TempDir()
	src := []byte(staticExample(t, dir))
	zoneFile := filepath.Join(dir, "example.com.yaml")
	write := func(body string) {
		tmp := zoneFile + ".tmp"
		require.NoError(t, os.WriteFile(tmp, []byte(body), 0o644))
		require.NoError(t, os.Rename(tmp, zoneFile))
	}
	write(string(src))
	addr, log := startGeodns(t, dir, "example.com.")

	const oldAddr, newAddr = "192.0.2.25", "192.0.2.26"
	var (
		sent, failed atomic.Int64
		sawNew       atomic.Int64 // unix nanos of the first answer with the new address
		backToOld    atomic.Int64 // old answers to a client that had seen the new one
		stop         = make(chan struct{})
		wg           sync.WaitGroup
		failures     sync.Map
	)
	for w := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c := &dns.Client{Timeout: time.Second}
			conn, err := c.Dial(addr)
			if err != nil {
				failures.Store(w, err.Error())
				failed.Add(1)
				return
			}
			defer conn.Close()
			seenNew := false // this client's queries are sequential: after new, never old
			for {
				select {
				case <-stop:
					return
				default:
				}
				r, _, err := c.ExchangeWithConn(question("mail.example.com.", dns.TypeA), conn)
				sent.Add(1)
				if err != nil || r.Rcode != dns.RcodeSuccess || len(r.Answer) != 1 {
					failed.Add(1)
					failures.Store(sent.Load(), r.String()+" "+errString(err))
					continue
				}
				switch r.Answer[0].(*dns.A).A.String() {
				case newAddr:
					sawNew.CompareAndSwap(0, time.Now().UnixNano())
					seenNew = true
				case oldAddr:
					if seenNew {
						backToOld.Add(1)
					}
				default:
					failed.Add(1)
				}
			}
		}()
	}

	time.Sleep(time.Second)
	edited := time.Now()
	write(strings.Replace(string(src), "mail: {A: [192.0.2.25]", "mail: {A: [192.0.2.26]", 1))
	require.Eventually(t, func() bool { return sawNew.Load() != 0 }, 5*time.Second, 5*time.Millisecond, "edit never answered")
	visible := time.Duration(sawNew.Load() - edited.UnixNano())
	require.LessOrEqual(t, visible, 2*time.Second)

	// A broken edit: a bad address on line 16. The old data keeps answering.
	broken := strings.Replace(string(src), "mail: {A: [192.0.2.25]", "mail: {A: [192.0.2.256]", 1)
	write(broken)
	require.Eventually(t, func() bool { return strings.Contains(log.String(), "previous version keeps serving") }, 5*time.Second, 10*time.Millisecond)
	time.Sleep(500 * time.Millisecond) // keep querying past the rejected reload
	close(stop)
	wg.Wait()
	elapsed := time.Since(edited) + time.Second

	failures.Range(func(k, v any) bool { t.Logf("failure: %v", v); return true })
	qps := float64(sent.Load()) / elapsed.Seconds()
	t.Logf("%d queries in %.1fs (%.0f/s), %d failed; edit answered after %v; %d old answers after the new one",
		sent.Load(), elapsed.Seconds(), qps, failed.Load(), visible.Round(time.Millisecond), backToOld.Load())
	require.GreaterOrEqual(t, qps, 1000.0)
	require.Zero(t, failed.Load())
	require.Zero(t, backToOld.Load(), "a reload is atomic: once a client saw the new data, never the old again")

	r, _, err := (&dns.Client{}).Exchange(question("mail.example.com.", dns.TypeA), addr)
	require.NoError(t, err)
	require.Equal(t, newAddr, r.Answer[0].(*dns.A).A.String(), "the broken edit is not served")

	code, stdout, stderr := runGeodns(t, "check", "--zones", dir)
	t.Logf("geodns check exit %d:\n%s%s", code, stdout, stderr)
	require.Equal(t, 1, code)
	require.Regexp(t, regexp.MustCompile(`example\.com\.yaml:\d+:\d+: name "mail" A: "192\.0\.2\.256" is not an IPv4 address`), stderr)
}

func errString(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

func TestCheckCommand(t *testing.T) {
	code, stdout, stderr := runGeodns(t, "check", "--zones", "../../examples/zones")
	require.Equal(t, 0, code, stderr)
	require.Contains(t, stdout, "example.com.yaml: ok: zone example.com.")

	code, _, stderr = runGeodns(t, "check", "../../zones/testdata/bad/cname-beside-data.example.yaml", "../../zones/testdata/bad/unknown-site.example.yaml")
	require.Equal(t, 1, code)
	require.Contains(t, stderr, `cname-beside-data.example.yaml:4:3: name "www": CNAME beside other data (A)`)
	require.Contains(t, stderr, `unknown-site.example.yaml:9:24: service "web": unknown site "eats"`)
}

func TestVersionCreditsDBIP(t *testing.T) {
	code, stdout, _ := runGeodns(t, "version")
	require.Equal(t, 0, code)
	require.Contains(t, stdout, "IP Geolocation by DB-IP")
}

func TestUsageErrors(t *testing.T) {
	code, _, _ := runGeodns(t, "frobnicate")
	require.Equal(t, 2, code)
	code, _, stderr := runGeodns(t, "import", "x.zone")
	require.Equal(t, 2, code)
	require.Contains(t, stderr, "--origin")
}

// TestAutomaticSerialKeptAcrossRestart: with a state_dir, a restart
// numbers a zone as a reload does. An edit whose file is older than the
// last (rsync -a, cp -p) gets the last serial + 1 while serving; before,
// a restart then served the file's time, an hour below what secondaries
// and caches held.
func TestAutomaticSerialKeptAcrossRestart(t *testing.T) {
	dir, state := t.TempDir(), t.TempDir()
	path := filepath.Join(dir, "kept.test.yaml")
	zone := func(addr string) string {
		return "soa: {ns: ns1.kept.test., mbox: h.kept.test.}\nrecords:\n  \"@\": {NS: [ns1.kept.test.]}\n  ns1: {A: [" + addr + "]}\n"
	}
	require.NoError(t, os.WriteFile(path, []byte(zone("192.0.2.1")), 0o644))
	addr, _ := startGeodns(t, dir, "kept.test.", "--state-dir", state)
	first := soaSerial(addr, "kept.test.")
	require.NotZero(t, first)

	// The new content is written with a time an hour back, then renamed
	// in, as a copy keeping times would leave it.
	tmp := filepath.Join(dir, ".kept.tmp")
	require.NoError(t, os.WriteFile(tmp, []byte(zone("192.0.2.2")), 0o644))
	old := time.Now().Add(-time.Hour)
	require.NoError(t, os.Chtimes(tmp, old, old))
	require.NoError(t, os.Rename(tmp, path))
	require.Eventually(t, func() bool { return soaSerial(addr, "kept.test.") == first+1 }, 5*time.Second, 20*time.Millisecond,
		"the older file's content comes after the serial served")

	// The serials file has it (written within 200 ms of a change), then a crash.
	require.Eventually(t, func() bool {
		b, err := os.ReadFile(filepath.Join(state, "serials.json"))
		return err == nil && strings.Contains(string(b), fmt.Sprintf(`"serial":%d`, first+1))
	}, 5*time.Second, 20*time.Millisecond)
	stopGeodns(t, addr)
	again, _ := startGeodns(t, dir, "kept.test.", "--state-dir", state)
	require.Equal(t, first+1, soaSerial(again, "kept.test."), "the serial after a restart (the file's time would be %d)", uint32(old.Unix()))

	// A stop (SIGTERM) right after a change writes it before exiting.
	require.NoError(t, os.WriteFile(tmp, []byte(zone("192.0.2.3")), 0o644))
	require.NoError(t, os.Chtimes(tmp, old, old))
	require.NoError(t, os.Rename(tmp, path))
	require.Eventually(t, func() bool { return soaSerial(again, "kept.test.") == first+2 }, 5*time.Second, 5*time.Millisecond)
	v, _ := servers.Load(again)
	p := v.(*process)
	require.NoError(t, p.cmd.Process.Signal(syscall.SIGTERM))
	<-p.done
	third, _ := startGeodns(t, dir, "kept.test.", "--state-dir", state)
	require.Equal(t, first+2, soaSerial(third, "kept.test."), "the serial written at the stop")
}
