package xfr

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/geodns/geodns/dnssec"
	"github.com/geodns/geodns/resolver"
	"github.com/geodns/geodns/route"
	"github.com/geodns/geodns/zones"
	"github.com/stretchr/testify/require"
)

// TestRevBigSignedUpdate (REV_PERF=1): how long one update (Run's
// loop, which builds every zone's view and sends NOTIFY) takes for a
// signed zone of 100k records: first build, a SIGHUP-like reload of the
// same content, and a window move.
func TestRevBigSignedUpdate(t *testing.T) {
	if os.Getenv("REV_PERF") == "" {
		t.Skip("REV_PERF")
	}
	dir := t.TempDir()
	var b strings.Builder
	n := 100000
	if v, err := strconv.Atoi(os.Getenv("REV_PERF")); err == nil && v > 1 {
		n = v
	}
	for i := range n {
		fmt.Fprintf(&b, "h%d 60 IN A 10.%d.%d.%d\n", i, i>>16, i>>8&255, i&255)
	}
	require.NoError(t, os.WriteFile(filepath.Join(dir, "big.zone"), []byte(b.String()), 0o644))
	src := "origin: big.test.\nimport: big.zone\nsoa: {ns: ns1.big.test., mbox: h.big.test., serial: 1}\ntransfer: {allow: [127.0.0.2/32]}\nrecords: {\"@\": {NS: [ns1.example.net.]}}\ndnssec: {}\n"
	file := filepath.Join(dir, "big.test.yaml")
	require.NoError(t, os.WriteFile(file, []byte(src), 0o644))
	compile := func(prev *zones.Zone) *zones.Zone {
		z, err := zones.Compile(file, []byte(src), "big.test.", time.Unix(1000, 0), prev)
		require.NoError(t, err)
		return z
	}
	var set atomicSet
	z := compile(nil)
	set.Store(zones.NewSet(z))
	c := &clock{t: time.Now()}
	m := dnssec.NewManager(dnssec.Options{Store: dnssec.Store{Dir: t.TempDir()}, Now: c.now})
	require.NoError(t, m.Sync([]dnssec.ZoneConfig{{Origin: "big.test."}}))
	stateDir := t.TempDir()
	s, err := New(Options{Zones: &set.Pointer, Inner: resolver.NewHandler(&set.Pointer, &route.Router{}, resolver.Config{}, nil), Signer: m, StateDir: stateDir})
	require.NoError(t, err)
	ctx := context.Background()
	timed := func(what string) {
		start := time.Now()
		s.update(ctx)
		sr, _ := s.Serial("big.test.")
		fi, _ := os.Stat(filepath.Join(stateDir, "xfr.json"))
		t.Logf("%s: %v (serial %d, %d records; xfr.json %d bytes)", what, time.Since(start), sr, len((*s.views.Load())["big.test."].rrs), fi.Size())
	}
	timed("first build")
	set.Store(set.Load().With(compile(z)))
	timed("reload, same content")
	start := time.Now()
	for range 1000 {
		s.resign(set.Load(), *s.views.Load())
	}
	t.Logf("resign check: %v", time.Since(start)/1000)
	c.add(8 * 24 * time.Hour)
	timed("window move")
	c.add(8 * 24 * time.Hour)
	timed("window move 2")
	c.add(8 * 24 * time.Hour)
	timed("window move 3")
}

type atomicSet struct{ Pointer atomic.Pointer[zones.Set] }

func (a *atomicSet) Store(s *zones.Set) { a.Pointer.Store(s) }
func (a *atomicSet) Load() *zones.Set   { return a.Pointer.Load() }
