package main

import (
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/miekg/dns"
	"github.com/stretchr/testify/require"
)

// flappingBackend answers 200 and 503 in turns of period, and records the
// outcome of every request (every probe).
type flappingBackend struct {
	mu       sync.Mutex
	outcomes []bool
	start    time.Time
	period   time.Duration
}

func (f *flappingBackend) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	up := (time.Since(f.start)/f.period)%2 == 0
	f.mu.Lock()
	f.outcomes = append(f.outcomes, up)
	f.mu.Unlock()
	if !up {
		w.WriteHeader(http.StatusServiceUnavailable)
		return
	}
	fmt.Fprint(w, "ok")
}

func serveOn(t *testing.T, ip string, h http.Handler) string {
	t.Helper()
	ln, err := net.Listen("tcp", ip+":0")
	require.NoError(t, err)
	srv := &http.Server{Handler: h}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return ln.Addr().String()
}

// riseFall replays outcomes through the rise/fall state machine (starting
// up) and returns how many state changes it makes.
func riseFall(outcomes []bool, rise, fall int) int {
	up, succ, fails, changes := true, 0, 0, 0
	for _, ok := range outcomes {
		if ok {
			succ, fails = succ+1, 0
			if !up && succ >= rise {
				up, changes = true, changes+1
			}
		} else {
			fails, succ = fails+1, 0
			if up && fails >= fall {
				up, changes = false, changes+1
			}
		}
	}
	return changes
}

// TestFlapResistance: a backend toggling every 400 ms must not move
// clients more often than rise/fall allow.
func TestFlapResistance(t *testing.T) {
	files := realDB(t)
	flap := &flappingBackend{start: time.Now(), period: 400 * time.Millisecond}
	east := serveOn(t, "127.0.0.2", flap)
	west := serveOn(t, "127.0.0.3", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { fmt.Fprint(w, "ok") }))
	zdir := t.TempDir()
	require.NoError(t, os.WriteFile(filepath.Join(zdir, "example.com.yaml"), []byte(chaosZone(east, west)), 0o644))
	server, _ := startGeodns(t, zdir, "example.com.", "--geoip", files[0], "--geoip", files[1])
	c := &dns.Client{Timeout: time.Second}

	const duration = 12 * time.Second
	changes, samples, last := 0, 0, ""
	for end := time.Now().Add(duration); time.Now().Before(end); time.Sleep(25 * time.Millisecond) {
		got, _ := answers(t, c, server, eastClients[:1])
		require.NotEqual(t, "error", got[0])
		if last != "" && got[0] != last {
			changes++
		}
		last = got[0]
		samples++
	}
	flap.mu.Lock()
	outcomes := append([]bool(nil), flap.outcomes...)
	flap.mu.Unlock()
	naive := 0
	for i := 1; i < len(outcomes); i++ {
		if outcomes[i] != outcomes[i-1] {
			naive++
		}
	}
	model := riseFall(outcomes, 3, 2)
	toggles := int(duration / flap.period)
	t.Logf("%v: backend toggled %d times, probed %d times; a checker without rise/fall would change the answer %d times; "+
		"rise 3/fall 2 allow %d; answers changed %d times (%d samples)", duration, toggles, len(outcomes), naive, model, changes, samples)
	require.GreaterOrEqual(t, len(outcomes), 10)
	require.LessOrEqual(t, changes, model, "no more answer changes than rise/fall transitions")
	require.GreaterOrEqual(t, changes, model-1, "answers follow the health state (the last change may fall after the end)")
	require.Less(t, changes, naive)
}
