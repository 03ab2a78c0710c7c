//go:build linux

// Command wakecost measures what waking a thread on another CPU costs the
// thread that wakes it: what a server's send pays, at a low query rate,
// for the client blocked in its read (issue 23's TCP cell at 10k qps).
// A reader thread pinned to one CPU blocks in read on a socketpair; a
// writer pinned to another busy-waits a gap, so that the reader's CPU has
// been idle that long, then writes one byte and times the write system
// call, which wakes the reader. Then the same with the reader running
// (polling without blocking), where the write wakes no one.
//
//	go run ./benchmarks/wakecost [-writer 0 -reader 1 -n 2000]
//
// On bare metal a cross-CPU wake costs the waker about a microsecond; in
// a virtual machine, where the idle CPU has halted and the host has to
// wake it, it can cost several.
package main

import (
	"flag"
	"fmt"
	"log"
	"runtime"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"
)

func main() {
	writerCPU := flag.Int("writer", 0, "CPU of the writing thread")
	readerCPU := flag.Int("reader", 1, "CPU of the reading thread")
	n := flag.Int("n", 2000, "writes per gap")
	flag.Parse()
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_DGRAM, 0)
	if err != nil {
		log.Fatal(err)
	}
	var polling atomic.Bool
	go func() {
		runtime.LockOSThread()
		pin(*readerCPU)
		b := make([]byte, 64)
		for {
			if polling.Load() {
				unix.Recvfrom(fds[1], b, unix.MSG_DONTWAIT) // running: the write finds it awake
				continue
			}
			if _, _, err := unix.Recvfrom(fds[1], b, 0); err != nil && err != unix.EINTR {
				log.Fatal(err)
			}
		}
	}()
	runtime.LockOSThread()
	pin(*writerCPU)
	time.Sleep(100 * time.Millisecond)
	measure := func(what string, gap time.Duration) {
		var total time.Duration
		for range *n {
			for t := time.Now(); time.Since(t) < gap; {
			}
			t := time.Now()
			if _, err := unix.Write(fds[0], []byte{1}); err != nil {
				log.Fatal(err)
			}
			total += time.Since(t)
		}
		fmt.Printf("%-28s gap %6v: write %5.2f µs\n", what, gap, float64(total.Nanoseconds())/float64(*n)/1000)
	}
	for _, gap := range []time.Duration{10 * time.Microsecond, 50 * time.Microsecond, 100 * time.Microsecond, 1 * time.Millisecond} {
		measure("reader blocked (a wake)", gap)
	}
	polling.Store(true)
	time.Sleep(10 * time.Millisecond)
	for _, gap := range []time.Duration{10 * time.Microsecond, 100 * time.Microsecond} {
		measure("reader running (no wake)", gap)
	}
}

func pin(cpu int) {
	var s unix.CPUSet
	s.Set(cpu)
	if err := unix.SchedSetaffinity(0, &s); err != nil {
		log.Fatal(err)
	}
}
