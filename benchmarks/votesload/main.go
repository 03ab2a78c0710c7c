// Command votesload measures what sharing health across an NS set costs:
// three geodns nodes on a 3-member etcd, each target probed by two of
// them (probers: 2), 5 % of the endpoints flapping. It reports the etcd
// writes per second (vote keys and transactions, from the nodes' metrics;
// raft proposals committed, from etcd's: every writer's, keep-alives of
// leases included), and CPU and peak RSS per node
// next to one node alone probing the same endpoints. Then it shows the
// query path does no etcd I/O: dnsperf at a fixed rate against one node
// pinned to one core, in the NS set (votes flowing) and alone, in
// interleaved rounds; queries per server CPU second should match within
// a few per cent.
//
// It runs itself inside a new network namespace (unshare --net, as root),
// like healthload: the targets are 100 ports on 300 loopback addresses,
// served by this process (tcp checks: a connect is a probe, the cheapest
// for both sides on a small machine). The flapping 5 % are the targets on
// 5 of the 100 ports, whose listeners close and reopen every -flap.
//
//	go run ./benchmarks/votesload -geodns bin/geodns -endpoints 30000 -duration 60s
package main

import (
	"context"
	"flag"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/geodns/geodns/benchmarks/internal/proc"
	"github.com/geodns/geodns/benchmarks/internal/scrape"
)

const firstPort = 20000

var (
	geodnsBin = flag.String("geodns", "bin/geodns", "the geodns binary")
	endpoints = flag.Int("endpoints", 30000, "endpoints to probe")
	interval  = flag.Duration("interval", 10*time.Second, "check interval of the steady endpoints")
	flapEvery = flag.Duration("flap", 4*time.Second, "the flapping endpoints (5 %, checked every 1s) fail and recover every this long")
	duration  = flag.Duration("duration", 60*time.Second, "measuring time per configuration, after warm-up")
	qpsRounds = flag.Int("rounds", 3, "dnsperf rounds per side (0: skip the query-path cell)")
	qpsEPs    = flag.Int("qps-endpoints", 200, "endpoints in the query-path cell (5 % flapping)")
	qpsRate   = flag.Int("qps", 20000, "the query rate of the query-path cell")
	etcdBin   = flag.String("etcd", "/usr/bin/etcd", "the etcd server")
)

func main() {
	flag.Parse()
	if os.Getenv("VOTESLOAD_NS") == "" {
		proc.RunInNetNS("votesload", "VOTESLOAD_NS", "1", *geodnsBin)
	}
	must(exec.Command("ip", "link", "set", "lo", "up").Run())
	var probes atomic.Int64
	listen(&probes)
	dir, err := os.MkdirTemp("", "votesload")
	must(err)
	if os.Getenv("VOTESLOAD_KEEP") == "" {
		defer os.RemoveAll(dir)
	} else {
		fmt.Println("votesload: files in", dir)
	}

	etcd := startEtcd(dir)
	defer etcd.stop()

	fmt.Printf("votesload: %d endpoints (tcp checks; %d steady every %v, %d flapping, checked every 1s, failing/recovering every %v), measured %v\n",
		*endpoints, *endpoints-*endpoints/20, *interval, *endpoints/20, *flapEvery, *duration)
	fmt.Println()
	fmt.Println("| configuration | node | probes/s (all nodes) | vote keys written/s | vote txns/s | etcd proposals committed/s (all writers) | CPU (share of one core) | peak RSS |")
	fmt.Println("|---|---|---|---|---|---|---|---|")
	zone := zoneText(0, *endpoints, *interval)
	// One node alone: the baseline.
	cost(dir, "alone", zone, 1, "", &probes, etcd)
	// Three nodes in an NS set, probers 2.
	cost(dir, "NS set, probers 2", zone, 3, "probers: 2", &probes, etcd)

	if *qpsRounds > 0 {
		queryPath(dir, etcd)
	}
}

// cost runs n nodes on the zone and prints their costs over the duration.
func cost(dir, name, zone string, n int, clusterOpts string, probes *atomic.Int64, etcd *etcdSet) {
	var nodes []*node
	for i := range n {
		cl := ""
		if clusterOpts != "" {
			cl = fmt.Sprintf("cluster: {etcd: [%s], node: ns%d, %s}\n", strings.Join(etcd.endpoints, ", "), i+1, clusterOpts)
		}
		nodes = append(nodes, startNode(dir, fmt.Sprintf("%s-%d", strings.Fields(name)[0], i), zone, cl, i, ""))
	}
	defer func() {
		for _, nd := range nodes {
			nd.stop()
		}
	}()
	time.Sleep(*interval + 10*time.Second) // zones compiled, every probe run once, votes written
	type mark struct {
		user, sys int64
		keys, txn float64
	}
	at := func() []mark {
		var out []mark
		for _, nd := range nodes {
			u, s, err := proc.CPU(nd.cmd.Process.Pid)
			must(err)
			m := scrape.Get("http://" + nd.http + "/metrics")
			out = append(out, mark{u, s, scrape.SumMetric(m, "geodns_cluster_votes_written_total", ""), scrape.SumMetric(m, "geodns_cluster_vote_txns_total", "")})
		}
		return out
	}
	etcdOps := func() float64 {
		m := scrape.Get(etcd.metrics)
		return scrape.SumMetric(m, "etcd_server_proposals_committed_total", "")
	}
	m0, e0, p0, t0 := at(), etcdOps(), probes.Load(), time.Now()
	peaks := make([]int, len(nodes))
	for end := t0.Add(*duration); time.Now().Before(end); time.Sleep(time.Second) {
		for i, nd := range nodes {
			peaks[i] = max(peaks[i], proc.RSSKB(nd.cmd.Process.Pid))
		}
	}
	m1, e1, p1 := at(), etcdOps(), probes.Load()
	secs := time.Since(t0).Seconds()
	for i := range nodes {
		cpu := float64(m1[i].user-m0[i].user+m1[i].sys-m0[i].sys) / proc.TicksPerSecond / secs * 100
		etcdCell := "-"
		if clusterOpts != "" {
			etcdCell = fmt.Sprintf("%.0f", (e1-e0)/secs)
		}
		fmt.Printf("| %s | %s | %.0f | %.1f | %.1f | %s | %.1f %% | %.0f MB |\n", name, nodes[i].name, float64(p1-p0)/secs,
			(m1[i].keys-m0[i].keys)/secs, (m1[i].txn-m0[i].txn)/secs, etcdCell, cpu, float64(peaks[i])/1024)
	}
}

// queryPath runs dnsperf against node 1 pinned to CPU 0 (GOMAXPROCS=1)
// with the other two nodes and etcd running, in the NS set and alone, in
// interleaved rounds.
func queryPath(dir string, etcd *etcdSet) {
	zone := zoneText(0, *qpsEPs, time.Second)
	queries := filepath.Join(dir, "queries.txt")
	var q strings.Builder
	for s := range (*qpsEPs + 99) / 100 {
		fmt.Fprintf(&q, "svc%d.example.net A\n", s)
	}
	must(os.WriteFile(queries, []byte(q.String()), 0o644))
	fmt.Printf("\nquery path: dnsperf (CPU 1, %d queries/s for 10 s) against node 1 (CPU 0, GOMAXPROCS=1); %d endpoints, 5 %% flapping, every 1 s; the other two nodes (in the set, or alone) and etcd float\n\n", *qpsRate, *qpsEPs)
	fmt.Println("| round | node 1 | QPS | node 1 CPU | QPS per server core |")
	fmt.Println("|---|---|---|---|---|")
	results := map[string][]float64{}
	for r := range *qpsRounds {
		for _, side := range []string{"NS set", "alone"} {
			var nodes []*node
			for i := range 3 {
				cl := ""
				if side == "NS set" {
					cl = fmt.Sprintf("cluster: {etcd: [%s], node: q%d, probers: 2, prefix: /q%d}\n", strings.Join(etcd.endpoints, ", "), i+1, r)
				}
				pin := ""
				if i == 0 {
					pin = "0"
				}
				nodes = append(nodes, startNode(dir, fmt.Sprintf("q%d-%s-%d", r, strings.Fields(side)[0], i), zone, cl, 10+i, pin))
			}
			time.Sleep(5 * time.Second) // every probe run, votes flowing
			pid := nodes[0].cmd.Process.Pid
			u0, s0, _ := proc.CPU(pid)
			t0 := time.Now()
			// A fixed rate, the same on both sides: this 2-core machine
			// cannot give dnsperf a core of its own, and the per-query cost
			// of a UDP reader depends on the rate it is driven at.
			out := scrape.Dnsperf(nodes[0].dns, queries, "-l", "10", "-Q", strconv.Itoa(*qpsRate))
			qps := scrape.Number(out, `Queries per second:\s+([0-9.]+)`)
			u1, s1, _ := proc.CPU(pid)
			cpu := float64(u1-u0+s1-s0) / proc.TicksPerSecond / time.Since(t0).Seconds()
			per := qps / cpu
			results[side] = append(results[side], per)
			fmt.Printf("| %d | %s | %.0f | %.0f %% | %.0f |\n", r+1, side, qps, 100*cpu, per)
			for _, nd := range nodes {
				nd.stop()
			}
		}
	}
	med := func(xs []float64) float64 { s := slices.Clone(xs); slices.Sort(s); return s[len(s)/2] }
	a, b := med(results["NS set"]), med(results["alone"])
	fmt.Printf("\nmedian QPS per server core: NS set %.0f, alone %.0f: ratio %.3f\n", a, b, a/b)
}

type node struct {
	name, dns, http string
	cmd             *exec.Cmd
}

func (n *node) stop() {
	n.cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan struct{})
	go func() { n.cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		n.cmd.Process.Kill()
		<-done
	}
}

// startNode runs geodns on the zone with a cluster section (or none);
// pin: a CPU to pin it to with GOMAXPROCS=1 ("": not pinned).
func startNode(dir, name, zone, clusterYAML string, i int, pin string) *node {
	d := filepath.Join(dir, name)
	must(os.MkdirAll(filepath.Join(d, "zones"), 0o755))
	must(os.WriteFile(filepath.Join(d, "zones", "example.net.yaml"), []byte(zone), 0o644))
	n := &node{name: name, dns: fmt.Sprintf("127.0.0.1:%d", 5300+i), http: fmt.Sprintf("127.0.0.1:%d", 8100+i)}
	cfg := fmt.Sprintf("zones: %s\nlisten: [%q]\nhttp: %q\nprobe_allow: [127.0.0.0/8]\nlog_format: json\n%s", filepath.Join(d, "zones"), n.dns, n.http, clusterYAML)
	must(os.WriteFile(filepath.Join(d, "geodns.yaml"), []byte(cfg), 0o644))
	args := []string{*geodnsBin, "serve", "--config", filepath.Join(d, "geodns.yaml")}
	if pin != "" {
		args = append([]string{"taskset", "-c", pin}, args...)
	}
	n.cmd = exec.Command(args[0], args[1:]...)
	if pin != "" {
		n.cmd.Env = append(os.Environ(), "GOMAXPROCS=1")
	}
	logf, err := os.Create(filepath.Join(d, "geodns.log"))
	must(err)
	n.cmd.Stdout, n.cmd.Stderr = logf, logf
	must(n.cmd.Start())
	for start := time.Now(); ; time.Sleep(100 * time.Millisecond) {
		if scrape.Get("http://"+n.http+"/healthz") != "" {
			break
		}
		if time.Since(start) > time.Minute {
			must(fmt.Errorf("%s did not start: see %s", name, logf.Name()))
		}
	}
	return n
}

// zoneText writes endpoints [first, last) as services of 100 each; every
// 20th endpoint has the 1-second check (it flaps).
func zoneText(first, last int, steady time.Duration) string {
	var z strings.Builder
	z.WriteString("soa: {ns: ns1.example.net., mbox: h.example.net.}\nrecords:\n  \"@\": {NS: [ns1.example.net.]}\n")
	for s := first / 100; s*100 < last; s++ {
		fmt.Fprintf(&z, "  svc%d: {service: s%d}\n", s, s)
	}
	z.WriteString("sites:\n  east: {lat: 39, lon: -77}\n  west: {lat: 37, lon: -122}\n")
	fmt.Fprintf(&z, "checks:\n  hc: {type: tcp, port: 80, interval: %v, timeout: 800ms}\n", steady)
	z.WriteString("  flap: {type: tcp, port: 80, interval: 1s, timeout: 800ms}\n")
	z.WriteString("services:\n")
	for n := first; n < last; n++ {
		if n%100 == 0 || n == first {
			fmt.Fprintf(&z, "  s%d:\n    endpoints:\n", n/100)
		}
		site, check := "east", "hc"
		if n%2 == 1 {
			site = "west"
		}
		if n%20 == 0 {
			check = "flap"
		}
		fmt.Fprintf(&z, "      - {site: %s, address: 198.18.%d.%d, check: %s, target: \"%s\"}\n", site, n/250, 1+n%250, check, target(n))
	}
	return z.String()
}

// target is endpoint n's address: 300 addresses x 100 ports.
func target(n int) string {
	return fmt.Sprintf("127.0.%d.%d:%d", 1+n/100/250, 1+(n/100)%250, firstPort+n%100)
}

// index is target's inverse.
func index(addr string) int {
	ap := strings.Split(addr, ":")
	ip := strings.Split(ap[0], ".")
	c, _ := strconv.Atoi(ip[2])
	d, _ := strconv.Atoi(ip[3])
	p, _ := strconv.Atoi(ap[1])
	return ((c-1)*250+(d-1))*100 + p - firstPort
}

// listen serves the 100 ports on every loopback address, counting
// connections; the flapping endpoints' ports (every 20th endpoint: ports
// 20000, 20020, ...) are closed in odd periods of flapEvery.
func listen(probes *atomic.Int64) {
	serve := func(ln net.Listener) {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			probes.Add(1)
			c.Close()
		}
	}
	for p := range 100 {
		ln, err := net.Listen("tcp", fmt.Sprintf("0.0.0.0:%d", firstPort+p))
		must(err)
		if p%20 != 0 {
			go serve(ln)
			continue
		}
		go func() {
			for {
				go serve(ln)
				time.Sleep(*flapEvery)
				ln.Close()
				time.Sleep(*flapEvery)
				for {
					if ln, err = net.Listen("tcp", fmt.Sprintf("0.0.0.0:%d", firstPort+p)); err == nil {
						break
					}
					time.Sleep(10 * time.Millisecond)
				}
			}
		}()
	}
}

// etcdSet is a 3-member etcd on loopback.
type etcdSet struct {
	endpoints []string
	metrics   string
	cmds      []*exec.Cmd
}

func startEtcd(dir string) *etcdSet {
	e := &etcdSet{}
	var initial []string
	type member struct{ name, client, peer string }
	var ms []member
	for i := range 3 {
		m := member{fmt.Sprintf("m%d", i), fmt.Sprintf("http://127.0.0.1:%d", 2379+10*i), fmt.Sprintf("http://127.0.0.1:%d", 2380+10*i)}
		ms = append(ms, m)
		initial = append(initial, m.name+"="+m.peer)
		e.endpoints = append(e.endpoints, m.client)
	}
	e.metrics = ms[0].client + "/metrics"
	for _, m := range ms {
		cmd := exec.Command(*etcdBin, "--name", m.name, "--data-dir", filepath.Join(dir, "etcd-"+m.name),
			"--listen-client-urls", m.client, "--advertise-client-urls", m.client,
			"--listen-peer-urls", m.peer, "--initial-advertise-peer-urls", m.peer,
			"--initial-cluster", strings.Join(initial, ","), "--initial-cluster-state", "new",
			"--log-level", "warn", "--logger", "zap")
		logf, err := os.Create(filepath.Join(dir, "etcd-"+m.name+".log"))
		must(err)
		cmd.Stdout, cmd.Stderr = logf, logf
		must(cmd.Start())
		e.cmds = append(e.cmds, cmd)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	for ctx.Err() == nil {
		if strings.Contains(scrape.Get(ms[0].client+"/health"), `"health":"true"`) {
			return e
		}
		time.Sleep(200 * time.Millisecond)
	}
	must(fmt.Errorf("etcd did not become healthy"))
	return nil
}

func (e *etcdSet) stop() {
	for _, c := range e.cmds {
		c.Process.Kill()
		c.Wait()
	}
}

func must(err error) {
	if err != nil {
		fmt.Fprintln(os.Stderr, "votesload:", err)
		os.Exit(1)
	}
}
