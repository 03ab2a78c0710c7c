//go:build linux

package resolver

import (
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"
)

// The kernel picks a socket of a SO_REUSEPORT group by a hash of the
// datagram's addresses and ports. A classic BPF program attached to the
// group picks it instead: the socket numbered after the CPU that received
// the datagram (its number modulo the sockets). The reader woken is then
// the one the scheduler keeps near that CPU, and a burst from one client
// socket stays with one reader, which reads it in fewer, larger batches.
//
// Measured for issue 23 (two sockets, dnsperf -T 2 on the server's two
// CPUs, three alternating runs, counts per 1000 queries): by CPU 22-32
// queries a read against 14-18 by hash, 28-42 context switches against
// 47-54, 2.1-2.5 ms of server CPU against 2.5-3.1. A random socket per
// datagram (SKF_AD_RANDOM) balanced the sockets perfectly but woke both
// readers for every burst: 13-19 queries a read, no gain.
//
// The cost: a NIC with a single receive queue and no RPS delivers every
// datagram on one CPU, and all of them then go to one socket and one
// reader, where the hash would have spread them by client. So the program
// is attached only where datagrams arrive on enough CPUs (steerable): on
// loopback (a datagram is received on its sender's CPU), or where every
// interface the socket listens on has a receive queue per socket or RPS
// on. (Knot leaves the same choice to its operator: socket-affinity.)

// Ancillary loads of classic BPF (linux/filter.h), not in x/sys/unix.
const (
	skfAdOff = -0x1000
	skfAdCPU = 36
	// skfAdCPULoad is SKF_AD_OFF + SKF_AD_CPU as the unsigned 32 bits of
	// the instruction: A = the number of the CPU running the program.
	skfAdCPULoad = uint32(1<<32 + skfAdOff + skfAdCPU)
)

// steerByCPU returns the program: A = CPU; A %= n; return A.
func steerByCPU(n int) []unix.SockFilter {
	return []unix.SockFilter{
		{Code: unix.BPF_LD | unix.BPF_W | unix.BPF_ABS, K: skfAdCPULoad},
		{Code: unix.BPF_ALU | unix.BPF_MOD | unix.BPF_K, K: uint32(n)},
		{Code: unix.BPF_RET | unix.BPF_A},
	}
}

// spread attaches the program to pc's SO_REUSEPORT group of n sockets
// (one socket of the group carries it for all). It reports whether the
// kernel took it; if not, the kernel's hash stays in use.
func spread(pc net.PacketConn, n int) bool {
	sc, ok := pc.(syscall.Conn)
	if !ok {
		return false
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return false
	}
	prog := steerByCPU(n)
	var serr error
	err = rc.Control(func(fd uintptr) {
		serr = unix.SetsockoptSockFprog(int(fd), unix.SOL_SOCKET, unix.SO_ATTACH_REUSEPORT_CBPF,
			&unix.SockFprog{Len: uint16(len(prog)), Filter: &prog[0]})
	})
	return err == nil && serr == nil
}

// steerable reports whether datagrams to a socket bound to ip arrive on
// enough CPUs for steering by CPU to use all n sockets (see above).
func steerable(ip netip.Addr, n int) bool {
	if ip.IsLoopback() {
		return true
	}
	ifs, err := net.Interfaces()
	if err != nil {
		return false
	}
	for _, ifc := range ifs {
		if ifc.Flags&net.FlagUp == 0 || ifc.Flags&net.FlagLoopback != 0 {
			continue
		}
		if !ip.IsUnspecified() && !hasAddr(ifc, ip) {
			continue
		}
		if !spreadsRx(filepath.Join("/sys/class/net", ifc.Name), n) {
			return false
		}
	}
	return true
}

func hasAddr(ifc net.Interface, ip netip.Addr) bool {
	addrs, _ := ifc.Addrs()
	for _, a := range addrs {
		if p, err := netip.ParsePrefix(a.String()); err == nil && p.Addr().Unmap() == ip.Unmap() {
			return true
		}
	}
	return false
}

// spreadsRx reports whether the interface at dir (its sysfs directory)
// receives on n CPUs or more: n receive queues, or RPS on a queue.
func spreadsRx(dir string, n int) bool {
	qs, _ := filepath.Glob(filepath.Join(dir, "queues", "rx-*"))
	if len(qs) >= n {
		return true
	}
	for _, q := range qs {
		b, _ := os.ReadFile(filepath.Join(q, "rps_cpus"))
		if strings.Trim(strings.TrimSpace(string(b)), "0,") != "" {
			return true
		}
	}
	return false
}
