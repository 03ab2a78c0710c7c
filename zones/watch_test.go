package zones

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/miekg/dns"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/stretchr/testify/require"
)

func writeZone(t *testing.T, dir, name, body string) {
	t.Helper()
	// Write and rename, as editors and config management do, so a reader
	// never sees half a file.
	tmp := filepath.Join(dir, "."+name+".tmp")
	require.NoError(t, os.WriteFile(tmp, []byte(body), 0o644))
	require.NoError(t, os.Rename(tmp, filepath.Join(dir, name)))
}

func zoneWithA(addr string) string {
	return fmt.Sprintf("soa: {ns: a.example., mbox: b.example.}\nrecords:\n  \"@\": {NS: [ns1.example.net.]}\n  www: {A: [%s]}\n", addr)
}

// answerA returns the A answer for www.<zone> from the current set, or "".
func answerA(set *atomic.Pointer[Set], zone string) string {
	z := set.Load().Zone(zone)
	if z == nil {
		return ""
	}
	a := z.Lookup("www."+zone, dns.TypeA, false, nil)
	if len(a.Answer) == 0 {
		return ""
	}
	return a.Answer[0].(*dns.A).A.String()
}

func TestWatcher(t *testing.T) {
	dir := t.TempDir()
	writeZone(t, dir, "w.example.yaml", zoneWithA("192.0.2.1"))
	writeZone(t, dir, "notes.txt", "not a zone")

	var set atomic.Pointer[Set]
	reg := prometheus.NewRegistry()
	m := NewMetrics(reg)
	w := NewWatcher(dir, &set, m, slog.New(slog.NewTextHandler(io.Discard, nil)))
	w.Poll = time.Hour // events, not polling, must drive these reloads
	require.NoError(t, w.Scan(true))
	require.Equal(t, "192.0.2.1", answerA(&set, "w.example."))

	ctx, cancel := context.WithCancel(context.Background())
	hup := make(chan os.Signal, 1)
	done := make(chan error, 1)
	go func() { done <- w.Run(ctx, hup) }()
	defer func() { cancel(); require.NoError(t, <-done) }()
	require.Eventually(t, w.running.Load, 5*time.Second, time.Millisecond) // edits before the watch would wait for Settle
	eventually := func(want string, msg string) {
		t.Helper()
		require.Eventually(t, func() bool { return answerA(&set, "w.example.") == want }, 5*time.Second, 10*time.Millisecond, msg)
	}

	writeZone(t, dir, "w.example.yaml", zoneWithA("192.0.2.2"))
	eventually("192.0.2.2", "an edit is picked up")

	// A broken edit is not served: the previous zone stays, and it is counted.
	before := testutil.ToFloat64(m.reloads.WithLabelValues("w.example.", "error"))
	writeZone(t, dir, "w.example.yaml", strings.Replace(zoneWithA("192.0.2.3"), "192.0.2.3", "192.0.2.999", 1))
	require.Eventually(t, func() bool {
		return testutil.ToFloat64(m.reloads.WithLabelValues("w.example.", "error")) == before+1
	}, 5*time.Second, 10*time.Millisecond)
	require.Equal(t, "192.0.2.2", answerA(&set, "w.example."))

	// Fixed again: served.
	writeZone(t, dir, "w.example.yaml", zoneWithA("192.0.2.4"))
	eventually("192.0.2.4", "a fixed file is picked up")

	// A second zone appears, then its file goes away.
	writeZone(t, dir, "v.example.yaml", zoneWithA("192.0.2.5"))
	require.Eventually(t, func() bool { return answerA(&set, "v.example.") == "192.0.2.5" }, 5*time.Second, 10*time.Millisecond)
	require.NoError(t, os.Remove(filepath.Join(dir, "v.example.yaml")))
	// Gone: it keeps serving, flagged, until SIGHUP.
	require.Eventually(t, func() bool {
		return testutil.ToFloat64(m.missing.WithLabelValues("v.example.")) == 1
	}, 5*time.Second, 10*time.Millisecond)
	require.Equal(t, "192.0.2.5", answerA(&set, "v.example."))
	require.Equal(t, "192.0.2.4", answerA(&set, "w.example."), "other zones are untouched")

	// A reload nobody asked to remove zones with (a cluster node renumbering
	// its zones) reloads everything and keeps the zone whose file is gone.
	ok := testutil.ToFloat64(m.reloads.WithLabelValues("w.example.", "ok"))
	require.NoError(t, w.ReloadAll())
	require.Equal(t, ok+1, testutil.ToFloat64(m.reloads.WithLabelValues("w.example.", "ok")))
	require.Equal(t, "192.0.2.5", answerA(&set, "v.example."), "still served, its file gone")
	require.Equal(t, 1.0, testutil.ToFloat64(m.missing.WithLabelValues("v.example.")))

	// SIGHUP reloads everything, even files whose stamp did not change,
	// and drops the zone whose file is gone.
	ok = testutil.ToFloat64(m.reloads.WithLabelValues("w.example.", "ok"))
	hup <- syscall.SIGHUP
	require.Eventually(t, func() bool {
		return testutil.ToFloat64(m.reloads.WithLabelValues("w.example.", "ok")) == ok+1
	}, 5*time.Second, 10*time.Millisecond)
	require.Eventually(t, func() bool { return set.Load().Zone("v.example.") == nil }, 5*time.Second, 10*time.Millisecond)
	require.Equal(t, 0, testutil.CollectAndCount(m.missing), "a removed zone's series are deleted")
}

func TestWatcherReloadsOnImportChange(t *testing.T) {
	dir := t.TempDir()
	writeZone(t, dir, "i.example.yaml", "import: i.example.zone\nsoa: {ns: a.example., mbox: b.example.}\nrecords: {\"@\": {NS: [ns1.example.net.]}}\n")
	writeZone(t, dir, "i.example.zone", "www 300 IN A 192.0.2.1\n")
	var set atomic.Pointer[Set]
	w := NewWatcher(dir, &set, nil, slog.New(slog.NewTextHandler(io.Discard, nil)))
	require.NoError(t, w.Scan(false))
	require.Equal(t, "192.0.2.1", answerA(&set, "i.example."))
	require.NoError(t, w.Scan(false))

	writeZone(t, dir, "i.example.zone", "www 300 IN A 192.0.2.2\n")
	require.NoError(t, w.Scan(false))
	require.Equal(t, "192.0.2.2", answerA(&set, "i.example."), "a changed import reloads its zone")

	writeZone(t, dir, "i.example.zone", "www 300 IN A 192.0.2.\n")
	err := w.Scan(false)
	require.ErrorContains(t, err, "i.example.zone:1:")
	require.Equal(t, "192.0.2.2", answerA(&set, "i.example."))
}

func TestWatcherFirstLoadFails(t *testing.T) {
	dir := t.TempDir()
	writeZone(t, dir, "ok.example.yaml", zoneWithA("192.0.2.1"))
	writeZone(t, dir, "bad.example.yaml", "soa: [\n")
	var set atomic.Pointer[Set]
	log, logged := newLog()
	m := NewMetrics(prometheus.NewRegistry())
	w := NewWatcher(dir, &set, m, log)
	err := w.Scan(true)
	require.ErrorContains(t, err, "bad.example.yaml:")
	require.NotNil(t, set.Load().Zone("ok.example."), "good zones serve while a bad one is rejected")
	// There is no previous version to keep serving: the log says so (it
	// said a previous version kept serving).
	require.Contains(t, logged.String(), `msg="zone not loaded; not served until its file loads" zone=bad.example.`)
	require.Nil(t, set.Load().Zone("bad.example."))
	// And a metric says so: its error counter starts at 1, which
	// increase() never sees move, so an alert needs a gauge.
	require.Equal(t, 1.0, testutil.ToFloat64(m.failing.WithLabelValues("bad.example.")))
	require.Equal(t, 0.0, testutil.ToFloat64(m.failing.WithLabelValues("ok.example.")))

	writeZone(t, dir, "bad.example.yaml", zoneWithA("192.0.2.2"))
	require.NoError(t, w.Scan(false))
	require.Equal(t, 0.0, testutil.ToFloat64(m.failing.WithLabelValues("bad.example.")), "fixed")

	writeZone(t, dir, "never.example.yaml", "soa: [\n")
	require.Error(t, w.Scan(false))
	require.Equal(t, 1.0, testutil.ToFloat64(m.failing.WithLabelValues("never.example.")))
	require.NoError(t, os.Remove(filepath.Join(dir, "never.example.yaml")))
	require.NoError(t, w.Scan(true))
	require.Equal(t, 2, testutil.CollectAndCount(m.failing, "geodns_zone_load_failing"), "its file gone, its series goes (ok and bad stay)")
}

// TestBrokenEditKeepsServing writes each broken zone in testdata/bad over
// a good version of the same zone: every one is rejected with
// file:line:col, and the good version keeps answering.
func TestBrokenEditKeepsServing(t *testing.T) {
	bad, err := filepath.Glob("testdata/bad/*.yaml")
	require.NoError(t, err)
	require.GreaterOrEqual(t, len(bad), 30)
	dir := t.TempDir()
	for _, aux := range []string{"broken.zone.txt", "good.zone.txt"} { // imported by some bad files
		b, err := os.ReadFile(filepath.Join("testdata/bad", aux))
		require.NoError(t, err)
		require.NoError(t, os.WriteFile(filepath.Join(dir, aux), b, 0o644))
	}
	var set atomic.Pointer[Set]
	w := NewWatcher(dir, &set, nil, slog.New(slog.NewTextHandler(io.Discard, nil)))
	for _, f := range bad {
		name := filepath.Base(f)
		origin, ok := OriginFromFile(name)
		require.True(t, ok)
		writeZone(t, dir, name, zoneWithA("192.0.2.1"))
		require.NoError(t, w.Scan(false), name)
		require.Equal(t, "192.0.2.1", answerA(&set, origin), name)

		src, err := os.ReadFile(f)
		require.NoError(t, err)
		writeZone(t, dir, name, string(src))
		err = w.Scan(false)
		require.Error(t, err, "%s was accepted", name)
		for _, e := range Errors(err) {
			require.Regexp(t, posRE, e.Error())
		}
		require.Equal(t, "192.0.2.1", answerA(&set, origin), "%s: the previous version must keep serving", name)
		require.NoError(t, os.Remove(filepath.Join(dir, name)))
		require.NoError(t, w.Scan(false))
	}
	t.Logf("%d broken edits rejected with file:line:col; each zone's previous version kept answering", len(bad))
}
