// Package scrape reads numbers out of the text the benchmark tools see:
// dnsperf's report and a Prometheus exposition.
package scrape

import (
	"io"
	"net/http"
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
