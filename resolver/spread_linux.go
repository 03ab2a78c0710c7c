//go:build linux

package resolver

import (
	"net"
	"syscall"

	"golang.org/x/sys/unix"
)

// The kernel picks a socket of a SO_REUSEPORT group by a hash of the
// datagram's addresses and ports, so one client address and port always
// lands on the same socket. An authoritative server hears most of its
// queries from a few large resolvers, and a load generator from a few
// sockets (dnsperf -c 8): with two sockets the split came out anywhere
// from 4:4 to 8:0 client sockets, measured at 74:26 % of the queries in
// one run. The busy reader then saturates its core while the other one
// wakes for a few queries at a time, each wake-up a context switch for
// fewer answers (7 queries a read against 15 on the busy socket): the
// two-core runs paid for it in QPS and in CPU per query, by a different
// amount each run.
//
// A classic BPF program attached to the group picks the socket itself:
// a random one per datagram, so every socket gets an even share of every
// client (UDP DNS has no order to keep between datagrams). Random rather
// than the receiving CPU (SKF_AD_CPU): a NIC with one queue delivers
// everything on one CPU, and steering by CPU would then put it all on one
// socket.

// Ancillary loads of classic BPF (linux/filter.h), not in x/sys/unix.
const (
	skfAdOff    = -0x1000
	skfAdRandom = 56
	// skfAdRandomLoad is the offset of the random load, SKF_AD_OFF +
	// SKF_AD_RANDOM as the unsigned 32 bits the instruction holds.
	skfAdRandomLoad = uint32(1<<32 + skfAdOff + skfAdRandom)
)

// steerRandom returns the program: A = a random number; A %= n; return A.
func steerRandom(n int) []unix.SockFilter {
	return []unix.SockFilter{
		{Code: unix.BPF_LD | unix.BPF_W | unix.BPF_ABS, K: skfAdRandomLoad},
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
	prog := steerRandom(n)
	var serr error
	err = rc.Control(func(fd uintptr) {
		serr = unix.SetsockoptSockFprog(int(fd), unix.SOL_SOCKET, unix.SO_ATTACH_REUSEPORT_CBPF,
			&unix.SockFprog{Len: uint16(len(prog)), Filter: &prog[0]})
	})
	return err == nil && serr == nil
}
