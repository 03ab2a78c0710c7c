// Package scrape runs dnsperf for the benchmark tools and reads numbers
// out of the text they see: dnsperf's report and a Prometheus exposition.
package scrape

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
)

// Section returns s from the first occurrence of from on (all of s if absent).
func Section(s, from string) string {
	if i := strings.Index(s, from); i >= 0 {
		return s[i:]
	}
	return s
}

// Number returns the first submatch of re in s as a number (0 if absent).
func Number(s, re string) float64 {
	m := regexp.MustCompile(re).FindStringSubmatch(s)
	if m == nil {
		return 0
	}
	v, _ := strconv.ParseFloat(m[1], 64)
	return v
}

// Get returns the body at url ("" on any error).
func Get(url string) string {
	resp, err := http.Get(url)
	if err != nil {
		return ""
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}

// SumMetric adds the values of a metric's series whose line starts with
// prefix and contains match.
func SumMetric(text, prefix, match string) float64 {
	total := 0.0
	for _, line := range strings.Split(text, "\n") {
		if strings.HasPrefix(line, prefix) && strings.Contains(line, match) {
			f := strings.Fields(line)
			v, _ := strconv.ParseFloat(f[len(f)-1], 64)
			total += v
		}
	}
	return total
}

// Dnsperf runs dnsperf pinned to CPU 1 against server (host:port) with the
// query file queries, 4 clients and 200 outstanding queries, plus args,
// and returns its report (a failure is printed to stderr and its output
// returned all the same).
func Dnsperf(server, queries string, args ...string) string {
	host, port, _ := net.SplitHostPort(server)
	base := []string{"-c", "1", "dnsperf", "-s", host, "-p", port, "-d", queries, "-t", "2", "-c", "4", "-q", "200"}
	out, err := exec.Command("taskset", append(base, args...)...).CombinedOutput()
	if err != nil {
		fmt.Fprintf(os.Stderr, "dnsperf: %v\n%s", err, out)
	}
	return string(out)
}

// Saturation runs dnsperf for 10 s and returns the queries per second it got.
func Saturation(server, queries string) float64 {
	return Number(Dnsperf(server, queries, "-l", "10"), `Queries per second:\s+([0-9.]+)`)
}
