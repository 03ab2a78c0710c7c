// Command hostile soaks geodns under everything at once that must never
// crash, freeze or half-load it: a zone file rewritten in place in
// random-sized chunks with random pauses (some longer than a second, as a
// slow scp or `cat >` makes them), TCP clients that pipeline large answers
// and never read them, TCP clients that connect and stay idle, and a UDP
// flood of random names (dnsperf at a multiple of its saturation rate).
// Meanwhile legitimate clients ask over UDP and TCP and every answer is
// checked against the complete zone versions: a TXT set of ten records
// that must all be of one version, and a name at the end of the file that
// every complete version has. Loopback only.
//
//	make build && go run ./benchmarks/hostile -geodns bin/geodns -duration 10m
package main

import (
	"encoding/binary"
	"flag"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/miekg/dns"

	"github.com/geodns/geodns/benchmarks/internal/proc"
	"github.com/geodns/geodns/benchmarks/internal/scrape"
)

const (
	dnsAddr  = "127.0.0.1:5398"
	httpAddr = "127.0.0.1:8098"
	origin   = "hostile.test."
	parts    = 10 // records in the soak TXT set
)

var (
	geodns   = flag.String("geodns", "bin/geodns", "the geodns binary")
	duration = flag.Duration("duration", 10*time.Minute, "soak time")
	factor   = flag.Float64("factor", 2, "UDP flood rate as a multiple of the saturation rate")
	tcpCap   = flag.Int("max-tcp", 100, "max_tcp_connections of the server")
	readers  = flag.Int("never-readers", 20, "TCP clients that pipeline large answers and never read")
	idlers   = flag.Int("idlers", 200, "TCP clients that connect and send nothing")
)

// stats are the soak's counters, updated by its goroutines.
type stats struct {
	versions                  atomic.Int64 // complete zone versions written
	longPauses                atomic.Int64 // writes paused > 1 s mid-file
	udpAsked, udpOK, udpBad   atomic.Int64
	tcpAsked, tcpOK, tcpBad   atomic.Int64
	tailMissing               atomic.Int64
	abuserConns, abuserClosed atomic.Int64
	idleConns, idleClosed     atomic.Int64
}

var st stats

func main() {
	flag.Parse()
	dir, err := os.MkdirTemp("", "hostile")
	must(err)
	defer os.RemoveAll(dir)
	zdir := filepath.Join(dir, "zones")
	must(os.Mkdir(zdir, 0o755))
	zoneFile := filepath.Join(zdir, "hostile.test.yaml")
	must(os.WriteFile(zoneFile, zone(0), 0o644))
	conf := filepath.Join(dir, "geodns.yaml")
	must(os.WriteFile(conf, fmt.Appendf(nil, "max_tcp_connections: %d\n", *tcpCap), 0o644))

	cmd := exec.Command("taskset", "-c", "0", *geodns, "serve", "--config", conf, "--zones", zdir,
		"--listen", dnsAddr, "--http", httpAddr, "--log-format", "json")
	logf, err := os.Create(filepath.Join(dir, "geodns.log"))
	must(err)
	cmd.Stdout, cmd.Stderr = logf, logf
	must(cmd.Start())
	pid := cmd.Process.Pid
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	defer cmd.Process.Kill()
	waitReady(exited, logf.Name())

	// The flood: random names, half under no name at all (NXDOMAIN), half
	// below the zone's wildcard, each distinct.
	queries := filepath.Join(dir, "flood.txt")
	var q strings.Builder
	rng := rand.New(rand.NewPCG(7, 7))
	for i := range 1_000_000 {
		if i%2 == 0 {
			fmt.Fprintf(&q, "f%d-%x.wild.%s TXT\n", i, rng.Uint32(), origin)
		} else {
			fmt.Fprintf(&q, "f%d-%x.%s A\n", i, rng.Uint32(), origin)
		}
	}
	must(os.WriteFile(queries, []byte(q.String()), 0o644))
	sat := scrape.Saturation(dnsAddr, queries)
	rate := int(sat * *factor)
	fmt.Printf("hostile: saturation %.0f qps; for %v: UDP flood at %d qps (%.1fx), zone rewritten in place in random chunks, %d never-reading and %d idle TCP clients (cap %d), UDP and TCP clients checking every answer\n",
		sat, *duration, rate, *factor, *readers, *idlers, *tcpCap)

	stop := make(chan struct{})
	var wg sync.WaitGroup
	spawn := func(f func()) { wg.Add(1); go func() { defer wg.Done(); f() }() }
	spawn(func() { writer(zoneFile, stop) })
	for range *readers {
		spawn(func() { neverReader(stop) })
	}
	for range *idlers {
		spawn(func() { idler(stop) })
	}
	spawn(func() { checker(false, stop) })
	spawn(func() { checker(true, stop) })

	rss := []int{proc.RSSKB(pid)}
	rssAt1 := 0
	spawn(func() {
		t := time.NewTicker(10 * time.Second)
		defer t.Stop()
		start := time.Now()
		for {
			select {
			case <-stop:
				return
			case <-t.C:
				r := proc.RSSKB(pid)
				rss = append(rss, r)
				if rssAt1 == 0 && time.Since(start) >= time.Minute {
					rssAt1 = r
				}
			}
		}
	})
	out := scrape.Dnsperf(dnsAddr, queries, "-l", strconv.Itoa(int(duration.Seconds())), "-Q", strconv.Itoa(rate))
	rssEnd := proc.RSSKB(pid)
	close(stop)
	wg.Wait()
	crashed := "no"
	select {
	case err := <-exited:
		crashed = fmt.Sprintf("yes: %v", err)
	default:
	}
	metrics := scrape.Get("http://" + httpAddr + "/metrics")
	panics := scrape.SumMetric(metrics, "geodns_panics_total", "")
	sent := scrape.Number(out, `Queries sent:\s+([0-9]+)`)
	done := scrape.Number(out, `Queries completed:\s+([0-9]+)`)
	maxRSS := 0
	for _, r := range rss {
		maxRSS = max(maxRSS, r)
	}
	if rssAt1 == 0 {
		rssAt1 = rss[len(rss)-1]
	}
	fmt.Println(strings.TrimSpace(scrape.Section(out, "Statistics:")))
	fmt.Printf("\n| duration | crashed | panics | zone versions written (paused >1 s mid-file) | partial answers (UDP / TCP / tail missing) | legit UDP answered | legit TCP answered | flood answered | never-reader conns (closed by server) | idle conns (closed by server) | RSS 1 min | RSS end | max | growth |\n")
	fmt.Printf("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|\n")
	fmt.Printf("| %v | %s | %.0f | %d (%d) | %d / %d / %d | %d/%d (%.2f %%) | %d/%d (%.2f %%) | %.2f %% | %d (%d) | %d (%d) | %.1f MB | %.1f MB | %.1f MB | %+.1f %% |\n",
		*duration, crashed, panics, st.versions.Load(), st.longPauses.Load(),
		st.udpBad.Load(), st.tcpBad.Load(), st.tailMissing.Load(),
		st.udpOK.Load(), st.udpAsked.Load(), pct(st.udpOK.Load(), st.udpAsked.Load()),
		st.tcpOK.Load(), st.tcpAsked.Load(), pct(st.tcpOK.Load(), st.tcpAsked.Load()),
		100*done/max(sent, 1), st.abuserConns.Load(), st.abuserClosed.Load(), st.idleConns.Load(), st.idleClosed.Load(),
		float64(rssAt1)/1024, float64(rssEnd)/1024, float64(maxRSS)/1024, 100*float64(rssEnd-rssAt1)/float64(rssAt1))
	if crashed != "no" || st.udpBad.Load()+st.tcpBad.Load()+st.tailMissing.Load() > 0 {
		cmd.Process.Kill() // os.Exit runs no deferred call
		fmt.Printf("FAIL (server log: %s)\n", filepath.Join(dir, "geodns.log"))
		os.Exit(1)
	}
}

// zone returns version v of the zone: the soak set of ten TXT records of
// version v, a large TXT set (answers of ~24 KB, for the TCP abusers),
// 2,000 filler names so that a rewrite takes many chunks, and last the
// tail name.
func zone(v int) []byte {
	var b strings.Builder
	fmt.Fprintf(&b, "origin: %s\nttl: 60\nsoa: {ns: ns1.%s, mbox: hostmaster.%s, minttl: 60}\nrecords:\n", origin, origin, origin)
	fmt.Fprintf(&b, "  \"@\": {NS: [ns1.%s]}\n  ns1: {A: [127.0.0.1]}\n  \"*.wild\": {TXT: [\"wildcard\"]}\n", origin)
	b.WriteString("  soak:\n    TXT:\n")
	for p := range parts {
		fmt.Fprintf(&b, "      - \"v%d p%d\"\n", v, p)
	}
	b.WriteString("  big:\n    TXT:\n")
	for i := range 100 {
		fmt.Fprintf(&b, "      - \"%03d %s\"\n", i, strings.Repeat("x", 200))
	}
	for i := range 2000 {
		fmt.Fprintf(&b, "  filler-%d: {A: [127.0.%d.%d]}\n", i, i/250, i%250+1)
	}
	fmt.Fprintf(&b, "  tail: {TXT: [\"v%d\"]}\n", v)
	return []byte(b.String())
}

// writer rewrites the zone in place, as `cat >`, scp and rsync --inplace
// do: truncate, then chunks of 1 B to 16 KB with pauses of up to 20 ms,
// and one write in twenty paused 1.5 s half-way.
func writer(path string, stop <-chan struct{}) {
	rng := rand.New(rand.NewPCG(1, 2))
	for v := 1; ; v++ {
		select {
		case <-stop:
			return
		default:
		}
		data := zone(v)
		f, err := os.OpenFile(path, os.O_WRONLY|os.O_TRUNC, 0)
		must(err)
		long := rng.IntN(20) == 0
		for off := 0; off < len(data); {
			n := min(len(data)-off, 1+rng.IntN(16<<10))
			_, err := f.Write(data[off : off+n])
			must(err)
			off += n
			if long && off >= len(data)/2 && off-n < len(data)/2 {
				st.longPauses.Add(1)
				time.Sleep(1500 * time.Millisecond)
			} else {
				time.Sleep(time.Duration(rng.IntN(20_000)) * time.Microsecond)
			}
		}
		must(f.Close())
		st.versions.Add(1)
		time.Sleep(time.Duration(rng.IntN(300)) * time.Millisecond)
	}
}

// checker asks for the soak set and the tail every 10 ms and checks that
// the answer is one complete version; a question is answered if any of
// three tries (200 ms each, as a resolver retries) gets an answer.
func checker(tcp bool, stop <-chan struct{}) {
	c := &dns.Client{Timeout: 200 * time.Millisecond, UDPSize: 4096}
	asked, ok, bad := &st.udpAsked, &st.udpOK, &st.udpBad
	if tcp {
		c.Net = "tcp"
		asked, ok, bad = &st.tcpAsked, &st.tcpOK, &st.tcpBad
	}
	ask := func(name string, qtype uint16) *dns.Msg {
		m := new(dns.Msg).SetQuestion(name, qtype)
		m.SetEdns0(4096, false)
		for range 3 {
			if r, _, err := c.Exchange(m, dnsAddr); err == nil && !r.Truncated {
				return r
			}
		}
		return nil
	}
	for i := 0; ; i++ {
		select {
		case <-stop:
			return
		case <-time.After(10 * time.Millisecond):
		}
		asked.Add(1)
		if i%2 == 1 {
			r := ask("tail."+origin, dns.TypeTXT)
			if r == nil {
				continue
			}
			ok.Add(1)
			if r.Rcode != dns.RcodeSuccess || len(r.Answer) != 1 {
				st.tailMissing.Add(1)
				fmt.Printf("partial zone: tail answered %s with %d records\n", dns.RcodeToString[r.Rcode], len(r.Answer))
			}
			continue
		}
		r := ask("soak."+origin, dns.TypeTXT)
		if r == nil {
			continue
		}
		ok.Add(1)
		if why := incomplete(r); why != "" {
			bad.Add(1)
			fmt.Printf("partial zone (tcp=%v): %s\n", tcp, why)
		}
	}
}

// incomplete says what is wrong with a soak answer, or "".
func incomplete(r *dns.Msg) string {
	if r.Rcode != dns.RcodeSuccess {
		return "rcode " + dns.RcodeToString[r.Rcode]
	}
	if len(r.Answer) != parts {
		return fmt.Sprintf("%d records, want %d", len(r.Answer), parts)
	}
	version := ""
	seen := map[string]bool{}
	for _, rr := range r.Answer {
		t, isTXT := rr.(*dns.TXT)
		if !isTXT || len(t.Txt) != 1 {
			return "not one string: " + rr.String()
		}
		v, p, _ := strings.Cut(t.Txt[0], " ")
		if version == "" {
			version = v
		}
		if v != version {
			return fmt.Sprintf("versions %s and %s mixed", version, v)
		}
		seen[p] = true
	}
	if len(seen) != parts {
		return fmt.Sprintf("%d distinct parts", len(seen))
	}
	return ""
}

// neverReader pipelines queries for the large set and never reads; when
// the server closes the connection it connects again.
func neverReader(stop <-chan struct{}) {
	m := new(dns.Msg).SetQuestion("big."+origin, dns.TypeTXT)
	m.SetEdns0(65535, false)
	wire, _ := m.Pack()
	frame := binary.BigEndian.AppendUint16(nil, uint16(len(wire)))
	frame = append(frame, wire...)
	batch := []byte{}
	for range 20 {
		batch = append(batch, frame...)
	}
	for {
		c := connect(stop)
		if c == nil {
			return
		}
		st.abuserConns.Add(1)
		for {
			c.SetWriteDeadline(time.Now().Add(time.Second))
			if _, err := c.Write(batch); err != nil {
				if ne, ok := err.(net.Error); ok && ne.Timeout() {
					// Our send buffer is full because the server's is: keep
					// holding the connection until the server gives up on it.
					if closedByPeer(c, stop) {
						st.abuserClosed.Add(1)
					}
				}
				break
			}
			select {
			case <-stop:
				c.Close()
				return
			default:
			}
		}
		c.Close()
	}
}

// closedByPeer waits without reading answers until the server closes the
// connection (true) or the soak ends (false). Only a reset or EOF tells:
// the unread answers stay unread.
func closedByPeer(c net.Conn, stop <-chan struct{}) bool {
	for {
		select {
		case <-stop:
			return false
		default:
		}
		c.SetWriteDeadline(time.Now().Add(500 * time.Millisecond))
		if _, err := c.Write([]byte{0}); err != nil {
			if ne, ok := err.(net.Error); ok && ne.Timeout() {
				continue
			}
			return true
		}
	}
}

// idler connects and sends nothing; when the server closes the
// connection it connects again.
func idler(stop <-chan struct{}) {
	buf := make([]byte, 1)
	for {
		c := connect(stop)
		if c == nil {
			return
		}
		st.idleConns.Add(1)
		for {
			c.SetReadDeadline(time.Now().Add(500 * time.Millisecond))
			_, err := c.Read(buf)
			if err == nil {
				continue
			}
			if ne, ok := err.(net.Error); ok && ne.Timeout() {
				select {
				case <-stop:
					c.Close()
					return
				default:
					continue
				}
			}
			st.idleClosed.Add(1)
			time.Sleep(20 * time.Millisecond) // an attacker's loop, not a busy loop on our CPU
			break
		}
		c.Close()
	}
}

// connect dials the server until it accepts, or returns nil when the soak
// ends.
func connect(stop <-chan struct{}) net.Conn {
	for {
		select {
		case <-stop:
			return nil
		default:
		}
		if c, err := net.DialTimeout("tcp", dnsAddr, time.Second); err == nil {
			return c
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// waitReady waits for the server's first answer; a server that exits
// first (say, its port is taken) ends the soak.
func waitReady(exited <-chan error, log string) {
	c := &dns.Client{Timeout: 200 * time.Millisecond}
	for range 100 {
		select {
		case err := <-exited:
			fmt.Fprintf(os.Stderr, "hostile: geodns exited at start: %v (log: %s)\n", err, log)
			os.Exit(1)
		default:
		}
		r, _, err := c.Exchange(new(dns.Msg).SetQuestion("tail."+origin, dns.TypeTXT), dnsAddr)
		if err == nil && r.Rcode == dns.RcodeSuccess {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	fmt.Fprintln(os.Stderr, "hostile: geodns did not start")
	os.Exit(1)
}

func pct(a, b int64) float64 { return 100 * float64(a) / float64(max(b, 1)) }

func must(err error) {
	if err != nil {
		fmt.Fprintln(os.Stderr, "hostile:", err)
		os.Exit(1)
	}
}
