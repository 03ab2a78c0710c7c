package main

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/geodns/geodns/benchmarks/internal/proc"
)

type run struct {
	qps, cpu, perCore, lost, p50, p99 float64
	// core: how busy the server's CPUs were (their non-idle time, in
	// cores): the server, and the network work the kernel did there for
	// it outside its own system calls (the receive work tcp-nic steers to
	// the server's CPU, segments sent from a softirq), which process
	// accounting charges to whatever ran then, or to no one when the CPU
	// was idle.
	core float64
}

// load runs one dnsperf (or ecsload) pinned to the client CPUs and reads
// the server's CPU time and its CPUs' idle time around it. Saturation: 4
// clients with 200 queries outstanding on one core (8 and 400 over two
// threads with -cores 2); fixed rate: one client, 50 outstanding,
// -fixed-qps, every latency kept.
func load(e env, p pass, name string, round int, c cell, port, pid int, fixed bool) run {
	server := addr
	if c.nic {
		server = nicServer
	} else if c.link {
		server = linkServer
	}
	var args []string
	if c.gen != "" {
		args = []string{"-c", p.cpus, e.ecsload, "-s", server, "-p", strconv.Itoa(port), "-t", "2",
			"-l", strconv.FormatFloat(duration.Seconds(), 'f', -1, 64)}
		switch c.gen {
		case "one":
			args = append(args, "-nets", filepath.Join(e.work, "ecs-one-"+p.db+".bin"))
		case "many":
			args = append(args, "-nets", e.dbip.ecsNets)
		case "none":
			args = append(args, "-qname", "static.example.com.")
		}
		if c.cookie {
			args = append(args, "-cookie", clientCookie)
		}
	} else {
		args = []string{"-c", p.cpus, "dnsperf", "-s", server, "-p", strconv.Itoa(port), "-d", filepath.Join(e.work, c.file), "-t", "2"}
		if c.once && !fixed {
			args = append(args, "-n", "1")
		} else {
			args = append(args, "-l", strconv.FormatFloat(duration.Seconds(), 'f', -1, 64))
		}
		if c.tcp {
			args = append(args, "-m", "tcp")
		}
		// dnsperf 2.10 sends one -E option only (the last given): the
		// cells with ECS and a cookie use ecsload.
		if c.ecs {
			args = append(args, "-E", ecsOption(ecsNet(e, p)))
		}
		if c.cookie {
			args = append(args, "-E", "10:"+clientCookie)
		}
		if c.do {
			args = append(args, "-D")
		}
	}
	kind := "sat"
	if fixed {
		kind = "fixed"
		args = append(args, "-c", "1", "-q", "50", "-Q", strconv.Itoa(*fixedQPS), "-v")
	} else if p.cores == 2 {
		args = append(args, "-T", "2", "-c", "8", "-q", "400")
	} else {
		args = append(args, "-c", "4", "-q", "200")
	}
	cmd := exec.Command("taskset", args...)
	if c.link {
		cmd = exec.Command("ip", append([]string{"netns", "exec", e.netns, "taskset"}, args...)...)
	}
	cmd.Env = append(os.Environ(), fmt.Sprintf("GOMAXPROCS=%d", p.cores)) // ecsload's threads
	cores := cpuList(p.serverCPU)
	t0, i0, w0 := cpuTicks(pid), idleTicks(cores), time.Now()
	out, err := cmd.CombinedOutput()
	t1, i1, wall := cpuTicks(pid), idleTicks(cores), time.Since(w0)
	if err != nil {
		fatalf("%s: %v\n%s", strings.Join(cmd.Args, " "), err, out)
	}
	raw := filepath.Join(*outDir, "raw", fmt.Sprintf("%s-%s-%s-c%d-%s-r%d.txt", name, c.name, kind, p.cores, p.db, round))
	var lat []float64
	var summary strings.Builder
	sc := bufio.NewScanner(strings.NewReader(string(out)))
	var r run
	completed := 0.0
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, "> ") {
			f := strings.Fields(line)
			if v, err := strconv.ParseFloat(f[len(f)-1], 64); err == nil {
				lat = append(lat, v*1000)
			}
			continue
		}
		summary.WriteString(line + "\n")
		f := strings.Fields(line)
		switch {
		case strings.HasPrefix(line, "  Queries per second:"):
			r.qps, _ = strconv.ParseFloat(f[3], 64)
		case strings.HasPrefix(line, "  Queries completed:"):
			completed, _ = strconv.ParseFloat(f[2], 64)
		case strings.HasPrefix(line, "  Queries lost:"):
			r.lost, _ = strconv.ParseFloat(strings.Trim(f[3], "()%"), 64)
		case strings.HasPrefix(line, "  Latency p50 (ms):"): // ecsload
			r.p50, _ = strconv.ParseFloat(f[3], 64)
		case strings.HasPrefix(line, "  Latency p99 (ms):"):
			r.p99, _ = strconv.ParseFloat(f[3], 64)
		}
	}
	check(os.WriteFile(raw, []byte(summary.String()), 0o644))
	secs := float64(t1-t0) / clkTck
	r.cpu = secs / wall.Seconds()
	r.core = max(0, float64(len(cores))-float64(i1-i0)/clkTck/wall.Seconds())
	if secs > 0 {
		r.perCore = completed / secs
	}
	if len(lat) > 0 {
		slices.Sort(lat)
		r.p50, r.p99 = percentile(lat, 0.50), percentile(lat, 0.99)
	}
	return r
}

func percentile(sorted []float64, p float64) float64 {
	i := int(p*float64(len(sorted))+0.5) - 1
	return sorted[max(0, min(i, len(sorted)-1))]
}

const clkTck = proc.TicksPerSecond

// tree returns pid and its descendants.
func tree(pid int) []int {
	children := map[int][]int{}
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		p, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if st := stat(p); len(st) > 1 {
			pp, _ := strconv.Atoi(st[1])
			children[pp] = append(children[pp], p)
		}
	}
	out := []int{pid}
	for i := 0; i < len(out); i++ {
		out = append(out, children[out[i]]...)
	}
	return out
}

// stat returns the fields of /proc/PID/stat after the command name: state
// is [0], ppid [1], utime [11], stime [12].
func stat(pid int) []string {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return nil
	}
	s := string(b)
	return strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
}

func cpuTicks(pid int) int64 {
	var t int64
	for _, p := range tree(pid) {
		if f := stat(p); len(f) > 12 {
			u, _ := strconv.ParseInt(f[11], 10, 64)
			s, _ := strconv.ParseInt(f[12], 10, 64)
			t += u + s
		}
	}
	return t
}

// idleTicks is proc.IdleTicks; the harness stops if /proc cannot be read.
func idleTicks(cpus []int) int64 {
	t, err := proc.IdleTicks(cpus)
	check(err)
	return t
}

func peakRSS(pid int) int64 {
	var kb int64
	for _, p := range tree(pid) {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", p))
		if err != nil {
			continue
		}
		for _, line := range strings.Split(string(b), "\n") {
			if v, ok := strings.CutPrefix(line, "VmHWM:"); ok {
				n, _ := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
				kb += n
			}
		}
	}
	return kb
}
