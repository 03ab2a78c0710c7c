// Command healthload measures what health checking costs geodns: it serves
// N endpoints' health checks from local listeners, runs the geodns binary
// on a zone that probes all of them, and reports geodns's CPU share of one
// core and its peak RSS.
//
// It runs itself inside a new network namespace (unshare --net, as root),
// where loopback is the only interface: the listeners bind the wildcard
// address so that 100 ports x 300 loopback addresses give 30,000 distinct
// targets without 30,000 sockets, and nothing is reachable from outside.
//
//	go run ./benchmarks/healthload -geodns bin/geodns -endpoints 30000 -interval 10s -duration 2m
package main

import (
	"flag"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"time"

	"github.com/geodns/geodns/benchmarks/internal/proc"
)

func main() {
	geodns := flag.String("geodns", "bin/geodns", "the geodns binary")
	endpoints := flag.Int("endpoints", 30000, "endpoints to probe")
	interval := flag.Duration("interval", 10*time.Second, "check interval")
	duration := flag.Duration("duration", 2*time.Minute, "measuring time, after one interval of warm-up")
	checkType := flag.String("check", "http", "check type: http or tcp")
	flag.Parse()

	if os.Getenv("HEALTHLOAD_NETNS") == "" {
		self, err := os.Executable()
		must(err)
		bin, err := filepath.Abs(*geodns)
		must(err)
		args := append([]string{"--net", "--", self}, os.Args[1:]...)
		args = append(args, "-geodns", bin)
		cmd := exec.Command("unshare", args...)
		cmd.Env = append(os.Environ(), "HEALTHLOAD_NETNS=1")
		cmd.Stdout, cmd.Stderr = os.Stdout, os.Stderr
		if err := cmd.Run(); err != nil {
			fmt.Fprintln(os.Stderr, "healthload: needs root for unshare --net:", err)
			os.Exit(1)
		}
		return
	}
	must(exec.Command("ip", "link", "set", "lo", "up").Run())

	// 100 listeners on the wildcard address: in this namespace, loopback only.
	var probes atomic.Int64
	mux := http.NewServeMux()
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, r *http.Request) {
		probes.Add(1)
		fmt.Fprint(w, "ok")
	})
	var ports []int
	for range 100 {
		ln, err := net.Listen("tcp", "0.0.0.0:0")
		must(err)
		ports = append(ports, ln.Addr().(*net.TCPAddr).Port)
		if *checkType == "tcp" {
			go func() {
				for {
					c, err := ln.Accept()
					if err != nil {
						return
					}
					probes.Add(1)
					c.Close()
				}
			}()
			continue
		}
		go http.Serve(ln, mux)
	}

	dir, err := os.MkdirTemp("", "healthload")
	must(err)
	defer os.RemoveAll(dir)
	var z strings.Builder
	z.WriteString("soa: {ns: ns1.example.net., mbox: h.example.net.}\nrecords:\n  \"@\": {NS: [ns1.example.net.]}\n")
	perService := 100
	services := (*endpoints + perService - 1) / perService
	for s := range services {
		fmt.Fprintf(&z, "  svc%d: {service: s%d}\n", s, s)
	}
	fmt.Fprintf(&z, "sites:\n  east: {lat: 39, lon: -77}\n  west: {lat: 37, lon: -122}\n")
	fmt.Fprintf(&z, "checks:\n  hc: {type: %s, port: 80, path: /healthz, interval: %v, timeout: 2s}\n", *checkType, *interval)
	z.WriteString("services:\n")
	n := 0
	for s := range services {
		fmt.Fprintf(&z, "  s%d:\n    endpoints:\n", s)
		for e := 0; e < perService && n < *endpoints; e++ {
			site := "east"
			if e%2 == 1 {
				site = "west"
			}
			ip := fmt.Sprintf("127.0.%d.%d", 1+n/100/250, 1+(n/100)%250) // 300 addresses x 100 ports
			fmt.Fprintf(&z, "      - {site: %s, address: 198.18.%d.%d, check: hc, target: \"%s:%d\"}\n",
				site, n/250, 1+n%250, ip, ports[n%100])
			n++
		}
	}
	must(os.WriteFile(filepath.Join(dir, "example.net.yaml"), []byte(z.String()), 0o644))

	cmd := exec.Command(*geodns, "serve", "--zones", dir, "--listen", "127.0.0.1:5300", "--probe-allow", "127.0.0.0/8",
		"--log-format", "json")
	logf, err := os.Create(filepath.Join(dir, "geodns.log"))
	must(err)
	cmd.Stdout, cmd.Stderr = logf, logf
	must(cmd.Start())
	defer cmd.Process.Kill()
	pid := cmd.Process.Pid

	fmt.Printf("healthload: %d endpoints (%s checks every %v) on %d targets; warming up for %v\n", n, *checkType, *interval, n, *interval)
	time.Sleep(*interval + 2*time.Second)
	u0, s0 := cpuSplit(pid)
	cpu0, t0, p0 := cpuTicks(pid), time.Now(), probes.Load()
	peak := 0
	for end := t0.Add(*duration); time.Now().Before(end); time.Sleep(time.Second) {
		peak = max(peak, proc.RSSKB(pid))
	}
	u1, s1 := cpuSplit(pid)
	cpu1, t1, p1 := cpuTicks(pid), time.Now(), probes.Load()
	const ticksPerSecond = proc.TicksPerSecond
	share := float64(cpu1-cpu0) / ticksPerSecond / t1.Sub(t0).Seconds()
	rate := float64(p1-p0) / t1.Sub(t0).Seconds()
	fmt.Printf("| endpoints | check | interval | measured | probes/s | geodns CPU (share of one core) | geodns peak RSS |\n")
	fmt.Printf("|---|---|---|---|---|---|---|\n")
	fmt.Printf("| %d | %s | %v | %v | %.0f | %.1f %% | %.0f MB |\n", n, *checkType, *interval, duration.Round(time.Second), rate, share*100, float64(peak)/1024)
	fmt.Printf("of which user %.1f %%, system %.1f %%\n", float64(u1-u0)/ticksPerSecond/t1.Sub(t0).Seconds()*100,
		float64(s1-s0)/ticksPerSecond/t1.Sub(t0).Seconds()*100)
	down := countDown(filepath.Join(dir, "geodns.log"))
	fmt.Printf("endpoints reported down during the run: %d\n", down)
}

// cpuTicks returns a process's user+system time in clock ticks.
func cpuTicks(pid int) int64 {
	u, s := cpuSplit(pid)
	return u + s
}

func cpuSplit(pid int) (user, sys int64) {
	user, sys, err := proc.CPU(pid)
	must(err)
	return user, sys
}

func countDown(log string) int {
	data, _ := os.ReadFile(log)
	return strings.Count(string(data), `"msg":"endpoint down"`)
}

func must(err error) {
	if err != nil {
		fmt.Fprintln(os.Stderr, "healthload:", err)
		os.Exit(1)
	}
}
