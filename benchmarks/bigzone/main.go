// Command bigzone writes a zone of N records for the scale benchmark and,
// with -load, measures how long geodns takes to load it and the memory it
// holds per record.
//
//	go run ./benchmarks/bigzone -records 1000000 -out /tmp/big      # write /tmp/big/big.example.yaml
//	go run ./benchmarks/bigzone -records 1000000 -out /tmp/big -load
//	go run ./benchmarks/bigzone -records 1000000 -out /tmp/big -serve bin/geodns -qps 20000 -duration 40s
//
// -serve starts the server on the zone, reports when it answers and its
// RSS, then runs dnsperf against it at a fixed rate and, a third of the way
// in, edits the zone file: the reload must lose and fail no query, and the
// edit must be served.
//
// The mix is what a large hosting zone looks like: 70 % A, 10 % AAAA,
// 10 % TXT, 5 % CNAME, 5 % MX, at names host<N>, with the apex SOA and NS.
package main

import (
	"bufio"
	"flag"
	"fmt"
	"log"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"runtime/pprof"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/geodns/geodns/zones"
	"github.com/miekg/dns"
)

const origin = "big.example."

func main() {
	n := flag.Int("records", 1_000_000, "records to write")
	out := flag.String("out", "", "directory to write big.example.yaml to")
	load := flag.Bool("load", false, "load the zone and report time and memory")
	serveBin := flag.String("serve", "", "geodns binary: serve the zone and reload it under dnsperf load")
	qps := flag.Int("qps", 20000, "dnsperf rate for -serve")
	duration := flag.Duration("duration", 40*time.Second, "dnsperf run for -serve")
	cpuProfile := flag.String("cpuprofile", "", "with -load: write a CPU profile of the load to this file")
	format := flag.String("format", "master", "master: the records in an RFC 1035 file the YAML zone imports (how bulk data is kept); yaml: all in the YAML file")
	flag.Parse()
	if *out == "" {
		log.Fatal("-out is required")
	}
	path, err := write(*out, *n, *format == "master")
	if err != nil {
		log.Fatal(err)
	}
	st, _ := os.Stat(path)
	fmt.Printf("wrote %s: %d records, %.1f MB\n", path, *n, float64(st.Size())/1e6)
	if *serveBin != "" {
		serveAndReload(*serveBin, *out, *n, *qps, *duration)
		return
	}
	if !*load {
		return
	}
	runtime.GC()
	var before runtime.MemStats
	runtime.ReadMemStats(&before)
	if *cpuProfile != "" {
		f, err := os.Create(*cpuProfile)
		if err != nil {
			log.Fatal(err)
		}
		if err := pprof.StartCPUProfile(f); err != nil {
			log.Fatal(err)
		}
	}
	// As geodns serve does (cmd/geodns/knobs.go): GOGC 200 while a zone
	// compiles, unless GOGC is set higher or off.
	zones.SetCompileHook(func() func() {
		prev := debug.SetGCPercent(200)
		if prev < 0 || prev >= 200 {
			debug.SetGCPercent(prev)
		}
		return func() { debug.SetGCPercent(prev) }
	})
	start := time.Now()
	z, err := zones.LoadFile(path, nil)
	took := time.Since(start)
	pprof.StopCPUProfile()
	if err != nil {
		log.Fatal(err)
	}
	runtime.GC()
	debug.FreeOSMemory()
	var after runtime.MemStats
	runtime.ReadMemStats(&after)
	held := float64(after.HeapAlloc) - float64(before.HeapAlloc)
	fmt.Printf("loaded %d records in %.2f s; heap held %.0f MB = %.0f B/record; peak heap during load %.0f MB (GOGC=%s)\n",
		z.Len(), took.Seconds(), held/1e6, held/float64(z.Len()), float64(after.HeapSys)/1e6, orDefault(os.Getenv("GOGC"), "100"))
	runtime.KeepAlive(z)
}

func orDefault(s, d string) string {
	if s == "" {
		return d
	}
	return s
}

func write(dir string, n int, master bool) (string, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}
	path := filepath.Join(dir, "big.example.yaml")
	head := fmt.Sprintf("origin: %s\nttl: 300\nsoa: {ns: ns1.%s, mbox: hostmaster.%s}\nrecords:\n", origin, origin, origin) +
		fmt.Sprintf("  \"@\": {NS: [ns1.%s, ns2.%s]}\n  ns1: {A: [192.0.2.1]}\n  ns2: {A: [192.0.2.2]}\n", origin, origin)
	if master {
		head = "import: big.example.zone\n" + head
		if err := os.WriteFile(path, []byte(head), 0o644); err != nil {
			return "", err
		}
		return path, writeMaster(filepath.Join(dir, "big.example.zone"), n)
	}
	return path, writeRecords(path, head, n, func(w *bufio.Writer, i int, typ, value string) {
		switch typ {
		case "CNAME":
			fmt.Fprintf(w, "  h%d: {CNAME: %s}\n", i, value)
		default:
			fmt.Fprintf(w, "  h%d: {%s: [%q]}\n", i, typ, value)
		}
	})
}

// writeMaster writes the same records as an RFC 1035 master file.
func writeMaster(path string, n int) error {
	head := fmt.Sprintf("$ORIGIN %s\n$TTL 300\n", origin)
	return writeRecords(path, head, n, func(w *bufio.Writer, i int, typ, value string) {
		if typ == "TXT" {
			value = strconv.Quote(value)
		}
		fmt.Fprintf(w, "h%d %s %s\n", i, typ, value)
	})
}

// writeRecords writes head and records 3..n-1 (70 % A, 10 % AAAA, 10 %
// TXT, 5 % CNAME, 5 % MX), each formatted by line.
func writeRecords(path, head string, n int, line func(w *bufio.Writer, i int, typ, value string)) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	w := bufio.NewWriterSize(f, 1<<20)
	w.WriteString(head)
	for i := 3; i < n; i++ {
		switch i % 20 {
		case 0, 1:
			line(w, i, "AAAA", fmt.Sprintf("2001:db8:%x::%x", i>>16, i&0xffff))
		case 2, 3:
			line(w, i, "TXT", fmt.Sprintf("v=spf1 ip4:10.%d.%d.0/24 -all", i>>16&255, i>>8&255))
		case 4:
			line(w, i, "CNAME", fmt.Sprintf("h%d", i-1))
		case 5:
			line(w, i, "MX", fmt.Sprintf("10 mx%d.mail.example.net.", i%100))
		default:
			line(w, i, "A", fmt.Sprintf("10.%d.%d.%d", i>>16&255, i>>8&255, i&255))
		}
	}
	if err := w.Flush(); err != nil {
		return err
	}
	// On disk before the load starts: the load is measured reading a zone
	// at rest, not competing with the write-back of the one just written.
	if err := f.Sync(); err != nil {
		return err
	}
	return f.Close()
}

// serveAndReload is -serve.
func serveAndReload(bin, dir string, n, qps int, duration time.Duration) {
	const addr = "127.0.0.1:5460"
	start := time.Now()
	cmd := exec.Command(bin, "serve", "--zones", dir, "--listen", addr, "--http", "off", "--log-format", "json")
	logf, err := os.Create(filepath.Join(dir, "server.log"))
	if err != nil {
		log.Fatal(err)
	}
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		log.Fatal(err)
	}
	defer func() {
		cmd.Process.Signal(syscall.SIGTERM)
		cmd.Wait()
	}()
	c := &dns.Client{Timeout: 500 * time.Millisecond}
	ask := func(name string) (*dns.Msg, error) {
		r, _, err := c.Exchange(new(dns.Msg).SetQuestion(name, dns.TypeA), addr)
		return r, err
	}
	for {
		if r, err := ask("h7." + origin); err == nil && len(r.Answer) == 1 {
			break
		}
		if time.Since(start) > 2*time.Minute {
			log.Fatal("the server did not answer within 2 minutes")
		}
		time.Sleep(50 * time.Millisecond)
	}
	ready := time.Since(start)
	rss := rssKB(cmd.Process.Pid)
	time.Sleep(3 * time.Second)
	settled := rssKB(cmd.Process.Pid)
	fmt.Printf("geodns answers the %d-record zone %.2f s after start; RSS %.0f MB = %.0f B/record then, %.0f MB = %.0f B/record 3 s later\n",
		n, ready.Seconds(), float64(rss)/1024, float64(rss)*1024/float64(n), float64(settled)/1024, float64(settled)*1024/float64(n))

	// Queries: names spread over the zone, all positive or NODATA.
	rng := rand.New(rand.NewPCG(1, 2))
	var q strings.Builder
	for range 10000 {
		fmt.Fprintf(&q, "h%d.%s A\n", 3+rng.IntN(n-3), origin)
	}
	qf := filepath.Join(dir, "queries.txt")
	if err := os.WriteFile(qf, []byte(q.String()), 0o644); err != nil {
		log.Fatal(err)
	}
	perf := exec.Command("dnsperf", "-s", "127.0.0.1", "-p", "5460", "-d", qf, "-l", strconv.Itoa(int(duration.Seconds())),
		"-Q", strconv.Itoa(qps), "-c", "4", "-t", "2")
	var perfOut strings.Builder
	perf.Stdout, perf.Stderr = &perfOut, &perfOut
	if err := perf.Start(); err != nil {
		log.Fatal(err)
	}
	time.Sleep(duration / 3)
	// The edit: one more record, in the imported master file.
	zf := filepath.Join(dir, "big.example.zone")
	f, err := os.OpenFile(zf, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Fprintln(f, "reloaded A 192.0.2.99")
	f.Close()
	now := time.Now()
	os.Chtimes(filepath.Join(dir, "big.example.yaml"), now, now) // the YAML file is what the watcher reloads
	edited := time.Now()
	for {
		if r, err := ask("reloaded." + origin); err == nil && len(r.Answer) == 1 {
			break
		}
		if time.Since(edited) > duration {
			log.Fatal("the edit was never served")
		}
		time.Sleep(100 * time.Millisecond)
	}
	fmt.Printf("edit served %.2f s after it was written (peak RSS %.0f MB)\n", time.Since(edited).Seconds(), float64(hwmKB(cmd.Process.Pid))/1024)
	if err := perf.Wait(); err != nil {
		log.Fatalf("dnsperf: %v\n%s", err, perfOut.String())
	}
	for _, line := range strings.Split(perfOut.String(), "\n") {
		for _, k := range []string{"Queries sent", "Queries completed", "Queries lost", "Response codes", "Queries per second", "Average Latency", "Latency StdDev"} {
			if strings.Contains(line, k) {
				fmt.Println(strings.TrimSpace(line))
			}
		}
	}
}

func rssKB(pid int) int64 { return statusKB(pid, "VmRSS:") }
func hwmKB(pid int) int64 { return statusKB(pid, "VmHWM:") }

func statusKB(pid int, field string) int64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, field); ok {
			n, _ := strconv.ParseInt(strings.Fields(v)[0], 10, 64)
			return n
		}
	}
	return 0
}
