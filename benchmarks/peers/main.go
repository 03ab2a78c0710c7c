// Command peers measures geodns against gdnsd, Knot and NSD with dnsperf:
// the same zone data in each, every server pinned to one core and dnsperf
// to the other, the servers interleaved cell by cell (this VM's speed
// drifts; see measureRound), and ratios taken against the peers measured
// in the same round.
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
// (p50, p99, server CPU, and the busy time of the server's cores, which
// also counts the kernel's network work there outside the server's own
// system calls: see run.core). Knot and NSD serve no geo names here.
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
// Pre-signed zones: geodns-presigned, nsd-presigned and knot-presigned
// serve the benchmark zone signed ahead by ldns-signzone (NSEC3, no
// iterations, no salt, as RFC 9276 says), each from the same file, as
// each one's documentation serves a signed zone file (no signing option):
//
//	go run ./benchmarks/peers -servers geodns-presigned,nsd-presigned,knot-presigned -cells static-do,nxflood-do,mixed
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
//   - DO: nxflood-do, a random-name flood with DO set (dnsperf -D), as
//     resolvers send one (most set DO): the zone is unsigned, so every
//     server answers it as without DO, or should (geodns did not: the
//     absent-name templates were skipped with DO until f31a9aa).
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
//   - tcp-nic: the same over a second veth pair whose ends steer what they
//     receive (RPS) to their own side's CPUs: the client's receive work and
//     wake-up run on dnsperf's CPU, as behind a NIC, not in the server's
//     send. On a plain veth, as on loopback, the sender pays for both.
//
// Peak RSS (VmHWM) is read after every cell, the floods included.
//
// The server geodns-null (benchmarks/nullserver, built here) is geodns's
// serving loop answering every query with the query itself: no answer
// engine. Beside geodns and gdnsd it shows what the engine costs and what
// a faster one could at best gain (-servers geodns,geodns-null,gdnsd).
// It gives no answers, so the harness checks none from it.
package main

import (
	"flag"
	"fmt"
	"log"
	"math/rand/v2"
	"net"

	"github.com/miekg/dns"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/maxmind/mmdbwriter"
	"github.com/maxmind/mmdbwriter/mmdbtype"

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
	order      = flag.String("order", "cell", "cell: all servers of a pass up at once, each cell run on one after the other; server: one server up at a time, all its cells, then the next")
	floodNames = flag.Int("flood-names", 1000000, "distinct names of the flood cells (fewer for a quick smoke run; the peak RSS after the flood needs the full million to fill geodns's answer cache)")
)

const addr = "127.0.0.1"

// The veth links of the tcp-link and tcp-nic cells: the servers' ends,
// and dnsperf's in a namespace of its own. Nothing routes these beyond
// the pairs.
const (
	linkServer = "10.223.0.1"
	linkClient = "10.223.0.2"
	nicServer  = "10.223.0.5"
	nicClient  = "10.223.0.6"
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
	link       bool   // TCP from the client namespace over a veth pair
	nic        bool   // over the pair that steers received packets to the receiver's CPUs (RPS)
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
	{name: "tcp-nic", file: "q_static.txt", tcp: true, link: true, nic: true, fixedOnly: true},
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
// synthetic data (with the fixed-rate runs: CPU ÷ Knot; with geodns-null,
// the bound of an engine costing nothing), the scaling
// cells on two cores, and the geo cells on the DB-IP data on both. The
// floods come last in a pass, so that the peak RSS after each other cell
// is that cell's; static-gen follows static, so that ecsload and dnsperf
// are compared seconds apart.
func issue23() []pass {
	return []pass{
		{label: "1 core, synthetic GeoIP2", cores: 1, db: "synthetic", fixed: true,
			servers: []string{"geodns", "geodns-rrl", nullServer, "gdnsd", "knot", "knot-rrl", "knot-geoip", "nsd", "nsd-rrl"},
			cells:   cellsNamed("static,static-gen,geo,ecs,mixed,tcp,tcp-link,tcp-nic,static+cookie,geo+cookie,ecs+cookie,mixed+cookie,flood,flood+cookie,nxflood-do")},
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
	case c.gen == "none" && server != "geodns" && server != "gdnsd":
		return false // the generator's check: two servers suffice
	}
	return true
}

func isGeo(server string) bool {
	return strings.HasPrefix(server, "geodns") && !strings.HasSuffix(server, "-presigned") || server == "gdnsd" || server == "knot-geoip"
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
	fixedCore          float64 // fixed rate: the server's CPUs' busy time, share of one core (see run.core)
	fixedRate          float64 // fixed rate: the QPS answered (below -fixed-qps when the server or the path cannot keep up)
	rssKB              int64   // peak RSS of the server (VmHWM summed over its processes)
}

// nullServer is benchmarks/nullserver's name among the servers.
const nullServer = "geodns-null"

// env is what the runs of a pass share.
type env struct {
	work, ecsload string
	null          string // benchmarks/nullserver, built when geodns-null is measured
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
	if *order != "cell" && *order != "server" {
		fatalf("-order: cell or server")
	}
	needLink, needGen, needDBIP, needNull := false, false, false, false
	var linkCPUs [2]string // the server's and the client's CPUs of the first pass with a link cell
	for i := range passes {
		p := &passes[i]
		if p.cores != 1 && p.cores != 2 {
			fatalf("-cores: 1 or 2")
		}
		if p.db != "dbip" {
			// The DB-IP cells (ecs200k) need the real data: left out here,
			// so that no loop over the pass's cells has to ask.
			p.cells = slices.DeleteFunc(p.cells, func(c cell) bool {
				if c.dbip {
					log.Printf("%s left out: it needs -db dbip", c.name)
				}
				return c.dbip
			})
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
		if i == 0 {
			pinSelf(p.cpus)
		}
		if slices.Contains(p.servers, "knot-geoip") && !knotGeoIPAvailable() {
			log.Printf("knot-geoip left out: Knot's geoip module is not installed (scripts/bench-deps.sh installs knot-module-geoip; or give -knot-geoip-module)")
			p.servers = slices.DeleteFunc(p.servers, func(s string) bool { return s == "knot-geoip" })
		}
		for _, c := range p.cells {
			if c.link && !needLink {
				needLink, linkCPUs = true, [2]string{p.serverCPU, p.cpus}
			}
			needGen = needGen || c.gen != ""
		}
		needDBIP = needDBIP || p.db == "dbip"
		needNull = needNull || slices.Contains(p.servers, nullServer)
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
	// Interrupted, stop the servers and delete the client namespace (a
	// named one outlives the process) before exiting.
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, os.Interrupt, syscall.SIGTERM)
	go func() { fatalf("%v", <-sig) }()
	e := env{work: work, listen: addr}
	if needLink {
		e.netns = setupLink(linkCPUs[0], linkCPUs[1])
		e.listen = "0.0.0.0"
	}
	if needNull {
		e.null = filepath.Join(work, "nullserver")
		if out, err := exec.Command("go", "build", "-o", e.null, "./benchmarks/nullserver").CombinedOutput(); err != nil {
			fatalf("building nullserver (run from the repository root): %v\n%s", err, out)
		}
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
	log.Printf("expect about %v (%s)", estimate(passes).Round(time.Minute), "runs of -duration, floods at ~200k qps, server starts")
	var results []result
	t0 := time.Now()
	for r := 1; r <= *rounds; r++ {
		for _, p := range passes {
			results = append(results, measureRound(e, p, r)...)
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
	fmt.Fprintln(&tsv, "pass\tserver\tcell\tround\tqps\tcpu\tqps_per_core\tlost_pct\tp50_ms\tp99_ms\tfixed_cpu\tfixed_qps\trss_kb\tfixed_core")
	for _, x := range results {
		fmt.Fprintf(&tsv, "%s\t%s\t%s\t%d\t%.0f\t%.3f\t%.0f\t%.2f\t%.3f\t%.3f\t%.3f\t%.0f\t%d\t%.3f\n", x.pass, x.server, x.cell, x.round, x.qps, x.cpu, x.perCore, x.lost, x.p50, x.p99, x.fixedCPU, x.fixedRate, x.rssKB, x.fixedCore)
	}
	check(os.WriteFile(filepath.Join(*outDir, "runs.tsv"), []byte(tsv.String()), 0o644))
	log.Printf("results in %s (%v)", *outDir, time.Since(t0).Round(time.Second))
	for i := len(cleanups) - 1; i >= 0; i-- {
		cleanups[i]()
	}
}

// estimate is the run's expected length on a quiet VM: every run lasts
// -duration (a flood's saturation run its names at ~200k qps), plus about
// 0.3 s a run and 2 s a server start.
func estimate(passes []pass) time.Duration {
	var secs float64
	for _, p := range passes {
		for _, s := range p.servers {
			secs += 2
			for _, c := range p.cells {
				if !serves(s, c) {
					continue
				}
				if !c.fixedOnly {
					if c.once {
						secs += float64(*floodNames)/200000 + 0.3
					} else {
						secs += duration.Seconds() + 0.3
					}
				}
				if p.fixed || c.fixedOnly {
					secs += duration.Seconds() + 0.3
				}
			}
		}
	}
	return time.Duration(secs * float64(*rounds) * float64(time.Second))
}

// setupLink makes the client namespace of tcp-link and tcp-nic and the
// two veth pairs to it (tcp-nic's steering what each end receives to
// srvCPUs and cliCPUs), and returns the namespace's name. Called inside
// the harness's own namespace, whose loopback it also brings up.
func setupLink(srvCPUs, cliCPUs string) string {
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
	// The NIC-like pair: each end steers what it receives (RPS) to its
	// own side's CPU, as a NIC's interrupt lands on the receiving machine.
	// On a plain veth the sender's system call runs the receiver's
	// stack and wakes the receiver's thread, so a server pays for its
	// client's receive work.
	run("link", "add", "gp-nsrv", "type", "veth", "peer", "name", "gp-ncli", "netns", ns)
	run("addr", "add", nicServer+"/30", "dev", "gp-nsrv")
	run("link", "set", "gp-nsrv", "up")
	run("-n", ns, "addr", "add", nicClient+"/30", "dev", "gp-ncli")
	run("-n", ns, "link", "set", "gp-ncli", "up")
	// /sys shows the devices of the namespace that mounted it: the
	// harness's own namespace gets a fresh mount in a private mount
	// namespace, and ip netns exec makes one for the client's.
	for _, w := range [][]string{
		{"unshare", "-m", "sh", "-c", "mount -t sysfs sysfs /sys && echo " + cpuMask(srvCPUs) + " > /sys/class/net/gp-nsrv/queues/rx-0/rps_cpus"},
		{"ip", "netns", "exec", ns, "sh", "-c", "echo " + cpuMask(cliCPUs) + " > /sys/class/net/gp-ncli/queues/rx-0/rps_cpus"},
	} {
		if out, err := exec.Command(w[0], w[1:]...).CombinedOutput(); err != nil {
			fatalf("%s: %v\n%s", strings.Join(w, " "), err, out)
		}
	}
	return ns
}

// cpuList returns the CPUs of a list as taskset takes it ("0", "0-1",
// "1,3").
func cpuList(list string) []int {
	var out []int
	for _, part := range strings.Split(list, ",") {
		lo, hi, ok := strings.Cut(part, "-")
		a, err := strconv.Atoi(lo)
		check(err)
		b := a
		if ok {
			b, err = strconv.Atoi(hi)
			check(err)
		}
		for c := a; c <= b; c++ {
			out = append(out, c)
		}
	}
	return out
}

// cpuMask returns a CPU list as the hex mask sysfs takes.
func cpuMask(list string) string {
	var m uint64
	for _, c := range cpuList(list) {
		m |= 1 << c
	}
	return strconv.FormatUint(m, 16)
}

// rotate returns xs turned left by k.
func rotate[T any](xs []T, k int) []T {
	k %= len(xs)
	return append(slices.Clone(xs[k:]), xs[:k]...)
}

// measureRound runs one round of a pass. With -order cell (the default)
// every server of the pass is started first, and each cell is then run on
// one server after the other, in an order that turns with the round and
// the cell: the runs a ratio compares are seconds apart. This VM slows
// down by up to a quarter for half a minute at a time; with -order server
// (one server started, all its cells run, stopped, then the next) one
// server's whole set of cells could fall into such a spell and the other's
// not. The idle servers wait on the same cores meanwhile; their CPU time
// is not the measured server's.
func measureRound(e env, p pass, round int) []result {
	base := len(cleanups)
	stopFrom := func(n int) {
		for i := len(cleanups) - 1; i >= n; i-- {
			cleanups[i]()
		}
		cleanups = cleanups[:n]
	}
	defer stopFrom(base)
	var out []result
	names := rotate(p.servers, round-1)
	if *order == "server" {
		for _, name := range names {
			s := launch(e, p, name, round)
			for _, c := range p.cells {
				if serves(name, c) {
					out = append(out, s.run(e, p, c, round))
				}
			}
			stopFrom(base)
		}
		return out
	}
	var live []*server
	for _, name := range names {
		live = append(live, launch(e, p, name, round))
	}
	for i, c := range p.cells {
		for _, s := range rotate(live, i) {
			if serves(s.name, c) {
				out = append(out, s.run(e, p, c, round))
			}
		}
	}
	return out
}

// server is a server under test, started and checked.
type server struct {
	name, dir, addr string
	port, pid       int
}

// launch starts one server (its stop is pushed on cleanups) and checks
// its answers.
func launch(e env, p pass, name string, round int) *server {
	port := *basePort + slices.Index(p.servers, name)
	dir := filepath.Join(e.work, fmt.Sprintf("%s-%d-%d-%s", name, round, p.cores, p.db))
	check(os.MkdirAll(dir, 0o755))
	cmd, geo := start(e, p, dir, name, port)
	cmd.Stdout, cmd.Stderr = logFile(dir), logFile(dir)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	check(cmd.Start())
	pid := cmd.Process.Pid
	cleanups = append(cleanups, func() {
		syscall.Kill(-pid, syscall.SIGTERM)
		done := make(chan struct{})
		go func() { cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			syscall.Kill(-pid, syscall.SIGKILL)
			<-done
		}
	})
	s := &server{name: name, dir: dir, addr: net.JoinHostPort(addr, strconv.Itoa(port)), port: port, pid: pid}
	answers := name != nullServer // it answers nothing: its responses are the queries
	if err := ready(s.addr, answers); err != nil {
		fatalf("%s did not start: %v (log in %s)", name, err, dir)
	}
	if answers {
		verify(e, name, s.addr, geo, p)
	}
	return s
}

// run measures one cell on s: a saturation run, then the fixed rate.
func (s *server) run(e env, p pass, c cell, round int) result {
	res := result{pass: p.label, server: s.name, cell: c.name, round: round}
	if c.name == "ecs200k" && strings.HasPrefix(s.name, "geodns") && s.name != nullServer {
		// geodns compiles a service's site map once its clients come
		// from many networks (route/sitemap.go), seconds of work for
		// DB-IP, as a server with real traffic does in its first
		// seconds. Warmed up here, so that the cell measures the
		// steady state, not the compile sharing the core; the cells
		// before it ask from one network each and never need the map.
		// geodns-base too, unless it is a build from before site maps.
		warmNetworks(s.addr, 20000)
		base, wait := s.name == "geodns-base", 3*time.Minute
		if base {
			wait = time.Minute
		}
		if !waitLog(filepath.Join(s.dir, "server.log"), "site map compiled", wait) {
			if !base {
				fatalf("%s compiled no site map within %v (log in %s)", s.name, wait, s.dir)
			}
			log.Printf("%s compiled no site map within %v: measured without one", s.name, wait)
		}
	}
	if !c.fixedOnly {
		sat := load(e, p, s.name, round, c, s.port, s.pid, false)
		res.qps, res.cpu, res.perCore, res.lost = sat.qps, sat.cpu, sat.perCore, sat.lost
	}
	if p.fixed || c.fixedOnly {
		fixed := load(e, p, s.name, round, c, s.port, s.pid, true)
		res.p50, res.p99, res.fixedCPU, res.fixedRate, res.fixedCore = fixed.p50, fixed.p99, fixed.cpu, fixed.qps, fixed.core
	}
	res.rssKB = peakRSS(s.pid)
	log.Printf("round %d %s %-10s %-13s %8.0f qps  cpu %5.1f%%  %8.0f q/core-s  lost %.2f%% | @%d qps (answered %.0f/s) p50 %.3f ms p99 %.3f ms cpu %5.1f%% (core %5.1f%%)  rss %d MB",
		round, p.label, s.name, c.name, res.qps, 100*res.cpu, res.perCore, res.lost, *fixedQPS, res.fixedRate, res.p50, res.p99, 100*res.fixedCPU, 100*res.fixedCore, res.rssKB/1024)
	return res
}

// warmNetworks asks the geo name from n distinct client /24s (ECS).
func warmNetworks(server string, n int) {
	c := &dns.Client{Timeout: 500 * time.Millisecond}
	conn, err := c.Dial(server)
	check(err)
	defer conn.Close()
	for i := range n {
		m := new(dns.Msg).SetQuestion("www.example.com.", dns.TypeA)
		m.SetEdns0(1232, false)
		ip := net.IPv4(byte(1+i>>16%223), byte(i>>8), byte(i), 0).To4()
		m.IsEdns0().Option = append(m.IsEdns0().Option, &dns.EDNS0_SUBNET{Code: dns.EDNS0SUBNET, Family: 1, SourceNetmask: 24, Address: ip})
		c.ExchangeWithConn(m, conn) // a lost answer does not matter: the query was seen
	}
}

// waitLog waits until the log at path has a line containing s.
func waitLog(path, s string, limit time.Duration) bool {
	for end := time.Now().Add(limit); time.Now().Before(end); time.Sleep(100 * time.Millisecond) {
		if b, _ := os.ReadFile(path); strings.Contains(string(b), s) {
			return true
		}
	}
	return false
}

func logFile(dir string) *os.File {
	f, err := os.OpenFile(filepath.Join(dir, "server.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	check(err)
	return f
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
	for i := range *floodNames {
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
