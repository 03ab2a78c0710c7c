package main

import (
	"os"
	"path/filepath"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/miekg/dns"
	"github.com/stretchr/testify/require"
)

// TestGracefulShutdown: SIGTERM while clients are mid-conversation stops
// the listeners, lets the server exit 0 within seconds, and leaves the
// health state written.
func TestGracefulShutdown(t *testing.T) {
	zdir, state := t.TempDir(), t.TempDir()
	staticExample(t, zdir)
	addr, log := startGeodns(t, zdir, "example.com.", "--state-dir", state)
	v, _ := servers.Load(addr)
	p := v.(*process)

	var answered atomic.Int64
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() { // one TCP client, querying on one connection until the server goes
		defer close(done)
		conn, err := dns.Dial("tcp", addr)
		if err != nil {
			return
		}
		defer conn.Close()
		for {
			select {
			case <-stop:
				return
			default:
			}
			conn.SetDeadline(time.Now().Add(2 * time.Second))
			if conn.WriteMsg(question("www.example.com.", dns.TypeA)) != nil {
				return
			}
			if _, err := conn.ReadMsg(); err != nil {
				return
			}
			answered.Add(1)
		}
	}()
	require.Eventually(t, func() bool { return answered.Load() > 100 }, 5*time.Second, 10*time.Millisecond)
	require.NoError(t, p.cmd.Process.Signal(syscall.SIGTERM))
	sent := time.Now()
	select {
	case <-p.done:
	case <-time.After(10 * time.Second):
		t.Fatal("geodns did not exit within 10 s of SIGTERM")
	}
	close(stop)
	<-done
	took := time.Since(sent)
	require.Equal(t, 0, p.cmd.ProcessState.ExitCode())
	require.Contains(t, log.String(), `msg=stopped`)
	_, err := os.Stat(filepath.Join(state, "health.json"))
	require.NoError(t, err, "the health state is on disk")
	_, _, err = (&dns.Client{Timeout: 300 * time.Millisecond}).Exchange(question("www.example.com.", dns.TypeA), addr)
	require.Error(t, err, "nothing answers after the exit")
	t.Logf("SIGTERM after %d answers on one TCP connection: exit 0 in %v", answered.Load(), took.Round(time.Millisecond))
}
