//go:build linux

// Command ecsload is a UDP DNS load generator for what dnsperf 2.10 cannot
// do: vary the ECS option per query. It asks one name with an ECS option
// per query, cycling through a file of client /24s (4 bytes each, as the
// dnsperf harness benchmarks/peers writes them), or with none (-nets "")
// to compare it with dnsperf on the static cell.
//
// The packets are built once; one thread sends and reads them with
// sendmmsg/recvmmsg on non-blocking connected sockets and waits in poll
// only when nothing is due, as dnsperf's own loop does, so it costs its
// CPU a fraction of what the server spends. It counts the way dnsperf
// does: a query is completed when its answer (matched by socket and ID)
// arrives, lost when none came within -timeout; QPS is completed queries
// over the run. Its summary lines have dnsperf's wording, so the harness
// reads both alike.
//
//	taskset -c 1 ecsload -s 127.0.0.1 -p 5400 -nets ecs-24s.bin -l 5 [-Q 10000 -v]
package main

import (
	"encoding/binary"
	"encoding/hex"
	"flag"
	"fmt"
	"log"
	"net"
	"os"
	"runtime"
	"slices"
	"strconv"
	"time"
	"unsafe"

	"github.com/miekg/dns"
	"golang.org/x/sys/unix"
)

var (
	server   = flag.String("s", "127.0.0.1", "server address")
	port     = flag.Int("p", 53, "server port")
	qname    = flag.String("qname", "www.example.com.", "the name asked")
	netsFile = flag.String("nets", "", "file of client /24s, 4 bytes each, one ECS option per query cycling through them; empty: no EDNS at all")
	cookie   = flag.String("cookie", "", "a client cookie (16 hex digits) in every query")
	seconds  = flag.Float64("l", 5, "run for this many seconds")
	clients  = flag.Int("c", 4, "sockets, over all threads (dnsperf -c)")
	threadsN = flag.Int("T", 1, "threads, each with its own sockets (dnsperf -T); GOMAXPROCS should be at least this")
	window   = flag.Int("q", 200, "queries outstanding at most, over all sockets (dnsperf -q)")
	maxQPS   = flag.Int("Q", 0, "send at most this many queries a second (0: as fast as answered)")
	timeoutS = flag.Float64("t", 2, "a query not answered within this many seconds is lost (dnsperf -t)")
	verbose  = flag.Bool("v", false, "print the latency percentiles")
)

const batch = 64

func main() {
	flag.Parse()
	log.SetFlags(0)
	timeout := time.Duration(*timeoutS * float64(time.Second))
	tmpl := templates()
	threads := max(1, *threadsN)
	start := time.Now()
	end := start.Add(time.Duration(*seconds * float64(time.Second)))
	results := make(chan stats, threads)
	for t := range threads {
		// Each thread its own sockets, share of the window and of the rate,
		// and its own place in the templates.
		go func() {
			runtime.LockOSThread()
			results <- loop(tmpl, timeout, t*len(tmpl)/threads, max(1, *clients/threads), max(1, *window/threads), *maxQPS/threads, start, end)
		}()
	}
	var all stats
	for range threads {
		s := <-results
		all.sent, all.completed, all.lost = all.sent+s.sent, all.completed+s.completed, all.lost+s.lost
		all.lat = append(all.lat, s.lat...)
	}
	elapsed := time.Since(start)
	if elapsed > time.Duration(*seconds*float64(time.Second)) {
		// The run is the sending time plus the wait for the last answers,
		// not the timeout after them (dnsperf's runtime is about the same).
		elapsed = time.Duration(*seconds * float64(time.Second))
	}
	pct := func(n int64) float64 {
		if all.sent == 0 {
			return 0
		}
		return 100 * float64(n) / float64(all.sent)
	}
	fmt.Printf("Statistics:\n\n")
	fmt.Printf("  Queries sent:         %d\n", all.sent)
	fmt.Printf("  Queries completed:    %d (%.2f%%)\n", all.completed, pct(all.completed))
	fmt.Printf("  Queries lost:         %d (%.2f%%)\n", all.lost, pct(all.lost))
	fmt.Printf("  Run time (s):         %.6f\n", elapsed.Seconds())
	fmt.Printf("  Queries per second:   %.6f\n", float64(all.completed)/elapsed.Seconds())
	if *verbose && len(all.lat) > 0 {
		slices.Sort(all.lat)
		fmt.Printf("  Latency p50 (ms):     %.6f\n", percentile(all.lat, 0.50))
		fmt.Printf("  Latency p99 (ms):     %.6f\n", percentile(all.lat, 0.99))
	}
}

type stats struct {
	sent, completed, lost int64
	lat                   []float64
}

// loop is one thread's event loop: send what the window (and the rate)
// allows, read what arrived, wait in poll when neither had anything.
func loop(tmpl [][]byte, timeout time.Duration, next, nsocks, window, qps int, start, end time.Time) stats {
	per := max(1, window/nsocks)
	socks := make([]*sock, nsocks)
	fds := make([]unix.PollFd, nsocks)
	for i := range socks {
		socks[i] = newSock(per)
		fds[i] = unix.PollFd{Fd: int32(socks[i].fd), Events: unix.POLLIN}
	}
	var st stats
	lastExpire := start
	for {
		now := time.Now()
		sending := now.Before(end)
		if !sending && (outstanding(socks) == 0 || now.After(end.Add(timeout))) {
			break
		}
		progress := false
		for _, s := range socks {
			if sending {
				allowed := s.window - s.out
				if qps > 0 {
					due := int64(now.Sub(start).Seconds()*float64(qps)) - st.sent
					allowed = min(allowed, int(due))
				}
				if allowed > 0 {
					n := s.send(tmpl, &next, min(allowed, batch), now)
					st.sent += int64(n)
					progress = progress || n > 0
				}
			}
			for s.recv(time.Now(), &st.completed, &st.lat, *verbose) > 0 {
				progress = true
			}
		}
		if now.Sub(lastExpire) > 100*time.Millisecond {
			for _, s := range socks {
				st.lost += s.expire(now, timeout)
			}
			lastExpire = now
		}
		if !progress {
			// Nothing to send or read: wait for an answer, or until the
			// next paced send is due.
			wait := 10
			if qps > 0 && sending {
				wait = 1
			}
			unix.Poll(fds, wait)
		}
	}
	st.lost += outstanding(socks)
	return st
}

func percentile(sorted []float64, p float64) float64 {
	i := int(p*float64(len(sorted))+0.5) - 1
	return sorted[max(0, min(i, len(sorted)-1))]
}

// templates builds one query packet per client network (or one without
// EDNS); each send copies one and writes its ID.
func templates() [][]byte {
	var nets []byte
	if *netsFile != "" {
		b, err := os.ReadFile(*netsFile)
		if err != nil {
			log.Fatal(err)
		}
		nets = b
	}
	var ck []byte
	if *cookie != "" {
		b, err := hex.DecodeString(*cookie)
		if err != nil || len(b) != 8 {
			log.Fatalf("-cookie: want 16 hex digits")
		}
		ck = b
	}
	build := func(n []byte) []byte {
		m := new(dns.Msg).SetQuestion(dns.Fqdn(*qname), dns.TypeA)
		m.RecursionDesired = false
		if n != nil || ck != nil {
			m.SetEdns0(1232, false)
			o := m.IsEdns0()
			if n != nil {
				o.Option = append(o.Option, &dns.EDNS0_SUBNET{Code: dns.EDNS0SUBNET, Family: 1, SourceNetmask: 24,
					Address: net.IPv4(n[0], n[1], n[2], 0).To4()})
			}
			if ck != nil {
				o.Option = append(o.Option, &dns.EDNS0_COOKIE{Code: dns.EDNS0COOKIE, Cookie: hex.EncodeToString(ck)})
			}
		}
		b, err := m.Pack()
		if err != nil {
			log.Fatal(err)
		}
		return b
	}
	if len(nets) < 4 {
		return [][]byte{build(nil)}
	}
	out := make([][]byte, 0, len(nets)/4)
	for i := 0; i+4 <= len(nets); i += 4 {
		out = append(out, build(nets[i:i+4]))
	}
	return out
}

// mmsghdr is struct mmsghdr of linux/socket.h.
type mmsghdr struct {
	hdr unix.Msghdr
	n   uint32
	_   [4]byte
}

type sock struct {
	fd          int
	window, out int
	sentAt      [65536]int64 // unix nanoseconds per ID in flight, 0 when free
	nextID      uint16
	sbuf, rbuf  [batch][512]byte
	siov, riov  [batch]unix.Iovec
	smsg, rmsg  [batch]mmsghdr
}

func newSock(window int) *sock {
	c, err := net.Dial("udp", net.JoinHostPort(*server, strconv.Itoa(*port)))
	if err != nil {
		log.Fatal(err)
	}
	f, err := c.(*net.UDPConn).File() // a blocking duplicate, made non-blocking below
	if err != nil {
		log.Fatal(err)
	}
	c.Close()
	s := &sock{fd: int(f.Fd()), window: window}
	if err := unix.SetNonblock(s.fd, true); err != nil {
		log.Fatal(err)
	}
	for _, opt := range []int{unix.SO_RCVBUF, unix.SO_SNDBUF} {
		unix.SetsockoptInt(s.fd, unix.SOL_SOCKET, opt, 4<<20)
	}
	for i := range batch {
		s.riov[i] = unix.Iovec{Base: &s.rbuf[i][0]}
		s.riov[i].SetLen(len(s.rbuf[i]))
		s.rmsg[i].hdr.Iov = &s.riov[i]
		s.rmsg[i].hdr.SetIovlen(1)
		s.siov[i] = unix.Iovec{Base: &s.sbuf[i][0]}
		s.smsg[i].hdr.Iov = &s.siov[i]
		s.smsg[i].hdr.SetIovlen(1)
	}
	runtime.KeepAlive(f) // the descriptor stays open: f is never closed
	files = append(files, f)
	return s
}

var files []*os.File

// send sends up to n queries, taking templates in turn from *next.
func (s *sock) send(tmpl [][]byte, next *int, n int, now time.Time) int {
	ns := now.UnixNano()
	k := 0
	for k < n {
		id := s.nextID
		if s.sentAt[id] != 0 { // still in flight after 65,536 more: skip it
			s.nextID++
			continue
		}
		t := tmpl[*next%len(tmpl)]
		*next++
		copy(s.sbuf[k][:], t)
		binary.BigEndian.PutUint16(s.sbuf[k][:2], id)
		s.siov[k].SetLen(len(t))
		s.sentAt[id] = ns
		s.nextID++
		k++
	}
	done := 0
	for done < k {
		r, _, e := unix.Syscall6(unix.SYS_SENDMMSG, uintptr(s.fd), uintptr(unsafe.Pointer(&s.smsg[done])), uintptr(k-done), 0, 0, 0)
		if e != 0 {
			break // a full send buffer: the rest are taken back below
		}
		done += int(r)
	}
	for i := done; i < k; i++ { // not sent: free their IDs
		s.sentAt[binary.BigEndian.Uint16(s.sbuf[i][:2])] = 0
	}
	s.out += done
	return done
}

// recv reads what has arrived, without waiting.
func (s *sock) recv(now time.Time, completed *int64, lat *[]float64, keep bool) int {
	r, _, e := unix.Syscall6(unix.SYS_RECVMMSG, uintptr(s.fd), uintptr(unsafe.Pointer(&s.rmsg[0])), batch, unix.MSG_DONTWAIT, 0, 0)
	if e != 0 || r == 0 {
		return 0
	}
	ns := now.UnixNano()
	for i := range int(r) {
		if s.rmsg[i].n < 12 {
			continue
		}
		id := binary.BigEndian.Uint16(s.rbuf[i][:2])
		t := s.sentAt[id]
		if t == 0 {
			continue // late, after it was counted lost
		}
		s.sentAt[id] = 0
		s.out--
		*completed++
		if keep {
			*lat = append(*lat, float64(ns-t)/1e6)
		}
	}
	return int(r)
}

// expire counts the queries older than the timeout as lost and frees
// their IDs.
func (s *sock) expire(now time.Time, timeout time.Duration) int64 {
	if s.out == 0 {
		return 0
	}
	limit := now.Add(-timeout).UnixNano()
	var n int64
	for id, t := range s.sentAt {
		if t != 0 && t < limit {
			s.sentAt[id] = 0
			s.out--
			n++
		}
	}
	return n
}

func outstanding(socks []*sock) int64 {
	var n int64
	for _, s := range socks {
		n += int64(s.out)
	}
	return n
}
