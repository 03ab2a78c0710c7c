// Command bigzone writes a zone of N records for the scale benchmark and,
// with -load, measures how long geodns takes to load it and the memory it
// holds per record.
//
//	go run ./benchmarks/bigzone -records 1000000 -out /tmp/big      # write /tmp/big/big.example.yaml
//	go run ./benchmarks/bigzone -records 1000000 -out /tmp/big -load
//
// The mix is what a large hosting zone looks like: 70 % A, 10 % AAAA,
// 10 % TXT, 5 % CNAME, 5 % MX, at names host<N>, with the apex SOA and NS.
package main

import (
	"bufio"
	"flag"
	"fmt"
	"log"
	"os"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"time"

	"github.com/geodns/geodns/zones"
)

const origin = "big.example."

func main() {
	n := flag.Int("records", 1_000_000, "records to write")
	out := flag.String("out", "", "directory to write big.example.yaml to")
	load := flag.Bool("load", false, "load the zone and report time and memory")
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
	if !*load {
		return
	}
	runtime.GC()
	var before runtime.MemStats
	runtime.ReadMemStats(&before)
	start := time.Now()
	z, err := zones.LoadFile(path, nil)
	took := time.Since(start)
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
	f, err := os.Create(path)
	if err != nil {
		return "", err
	}
	w := bufio.NewWriterSize(f, 1<<20)
	w.WriteString(head)
	for i := 3; i < n; i++ {
		switch i % 20 {
		case 0, 1:
			fmt.Fprintf(w, "  h%d: {AAAA: [\"2001:db8:%x::%x\"]}\n", i, i>>16, i&0xffff)
		case 2, 3:
			fmt.Fprintf(w, "  h%d: {TXT: [\"v=spf1 ip4:10.%d.%d.0/24 -all\"]}\n", i, i>>16&255, i>>8&255)
		case 4:
			fmt.Fprintf(w, "  h%d: {CNAME: h%d}\n", i, i-1)
		case 5:
			fmt.Fprintf(w, "  h%d: {MX: [\"10 mx%d.mail.example.net.\"]}\n", i, i%100)
		default:
			fmt.Fprintf(w, "  h%d: {A: [10.%d.%d.%d]}\n", i, i>>16&255, i>>8&255, i&255)
		}
	}
	if err := w.Flush(); err != nil {
		return "", err
	}
	return path, f.Close()
}

// writeMaster writes the same records as an RFC 1035 master file.
func writeMaster(path string, n int) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	w := bufio.NewWriterSize(f, 1<<20)
	fmt.Fprintf(w, "$ORIGIN %s\n$TTL 300\n", origin)
	for i := 3; i < n; i++ {
		switch i % 20 {
		case 0, 1:
			fmt.Fprintf(w, "h%d AAAA 2001:db8:%x::%x\n", i, i>>16, i&0xffff)
		case 2, 3:
			fmt.Fprintf(w, "h%d TXT \"v=spf1 ip4:10.%d.%d.0/24 -all\"\n", i, i>>16&255, i>>8&255)
		case 4:
			fmt.Fprintf(w, "h%d CNAME h%d\n", i, i-1)
		case 5:
			fmt.Fprintf(w, "h%d MX 10 mx%d.mail.example.net.\n", i, i%100)
		default:
			fmt.Fprintf(w, "h%d A 10.%d.%d.%d\n", i, i>>16&255, i>>8&255, i&255)
		}
	}
	if err := w.Flush(); err != nil {
		return err
	}
	return f.Close()
}
