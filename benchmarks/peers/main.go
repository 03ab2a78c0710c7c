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
//
// Issue 23 (`make bench23`, or `go run ./benchmarks/peers -suite issue23
// -rounds 3`, as root from the repository root; about 30 minutes on the
// 2-core VM) adds, each configured the way the peer's documentation
// recommends (the configs below say how):
//   - cookies: the cells static+cookie, geo+cookie, ecs+cookie,
//     mixed+cookie and flood+cookie send a DNS client cookie with every
//     query (dnsperf -E 10:...); geodns answers cookies by default, gdnsd 3.x
//     too, Knot through mod-cookies (enabled in every Knot here). dnsperf
//     2.10 sends only the last -E it is given, so ecs+cookie (two options)
//     is sent by ecsload. NSD 4.6 has no cookie support (4.8 added it), so
//     it runs no cookie cell.
//   - RRL at a limit no cell reaches: geodns-rrl, knot-rrl (mod-rrl), nsd-rrl
//     (rrl-ratelimit; Debian builds NSD with --enable-ratelimit and RRL on
//     at 200/s by default, so the plain nsd server turns it off). gdnsd has
//     no RRL.
//   - two server cores (-cores 2): geodns with GOMAXPROCS=2 (two UDP
//     readers: one per P), gdnsd udp_threads/tcp_threads 2, Knot
//     udp-workers/tcp-workers 2, NSD server-count 2; servers on CPUs 0-1
//     and the load generator on the same two CPUs (there is no third core):
//     the 1 -> 2 core scaling factor includes the load generator's share.
//   - the real DB-IP City data (-db dbip; see dbip.go for what gdnsd and
//     Knot are given) and the cell ecs200k: 200,000 distinct client /24s
//     that DB-IP places in as many distinct locations, one ECS option per
//     query, sent by benchmarks/ecsload (dnsperf cannot vary the option).
//     The cell static-gen is the static cell sent by ecsload, to check
//     that it reaches dnsperf's rate.
//   - Knot with mod-geoip (knot-geoip) for the geo cells, when Debian's
//     knot-module-geoip is installed (scripts/bench-deps.sh installs it).
//   - tcp-link: the static name over TCP at the fixed rate, with dnsperf in
//     a network namespace of its own linked to the servers' by a veth pair
//     (the harness then runs in a new network namespace itself: root), so
//     that what is measured is not loopback's Nagle/ack coupling of client
//     and server.
//
// Peak RSS (VmHWM) is read after every cell, the floods included.
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

	"github.com/geodns/geodns/benchmarks/internal/proc"
)

var (
	rounds     = flag.Int("rounds", 3, "rounds; each runs every server once, in a rotated order")
	duration   = flag.Duration("duration", 5*time.Second, "length of each dnsperf run")
	fixedQPS   = flag.Int("fixed-qps", 10000, "offered load of the latency runs")
	serverCPU  = flag.String("server-cpu", "", "CPUs the server is pinned to (default 0, or 0-1 with -cores 2)")
	clientCPU  = flag.String("client-cpu", "", "CPUs dnsperf is pinned to (default 1, or 0-1 with -cores 2)")
	servers    = flag.String("servers", "geodns,geodns-rrl,gdnsd,knot,nsd", "servers to measure")
	cellsFlag  = flag.String("cells", "static,geo,ecs,mixed,tcp,flood", "cells to measure")
	cores      = flag.Int("cores", 1, "server cores: 1, or 2 (servers and load generator then share CPUs 0-1)")
	dbFlag     = flag.String("db", "synthetic", "GeoIP data of the geo cells: synthetic (a small GeoIP2-City file) or dbip (the real DB-IP City Lite data in data/geoip)")
	suite      = flag.String("suite", "", "issue23: every cell issue 23 asks for, over both core counts and both databases (-servers, -cells, -cores, -db are then ignored)")
	knotGeoMod = flag.String("knot-geoip-module", "", "Knot's geoip.so when it is not installed in Knot's module directory (knot-module-geoip)")
	geodnsBin  = flag.String("geodns", "bin/geodns", "the geodns binary")
	baseBin    = flag.String("base", "", "the geodns binary the server geodns-base runs (an older build, measured in the same rounds)")
	outDir     = flag.String("out", "", "directory for raw output and the summary (default benchmarks/out/peers-<time>)")
	basePort   = flag.Int("port", 5400, "first of the ports the servers listen on")
	keep       = flag.Bool("keep", false, "keep the work directory (configs, zones, logs)")
)

const addr = "127.0.0.1"

// The veth link of the tcp-link cell: the servers' end, and dnsperf's in
// a namespace of its own. Nothing routes these beyond the pair.
const (
	linkServer = "10.223.0.1"
	linkClient = "10.223.0.2"
)

// ECS 198.51.100.0/24, which the benchmark's GeoIP data places in the US.
const ecsNetSynthetic = "198.51.100.0"

// The client cookie of the cookie cells (RFC 7873: 8 bytes).
const clientCookie = "0123456789abcdef"

type cell struct {
	name, file string
	tcp, ecs   bool
	geo        bool   // needs a geo-capable server
	once       bool   // saturation run: each query of the file once (dnsperf -n 1), not for -duration
	do         bool   // DNSSEC OK set (dnsperf -D)
	cookie     bool   // a client cookie in every query
	gen        string // "": dnsperf; "one": ecsload with the cell's one ECS network; "many": ecsload over the 200,000 /24s; "none": ecsload, no EDNS
	link       bool   // TCP from the client namespace over the veth pair
	fixedOnly  bool   // only the fixed-rate run
	dbip       bool   // only with the DB-IP data
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
	{name: "static+cookie", file: "q_static.txt", cookie: true},
	{name: "geo+cookie", file: "q_geo.txt", geo: true, cookie: true},
	{name: "ecs+cookie", file: "q_geo.txt", geo: true, ecs: true, cookie: true, gen: "one"},
	{name: "mixed+cookie", file: "q_mixed.txt", cookie: true},
	{name: "flood+cookie", file: "q_flood.txt", once: true, cookie: true},
	{name: "tcp-link", file: "q_static.txt", tcp: true, link: true, fixedOnly: true},
	{name: "ecs200k", file: "q_geo.txt", geo: true, ecs: true, gen: "many", dbip: true},
	{name: "static-gen", file: "q_static.txt", gen: "none"},
}

// pass is one configuration the rounds measure: its servers and cells on
// a core count and a GeoIP database.
type pass struct {
	label           string
	cores           int
	db              string // synthetic or dbip
	servers         []string
	cells           []cell
	fixed           bool // also the fixed-rate runs (CPU and latency at -fixed-qps)
	serverCPU, cpus string
}

// issue23 is the suite of issue 23: everything on one core and the
// synthetic data (with the fixed-rate runs: CPU ÷ Knot), the scaling
// cells on two cores, and the geo cells on the DB-IP data on both.
func issue23() []pass {
	return []pass{
		{label: "1 core, synthetic GeoIP2", cores: 1, db: "synthetic", fixed: true,
			servers: []string{"geodns", "geodns-rrl", "gdnsd", "knot", "knot-rrl", "knot-geoip", "nsd", "nsd-rrl"},
			cells:   cellsNamed("static,geo,ecs,mixed,tcp,flood,static+cookie,geo+cookie,ecs+cookie,mixed+cookie,flood+cookie,tcp-link")},
		{label: "2 cores, synthetic GeoIP2", cores: 2, db: "synthetic",
			servers: []string{"geodns", "gdnsd", "knot", "knot-geoip"},
			cells:   cellsNamed("static,geo,ecs,mixed,tcp,flood")},
		{label: "1 core, DB-IP City", cores: 1, db: "dbip", fixed: true,
			servers: []string{"geodns", "gdnsd", "knot-geoip"},
			cells:   cellsNamed("geo,ecs,ecs200k")},
		{label: "2 cores, DB-IP City", cores: 2, db: "dbip",
			servers: []string{"geodns", "gdnsd", "knot-geoip"},
			cells:   cellsNamed("geo,ecs,ecs200k")},
	}
}

func cellsNamed(list string) []cell {
	var out []cell
	for _, name := range strings.Split(list, ",") {
		i := slices.IndexFunc(allCells, func(c cell) bool { return c.name == name })
		if i < 0 {
			fatalf("unknown cell %q", name)
		}
		out = append(out, allCells[i])
	}
	return out
}

// serves says whether a server runs a cell: geo cells need geo answers;
// knot-geoip runs only those (its other answers are knot's); the RRL
// servers run the plain UDP cells (RRL limits UDP only); cookies are
// measured where the peer implements them (not NSD 4.6).
func serves(server string, c cell) bool {
	geo := isGeo(server)
	switch {
	case c.geo && !geo:
		return false
	case server == "knot-geoip" && !c.geo:
		return false
	case strings.HasSuffix(server, "-rrl") && (c.tcp || c.cookie || c.do || c.gen == "none"):
		return false
	case c.cookie && (strings.HasPrefix(server, "nsd") || server == "knot-geoip" || strings.HasSuffix(server, "-rrl")):
		return false
	case c.link && strings.HasSuffix(server, "-rrl"):
		return false
	}
	return true
}

func isGeo(server string) bool {
	return strings.HasPrefix(server, "geodns") || server == "gdnsd" || server == "knot-geoip"
}

// result is one server's numbers for one cell in one round.
type result struct {
	pass, server, cell string
	round              int
	qps                float64 // saturation
	cpu                float64 // saturation: server CPU, share of one core
	perCore            float64 // saturation: queries answered per server CPU second
	lost               float64 // saturation: % lost
	p50, p99           float64 // fixed rate, ms
	fixedCPU           float64 // fixed rate: server CPU, share of one core
	rssKB              int64   // peak RSS of the server (VmHWM summed over its processes)
}

// env is what the runs of a pass share.
type env struct {
	work, ecsload string
	dbip          dbipData
	netns         string // the client namespace of tcp-link; "" when no cell needs it
	listen        string // the servers' address: loopback, or any address inside the harness's own namespace
}

var cleanups []func()

func fatalf(format string, args ...any) {
	for i := len(cleanups) - 1; i >= 0; i-- {
		cleanups[i]()
	}
	log.Fatalf(format, args...)
}

func check(err error) {
	if err != nil {
		fatalf("%v", err)
	}
}

func main() {
	flag.Parse()
	log.SetFlags(log.Ltime)
	var passes []pass
	switch *suite {
	case "":
		passes = []pass{{label: fmt.Sprintf("%d core(s), %s", *cores, *dbFlag), cores: *cores, db: *dbFlag, fixed: true,
			servers: strings.Split(*servers, ","), cells: cellsNamed(*cellsFlag)}}
	case "issue23":
		passes = issue23()
	default:
		fatalf("unknown suite %q", *suite)
	}
	needLink, needGen, needDBIP := false, false, false
	for i := range passes {
		p := &passes[i]
		if p.cores != 1 && p.cores != 2 {
			fatalf("-cores: 1 or 2")
		}
		p.serverCPU, p.cpus = "0", "1"
		if p.cores == 2 {
			p.serverCPU, p.cpus = "0-1", "0-1"
		}
		if *serverCPU != "" {
			p.serverCPU = *serverCPU
		}
		if *clientCPU != "" {
			p.cpus = *clientCPU
		}
		if slices.Contains(p.servers, "knot-geoip") && !knotGeoIPAvailable() {
			log.Printf("knot-geoip left out: Knot's geoip module is not installed (scripts/bench-deps.sh installs knot-module-geoip; or give -knot-geoip-module)")
			p.servers = slices.DeleteFunc(p.servers, func(s string) bool { return s == "knot-geoip" })
		}
		for _, c := range p.cells {
			needLink = needLink || c.link
			needGen = needGen || c.gen != ""
		}
		needDBIP = needDBIP || p.db == "dbip"
	}
	if needLink && os.Getenv("GEODNS_PEERS_NETNS") == "" {
		// The whole run moves into a network namespace of its own, where
		// the servers may listen on every address: the namespace has only
		// its loopback and the veth pair made below.
		proc.RunInNetNS("peers", "GEODNS_PEERS_NETNS", "1", *geodnsBin)
	}
	if *outDir == "" {
		*outDir = filepath.Join("benchmarks", "out", "peers-"+time.Now().Format("20060102-150405"))
	}
	work, err := os.MkdirTemp("", "geodns-peers-")
	check(err)
	if *keep {
		log.Printf("work directory kept: %s", work)
	} else {
		cleanups = append(cleanups, func() { os.RemoveAll(work) })
	}
	check(os.MkdirAll(filepath.Join(*outDir, "raw"), 0o755))
	e := env{work: work, listen: addr}
	if needLink {
		e.netns = setupLink()
		e.listen = "0.0.0.0"
	}
	if needGen {
		e.ecsload = filepath.Join(work, "ecsload")
		if out, err := exec.Command("go", "build", "-o", e.ecsload, "./benchmarks/ecsload").CombinedOutput(); err != nil {
			fatalf("building ecsload (run from the repository root): %v\n%s", err, out)
		}
	}
	if needDBIP {
		root, err := os.Getwd()
		check(err)
		e.dbip = prepareDBIP(root)
	}
	writeCommon(work, e)
	var results []result
	t0 := time.Now()
	for r := 1; r <= *rounds; r++ {
		for _, p := range passes {
			names := p.servers
			order := append(slices.Clone(names[(r-1)%len(names):]), names[:(r-1)%len(names)]...)
			for _, name := range order {
				results = append(results, measure(e, p, name, r)...)
			}
		}
		log.Printf("round %d done after %v", r, time.Since(t0).Round(time.Second))
	}
	summary := summarize(results, passes)
	if *suite == "issue23" {
		summary = issue23Table(results, passes) + "\n" + summary
	}
	fmt.Print(summary)
	check(os.WriteFile(filepath.Join(*outDir, "summary.md"), []byte(summary), 0o644))
	var tsv strings.Builder
	fmt.Fprintln(&tsv, "pass\tserver\tcell\tround\tqps\tcpu\tqps_per_core\tlost_pct\tp50_ms\tp99_ms\tfixed_cpu\trss_kb")
	for _, x := range results {
		fmt.Fprintf(&tsv, "%s\t%s\t%s\t%d\t%.0f\t%.3f\t%.0f\t%.2f\t%.3f\t%.3f\t%.3f\t%d\n", x.pass, x.server, x.cell, x.round, x.qps, x.cpu, x.perCore, x.lost, x.p50, x.p99, x.fixedCPU, x.rssKB)
	}
	check(os.WriteFile(filepath.Join(*outDir, "runs.tsv"), []byte(tsv.String()), 0o644))
	log.Printf("results in %s (%v)", *outDir, time.Since(t0).Round(time.Second))
	for i := len(cleanups) - 1; i >= 0; i-- {
		cleanups[i]()
	}
}

// setupLink makes the client namespace of tcp-link and the veth pair to
// it, and returns the namespace's name. Called inside the harness's own
// namespace, whose loopback it also brings up.
func setupLink() string {
	ns := fmt.Sprintf("geodns-peers-%d", os.Getpid())
	run := func(args ...string) {
		if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
			fatalf("ip %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
	run("link", "set", "lo", "up")
	run("netns", "add", ns)
	cleanups = append(cleanups, func() { exec.Command("ip", "netns", "del", ns).Run() })
	run("link", "add", "gp-srv", "type", "veth", "peer", "name", "gp-cli", "netns", ns)
	run("addr", "add", linkServer+"/30", "dev", "gp-srv")
	run("link", "set", "gp-srv", "up")
	run("-n", ns, "addr", "add", linkClient+"/30", "dev", "gp-cli")
	run("-n", ns, "link", "set", "gp-cli", "up")
	run("-n", ns, "link", "set", "lo", "up")
	return ns
}

// measure starts one server, checks its answers, runs every cell it
// serves and stops it.
func measure(e env, p pass, name string, round int) []result {
	port := *basePort + slices.Index(p.servers, name)
	dir := filepath.Join(e.work, fmt.Sprintf("%s-%d-%d-%s", name, round, p.cores, p.db))
	check(os.MkdirAll(dir, 0o755))
	cmd, geo := start(e, p, dir, name, port)
	cmd.Stdout, cmd.Stderr = logFile(dir), logFile(dir)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	check(cmd.Start())
	pid := cmd.Process.Pid
	stop := func() {
		syscall.Kill(-pid, syscall.SIGTERM)
		done := make(chan struct{})
		go func() { cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			syscall.Kill(-pid, syscall.SIGKILL)
			<-done
		}
	}
	cleanups = append(cleanups, stop)
	defer func() {
		cleanups = cleanups[:len(cleanups)-1]
		stop()
	}()
	server := net.JoinHostPort(addr, strconv.Itoa(port))
	if err := ready(server); err != nil {
		fatalf("%s did not start: %v (log in %s)", name, err, dir)
	}
	verify(e, name, server, geo, p)
	var out []result
	for _, c := range p.cells {
		if !serves(name, c) || (c.dbip && p.db != "dbip") {
			continue
		}
		res := result{pass: p.label, server: name, cell: c.name, round: round}
		if !c.fixedOnly {
			sat := load(e, p, name, round, c, port, pid, false)
			res.qps, res.cpu, res.perCore, res.lost = sat.qps, sat.cpu, sat.perCore, sat.lost
		}
		if p.fixed || c.fixedOnly {
			fixed := load(e, p, name, round, c, port, pid, true)
			res.p50, res.p99, res.fixedCPU = fixed.p50, fixed.p99, fixed.cpu
		}
		res.rssKB = peakRSS(pid)
		log.Printf("round %d %s %-10s %-13s %8.0f qps  cpu %5.1f%%  %8.0f q/core-s  lost %.2f%% | @%d qps p50 %.3f ms p99 %.3f ms cpu %5.1f%%  rss %d MB",
			round, p.label, name, c.name, res.qps, 100*res.cpu, res.perCore, res.lost, *fixedQPS, res.p50, res.p99, 100*res.fixedCPU, res.rssKB/1024)
		out = append(out, res)
	}
	return out
}

func logFile(dir string) *os.File {
	f, err := os.OpenFile(filepath.Join(dir, "server.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	check(err)
	return f
}

// knotGeoIPAvailable: Knot loads mod-geoip from its module directory
// (Debian's knot-module-geoip), or from -knot-geoip-module.
func knotGeoIPAvailable() bool {
	if *knotGeoMod != "" {
		_, err := os.Stat(*knotGeoMod)
		return err == nil
	}
	m, _ := filepath.Glob("/usr/lib/*/knot/modules-*/geoip.so")
	return len(m) > 0
}

// start returns the command that runs a server pinned to the server CPUs,
// and whether it serves the geo names.
func start(e env, p pass, dir, name string, port int) (*exec.Cmd, bool) {
	pin := func(args ...string) *exec.Cmd {
		c := exec.Command("taskset", append([]string{"-c", p.serverCPU}, args...)...)
		c.Env = append(os.Environ(), fmt.Sprintf("GOMAXPROCS=%d", p.cores))
		return c
	}
	zone := filepath.Join(e.work, "example.com.zone")
	listen := net.JoinHostPort(e.listen, strconv.Itoa(port))
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
		// GOMAXPROCS (the cores) is also the number of UDP sockets and
		// readers; cookies are on by default.
		args := []string{bin, "serve", "--zones", zd, "--listen", listen, "--http", "off", "--log-format", "json",
			"--state-dir", filepath.Join(dir, "state")}
		if p.db == "dbip" {
			args = append(args, "--geoip", e.dbip.v4, "--geoip", e.dbip.v6) // DB-IP's own two files, as geodns reads them
		} else {
			args = append(args, "--geoip", filepath.Join(e.work, "geo.mmdb"))
		}
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
		mmdb := filepath.Join(e.work, "geo.mmdb")
		if p.db == "dbip" {
			mmdb = e.dbip.geoip2
		}
		check(os.WriteFile(filepath.Join(dir, "config"), fmt.Appendf(nil, gdnsdConfig, e.listen, port, p.cores, p.cores, dir, dir, mmdb), 0o644))
		return pin("gdnsd", "-c", dir, "-f", "start"), true
	case "knot", "knot-signed", "knot-rrl", "knot-geoip":
		check(os.MkdirAll(filepath.Join(dir, "db"), 0o755))
		withWWW(zone, filepath.Join(dir, "example.com.zone"))
		check(os.WriteFile(filepath.Join(dir, "knot.conf"), []byte(knotConf(e, p, dir, name, port)), 0o644))
		return pin("knotd", "-c", filepath.Join(dir, "knot.conf")), name == "knot-geoip"
	case "nsd", "nsd-rrl":
		withWWW(zone, filepath.Join(dir, "example.com.zone"))
		// Debian builds NSD with --enable-ratelimit, so RRL is on (200/s a
		// /24) unless turned off: nsd turns it off, nsd-rrl sets a limit no
		// cell reaches (its accounting runs for every answer).
		rrl := "rrl-ratelimit: 0\n  rrl-whitelist-ratelimit: 0"
		if name == "nsd-rrl" {
			rrl = "rrl-ratelimit: 100000000\n  rrl-whitelist-ratelimit: 100000000"
		}
		check(os.WriteFile(filepath.Join(dir, "nsd.conf"), fmt.Appendf(nil, nsdConfig, e.listen, port, p.cores, rrl, dir, dir, dir, dir, dir), 0o644))
		return pin("nsd", "-d", "-c", filepath.Join(dir, "nsd.conf")), false
	}
	fatalf("unknown server %q", name)
	return nil, false
}

// knotConf: Knot as its documentation configures each part. Workers: one
// of each kind per server core (udp-workers, tcp-workers; the background
// workers run zone events, none during the cells). mod-cookies as a
// global module, as its documentation shows, in every Knot here: the
// cookie cells need it, and a server answering cookies checks for the
// option in the other cells too (geodns and gdnsd do the same).
func knotConf(e env, p pass, dir, name string, port int) string {
	var b strings.Builder
	fmt.Fprintf(&b, `server:
    rundir: "%s"
    listen: %s@%d
    udp-workers: %d
    tcp-workers: %d
    background-workers: 1
database:
    storage: "%s/db"
log:
  - target: stderr
    any: warning
`, dir, e.listen, port, p.cores, p.cores, dir)
	global := []string{"mod-cookies"}
	zoneModule := ""
	switch name {
	case "knot-signed":
		zoneModule = "mod-onlinesign" // Knot's online signer: every answer signed when asked, compact denial
	case "knot-rrl":
		// mod-rrl as its documentation's example, at a limit no cell
		// reaches: every answer accounted, none limited.
		b.WriteString("mod-rrl:\n  - id: default\n    rate-limit: 100000000\n    slip: 2\n")
		global = append(global, "mod-rrl/default")
	case "knot-geoip":
		if *knotGeoMod != "" {
			fmt.Fprintf(&b, "module:\n  - id: mod-geoip\n    file: \"%s\"\n", *knotGeoMod)
		}
		// mod-geoip in geodb mode keyed by country/iso_code, as its
		// documentation's example; the answers per country are in
		// geo.conf (knotGeoConf).
		mmdb, countries := filepath.Join(e.work, "geo.mmdb"), map[string][2]float64{"DE": {50.11, 8.68}, "US": {39.04, -77.49}}
		if p.db == "dbip" {
			mmdb, countries = e.dbip.geoip2, readCountries(e.dbip.countries)
		}
		check(os.WriteFile(filepath.Join(dir, "geo.conf"), []byte(knotGeoConf(countries)), 0o644))
		// The module reads a query's ECS option only with the server's
		// ECS support on (knot.conf(5), edns-client-subnet; default off).
		b.WriteString("server:\n    edns-client-subnet: on\n")
		fmt.Fprintf(&b, "mod-geoip:\n  - id: geo\n    config-file: \"%s/geo.conf\"\n    ttl: 300\n    mode: geodb\n    geodb-file: \"%s\"\n    geodb-key: [ country/iso_code ]\n", dir, mmdb)
		zoneModule = "mod-geoip/geo"
	}
	fmt.Fprintf(&b, `template:
  - id: default
    storage: "%s"
    zonefile-sync: -1
    zonefile-load: whole
    journal-content: none
    semantic-checks: off
    global-module: [ %s ]
zone:
  - domain: example.com
    file: "%s/example.com.zone"
`, dir, strings.Join(global, ", "), dir)
	if zoneModule != "" {
		fmt.Fprintf(&b, "    module: %s\n", zoneModule)
	}
	return b.String()
}

func copyFile(from, to string) {
	b, err := os.ReadFile(from)
	check(err)
	check(os.WriteFile(to, b, 0o644))
}

// withWWW writes the zone with www as a plain record, for servers without
// geo answers (and Knot's mod-geoip default: the other site).
func withWWW(from, to string) {
	b, err := os.ReadFile(from)
	check(err)
	check(os.WriteFile(to, append(b, "www 300 IN A 192.0.2.100\n"...), 0o644))
}

// ready waits until the server answers the static name.
func ready(server string) error {
	c := &dns.Client{Timeout: 200 * time.Millisecond}
	var err error
	for range 150 {
		var r *dns.Msg
		r, _, err = c.Exchange(new(dns.Msg).SetQuestion("static.example.com.", dns.TypeA), server)
		if err == nil && len(r.Answer) == 1 {
			return nil
		}
		time.Sleep(100 * time.Millisecond)
	}
	return err
}

// ecsNet is the fixed ECS network of the ecs cells: one the pass's data
// places in the US (nearest the na site).
func ecsNet(e env, p pass) net.IP {
	if p.db == "dbip" {
		return net.IP(e.dbip.usNet.AsSlice())
	}
	return net.ParseIP(ecsNetSynthetic).To4()
}

// ecsOption is dnsperf's -E value for an ECS /24.
func ecsOption(n net.IP) string {
	return fmt.Sprintf("8:00011800%02x%02x%02x", n[0], n[1], n[2])
}

// verify checks the answers the cells measure; a server answering wrong
// would be measured doing something else.
func verify(e env, name, server string, geo bool, p pass) {
	c := &dns.Client{Timeout: time.Second}
	ask := func(qname string, qtype uint16, ecs bool) *dns.Msg {
		q := new(dns.Msg).SetQuestion(qname, qtype)
		if ecs {
			q.SetEdns0(1232, false)
			q.IsEdns0().Option = append(q.IsEdns0().Option, &dns.EDNS0_SUBNET{Code: dns.EDNS0SUBNET, Family: 1, SourceNetmask: 24, Address: ecsNet(e, p)})
		}
		r, _, err := c.Exchange(q, server)
		if err != nil {
			fatalf("%s: %s: %v", name, qname, err)
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
		// The synthetic data puts loopback in Germany (eu) and the ECS
		// network in the US (na); DB-IP has no loopback (every server
		// answers its default, the other site) and the ECS network in the
		// eastern US (na).
		want["www"], want["www-ecs"] = "192.0.2.101", "192.0.2.102"
		if p.db == "dbip" {
			want["www"] = "192.0.2.100"
		}
	}
	got := map[string]string{
		"static":  first(ask("static.example.com.", dns.TypeA, false)),
		"www":     first(ask("www.example.com.", dns.TypeA, false)),
		"www-ecs": first(ask("www.example.com.", dns.TypeA, true)),
	}
	for k, w := range want {
		if got[k] != w {
			fatalf("%s answers %s with %s, want %s", name, k, got[k], w)
		}
	}
	if r := ask("nx-1.example.com.", dns.TypeA, false); r.Rcode != dns.RcodeNameError {
		fatalf("%s: nx-1.example.com: %s, want NXDOMAIN", name, dns.RcodeToString[r.Rcode])
	}
	// The cookie cells measure servers that answer a client cookie with
	// a server cookie (RFC 7873): check each does.
	if slices.ContainsFunc(p.cells, func(c cell) bool { return c.cookie && serves(name, c) }) {
		q := new(dns.Msg).SetQuestion("static.example.com.", dns.TypeA)
		q.SetEdns0(1232, false)
		q.IsEdns0().Option = append(q.IsEdns0().Option, &dns.EDNS0_COOKIE{Code: dns.EDNS0COOKIE, Cookie: clientCookie})
		r, _, err := c.Exchange(q, server)
		if err != nil {
			fatalf("%s: cookie query: %v", name, err)
		}
		ok := false
		if o := r.IsEdns0(); o != nil {
			for _, opt := range o.Option {
				if ck, is := opt.(*dns.EDNS0_COOKIE); is && strings.HasPrefix(ck.Cookie, clientCookie) && len(ck.Cookie) > len(clientCookie) {
					ok = true
				}
			}
		}
		if !ok {
			fatalf("%s answers a client cookie without a server cookie: cookies are not on", name)
		}
	}
	// A signed server signs what the DO cells ask, the denial too; an
	// unsigned one does not.
	for _, qname := range []string{"static.example.com.", "nx-2.example.com."} {
		q := new(dns.Msg).SetQuestion(qname, dns.TypeA)
		q.SetEdns0(1232, true)
		r, _, err := c.Exchange(q, server)
		if err != nil {
			fatalf("%s: %s DO: %v", name, qname, err)
		}
		sigs := 0
		for _, rr := range append(r.Answer, r.Ns...) {
			if rr.Header().Rrtype == dns.TypeRRSIG {
				sigs++
			}
		}
		if signed := strings.HasSuffix(name, "-signed"); signed != (sigs > 0) {
			fatalf("%s: %s with DO: %d signatures", name, qname, sigs)
		}
	}
}

type run struct {
	qps, cpu, perCore, lost, p50, p99 float64
}

// load runs one dnsperf (or ecsload) pinned to the client CPUs and reads
// the server's CPU time around it. Saturation: 4 clients with 200 queries
// outstanding on one core (8 and 400 over two threads with -cores 2);
// fixed rate: one client, 50 outstanding, -fixed-qps, every latency kept.
func load(e env, p pass, name string, round int, c cell, port, pid int, fixed bool) run {
	server := addr
	if c.link {
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
	t0, w0 := cpuTicks(pid), time.Now()
	out, err := cmd.CombinedOutput()
	t1, wall := cpuTicks(pid), time.Since(w0)
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
func writeCommon(work string, e env) {
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

	// ecsload's network files for the cells with one ECS network.
	check(os.WriteFile(filepath.Join(work, "ecs-one-synthetic.bin"), net.ParseIP(ecsNetSynthetic).To4(), 0o644))
	if e.dbip.usNet.IsValid() {
		check(os.WriteFile(filepath.Join(work, "ecs-one-dbip.bin"), e.dbip.usNet.AsSlice(), 0o644))
	}
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
// geodns does; address, port, UDP and TCP threads (one of each per server
// core, gdnsd's per-address settings), run_dir, state_dir, the mmdb.
// gdnsd 3.x answers DNS cookies by default (disable_cookies is false) and
// has no response rate limiting.
const gdnsdConfig = `options => {
  listen => { %s:%d => { udp_threads => %d, tcp_threads => %d } }
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

// nsdConfig: address, port, server-count (one per server core), the RRL
// settings, zones dir, pid file dir, xfrd dir, zone list dir, log dir.
const nsdConfig = `server:
  ip-address: %s@%d
  server-count: %d
  %s
  username: ""
  chroot: ""
  zonesdir: "%s"
  database: ""
  pidfile: "%s/nsd.pid"
  xfrdfile: "%s/xfrd.state"
  zonelistfile: "%s/zone.list"
  logfile: "%s/nsd.log"
  hide-version: yes
remote-control:
  control-enable: no
zone:
  name: example.com
  zonefile: example.com.zone
`

// lookup finds one result.
type lookup []result

func (l lookup) get(pass, server, cell string, round int) (result, bool) {
	for _, r := range l {
		if r.pass == pass && r.server == server && r.cell == cell && r.round == round {
			return r, true
		}
	}
	return result{}, false
}

// ratios is the median over rounds of a/b, each taken within its round;
// "–" when no round has both.
func (l lookup) ratios(pass, a, b, cell string, f func(result) float64) string {
	return ratio(l.ratioList(pass, a, b, cell, f))
}

func (l lookup) ratioList(pass, a, b, cell string, f func(result) float64) []float64 {
	var xs []float64
	for r := 1; r <= *rounds; r++ {
		x, ok1 := l.get(pass, a, cell, r)
		y, ok2 := l.get(pass, b, cell, r)
		if ok1 && ok2 && f(x) > 0 && f(y) > 0 {
			xs = append(xs, f(x)/f(y))
		}
	}
	return xs
}

func (l lookup) med(pass, server, cell string, f func(result) float64) float64 {
	var xs []float64
	for r := 1; r <= *rounds; r++ {
		if x, ok := l.get(pass, server, cell, r); ok {
			xs = append(xs, f(x))
		}
	}
	return median(xs)
}

var (
	perCore  = func(r result) float64 { return r.perCore }
	qpsOf    = func(r result) float64 { return r.qps }
	fixedCPU = func(r result) float64 { return r.fixedCPU }
	rssOf    = func(r result) float64 { return float64(r.rssKB) }
)

// knotFor is the Knot a cell compares with: mod-geoip for the geo cells.
func knotFor(c cell, rrl bool) string {
	switch {
	case rrl:
		return "knot-rrl"
	case c.geo:
		return "knot-geoip"
	}
	return "knot"
}

// summarize renders one table per pass: per cell and server, the median
// over rounds of each number and of each ratio taken within a round.
func summarize(results []result, passes []pass) string {
	l := lookup(results)
	var b strings.Builder
	for _, p := range passes {
		fmt.Fprintf(&b, "### %s\n\n%s, `go run ./benchmarks/peers -rounds %d -duration %v -fixed-qps %d -cores %d -db %s` (server on CPU %s, load on CPU %s; medians of %d rounds)\n\n",
			p.label, time.Now().Format(time.DateOnly), *rounds, *duration, *fixedQPS, p.cores, p.db, p.serverCPU, p.cpus, *rounds)
		if p.cores == 2 {
			b.WriteString("Two server cores: the load generator shares CPUs 0-1 with the server (this VM has no third core).\n\n")
		}
		refs := []string{}
		for _, s := range []string{"geodns", "gdnsd", "nsd", "knot", "knot-signed"} {
			if slices.Contains(p.servers, s) || (s == "knot" && slices.Contains(p.servers, "knot-geoip")) {
				refs = append(refs, s)
			}
		}
		fmt.Fprint(&b, "| cell | server | QPS | server CPU | QPS per server core |")
		for _, s := range refs {
			fmt.Fprintf(&b, " ÷ %s |", s)
		}
		fmt.Fprintln(&b, " p50 ms @10k | p99 ms @10k | p99 ÷ Knot | CPU @10k | CPU ÷ Knot | peak RSS | RSS ÷ Knot |")
		fmt.Fprintln(&b, "|---|---|---|---|---|"+strings.Repeat("---|", len(refs))+"---|---|---|---|---|---|---|")
		for _, c := range p.cells {
			for _, s := range p.servers {
				if _, ok := l.get(p.label, s, c.name, 1); !ok {
					if _, ok := l.get(p.label, s, c.name, *rounds); !ok {
						continue
					}
				}
				knot := knotFor(c, strings.HasSuffix(s, "-rrl"))
				fmt.Fprintf(&b, "| %s | %s | %.0f | %.0f %% | %.0f |", c.name, s, l.med(p.label, s, c.name, qpsOf),
					100*l.med(p.label, s, c.name, func(r result) float64 { return r.cpu }), l.med(p.label, s, c.name, perCore))
				for _, ref := range refs {
					if ref == "knot" {
						ref = knotFor(c, false)
					}
					fmt.Fprintf(&b, " %s |", l.ratios(p.label, s, ref, c.name, perCore))
				}
				fmt.Fprintf(&b, " %.3f | %.3f | %s | %.1f %% | %s | %.0f MB | %s |\n",
					l.med(p.label, s, c.name, func(r result) float64 { return r.p50 }), l.med(p.label, s, c.name, func(r result) float64 { return r.p99 }),
					l.ratios(p.label, s, knot, c.name, func(r result) float64 { return r.p99 }),
					100*l.med(p.label, s, c.name, fixedCPU), l.ratios(p.label, s, knot, c.name, fixedCPU),
					l.med(p.label, s, c.name, rssOf)/1024, l.ratios(p.label, s, knot, c.name, rssOf))
			}
		}
		b.WriteString("\n")
	}
	return b.String()
}

// issue23Table is issue 23's table: geodns over each peer (QPS per server
// core), CPU at the fixed rate and peak RSS over Knot's, per cell and
// pass; the RRL rows set geodns-rrl against knot-rrl and nsd-rrl (gdnsd
// has no RRL); then the 1 -> 2 core scaling per server.
func issue23Table(results []result, passes []pass) string {
	l := lookup(results)
	var b strings.Builder
	fmt.Fprintf(&b, "## Issue 23 (%s, `go run ./benchmarks/peers -suite issue23 -rounds %d -duration %v`)\n\n", time.Now().Format(time.DateOnly), *rounds, *duration)
	b.WriteString("Ratios are medians over rounds of ratios within a round. QPS ratios are per server core; ÷ Knot is Knot with mod-geoip on the geo cells, knot-rrl on the RRL rows (÷ NSD: nsd-rrl). CPU ÷ Knot at a fixed 10k qps (1-core passes). RSS: peak (VmHWM) after the cell.\n\n")
	b.WriteString("| pass | cell | geodns ÷ gdnsd | ÷ NSD | ÷ Knot | CPU @10k ÷ Knot | geodns peak RSS | RSS ÷ Knot |\n|---|---|---|---|---|---|---|---|\n")
	for _, p := range passes {
		for _, rrl := range []bool{false, true} {
			g, nsd := "geodns", "nsd"
			if rrl {
				g, nsd = "geodns-rrl", "nsd-rrl"
			}
			if !slices.Contains(p.servers, g) {
				continue
			}
			for _, c := range p.cells {
				if !serves(g, c) || (c.dbip && p.db != "dbip") {
					continue
				}
				name := c.name
				if rrl {
					name += " (RRL on)"
				}
				knot := knotFor(c, rrl)
				gd := l.ratios(p.label, g, "gdnsd", c.name, perCore)
				fmt.Fprintf(&b, "| %s | %s | %s | %s | %s | %s | %.0f MB | %s |\n", p.label, name, gd,
					l.ratios(p.label, g, nsd, c.name, perCore), l.ratios(p.label, g, knot, c.name, perCore),
					l.ratios(p.label, g, knot, c.name, fixedCPU), l.med(p.label, g, c.name, rssOf)/1024, l.ratios(p.label, g, knot, c.name, rssOf))
			}
		}
	}
	// Scaling: a 2-core pass over the 1-core pass of the same data, QPS
	// (not per core: two cores should answer about twice as much).
	var sc strings.Builder
	for _, p2 := range passes {
		if p2.cores != 2 {
			continue
		}
		i := slices.IndexFunc(passes, func(p pass) bool { return p.cores == 1 && p.db == p2.db })
		if i < 0 {
			continue
		}
		p1 := passes[i]
		for _, c := range p2.cells {
			fmt.Fprintf(&sc, "| %s | %s |", p2.db, c.name)
			for _, s := range []string{"geodns", "gdnsd", "knot"} {
				if s == "knot" {
					s = knotFor(c, false)
				}
				q1, q2 := l.med(p1.label, s, c.name, qpsOf), l.med(p2.label, s, c.name, qpsOf)
				if q1 > 0 && q2 > 0 {
					fmt.Fprintf(&sc, " %.2f (%.0f → %.0f) |", q2/q1, q1, q2)
				} else {
					sc.WriteString(" – |")
				}
			}
			sc.WriteString("\n")
		}
	}
	if sc.Len() > 0 {
		b.WriteString("\nScaling from one server core to two: QPS on 2 cores ÷ QPS on 1 (medians). On 2 cores the load generator runs on the same two CPUs as the server (this VM has no third), so these understate what a server does with two cores of its own.\n\n")
		b.WriteString("| data | cell | geodns | gdnsd | Knot |\n|---|---|---|---|---|\n")
		b.WriteString(sc.String())
	}
	b.WriteString("\nNot measured: gdnsd has no RRL; NSD 4.6 has no DNS cookies (4.8 added them), so it runs no cookie cell; dnsperf sends one EDNS option, so ecs+cookie and ecs200k are sent by benchmarks/ecsload (static-gen compares it with dnsperf).\n")
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
