//go:build linux

package resolver

import (
	"errors"
	"log/slog"
	"net"
	"net/netip"
	"runtime"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// On Linux each UDP socket is read as C servers read theirs: a thread of
// its own blocks in recvmmsg (MSG_WAITFORONE: it returns as soon as one
// query is there, with whatever else is queued), answers the batch, and
// sends it with one sendmmsg. The kernel wakes that thread directly.
//
// Two things kept this from being as cheap as in C, each costing a thread
// switch or two per query at moderate rates: sysmon takes a P blocked in a
// system call away after 20 us, and hands it to another thread, unless a
// P is idle; and the Go connection's descriptor, in the netpoller's epoll
// set, woke an idle thread for every datagram. So the program adds one P
// per reader (ServeOptions.ReaderProcs; one stays idle for the rest of
// the program), and the reader closes the Go connection once it has its
// own descriptor.
//
// (Raw system calls, which keep the P during the wait, were cheaper still
// but left goroutines queued on the reader's P waiting for its timeout:
// TCP answers stalled, and a stop-the-world waited on the reader.)
//
// What is left of the runtime's cost, profiled with two readers on two
// CPUs shared with dnsperf (issue 23; perf record -e cpu-clock, uprobes on
// the scheduler; the VM's context switch is the dearest thing there, 30-40
// % of the samples in both geodns and gdnsd): 90 % of the server's CPU is
// in the kernel, as in gdnsd (sendmmsg 57 %, recvmmsg 23-28 % in both);
// answering is 5 %; sysmon's wake-ups (4-10 %) and the yields below (4-8
// %: each wakes a spinning thread for the idle P, which finds nothing and
// sleeps: 6-8 futex calls per 1000 queries) are what gdnsd does not
// pay. Sysmon wakes 100 times a second at best (the readers' Ps are never
// all idle), and 50 times 20 us apart after each P it takes back from
// a reader whose tick went stale for 10 ms (a reader descheduled or
// waiting that long: 1-8 times a second under load). Yielding every 1 ms
// instead of 5 stops those retakes but makes 2.5-3x the futex calls; a short
// receive timeout while busy did not make the stale ticks rarer (the
// thread waits for a CPU, not for a query); neither was a net gain.
// Nor was a reuseport BPF program sending each datagram to a random
// socket (it woke both readers for every burst). What did cut the context
// switches is sending each datagram to the socket of the CPU that
// received it (spread_linux.go): bigger batches, fewer wake-ups.
// Prometheus counters (0.2 %) and the GC (the path does not allocate) are
// not in the profile.

// readersHoldProcs: each reader gets a P of its own (see above).
const readersHoldProcs = true

// mmsghdr is struct mmsghdr.
type mmsghdr struct {
	hdr unix.Msghdr
	n   uint32
	_   [4]byte
}

// rcvTimeout bounds a blocked read: a backstop, should the shutdown that
// wakes a stopping reader not. It is long on purpose: each time a read
// outlasts 10 ms, sysmon takes the reader's P away, and then polls every
// 20 us, backing off to 10 ms over about a second. A 10 ms timeout kept it
// doing that all the time (5,000 wake-ups a second in a server that
// probes endpoints); 1 s still kept it near half of that with two readers.
const rcvTimeoutSec = 60

// yieldEvery is how often a busy reader passes through the scheduler; it
// must stay below sysmon's 10 ms preemption slice (see serveUDP).
const yieldEvery = 5 * time.Millisecond

// serveUDP answers queries on c until stopped is closed.
func serveUDP(c *net.UDPConn, h WireHandler, log *slog.Logger, stopped <-chan struct{}) {
	raw, err := c.SyscallConn()
	if err != nil {
		log.Error("UDP socket: falling back to the netpoller", "error", err)
		servePolled(c, h, log)
		return
	}
	fd := -1
	var derr error
	raw.Control(func(f uintptr) { fd, derr = unix.Dup(int(f)) })
	if derr == nil {
		// The duplicate shares the socket (and its flags): reads through the
		// Go connection are not made any more, so blocking mode is safe.
		derr = errors.Join(unix.SetNonblock(fd, false),
			unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &unix.Timeval{Sec: rcvTimeoutSec}))
	}
	if derr != nil {
		if fd >= 0 {
			unix.Close(fd)
		}
		log.Error("UDP socket: falling back to the netpoller", "error", derr)
		servePolled(c, h, log)
		return
	}
	// A shutdown wakes the blocked read at once (recvmmsg returns nothing).
	// The descriptor is closed only after it, so that the shutdown cannot
	// hit a descriptor number reused by then.
	woken := make(chan struct{})
	go func() {
		<-stopped
		unix.Shutdown(fd, unix.SHUT_RD)
		close(woken)
	}()
	defer func() {
		<-woken
		unix.Close(fd)
	}()
	// The Go connection's descriptor is registered with the netpoller's
	// epoll, which would wake an idle thread for every datagram the reader
	// takes. Closed, it leaves the epoll set; the duplicate keeps the socket.
	c.Close()

	var (
		in    [udpBatch]mmsghdr
		out   [udpBatch]mmsghdr
		names [udpBatch]unix.RawSockaddrInet6
		inIov [udpBatch]unix.Iovec
		oIov  [udpBatch]unix.Iovec
		bufs  [udpBatch][]byte
		resps [udpBatch][]byte
	)
	for i := range in {
		bufs[i] = make([]byte, maxUDPQuery)
		resps[i] = make([]byte, 0, 1500)
		inIov[i].Base = &bufs[i][0]
		inIov[i].SetLen(maxUDPQuery)
		in[i].hdr.Iov = &inIov[i]
		in[i].hdr.Iovlen = 1
		in[i].hdr.Name = (*byte)(unsafe.Pointer(&names[i]))
	}
	timed, _ := h.(TimedWireHandler)
	yielded := time.Now()
	for {
		select {
		case <-stopped:
			return
		default:
		}
		for i := range in {
			in[i].hdr.Namelen = uint32(unsafe.Sizeof(names[i]))
			in[i].hdr.Flags = 0
		}
		r, _, errno := unix.Syscall6(unix.SYS_RECVMMSG, uintptr(fd), uintptr(unsafe.Pointer(&in[0])), udpBatch,
			unix.MSG_WAITFORONE, 0, 0)
		if errno != 0 {
			switch errno {
			case unix.EAGAIN, unix.EINTR:
				continue // the timeout or a signal: look at stopped
			}
			log.Warn("UDP read failed", "error", errno)
			continue
		}
		// One reading of the clock for the batch: a query that needs the
		// time (a cookie, RRL) takes it from here.
		now := time.Now()
		k := 0
		for i := range int(r) {
			if in[i].hdr.Flags&unix.MSG_TRUNC != 0 || in[i].n == 0 {
				continue // too long, or empty: a shutdown's wake-up reads nothing, and is no query to log
			}
			remote := sockaddrAddr(&names[i])
			var resp []byte
			if timed != nil {
				resp = timed.ServeWireAt(bufs[i][:in[i].n], remote, false, resps[k][:0], now)
			} else {
				resp = h.ServeWire(bufs[i][:in[i].n], remote, false, resps[k][:0])
			}
			if len(resp) == 0 {
				continue
			}
			if cap(resp) > cap(resps[k]) {
				resps[k] = resp[:0]
			}
			oIov[k].Base = &resp[0]
			oIov[k].SetLen(len(resp))
			out[k].hdr = unix.Msghdr{Name: in[i].hdr.Name, Namelen: in[i].hdr.Namelen, Iov: &oIov[k], Iovlen: 1}
			k++
		}
		for sent := 0; sent < k; {
			w, _, errno := unix.Syscall6(unix.SYS_SENDMMSG, uintptr(fd), uintptr(unsafe.Pointer(&out[sent])), uintptr(k-sent), 0, 0, 0)
			if errno != 0 {
				if errno == unix.EINTR || errno == unix.EAGAIN {
					continue
				}
				w = 1 // this destination failed: skip it
			}
			sent += int(w)
		}
		// A goroutine that runs 10 ms without passing through the scheduler
		// is one sysmon preempts, and while it is in a system call that
		// means taking its P: the reader then lost its P at nearly every
		// read (800 times a second at 10k qps), woke sysmon to get one back
		// and hopped between threads. Yielding now and then keeps it fresh.
		if now.Sub(yielded) > yieldEvery {
			runtime.Gosched()
			yielded = now
		}
	}
}

func sockaddrAddr(sa *unix.RawSockaddrInet6) netip.Addr {
	switch sa.Family {
	case unix.AF_INET:
		v4 := (*unix.RawSockaddrInet4)(unsafe.Pointer(sa))
		return netip.AddrFrom4(v4.Addr)
	case unix.AF_INET6:
		return netip.AddrFrom16(sa.Addr).Unmap()
	}
	return netip.Addr{}
}
