// Command healthload measures what health checking costs geodns: it serves
// N endpoints' health checks from local listeners, runs the geodns binary
// on zones that probe all of them, and reports geodns's CPU share of one
// core and its peak RSS.
//
// It runs itself inside a new network namespace (unshare --net, as root),
// where loopback is the only interface: the listeners bind the wildcard
// address so that 100 ports x 300 loopback addresses give 30,000 distinct
// targets, and nothing is reachable from outside.
//
// With http keep-alive every target holds a connection open, one file
// descriptor at each end. Where the open-file limit is below the number of
// endpoints (20,000 on the machine this was written on, and root may not
// raise it), -procs splits the endpoints over several geodns processes and
// their CPU and memory are summed; the listeners are split over processes
// too (SO_REUSEPORT), so each stays under the limit.
//
//	go run ./benchmarks/healthload -geodns bin/geodns -endpoints 30000 -interval 10s -duration 2m -procs 2
package main

import (
	"bufio"
	"context"
	"flag"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/geodns/geodns/benchmarks/internal/proc"
)

// firstPort is the first of the 100 listening ports (the namespace is new,
// so every port is free).
const firstPort = 20000

func main() {
	geodns := flag.String("geodns", "bin/geodns", "the geodns binary")
	endpoints := flag.Int("endpoints", 30000, "endpoints to probe")
	interval := flag.Duration("interval", 10*time.Second, "check interval")
	duration := flag.Duration("duration", 2*time.Minute, "measuring time, after one interval of warm-up")
	checkType := flag.String("check", "http", "check type: http or tcp")
	keepalive := flag.Bool("keepalive", true, "http checks keep their connection open between probes")
	procs := flag.Int("procs", 1, "geodns processes the endpoints are split over")
	flag.Parse()

	switch os.Getenv("HEALTHLOAD_ROLE") {
	case "":
		proc.RunInNetNS("healthload", "HEALTHLOAD_ROLE", "run", *geodns)
	case "listen":
		listen(*checkType)
	case "run":
		run(*geodns, *endpoints, *interval, *duration, *checkType, *keepalive, *procs)
	}
}

func run(geodns string, endpoints int, interval, duration time.Duration, checkType string, keepalive bool, procs int) {
	must(exec.Command("ip", "link", "set", "lo", "up").Run())
	self, err := os.Executable()
	must(err)

	// Listener processes, each below the open-file limit.
	listeners := 1 + endpoints/15000
	counts := make([]atomic.Int64, listeners)
	for i := range listeners {
		cmd := exec.Command(self, "-check", checkType)
		cmd.Env = append(os.Environ(), "HEALTHLOAD_ROLE=listen")
		cmd.Stderr = os.Stderr
		out, err := cmd.StdoutPipe()
		must(err)
		must(cmd.Start())
		defer cmd.Process.Kill()
		ready := make(chan struct{})
		go func() {
			sc := bufio.NewScanner(out)
			for sc.Scan() {
				if sc.Text() == "ready" {
					close(ready)
					continue
				}
				n, _ := strconv.ParseInt(sc.Text(), 10, 64)
				counts[i].Store(n)
			}
		}()
		<-ready
	}
	probes := func() (n int64) {
		for i := range counts {
			n += counts[i].Load()
		}
		return n
	}

	dir, err := os.MkdirTemp("", "healthload")
	must(err)
	if os.Getenv("HEALTHLOAD_KEEP") == "" {
		defer os.RemoveAll(dir)
	} else {
		fmt.Println("healthload: zones and logs in", dir)
	}
	var pids []int
	per := (endpoints + procs - 1) / procs
	for i := range procs {
		zdir := filepath.Join(dir, strconv.Itoa(i))
		must(os.MkdirAll(zdir, 0o755))
		first, last := i*per, min((i+1)*per, endpoints)
		must(os.WriteFile(filepath.Join(zdir, "example.net.yaml"), []byte(zone(first, last, interval, checkType, keepalive)), 0o644))
		cmd := exec.Command(geodns, "serve", "--zones", zdir, "--listen", fmt.Sprintf("127.0.0.1:%d", 5300+i),
			"--http", fmt.Sprintf("127.0.0.1:%d", 8053+i), "--probe-allow", "127.0.0.0/8", "--log-format", "json")
		logf, err := os.Create(filepath.Join(zdir, "geodns.log"))
		must(err)
		cmd.Stdout, cmd.Stderr = logf, logf
		must(cmd.Start())
		defer cmd.Process.Kill()
		pids = append(pids, cmd.Process.Pid)
	}

	fmt.Printf("healthload: %d endpoints (%s checks every %v, keepalive %v) on %d targets, %d geodns process(es), %d listener process(es); warming up for %v\n",
		endpoints, checkType, interval, keepalive && checkType == "http", endpoints, procs, listeners, interval)
	time.Sleep(interval + 2*time.Second)
	u0, s0 := cpu(pids)
	t0, p0 := time.Now(), probes()
	peaks := make([]int, len(pids))
	for end := t0.Add(duration); time.Now().Before(end); time.Sleep(time.Second) {
		for i, pid := range pids {
			peaks[i] = max(peaks[i], proc.RSSKB(pid))
		}
	}
	u1, s1 := cpu(pids)
	t1, p1 := time.Now(), probes()
	secs := t1.Sub(t0).Seconds()
	share := func(ticks int64) float64 { return float64(ticks) / proc.TicksPerSecond / secs * 100 }
	sum := 0
	for _, p := range peaks {
		sum += p
	}
	fmt.Printf("| endpoints | check | keepalive | geodns processes | interval | measured | probes/s | geodns CPU (share of one core) | of which user / system | geodns peak RSS (sum) |\n")
	fmt.Printf("|---|---|---|---|---|---|---|---|---|---|\n")
	fmt.Printf("| %d | %s | %v | %d | %v | %v | %.0f | %.1f %% | %.1f %% / %.1f %% | %.0f MB |\n", endpoints, checkType,
		keepalive && checkType == "http", procs, interval, duration.Round(time.Second), float64(p1-p0)/secs,
		share(u1-u0+s1-s0), share(u1-u0), share(s1-s0), float64(sum)/1024)
	down := 0
	for i := range procs {
		down += countDown(filepath.Join(dir, strconv.Itoa(i), "geodns.log"))
	}
	fmt.Printf("endpoints reported down during the run: %d\n", down)
}

// zone writes endpoints [first, last) as services of 100 endpoints each.
func zone(first, last int, interval time.Duration, checkType string, keepalive bool) string {
	var z strings.Builder
	z.WriteString("soa: {ns: ns1.example.net., mbox: h.example.net.}\nrecords:\n  \"@\": {NS: [ns1.example.net.]}\n")
	const perService = 100
	for s := first / perService; s*perService < last; s++ {
		fmt.Fprintf(&z, "  svc%d: {service: s%d}\n", s, s)
	}
	fmt.Fprintf(&z, "sites:\n  east: {lat: 39, lon: -77}\n  west: {lat: 37, lon: -122}\n")
	fmt.Fprintf(&z, "checks:\n  hc: {type: %s, port: 80, path: /healthz, interval: %v, timeout: %v, keepalive: %v}\n", checkType, interval, min(2*time.Second, interval), keepalive)
	z.WriteString("services:\n")
	for n := first; n < last; n++ {
		if n%perService == 0 || n == first {
			fmt.Fprintf(&z, "  s%d:\n    endpoints:\n", n/perService)
		}
		site := "east"
		if n%2 == 1 {
			site = "west"
		}
		ip := fmt.Sprintf("127.0.%d.%d", 1+n/100/250, 1+(n/100)%250) // 300 addresses x 100 ports
		fmt.Fprintf(&z, "      - {site: %s, address: 198.18.%d.%d, check: hc, target: \"%s:%d\"}\n",
			site, n/250, 1+n%250, ip, firstPort+n%100)
	}
	return z.String()
}

// listen serves the 100 ports, shared with the other listener processes
// through SO_REUSEPORT, and prints how many probes it answered, each 200 ms.
func listen(checkType string) {
	var probes atomic.Int64
	mux := http.NewServeMux()
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, r *http.Request) {
		probes.Add(1)
		fmt.Fprint(w, "ok")
	})
	lc := net.ListenConfig{Control: func(_, _ string, c syscall.RawConn) error {
		var serr error
		c.Control(func(fd uintptr) { serr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, 0xf /* SO_REUSEPORT */, 1) })
		return serr
	}}
	for p := range 100 {
		ln, err := lc.Listen(context.Background(), "tcp", fmt.Sprintf("0.0.0.0:%d", firstPort+p))
		must(err)
		if checkType == "tcp" {
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
	fmt.Println("ready")
	for range time.Tick(200 * time.Millisecond) {
		fmt.Println(probes.Load())
	}
}

// cpu sums the processes' user and system time in clock ticks.
func cpu(pids []int) (user, sys int64) {
	for _, pid := range pids {
		u, s, err := proc.CPU(pid)
		must(err)
		user, sys = user+u, sys+s
	}
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
