// Command peers measures geodns against gdnsd, Knot and NSD with dnsperf:
// the same zone data in each, every server pinned to one core and dnsperf
// to the other, the servers interleaved round by round (this VM's speed
// drifts), and ratios taken against the peers measured in the same round.
//
//	scripts/bench-deps.sh && make build
//	go run ./benchmarks/peers -rounds 3 -duration 5s
//
// Cells: static (a plain A record), geo (a service name, placed by the
// source address), ecs (the same with an ECS option), mixed (10,000
// queries: 65 % positive, 15 % NODATA, 20 % NXDOMAIN), tcp (the static
// name over TCP), flood (a random-name flood: 1,000,000 distinct names,
// half under a wildcard, half NXDOMAIN, each asked once; the peak RSS after
// it shows whether memory stays flat). The server geodns-rrl is geodns with
// response rate limiting on at a limit no cell reaches, so it measures what
// the accounting costs; geodns-base is the binary given with -base (say,
// the last release), for a before-and-after in the same rounds. Per cell
// and server: a saturation run (QPS, server CPU,
// QPS per server core) and a run at a fixed rate with per-query latencies
// (p50, p99, server CPU). Knot and NSD serve no geo names here.
//
// DNSSEC (issue 21): geodns-signed is geodns with the zone signed (a
// dnssec: key), knot-signed Knot signing online (mod-onlinesign); the
// cells static-do, ecs-do and nxflood-do set DO (dnsperf -D), the last a
// random-name NXDOMAIN flood (200,000 names, each once) that both sign
// online. Their ÷ geodns column is signed over unsigned, ÷ knot-signed
// geodns-signed over Knot's online signer:
//
//	go run ./benchmarks/peers -servers geodns,geodns-signed,knot-signed -cells static-do,ecs-do,nxflood-do
package main

import (
	"bufio"
	"cmp"
	"flag"
	"fmt"
	"log"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/maxmind/mmdbwriter"
	"github.com/maxmind/mmdbwriter/mmdbtype"
	"github.com/miekg/dns"
)

var (
	rounds    = flag.Int("rounds", 3, "rounds; each runs every server once, in a rotated order")
	duration  = flag.Duration("duration", 5*time.Second, "length of each dnsperf run")
	fixedQPS  = flag.Int("fixed-qps", 10000, "offered load of the latency runs")
	serverCPU = flag.String("server-cpu", "0", "CPU the server is pinned to")
	clientCPU = flag.String("client-cpu", "1", "CPU dnsperf is pinned to")
	servers   = flag.String("servers", "geodns,geodns-rrl,gdnsd,knot,nsd", "servers to measure")
	cellsFlag = flag.String("cells", "static,geo,ecs,mixed,tcp,flood", "cells to measure")
	geodnsBin = flag.String("geodns", "bin/geodns", "the geodns binary")
	baseBin   = flag.String("base", "", "the geodns binary the server geodns-base runs (an older build, measured in the same rounds)")
	outDir    = flag.String("out", "", "directory for raw output and the summary (default benchmarks/out/peers-<time>)")
	basePort  = flag.Int("port", 5400, "first of the ports the servers listen on")
	keep      = flag.Bool("keep", false, "keep the work directory (configs, zones, logs)")
)

const addr = "127.0.0.1"

// ECS 198.51.100.0/24, which the benchmark's GeoIP data places in the US.
const ecsOption = "8:00011800c63364"

type cell struct {
	name, file string
	tcp, ecs   bool
	geo        bool // needs a geo-capable server
	once       bool // saturation run: each query of the file once (dnsperf -n 1), not for -duration
	do         bool // DNSSEC OK set (dnsperf -D)
}

var allCells = []cell{
	{name: "static", file: "q_static.txt"},
	{name: "geo", file: "q_geo.txt", geo: true},
	{name: "ecs", file: "q_geo.txt", geo: true, ecs: true},
	{name: "mixed", file: "q_mixed.txt"},
	{name: "tcp", file: "q_static.txt", tcp: true},
	{name: "flood", file: "q_flood.txt", once: true},
	{name: "static-do", file: "q_static.txt", do: true},
	{name: "ecs-do", file: "q_geo.txt", geo: true, ecs: true, do: true},
	{name: "nxflood-do", file: "q_nxflood.txt", once: true, do: true},
}

// result is one server's numbers for one cell in one round.
type result struct {
	server, cell string
	round        int
	qps          float64 // saturation
	cpu          float64 // saturation: server CPU, share of one core
	perCore      float64 // saturation: queries answered per server CPU second
	lost         float64 // saturation: % lost
	p50, p99     float64 // fixed rate, ms
	fixedCPU     float64 // fixed rate: server CPU, share of one core
	rssKB        int64   // peak RSS of the server (VmHWM summed over its processes)
}

func main() {
	flag.Parse()
	log.SetFlags(log.Ltime)
	if *outDir == "" {
		*outDir = filepath.Join("benchmarks", "out", "peers-"+time.Now().Format("20060102-150405"))
	}
	work, err := os.MkdirTemp("", "geodns-peers-")
	check(err)
	if *keep {
		log.Printf("work directory kept: %s", work)
	} else {
		defer os.RemoveAll(work)
	}
	check(os.MkdirAll(filepath.Join(*outDir, "raw"), 0o755))
	writeCommon(work)
	var cells []cell
	for _, c := range allCells {
		if slices.Contains(strings.Split(*cellsFlag, ","), c.name) {
			cells = append(cells, c)
		}
	}
	names := strings.Split(*servers, ",")
	var results []result
	for r := 1; r <= *rounds; r++ {
		order := append(names[(r-1)%len(names):], names[:(r-1)%len(names)]...)
		for _, name := range order {
			results = append(results, measure(work, name, r, cells)...)
		}
	}
	summary := summarize(results, names, cells)
	fmt.Print(summary)
	check(os.WriteFile(filepath.Join(*outDir, "summary.md"), []byte(summary), 0o644))
	var tsv strings.Builder
	fmt.Fprintln(&tsv, "server\tcell\tround\tqps\tcpu\tqps_per_core\tlost_pct\tp50_ms\tp99_ms\tfixed_cpu\trss_kb")
	for _, x := range results {
		fmt.Fprintf(&tsv, "%s\t%s\t%d\t%.0f\t%.3f\t%.0f\t%.2f\t%.3f\t%.3f\t%.3f\t%d\n", x.server, x.cell, x.round, x.qps, x.cpu, x.perCore, x.lost, x.p50, x.p99, x.fixedCPU, x.rssKB)
	}
	check(os.WriteFile(filepath.Join(*outDir, "runs.tsv"), []byte(tsv.String()), 0o644))
	log.Printf("results in %s", *outDir)
}

func check(err error) {
	if err != nil {
		log.Fatal(err)
	}
}

// measure starts one server, checks its answers, runs every cell it
// serves and stops it.
func measure(work, name string, round int, cells []cell) []result {
	port := *basePort + slices.Index(strings.Split(*servers, ","), name)
	dir := filepath.Join(work, fmt.Sprintf("%s-%d", name, round))
	check(os.MkdirAll(dir, 0o755))
	cmd, geo := start(work, dir, name, port)
	cmd.Stdout, cmd.Stderr = logFile(dir), logFile(dir)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	check(cmd.Start())
	pid := cmd.Process.Pid
	defer func() {
		syscall.Kill(-pid, syscall.SIGTERM)
		done := make(chan struct{})
		go func() { cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			syscall.Kill(-pid, syscall.SIGKILL)
			<-done
		}
	}()
	server := net.JoinHostPort(addr, strconv.Itoa(port))
	if err := ready(server); err != nil {
		log.Fatalf("%s did not start: %v (log in %s)", name, err, dir)
	}
	verify(name, server, geo)
	var out []result
	for _, c := range cells {
		if c.geo && !geo {
			continue
		}
		res := result{server: name, cell: c.name, round: round}
		sat := dnsperf(work, name, round, c, port, pid, false)
		res.qps, res.cpu, res.perCore, res.lost = sat.qps, sat.cpu, sat.perCore, sat.lost
		fixed := dnsperf(work, name, round, c, port, pid, true)
		res.p50, res.p99, res.fixedCPU = fixed.p50, fixed.p99, fixed.cpu
		res.rssKB = peakRSS(pid)
		log.Printf("round %d %-6s %-6s %8.0f qps  cpu %5.1f%%  %8.0f q/core-s  lost %.2f%% | @%d qps p50 %.3f ms p99 %.3f ms cpu %5.1f%%  rss %d MB",
			round, name, c.name, res.qps, 100*res.cpu, res.perCore, res.lost, *fixedQPS, res.p50, res.p99, 100*res.fixedCPU, res.rssKB/1024)
		out = append(out, res)
	}
	return out
}

func logFile(dir string) *os.File {
	f, err := os.OpenFile(filepath.Join(dir, "server.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	check(err)
	return f
}

// start returns the command that runs a server pinned to the server CPU,
// and whether it serves the geo names.
func start(work, dir, name string, port int) (*exec.Cmd, bool) {
	pin := func(args ...string) *exec.Cmd {
		c := exec.Command("taskset", append([]string{"-c", *serverCPU}, args...)...)
		c.Env = append(os.Environ(), "GOMAXPROCS=1")
		return c
	}
	zone := filepath.Join(work, "example.com.zone")
	mmdb := filepath.Join(work, "geo.mmdb")
	listen := net.JoinHostPort(addr, strconv.Itoa(port))
	switch name {
	case "geodns", "geodns-rrl", "geodns-base", "geodns-signed":
		zd := filepath.Join(dir, "zones")
		check(os.MkdirAll(zd, 0o755))
		copyFile(zone, filepath.Join(zd, "static.zone"))
		yz := geodnsZone
		if name == "geodns-signed" {
			yz += "dnssec: {algorithm: ECDSAP256SHA256}\n"
		}
		check(os.WriteFile(filepath.Join(zd, "example.com.yaml"), []byte(yz), 0o644))
		bin, err := filepath.Abs(*geodnsBin)
		if name == "geodns-base" {
			bin, err = filepath.Abs(*baseBin)
		}
		check(err)
		args := []string{bin, "serve", "--zones", zd, "--listen", listen, "--geoip", mmdb, "--http", "off", "--log-format", "json",
			"--state-dir", filepath.Join(dir, "state")}
		if name == "geodns-rrl" {
			// Every answer is accounted; none is limited (dnsperf asks from one address).
			conf := filepath.Join(dir, "geodns.yaml")
			check(os.WriteFile(conf, []byte("rrl: {responses_per_second: 100000000}\n"), 0o644))
			args = append(args, "--config", conf)
		}
		return pin(args...), true
	case "gdnsd":
		check(os.MkdirAll(filepath.Join(dir, "zones"), 0o755))
		z, err := os.ReadFile(zone)
		check(err)
		check(os.WriteFile(filepath.Join(dir, "zones", "example.com"), append(z, "www 300 DYNA geoip!www\n"...), 0o644))
		check(os.WriteFile(filepath.Join(dir, "config"), fmt.Appendf(nil, gdnsdConfig, addr, port, dir, dir, mmdb), 0o644))
		return pin("gdnsd", "-c", dir, "-f", "start"), true
	case "knot", "knot-signed":
		check(os.MkdirAll(filepath.Join(dir, "db"), 0o755))
		withWWW(zone, filepath.Join(dir, "example.com.zone"))
		conf := knotConfig
		if name == "knot-signed" {
			conf += "    module: mod-onlinesign\n" // Knot's online signer: every answer signed when asked, compact denial
		}
		check(os.WriteFile(filepath.Join(dir, "knot.conf"), fmt.Appendf(nil, conf, dir, addr, port, dir, dir, dir), 0o644))
		return pin("knotd", "-c", filepath.Join(dir, "knot.conf")), false
	case "nsd":
		withWWW(zone, filepath.Join(dir, "example.com.zone"))
		check(os.WriteFile(filepath.Join(dir, "nsd.conf"), fmt.Appendf(nil, nsdConfig, addr, port, dir, dir, dir, dir, dir), 0o644))
		return pin("nsd", "-d", "-c", filepath.Join(dir, "nsd.conf")), false
	}
	log.Fatalf("unknown server %q", name)
	return nil, false
}

func copyFile(from, to string) {
	b, err := os.ReadFile(from)
	check(err)
	check(os.WriteFile(to, b, 0o644))
}

// withWWW writes the zone with www as a plain record, for servers without
// geo answers.
func withWWW(from, to string) {
	b, err := os.ReadFile(from)
	check(err)
	check(os.WriteFile(to, append(b, "www 300 IN A 192.0.2.100\n"...), 0o644))
}

// ready waits until the server answers the static name.
func ready(server string) error {
	c := &dns.Client{Timeout: 200 * time.Millisecond}
	var err error
	for range 100 {
		var r *dns.Msg
		r, _, err = c.Exchange(new(dns.Msg).SetQuestion("static.example.com.", dns.TypeA), server)
		if err == nil && len(r.Answer) == 1 {
			return nil
		}
		time.Sleep(100 * time.Millisecond)
	}
	return err
}

// verify checks the answers the cells measure; a server answering wrong
// would be measured doing something else.
func verify(name, server string, geo bool) {
	c := &dns.Client{Timeout: time.Second}
	ask := func(qname string, qtype uint16, ecs bool) *dns.Msg {
		q := new(dns.Msg).SetQuestion(qname, qtype)
		if ecs {
			q.SetEdns0(1232, false)
			q.IsEdns0().Option = append(q.IsEdns0().Option, &dns.EDNS0_SUBNET{Code: dns.EDNS0SUBNET, Family: 1, SourceNetmask: 24, Address: net.ParseIP("198.51.100.0").To4()})
		}
		r, _, err := c.Exchange(q, server)
		if err != nil {
			log.Fatalf("%s: %s: %v", name, qname, err)
		}
		return r
	}
	first := func(r *dns.Msg) string {
		if len(r.Answer) == 0 {
			return dns.RcodeToString[r.Rcode] + " (no answer)"
		}
		if a, ok := r.Answer[0].(*dns.A); ok {
			return a.A.String()
		}
		return r.Answer[0].String()
	}
	want := map[string]string{"static": "192.0.2.10", "www": "192.0.2.100", "www-ecs": "192.0.2.100"}
	if geo {
		want["www"], want["www-ecs"] = "192.0.2.101", "192.0.2.102" // loopback is Europe, the ECS network North America
	}
	got := map[string]string{
		"static":  first(ask("static.example.com.", dns.TypeA, false)),
		"www":     first(ask("www.example.com.", dns.TypeA, false)),
		"www-ecs": first(ask("www.example.com.", dns.TypeA, true)),
	}
	for k, w := range want {
		if got[k] != w {
			log.Fatalf("%s answers %s with %s, want %s", name, k, got[k], w)
		}
	}
	if r := ask("nx-1.example.com.", dns.TypeA, false); r.Rcode != dns.RcodeNameError {
		log.Fatalf("%s: nx-1.example.com: %s, want NXDOMAIN", name, dns.RcodeToString[r.Rcode])
	}
	// A signed server signs what the DO cells ask, the denial too; an
	// unsigned one does not.
	for _, qname := range []string{"static.example.com.", "nx-2.example.com."} {
		q := new(dns.Msg).SetQuestion(qname, dns.TypeA)
		q.SetEdns0(1232, true)
		r, _, err := c.Exchange(q, server)
		if err != nil {
			log.Fatalf("%s: %s DO: %v", name, qname, err)
		}
		sigs := 0
		for _, rr := range append(r.Answer, r.Ns...) {
			if rr.Header().Rrtype == dns.TypeRRSIG {
				sigs++
			}
		}
		if signed := strings.HasSuffix(name, "-signed"); signed != (sigs > 0) {
			log.Fatalf("%s: %s with DO: %d signatures", name, qname, sigs)
		}
	}
}

type run struct {
	qps, cpu, perCore, lost, p50, p99 float64
}

// dnsperf runs one dnsperf pinned to the client CPU and reads the
// server's CPU time around it.
func dnsperf(work, name string, round int, c cell, port, pid int, fixed bool) run {
	args := []string{"-c", *clientCPU, "dnsperf", "-s", addr, "-p", strconv.Itoa(port), "-d", filepath.Join(work, c.file), "-t", "2"}
	if c.once && !fixed {
		args = append(args, "-n", "1")
	} else {
		args = append(args, "-l", strconv.FormatFloat(duration.Seconds(), 'f', -1, 64))
	}
	if c.tcp {
		args = append(args, "-m", "tcp")
	}
	if c.ecs {
		args = append(args, "-E", ecsOption)
	}
	if c.do {
		args = append(args, "-D")
	}
	kind := "sat"
	if fixed {
		kind = "fixed"
		args = append(args, "-c", "1", "-q", "50", "-Q", strconv.Itoa(*fixedQPS), "-v")
	} else {
		args = append(args, "-c", "4", "-q", "200")
	}
	t0, w0 := cpuTicks(pid), time.Now()
	out, err := exec.Command("taskset", args...).CombinedOutput()
	t1, wall := cpuTicks(pid), time.Since(w0)
	if err != nil {
		log.Fatalf("dnsperf: %v\n%s", err, out)
	}
	raw := filepath.Join(*outDir, "raw", fmt.Sprintf("%s-%s-%s-r%d.txt", name, c.name, kind, round))
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
		}
	}
	check(os.WriteFile(raw, []byte(summary.String()), 0o644))
	secs := float64(t1-t0) / clkTck
	r.cpu = secs / wall.Seconds()
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

const clkTck = 100 // USER_HZ on Linux

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

// writeCommon writes the zone, the query files and the GeoIP data.
func writeCommon(work string) {
	var z strings.Builder
	z.WriteString(`$ORIGIN example.com.
$TTL 300
@       IN SOA ns1.example.com. hostmaster.example.com. 2026112501 3600 600 604800 300
@       IN NS  ns1.example.com.
@       IN NS  ns2.example.com.
@       IN MX  10 mail.example.com.
@       IN TXT "v=spf1 -all"
ns1     IN A   192.0.2.1
ns2     IN A   192.0.2.2
mail    IN A   192.0.2.25
static  IN A   192.0.2.10
static  IN AAAA 2001:db8::10
txt     IN TXT "hello benchmark"
*.wild  IN TXT "wildcard answer"
`)
	for i := 1; i <= 200; i++ {
		fmt.Fprintf(&z, "host%d IN A 198.51.100.%d\n", i, i%250+1)
	}
	check(os.WriteFile(filepath.Join(work, "example.com.zone"), []byte(z.String()), 0o644))
	check(os.WriteFile(filepath.Join(work, "q_static.txt"), []byte("static.example.com A\n"), 0o644))
	check(os.WriteFile(filepath.Join(work, "q_geo.txt"), []byte("www.example.com A\n"), 0o644))

	// 10,000 queries: 65 % positive, 15 % NODATA, 20 % NXDOMAIN.
	rng := rand.New(rand.NewPCG(42, 42))
	var q strings.Builder
	for range 10000 {
		r, h, x := rng.IntN(100), rng.IntN(200)+1, rng.IntN(1000000)
		switch {
		case r < 25:
			fmt.Fprintf(&q, "host%d.example.com A\n", h)
		case r < 35:
			q.WriteString("static.example.com A\n")
		case r < 40:
			q.WriteString("static.example.com AAAA\n")
		case r < 45:
			q.WriteString("mail.example.com A\n")
		case r < 50:
			q.WriteString("example.com SOA\n")
		case r < 55:
			q.WriteString("example.com NS\n")
		case r < 60:
			q.WriteString("example.com MX\n")
		case r < 63:
			q.WriteString("txt.example.com TXT\n")
		case r < 65:
			q.WriteString("ns1.example.com A\n")
		case r < 70:
			q.WriteString("static.example.com MX\n") // NODATA
		case r < 75:
			fmt.Fprintf(&q, "host%d.example.com AAAA\n", h) // NODATA
		case r < 80:
			q.WriteString("mail.example.com TXT\n") // NODATA
		case r < 95:
			fmt.Fprintf(&q, "nx-%d.example.com A\n", x) // NXDOMAIN
		default:
			fmt.Fprintf(&q, "a%d.b%d.example.com A\n", x, h) // NXDOMAIN, deeper
		}
	}
	check(os.WriteFile(filepath.Join(work, "q_mixed.txt"), []byte(q.String()), 0o644))

	// The random-name flood: 1,000,000 distinct names, each once.
	var fl strings.Builder
	for i := range 1000000 {
		if i%2 == 0 {
			fmt.Fprintf(&fl, "r%d-%x.wild.example.com TXT\n", i, rng.Uint32())
		} else {
			fmt.Fprintf(&fl, "r%d-%x.example.com A\n", i, rng.Uint32())
		}
	}
	check(os.WriteFile(filepath.Join(work, "q_flood.txt"), []byte(fl.String()), 0o644))

	// The NXDOMAIN flood for the DO cell: 200,000 names that do not
	// exist, each once; a signed server denies each with a new signature.
	var nx strings.Builder
	for i := range 200000 { // online signing answers a few thousand a second: a run of a minute or less
		fmt.Fprintf(&nx, "n%d-%x.example.com A\n", i, rng.Uint32())
	}
	check(os.WriteFile(filepath.Join(work, "q_nxflood.txt"), []byte(nx.String()), 0o644))
	writeMMDB(filepath.Join(work, "geo.mmdb"))
}

// writeMMDB writes a GeoIP2-City database: loopback in Germany (the
// source of the geo cell), 198.51.100.0/24 in the US (the ECS cell).
func writeMMDB(path string) {
	w, err := mmdbwriter.New(mmdbwriter.Options{DatabaseType: "GeoIP2-City", RecordSize: 28, IPVersion: 6, IncludeReservedNetworks: true})
	check(err)
	put := func(cidr, country, continent string, lat, lon float64) {
		_, n, err := net.ParseCIDR(cidr)
		check(err)
		check(w.Insert(n, mmdbtype.Map{
			"country":   mmdbtype.Map{"iso_code": mmdbtype.String(country)},
			"continent": mmdbtype.Map{"code": mmdbtype.String(continent)},
			"location":  mmdbtype.Map{"latitude": mmdbtype.Float64(lat), "longitude": mmdbtype.Float64(lon)},
		}))
	}
	put("127.0.0.0/8", "DE", "EU", 50.11, 8.68)
	put("198.51.100.0/24", "US", "NA", 39.04, -77.49)
	f, err := os.Create(path)
	check(err)
	_, err = w.WriteTo(f)
	check(err)
	check(f.Close())
}

// geodnsZone serves the static data (imported) and www as a service with
// sites by distance: Germany is nearest eu, Ashburn nearest na.
const geodnsZone = `origin: example.com.
import: static.zone
records:
  www: {service: web}
sites:
  other: {lat: -33.9, lon: 18.4}
  eu: {lat: 50.11, lon: 8.68}
  na: {lat: 39.04, lon: -77.49}
services:
  web:
    ttl: 300
    endpoints:
      - {site: other, address: 192.0.2.100}
      - {site: eu, address: 192.0.2.101}
      - {site: na, address: 192.0.2.102}
    site_order: [other]
`

// gdnsdConfig: www by the client's coordinates (auto_dc_coords), as
// geodns does; address, port, run_dir, state_dir, the mmdb.
const gdnsdConfig = `options => {
  listen => { %s:%d => { udp_threads => 1, tcp_threads => 1 } }
  run_dir => %s/run
  state_dir => %s/state
}
plugins => {
  geoip => {
    maps => {
      geo => {
        geoip2_db => %s
        datacenters => [ other, eu, na ]
        auto_dc_coords => { other => [ -33.9, 18.4 ], eu => [ 50.11, 8.68 ], na => [ 39.04, -77.49 ] }
      }
    }
    resources => {
      www => {
        map => geo
        service_types => up
        dcmap => { other => 192.0.2.100, eu => 192.0.2.101, na => 192.0.2.102 }
      }
    }
  }
}
`

// knotConfig: rundir, address, port, storage, zone dir, zone file dir.
const knotConfig = `server:
    rundir: "%s"
    listen: %s@%d
    udp-workers: 1
    tcp-workers: 1
    background-workers: 1
database:
    storage: "%s/db"
log:
  - target: stderr
    any: warning
template:
  - id: default
    storage: "%s"
    zonefile-sync: -1
    zonefile-load: whole
    journal-content: none
    semantic-checks: off
zone:
  - domain: example.com
    file: "%s/example.com.zone"
`

// nsdConfig: address, port, zones dir, pid file dir, xfrd dir, zone list
// dir, log dir.
const nsdConfig = `server:
  ip-address: %s@%d
  server-count: 1
  username: ""
  chroot: ""
  zonesdir: "%s"
  database: ""
  pidfile: "%s/nsd.pid"
  xfrdfile: "%s/xfrd.state"
  zonelistfile: "%s/zone.list"
  logfile: "%s/nsd.log"
  hide-version: yes
  rrl-ratelimit: 0
  rrl-whitelist-ratelimit: 0
remote-control:
  control-enable: no
zone:
  name: example.com
  zonefile: example.com.zone
`

// summarize renders the tables: per cell, the median over rounds of each
// number and of each ratio taken within a round.
func summarize(results []result, names []string, cells []cell) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s, `go run ./benchmarks/peers -rounds %d -duration %v -fixed-qps %d` (server on CPU %s, dnsperf on CPU %s; medians of %d rounds)\n\n",
		time.Now().Format(time.DateOnly), *rounds, *duration, *fixedQPS, *serverCPU, *clientCPU, *rounds)
	fmt.Fprintln(&b, "| cell | server | QPS | server CPU | QPS per server core | ÷ geodns | ÷ gdnsd | ÷ NSD | ÷ knot-signed | p50 ms @10k | p99 ms @10k | p99 ÷ Knot | CPU @10k | CPU ÷ Knot | peak RSS |")
	fmt.Fprintln(&b, "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
	get := func(server, cell string, round int) (result, bool) {
		for _, r := range results {
			if r.server == server && r.cell == cell && r.round == round {
				return r, true
			}
		}
		return result{}, false
	}
	for _, c := range cells {
		for _, s := range names {
			var qps, cpu, core, p50, p99, fcpu, rss, rGeo, rGd, rNsd, rKs, rP99, rCPU []float64
			for r := 1; r <= *rounds; r++ {
				x, ok := get(s, c.name, r)
				if !ok {
					continue
				}
				qps, cpu, core = append(qps, x.qps), append(cpu, x.cpu), append(core, x.perCore)
				p50, p99, fcpu, rss = append(p50, x.p50), append(p99, x.p99), append(fcpu, x.fixedCPU), append(rss, float64(x.rssKB))
				if g, ok := get("geodns", c.name, r); ok && g.perCore > 0 {
					rGeo = append(rGeo, x.perCore/g.perCore)
				}
				if g, ok := get("gdnsd", c.name, r); ok && g.perCore > 0 {
					rGd = append(rGd, x.perCore/g.perCore)
				}
				if n, ok := get("nsd", c.name, r); ok && n.perCore > 0 {
					rNsd = append(rNsd, x.perCore/n.perCore)
				}
				if k, ok := get("knot-signed", c.name, r); ok && k.perCore > 0 {
					rKs = append(rKs, x.perCore/k.perCore)
				}
				if k, ok := get("knot", c.name, r); ok && k.p99 > 0 && k.fixedCPU > 0 {
					rP99 = append(rP99, x.p99/k.p99)
					rCPU = append(rCPU, x.fixedCPU/k.fixedCPU)
				}
			}
			if len(qps) == 0 {
				continue
			}
			fmt.Fprintf(&b, "| %s | %s | %.0f | %.0f %% | %.0f | %s | %s | %s | %s | %.3f | %.3f | %s | %.1f %% | %s | %.0f MB |\n",
				c.name, s, median(qps), 100*median(cpu), median(core), ratio(rGeo), ratio(rGd), ratio(rNsd), ratio(rKs), median(p50), median(p99), ratio(rP99),
				100*median(fcpu), ratio(rCPU), median(rss)/1024)
		}
	}
	return b.String()
}

func median(xs []float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	s := slices.Clone(xs)
	slices.SortFunc(s, cmp.Compare)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

func ratio(xs []float64) string {
	if len(xs) == 0 {
		return "–"
	}
	return fmt.Sprintf("%.2f", median(xs))
}
