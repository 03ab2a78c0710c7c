package zones

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/miekg/dns"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/stretchr/testify/require"
)

// The tests here are the hardening issue's "zone files and the watcher"
// items, each failing on the code before it.

// logBuf is a log sink safe for the watcher's goroutines.
type logBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *logBuf) Write(p []byte) (int, error) { l.mu.Lock(); defer l.mu.Unlock(); return l.b.Write(p) }
func (l *logBuf) String() string              { l.mu.Lock(); defer l.mu.Unlock(); return l.b.String() }

func newLog() (*slog.Logger, *logBuf) {
	b := &logBuf{}
	return slog.New(slog.NewTextHandler(b, &slog.HandlerOptions{Level: slog.LevelDebug})), b
}

// runWatcher runs w until the test ends, and returns once it watches.
func runWatcher(t *testing.T, w *Watcher, hup chan os.Signal) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- w.Run(ctx, hup) }()
	t.Cleanup(func() { cancel(); require.NoError(t, <-done) })
	require.Eventually(t, w.running.Load, 5*time.Second, time.Millisecond)
}

// loadWithin loads path on a goroutine and fails the test if that takes
// longer than 10 s (the code before this blocked forever or read until the
// machine ran out of memory).
func loadWithin(t *testing.T, path string) error {
	t.Helper()
	done := make(chan error, 1)
	go func() { _, err := LoadFile(path, nil); done <- err }()
	select {
	case err := <-done:
		return err
	case <-time.After(10 * time.Second):
		t.Fatalf("loading %s did not return", path)
		return nil
	}
}

const headNS = "soa: {ns: a.example., mbox: b.example.}\nrecords:\n  \"@\": {NS: [ns1.example.net.]}\n"

// Item 1: /dev/zero as a zone file or import target is refused at once,
// and a regular file over the size cap fails cleanly without being read.
func TestDevZeroRefused(t *testing.T) {
	dir := t.TempDir()
	require.NoError(t, os.Symlink("/dev/zero", filepath.Join(dir, "zero.example.yaml")))
	err := loadWithin(t, filepath.Join(dir, "zero.example.yaml"))
	require.ErrorContains(t, err, "zero.example.yaml: is outside the allowed directories")

	writeZone(t, dir, "zimp.example.yaml", "import: /dev/zero\n"+headNS)
	err = loadWithin(t, filepath.Join(dir, "zimp.example.yaml"))
	require.ErrorContains(t, err, "zimp.example.yaml:1:9: import: ")
	require.ErrorContains(t, err, "/dev/zero is outside the allowed directories")

	// The cap: a zone file and an import one byte over it.
	writeZone(t, dir, "big.example.yaml", headNS+"  www: {A: [192.0.2.1]}\n")
	writeZone(t, dir, "bigimp.example.yaml", "import: big.zone\n"+headNS)
	writeZone(t, dir, "big.zone", strings.Repeat("www 60 IN A 192.0.2.1\n", 100))
	l := Limits{MaxFileSize: 1000}
	_, err = l.Load(filepath.Join(dir, "big.example.yaml"), nil)
	require.NoError(t, err, "under the cap")
	_, err = l.Load(filepath.Join(dir, "bigimp.example.yaml"), nil)
	require.ErrorContains(t, err, "2200 bytes, over the limit of 1000")
	l.MaxFileSize = 50
	_, err = l.Load(filepath.Join(dir, "big.example.yaml"), nil)
	require.ErrorContains(t, err, "over the limit of 50")
}

// Item 2: a FIFO as zone file or import target never blocks a load, and the
// watcher keeps serving edits of other zones and stops when told.
func TestFIFORefused(t *testing.T) {
	dir := t.TempDir()
	require.NoError(t, syscall.Mkfifo(filepath.Join(dir, "fifo.example.yaml"), 0o644))
	require.NoError(t, syscall.Mkfifo(filepath.Join(dir, "pipe.zone"), 0o644))
	writeZone(t, dir, "fimp.example.yaml", "import: pipe.zone\n"+headNS)
	err := loadWithin(t, filepath.Join(dir, "fifo.example.yaml"))
	require.ErrorContains(t, err, "not a regular file")
	err = loadWithin(t, filepath.Join(dir, "fimp.example.yaml"))
	require.ErrorContains(t, err, "pipe.zone is not a regular file")

	writeZone(t, dir, "w.example.yaml", zoneWithA("192.0.2.1"))
	var set atomic.Pointer[Set]
	log, _ := newLog()
	w := NewWatcher(dir, &set, nil, log)
	w.Poll, w.Debounce = time.Hour, 10*time.Millisecond
	scanned := make(chan error, 1)
	go func() { scanned <- w.Scan(true) }()
	select {
	case err := <-scanned:
		require.ErrorContains(t, err, "not a regular file")
	case <-time.After(10 * time.Second):
		t.Fatal("Scan blocked on a FIFO")
	}
	require.Equal(t, "192.0.2.1", answerA(&set, "w.example."))

	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- w.Run(ctx, nil) }()
	require.Eventually(t, w.running.Load, 5*time.Second, time.Millisecond)
	writeZone(t, dir, "w.example.yaml", zoneWithA("192.0.2.2"))
	require.Eventually(t, func() bool { return answerA(&set, "w.example.") == "192.0.2.2" }, 5*time.Second, 5*time.Millisecond)
	cancel()
	select {
	case err := <-done:
		require.NoError(t, err)
	case <-time.After(5 * time.Second):
		t.Fatal("Run did not stop")
	}
}

// Item 3: a zone file or import that leads outside the allowed directories
// is refused before it is read, so no error or log line quotes it.
func TestForeignFilesNotReadOrQuoted(t *testing.T) {
	base := t.TempDir()
	dir := filepath.Join(base, "zones")
	secrets := filepath.Join(base, "secrets")
	shared := filepath.Join(base, "shared")
	for _, d := range []string{dir, secrets, shared} {
		require.NoError(t, os.Mkdir(d, 0o755))
	}
	const secret = "SECRET-TOKEN-7f3a9c"
	token := filepath.Join(secrets, "api.token")
	require.NoError(t, os.WriteFile(token, []byte(secret+"\n"), 0o600))

	require.NoError(t, os.Symlink(token, filepath.Join(dir, "tok.example.yaml")))
	writeZone(t, dir, "rel.example.yaml", "import: ../secrets/api.token\n"+headNS)
	writeZone(t, dir, "abs.example.yaml", "import: "+token+"\n"+headNS)
	require.NoError(t, os.Symlink(token, filepath.Join(dir, "link.zone")))
	writeZone(t, dir, "viadir.example.yaml", "import: link.zone\n"+headNS)

	var set atomic.Pointer[Set]
	log, logs := newLog()
	w := NewWatcher(dir, &set, nil, log)
	err := w.Scan(true)
	require.Error(t, err)
	for _, zone := range []string{"tok", "rel", "abs", "viadir"} {
		require.Nil(t, set.Load().Zone(zone+".example."))
	}
	require.NotContains(t, err.Error(), secret)
	require.NotContains(t, logs.String(), secret)
	require.Equal(t, 4, strings.Count(err.Error(), "outside the allowed directories"), err.Error())
	for _, e := range Errors(err) {
		require.Regexp(t, `^[^:]+(:\d+:\d+)?: `, e.Error())
	}

	// Directories the configuration allows are fine, links into them too.
	require.NoError(t, os.WriteFile(filepath.Join(shared, "ok.zone"), []byte("www 60 IN A 192.0.2.9\n"), 0o644))
	require.NoError(t, os.Symlink(filepath.Join(shared, "ok.zone"), filepath.Join(dir, "shared.zone")))
	writeZone(t, dir, "okabs.example.yaml", "import: "+filepath.Join(shared, "ok.zone")+"\n"+headNS)
	writeZone(t, dir, "oklink.example.yaml", "import: shared.zone\n"+headNS)
	w.Limits.ImportDirs = []string{shared}
	_ = w.Scan(true)
	require.Equal(t, "192.0.2.9", answerA(&set, "okabs.example."))
	require.Equal(t, "192.0.2.9", answerA(&set, "oklink.example."))
	require.Nil(t, set.Load().Zone("tok.example."))
}

// Item 4: YAML aliases are refused with their position, so a small file
// cannot expand into millions of records.
func TestYAMLAliasesRefused(t *testing.T) {
	// Ten levels of ten aliases each: 10^10 records if expanded.
	var b strings.Builder
	b.WriteString(headNS)
	b.WriteString("  l0: &l0 {A: [192.0.2.1, 192.0.2.2, 192.0.2.3, 192.0.2.4]}\n")
	for i := 1; i <= 10; i++ {
		fmt.Fprintf(&b, "  l%d: &l%d [", i, i)
		for j := range 10 {
			if j > 0 {
				b.WriteString(", ")
			}
			fmt.Fprintf(&b, "*l%d", i-1)
		}
		b.WriteString("]\n")
	}
	b.WriteString("  www: {TXT: *l10}\n")
	start := time.Now()
	_, err := Compile("laugh.example.yaml", []byte(b.String()), "laugh.example.", time.Now(), nil)
	require.Error(t, err)
	require.EqualError(t, err, "laugh.example.yaml:5:12: yaml alias *l0: aliases (and merge keys) are not allowed in zone files; write the value out (101 aliases in the file)")
	require.Less(t, time.Since(start), 5*time.Second)

	// One alias is enough to be refused, even a harmless one.
	src := headNS + "  a: &x {A: [192.0.2.1]}\n  b: *x\n"
	_, err = Compile("one.example.yaml", []byte(src), "one.example.", time.Now(), nil)
	require.EqualError(t, err, "one.example.yaml:5:6: yaml alias *x: aliases (and merge keys) are not allowed in zone files; write the value out")
}

// versionZone is a zone whose content shows whether it is whole: n TXT
// names r<i> carry v=<v>, and the last line, end, says v and n.
func versionZone(v, n int) string {
	var b strings.Builder
	fmt.Fprintf(&b, "soa: {ns: a.example., mbox: b.example., serial: %d}\nrecords:\n  \"@\": {NS: [ns1.example.net.]}\n", v)
	for i := range n {
		fmt.Fprintf(&b, "  r%d: {TXT: [\"v=%d\"]}\n", i, v)
	}
	fmt.Fprintf(&b, "  end: {TXT: [\"v=%d n=%d\"]}\n", v, n)
	return b.String()
}

// wholeVersion checks z is a complete versionZone and returns its v and n.
func wholeVersion(z *Zone) (v, n int, err error) {
	origin := z.Origin
	end := z.Lookup("end."+origin, dns.TypeTXT, false, nil)
	if len(end.Answer) != 1 {
		return 0, 0, fmt.Errorf("no end marker (serial %d)", z.Serial)
	}
	if _, err := fmt.Sscanf(end.Answer[0].(*dns.TXT).Txt[0], "v=%d n=%d", &v, &n); err != nil {
		return 0, 0, err
	}
	for i := range n {
		a := z.Lookup(fmt.Sprintf("r%d.%s", i, origin), dns.TypeTXT, false, nil)
		if len(a.Answer) != 1 || a.Answer[0].(*dns.TXT).Txt[0] != fmt.Sprintf("v=%d", v) {
			return v, n, fmt.Errorf("v%d: r%d is missing or of another version", v, i)
		}
	}
	if z.Len() != n+3 { // SOA, NS, end
		return v, n, fmt.Errorf("v%d: %d records, want %d", v, z.Len(), n+3)
	}
	return v, n, nil
}

// published records every zone version the watcher publishes.
type published struct {
	mu   sync.Mutex
	sets []*Set
}

func (p *published) add(s *Set) { p.mu.Lock(); p.sets = append(p.sets, s); p.mu.Unlock() }
func (p *published) all() []*Set {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]*Set(nil), p.sets...)
}

// rewriteInPlace truncates path and writes body in chunks with pauses,
// as a slow cat >, scp or rsync --inplace does.
func rewriteInPlace(t testing.TB, path, body string, chunks []int, pause func(i int)) {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_TRUNC|os.O_CREATE, 0o644)
	require.NoError(t, err)
	off := 0
	for i, c := range chunks {
		end := min(off+c, len(body))
		if i == len(chunks)-1 {
			end = len(body)
		}
		_, err := f.WriteString(body[off:end])
		require.NoError(t, err)
		off = end
		if i < len(chunks)-1 {
			pause(i)
		}
	}
	require.NoError(t, f.Close())
}

// Item 5: a zone rewritten in place in two halves with a pause between them
// is never served half-written, even when the first half parses.
func TestHalfWrittenFileNotServed(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "half.example.yaml")
	writeZone(t, dir, "half.example.yaml", versionZone(1, 40))
	var set atomic.Pointer[Set]
	log, _ := newLog()
	w := NewWatcher(dir, &set, nil, log)
	w.Poll, w.Debounce = time.Hour, 20*time.Millisecond
	w.Settle = 600 * time.Millisecond
	var pub published
	w.OnChange = pub.add
	require.NoError(t, w.Scan(true))
	runWatcher(t, w, nil)

	body := versionZone(2, 40)
	half := strings.Index(body, "  r20:") // the first half parses: r0..r19, no end
	rewriteInPlace(t, path, body, []int{half, len(body)}, func(int) { time.Sleep(300 * time.Millisecond) })
	require.Eventually(t, func() bool {
		v, _, err := wholeVersion(set.Load().Zone("half.example."))
		return err == nil && v == 2
	}, 10*time.Second, 10*time.Millisecond)
	for _, s := range pub.all() {
		_, _, err := wholeVersion(s.Zone("half.example."))
		require.NoError(t, err, "a half-written file was served")
	}
}

// Item 6: a zone whose file is deleted keeps serving, with a WARN and
// geodns_zone_file_missing, until SIGHUP; rm && cp never blinks.
func TestDeletedZoneKeepsServing(t *testing.T) {
	dir := t.TempDir()
	writeZone(t, dir, "d.example.yaml", zoneWithA("192.0.2.1"))
	var set atomic.Pointer[Set]
	log, logs := newLog()
	m := NewMetrics(nil)
	w := NewWatcher(dir, &set, m, log)
	w.Poll, w.Debounce = time.Hour, 10*time.Millisecond
	var pub published
	w.OnChange = pub.add
	require.NoError(t, w.Scan(true))
	hup := make(chan os.Signal, 1)
	runWatcher(t, w, hup)

	require.NoError(t, os.Remove(filepath.Join(dir, "d.example.yaml")))
	require.Eventually(t, func() bool {
		for _, l := range strings.Split(logs.String(), "\n") {
			if strings.Contains(l, "zone=d.example.") && !strings.Contains(l, "zone loaded") {
				return true
			}
		}
		return false
	}, 5*time.Second, 5*time.Millisecond, "the watcher says nothing of the deletion")
	require.Equal(t, "192.0.2.1", answerA(&set, "d.example."), "a deleted file's zone keeps serving")
	require.Contains(t, logs.String(), "level=WARN msg=\"zone file is gone")
	require.Equal(t, 1.0, testutil.ToFloat64(m.missing.WithLabelValues("d.example.")))

	// rm && cp: back, and served, and no longer missing.
	writeZone(t, dir, "d.example.yaml", zoneWithA("192.0.2.2"))
	require.Eventually(t, func() bool { return answerA(&set, "d.example.") == "192.0.2.2" }, 5*time.Second, 5*time.Millisecond)
	require.Equal(t, 0, testutil.CollectAndCount(m.missing))
	for _, s := range pub.all() {
		require.NotNil(t, s.Zone("d.example."), "the zone was never dropped")
	}

	// Removed on purpose: gone, then SIGHUP.
	require.NoError(t, os.Remove(filepath.Join(dir, "d.example.yaml")))
	require.Eventually(t, func() bool { return testutil.ToFloat64(m.missing.WithLabelValues("d.example.")) == 1 }, 5*time.Second, 5*time.Millisecond)
	hup <- syscall.SIGHUP
	require.Eventually(t, func() bool { return set.Load().Zone("d.example.") == nil }, 5*time.Second, 5*time.Millisecond)
	require.Contains(t, logs.String(), "zone removed: its file is gone")
}

// MissingGrace removes a zone whose file stayed gone that long, on time:
// not at the next poll after it (30 s by default: a zone with
// zone_missing_grace: 3s was still served 8 s after its file went; the
// case with a poll of an hour failed so).
func TestMissingGrace(t *testing.T) {
	for _, poll := range []time.Duration{20 * time.Millisecond, time.Hour} {
		dir := t.TempDir()
		writeZone(t, dir, "g.example.yaml", zoneWithA("192.0.2.1"))
		var set atomic.Pointer[Set]
		log, _ := newLog()
		w := NewWatcher(dir, &set, nil, log)
		w.Poll, w.Debounce, w.MissingGrace = poll, 10*time.Millisecond, 200*time.Millisecond
		require.NoError(t, w.Scan(true))
		runWatcher(t, w, nil)
		gone := time.Now()
		require.NoError(t, os.Remove(filepath.Join(dir, "g.example.yaml")))
		require.Eventually(t, func() bool { return set.Load().Zone("g.example.") == nil }, 5*time.Second, 5*time.Millisecond, "poll %v", poll)
		require.GreaterOrEqual(t, time.Since(gone), 200*time.Millisecond)
	}
}

// TestMissingGraceFileBackBroken: a file that goes and comes back broken
// before its grace ends is no longer missing: the old version serves on,
// and the watcher does not wake for a grace that ended (the first version
// of the grace timer looked at such a zone forever: a core at 100 %).
func TestMissingGraceFileBackBroken(t *testing.T) {
	dir := t.TempDir()
	writeZone(t, dir, "g.example.yaml", zoneWithA("192.0.2.1"))
	var set atomic.Pointer[Set]
	log, _ := newLog()
	w := NewWatcher(dir, &set, nil, log)
	w.Poll, w.Debounce, w.MissingGrace = time.Hour, 10*time.Millisecond, 200*time.Millisecond
	require.NoError(t, w.Scan(true))
	runWatcher(t, w, nil)
	require.NoError(t, os.Remove(filepath.Join(dir, "g.example.yaml")))
	require.Eventually(t, func() bool {
		w.mu.Lock()
		defer w.mu.Unlock()
		return w.zones["g.example."] != nil && !w.zones["g.example."].missing.IsZero()
	}, 5*time.Second, 5*time.Millisecond)
	writeZone(t, dir, "g.example.yaml", "soa: [broken\n")
	time.Sleep(600 * time.Millisecond) // past the grace
	before := w.polls.Load()
	time.Sleep(500 * time.Millisecond)
	require.Less(t, w.polls.Load()-before, int64(5), "the watcher keeps looking at the zone's files")
	require.Equal(t, "192.0.2.1", answerA(&set, "g.example."), "its file is back: not removed; the broken edit is not served")
}

// bigZone writes a zone of n imported records.
func bigZone(t *testing.T, dir, name string, serial, n int) {
	t.Helper()
	var b strings.Builder
	for i := range n {
		fmt.Fprintf(&b, "h%d 60 IN A 192.0.%d.%d\n", i, i/256%256, i%256)
	}
	writeZone(t, dir, name+".zone", b.String())
	writeZone(t, dir, name+".yaml", fmt.Sprintf("import: %s.zone\nsoa: {ns: a.example., mbox: b.example., serial: %d}\nrecords: {\"@\": {NS: [ns1.example.net.]}}\n", name, serial))
}

// Item 7: while a big zone loads, an edit of a small one is served; the
// small zone's new version is published before the big one's.
func TestBigZoneDoesNotDelaySmallEdit(t *testing.T) {
	dir := t.TempDir()
	bigZone(t, dir, "big.example", 1, 10)
	writeZone(t, dir, "small.example.yaml", zoneWithA("192.0.2.1"))
	var set atomic.Pointer[Set]
	log, _ := newLog()
	w := NewWatcher(dir, &set, nil, log)
	w.Poll, w.Debounce = time.Hour, 20*time.Millisecond
	var pub published
	w.OnChange = pub.add
	require.NoError(t, w.Scan(true))
	runWatcher(t, w, nil)

	bigZone(t, dir, "big.example", 2, 200_000)
	writeZone(t, dir, "small.example.yaml", zoneWithA("192.0.2.2"))
	require.Eventually(t, func() bool { return set.Load().Zone("big.example.").Serial == 2 }, 60*time.Second, 10*time.Millisecond)
	require.Equal(t, "192.0.2.2", answerA(&set, "small.example."))
	for _, s := range pub.all() {
		if zoneA(s, "small.example.") == "192.0.2.2" {
			require.Equal(t, uint32(1), s.Zone("big.example.").Serial,
				"the small edit was published only with (or after) the big zone")
			return
		}
	}
	t.Fatal("the small edit was never published")
}

func zoneA(s *Set, zone string) string {
	var p atomic.Pointer[Set]
	p.Store(s)
	return answerA(&p, zone)
}

// Item 8: two files for one zone are an error naming both, logged; the
// version served keeps serving; at startup neither loads.
func TestOriginClash(t *testing.T) {
	dir := t.TempDir()
	writeZone(t, dir, "plain.test.yaml", zoneWithA("192.0.2.1"))
	var set atomic.Pointer[Set]
	log, logs := newLog()
	w := NewWatcher(dir, &set, nil, log)
	w.Poll, w.Debounce = time.Hour, 10*time.Millisecond
	require.NoError(t, w.Scan(true))
	runWatcher(t, w, nil)

	writeZone(t, dir, "PLAIN.TEST.yaml", zoneWithA("192.0.2.66"))
	upper, lower := filepath.Join(dir, "PLAIN.TEST.yaml"), filepath.Join(dir, "plain.test.yaml")
	require.Eventually(t, func() bool {
		l := logs.String()
		return strings.Contains(l, "level=ERROR") && strings.Contains(l, upper) && strings.Contains(l, lower)
	}, 5*time.Second, 5*time.Millisecond, "the clash is not logged naming both files")
	// An edit of the served file while the clash lasts is not loaded either.
	writeZone(t, dir, "plain.test.yaml", zoneWithA("192.0.2.2"))
	require.Eventually(t, func() bool { return strings.Count(logs.String(), upper) >= 2 }, 5*time.Second, 5*time.Millisecond)
	require.Equal(t, "192.0.2.1", answerA(&set, "plain.test."), "the later file took over")

	// A fresh start with both: an error naming both, and neither served.
	var set2 atomic.Pointer[Set]
	log2, logs2 := newLog()
	err := NewWatcher(dir, &set2, nil, log2).Scan(true)
	require.ErrorContains(t, err, "plain.test.yaml: zone plain.test. is also defined by "+upper)
	require.Contains(t, logs2.String(), "level=ERROR")
	require.Nil(t, set2.Load().Zone("plain.test."))

	// A directory that cannot be read is logged too.
	var set3 atomic.Pointer[Set]
	log3, logs3 := newLog()
	require.Error(t, NewWatcher(filepath.Join(dir, "nope"), &set3, nil, log3).Scan(true))
	require.Contains(t, logs3.String(), "level=ERROR")
}

// TestWatcherNoPartialZones rewrites a zone in place, over and over, in
// random-sized chunks with random pauses (shorter than Settle) within a
// file and random pauses between files; every version the watcher
// publishes must be a whole one. GEODNS_WATCH_ITERATIONS sets the number
// of rewrites (default 200; the run is 10000).
func TestWatcherNoPartialZones(t *testing.T) {
	iterations := 200
	if s := os.Getenv("GEODNS_WATCH_ITERATIONS"); s != "" {
		_, err := fmt.Sscan(s, &iterations)
		require.NoError(t, err)
	}
	dir := t.TempDir()
	path := filepath.Join(dir, "churn.example.yaml")
	writeZone(t, dir, "churn.example.yaml", versionZone(1, 10))
	var set atomic.Pointer[Set]
	log, logs := newLog()
	w := NewWatcher(dir, &set, nil, log)
	w.Poll, w.Debounce, w.Settle = time.Hour, 5*time.Millisecond, 30*time.Millisecond
	var (
		mu        sync.Mutex
		partial   []string
		versions  = map[int]bool{}
		published int
	)
	w.OnChange = func(s *Set) {
		z := s.Zone("churn.example.")
		v, _, err := wholeVersion(z)
		mu.Lock()
		defer mu.Unlock()
		published++
		versions[v] = true
		if err != nil {
			partial = append(partial, err.Error())
		}
	}
	require.NoError(t, w.Scan(true))
	runWatcher(t, w, nil)

	rng := rand.New(rand.NewPCG(1, uint64(time.Now().UnixNano())))
	start := time.Now()
	v := 1
	for range iterations {
		v++
		body := versionZone(v, 5+rng.IntN(116))
		var chunks []int
		for left := len(body); left > 0; {
			c := 1 + rng.IntN(max(1, len(body)/3))
			chunks = append(chunks, c)
			left -= c
		}
		rewriteInPlace(t, path, body, chunks, func(int) {
			switch r := rng.IntN(10); {
			case r < 6: // straight on
			case r < 9:
				time.Sleep(time.Duration(rng.IntN(500)) * time.Microsecond)
			default:
				time.Sleep(time.Millisecond + time.Duration(rng.IntN(1000))*time.Microsecond)
			}
		})
		time.Sleep(time.Duration(rng.IntN(60)) * time.Millisecond)
	}
	require.Eventually(t, func() bool {
		got, _, err := wholeVersion(set.Load().Zone("churn.example."))
		return err == nil && got == v
	}, 10*time.Second, 5*time.Millisecond, "the last version is served")
	mu.Lock()
	defer mu.Unlock()
	l := logs.String()
	t.Logf("%d in-place rewrites in %v: %d sets published, %d distinct versions served, %d partial; %d loads dropped as the file changed while read, %d failed to parse",
		iterations, time.Since(start).Round(time.Millisecond), published, len(versions), len(partial),
		strings.Count(l, "changed while it was read"), strings.Count(l, "zone not loaded"))
	for _, line := range strings.Split(l, "\n") {
		if strings.Contains(line, "zone not loaded") {
			t.Log(line) // a load that read a file mid-write, caught by its parse
		}
	}
	require.Empty(t, partial, "partial zones were served")
	require.Greater(t, len(versions), 1)
}

// A few hundred bytes of master file that make millions of records: a
// $GENERATE per line (65,536 records each), or an $INCLUDE tree whose
// levels each include the next several times under origins of their own.
// Before, the byte cap was per file and nothing counted records: the
// loads grew past gigabytes. Now the records and the bytes of an import
// with its includes are capped together, and the load fails at once.
func TestRecordBombsRefused(t *testing.T) {
	dir := t.TempDir()
	var gen strings.Builder
	for i := range 100 {
		fmt.Fprintf(&gen, "$GENERATE 0-65535 g%d-$ A 192.0.2.1\n", i)
	}
	writeZone(t, dir, "gen.zone", gen.String())
	writeZone(t, dir, "gen.example.yaml", "import: gen.zone\n"+headNS)

	// Six levels of three includes, 1,000 records per leaf: 729,000.
	writeZone(t, dir, "l6.inc", genLines(1000))
	for lvl := 5; lvl >= 0; lvl-- {
		var b strings.Builder
		for j := range 3 {
			fmt.Fprintf(&b, "$INCLUDE l%d.inc o%d\n", lvl+1, j)
		}
		writeZone(t, dir, fmt.Sprintf("l%d.inc", lvl), b.String())
	}
	writeZone(t, dir, "tree.example.yaml", "import: l0.inc\n"+headNS)

	l := Limits{MaxRecords: 100_000}
	for _, name := range []string{"gen.example.yaml", "tree.example.yaml"} {
		start := time.Now()
		done := make(chan error, 1)
		go func() { _, err := l.Load(filepath.Join(dir, name), nil); done <- err }()
		var err error
		select {
		case err = <-done:
		case <-time.After(20 * time.Second):
			t.Fatalf("loading %s did not return", name)
		}
		require.ErrorContains(t, err, name+":1:9: import: ")
		require.ErrorContains(t, err, "more than 100000 records, with its $INCLUDEs and $GENERATEs (zone_max_records); not loaded")
		t.Logf("%s: refused after %v", name, time.Since(start).Round(time.Millisecond))
	}

	// Under the cap, the tree loads: 729,000 records with the default.
	z, err := Limits{}.Load(filepath.Join(dir, "tree.example.yaml"), nil)
	require.NoError(t, err)
	require.Len(t, z.Lookup("r999.o2.o2.o2.o2.o2.o2.tree.example.", dns.TypeA, false, nil).Answer, 1)

	// The includes share the import's byte budget: 3^6 leaves of 20 KB
	// read 15 MB, over a cap each file alone is far under.
	l = Limits{MaxFileSize: 1 << 20}
	_, err = l.Load(filepath.Join(dir, "tree.example.yaml"), nil)
	require.ErrorContains(t, err, "zone_max_file_size")
}

// genLines is n A records r0..r<n-1>, relative to the current origin.
func genLines(n int) string {
	var b strings.Builder
	for i := range n {
		fmt.Fprintf(&b, "r%d 60 A 192.0.2.1\n", i)
	}
	return b.String()
}

// An import file of NUL bytes (a crash mid-deploy): before, the parser
// quoted the whole run in its error, 4x escaped, and a regexp then ran
// over it: 10 MB took 6 s and 300 MB. Now it fails at once, with where
// the run starts.
func TestBinaryImportFailsFast(t *testing.T) {
	dir := t.TempDir()
	writeZone(t, dir, "nul.zone", "www 60 A 192.0.2.1\n"+strings.Repeat("\x00", 10<<20))
	writeZone(t, dir, "nul.example.yaml", "import: nul.zone\n"+headNS)
	writeZone(t, dir, "inc.zone", "www 60 A 192.0.2.1\n$INCLUDE nul.zone sub\n")
	writeZone(t, dir, "inc.example.yaml", "import: inc.zone\n"+headNS)
	for _, name := range []string{"nul.example.yaml", "inc.example.yaml"} {
		start := time.Now()
		err := loadWithin(t, filepath.Join(dir, name))
		require.ErrorContains(t, err, "nul.zone:2:1: a token of over 262144 bytes without a blank or line break: not a master file (binary or corrupt?)")
		require.Less(t, len(err.Error()), 1000, "the error quotes nothing of the file")
		t.Logf("%s: %v after %v", name, err, time.Since(start).Round(time.Millisecond))
	}

	// 300 MB of them (sparse: no disk): the name table was sized from the
	// file's size before a byte was read, 460 MB.
	f, err := os.Create(filepath.Join(dir, "nul.zone"))
	require.NoError(t, err)
	require.NoError(t, f.Truncate(300<<20))
	require.NoError(t, f.Close())
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	err = loadWithin(t, filepath.Join(dir, "nul.example.yaml"))
	runtime.ReadMemStats(&after)
	require.ErrorContains(t, err, "nul.zone:1:1: a token of over 262144 bytes")
	t.Logf("300 MB of NULs: %d MB allocated", (after.TotalAlloc-before.TotalAlloc)>>20)
	require.Less(t, after.TotalAlloc-before.TotalAlloc, uint64(128<<20))
}

// TestRecordBombsDoNotHoldEverySlot: as many zones as there are load slots,
// each a few lines of $GENERATE that fill zone_max_records, are loading
// while another zone is edited: the edit loads at once, as the bombs move
// to the lane of big loads. Before, they held every slot until refused.
func TestRecordBombsDoNotHoldEverySlot(t *testing.T) {
	dir := t.TempDir()
	writeZone(t, dir, "small.example.yaml", zoneWithA("192.0.2.1"))
	var set atomic.Pointer[Set]
	log, logged := newLog()
	w := NewWatcher(dir, &set, nil, log)
	w.Poll, w.Debounce, w.Workers = time.Hour, 20*time.Millisecond, 2
	w.Limits.MaxRecords = 1_500_000
	require.NoError(t, w.Scan(true))
	runWatcher(t, w, nil)

	var gen strings.Builder
	for i := range 30 {
		fmt.Fprintf(&gen, "$GENERATE 0-65535 g%d-$ A 192.0.2.1\n", i)
	}
	for i := range 2 {
		writeZone(t, dir, fmt.Sprintf("bomb%d.zone", i), gen.String())
		writeZone(t, dir, fmt.Sprintf("bomb%d.example.yaml", i), fmt.Sprintf("import: bomb%d.zone\n", i)+headNS)
	}
	time.Sleep(300 * time.Millisecond) // both bombs loading
	start := time.Now()
	writeZone(t, dir, "small.example.yaml", zoneWithA("192.0.2.2"))
	require.Eventually(t, func() bool { return answerA(&set, "small.example.") == "192.0.2.2" }, 30*time.Second, 10*time.Millisecond)
	refused := strings.Count(logged.String(), "(zone_max_records)")
	t.Logf("the edit loaded after %v, beside two loads of 1.5M records (%d of them refused by then)", time.Since(start).Round(time.Millisecond), refused)
	// Not a time limit (a busy machine stretches every load): the edit must
	// not have waited for a slot a bomb held, so no bomb is done before it.
	require.Zero(t, refused, "the edit waited for a bomb's load to end")
}
