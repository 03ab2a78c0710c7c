package resolver

import (
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"runtime"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"
)

// TestUDPSpreadByCPU: a datagram sent from a thread pinned to CPU c
// reaches socket c modulo the sockets of the listener's SO_REUSEPORT
// group (over loopback the sending CPU receives it), whatever the
// client's port. The kernel's hash alone puts a client's datagrams on one
// socket whichever CPU sends them.
func TestUDPSpreadByCPU(t *testing.T) {
	const sockets, each = 2, 40
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(sockets)) // Listen opens one socket per P
	l, err := Listen("127.0.0.1:0")
	require.NoError(t, err)
	defer l.Close()
	socks := l.udpSockets()
	require.Len(t, socks, sockets)

	var allowed unix.CPUSet
	require.NoError(t, unix.SchedGetaffinity(0, &allowed))
	var cpus []int
	for c := 0; c < 1024 && len(cpus) < 4; c++ {
		if allowed.IsSet(c) {
			cpus = append(cpus, c)
		}
	}
	require.NotEmpty(t, cpus)

	// One client socket for every CPU: only the CPU tells them apart.
	c, err := net.Dial("udp", l.Addr())
	require.NoError(t, err)
	defer c.Close()
	buf := make([]byte, 64)
	for _, cpu := range cpus {
		sendFrom(t, cpu, c, each)
		got := make([]int, len(socks))
		total := 0
		for deadline := time.Now().Add(10 * time.Second); total < each && time.Now().Before(deadline); {
			for i, pc := range socks {
				require.NoError(t, pc.SetReadDeadline(time.Now().Add(20*time.Millisecond)))
				for {
					if _, _, err := pc.ReadFrom(buf); err != nil {
						break // empty for now
					}
					got[i]++
					total++
				}
			}
		}
		want := make([]int, len(socks))
		want[cpu%sockets] = each
		require.Equal(t, want, got, "sent from CPU %d", cpu)
	}
}

// sendFrom sends n datagrams on c from a thread pinned to cpu.
func sendFrom(t *testing.T, cpu int, c net.Conn, n int) {
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread() // the thread exits with the goroutine, pinned
		var set unix.CPUSet
		set.Set(cpu)
		if err := unix.SchedSetaffinity(0, &set); err != nil {
			errc <- err
			return
		}
		for i := range n {
			if _, err := c.Write([]byte{byte(i)}); err != nil {
				errc <- err
				return
			}
		}
		errc <- nil
	}()
	require.NoError(t, <-errc)
}

// TestSteerable: steering by CPU is used only where datagrams arrive on
// enough CPUs: loopback, or interfaces with a receive queue per socket or
// RPS on (a single-queue NIC would send every datagram to one reader).
func TestSteerable(t *testing.T) {
	require.True(t, steerable(netip.MustParseAddr("127.0.0.1"), 2))
	require.True(t, steerable(netip.MustParseAddr("::1"), 2))
	iface := func(queues int, rps string) string {
		dir := t.TempDir()
		for q := range queues {
			qd := filepath.Join(dir, "queues", fmt.Sprintf("rx-%d", q))
			require.NoError(t, os.MkdirAll(qd, 0o755))
			require.NoError(t, os.WriteFile(filepath.Join(qd, "rps_cpus"), []byte(rps+"\n"), 0o644))
		}
		return dir
	}
	require.False(t, spreadsRx(iface(1, "0"), 2), "one queue, no RPS")
	require.False(t, spreadsRx(iface(1, "00000000,00000000"), 2), "one queue, an empty RPS mask")
	require.True(t, spreadsRx(iface(2, "0"), 2), "a queue per socket")
	require.False(t, spreadsRx(iface(2, "0"), 4), "fewer queues than sockets")
	require.True(t, spreadsRx(iface(1, "3"), 2), "RPS over CPUs 0-1")
}
