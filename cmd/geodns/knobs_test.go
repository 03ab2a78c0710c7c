package main

import (
	"os"
	"path/filepath"
	"runtime/debug"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// TestLoadingGC: compiles raise GOGC while any runs and put back what was
// set before; a higher setting, or the collector off, is left alone.
func TestLoadingGC(t *testing.T) {
	prev := debug.SetGCPercent(100)
	defer debug.SetGCPercent(prev)
	done1 := loadingGC()
	done2 := loadingGC()
	require.Equal(t, loadGCPercent, debug.SetGCPercent(loadGCPercent))
	done1()
	require.Equal(t, loadGCPercent, debug.SetGCPercent(loadGCPercent), "one compile still runs")
	done2()
	require.Equal(t, 100, debug.SetGCPercent(100))

	for _, setting := range []int{-1, 400} {
		debug.SetGCPercent(setting)
		done := loadingGC()
		require.Equal(t, setting, debug.SetGCPercent(setting))
		done()
		require.Equal(t, setting, debug.SetGCPercent(setting))
	}
}

// TestServeSetsReaderProcs: the server (not the resolver package) gives
// each UDP reader and TCP event loop a P: with GOMAXPROCS=3 it binds three
// UDP sockets on its one listen address, runs three loops, and so runs with
// nine Ps; and GOGC is back to its setting once the zones have loaded.
func TestServeSetsReaderProcs(t *testing.T) {
	t.Setenv("GOMAXPROCS", "3") // the server's, started below
	dir := t.TempDir()
	require.NoError(t, os.WriteFile(filepath.Join(dir, "example.com.yaml"),
		[]byte("soa: {ns: ns1.example.com., mbox: hostmaster.example.com.}\nrecords:\n  \"@\": {NS: [ns1.example.com.]}\n"), 0o644))
	httpAddr := freeLoopback(t, "127.0.0.1")
	startGeodns(t, dir, "example.com.", "--http", httpAddr)
	var body string
	require.Eventually(t, func() bool {
		code, b := call(t, "GET", "http://"+httpAddr+"/metrics", "")
		body = b
		return code == 200
	}, 5*time.Second, 50*time.Millisecond)
	require.Equal(t, "go_sched_gomaxprocs_threads 9", grepLine(body, "go_sched_gomaxprocs_threads "), "3 + a P for each of 3 UDP readers and 3 TCP loops")
	require.Equal(t, "go_gc_gogc_percent 100", grepLine(body, "go_gc_gogc_percent "))
}

func grepLine(s, prefix string) string {
	for _, l := range strings.Split(s, "\n") {
		if strings.HasPrefix(l, prefix) {
			return l
		}
	}
	return ""
}
