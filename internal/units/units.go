// Package units parses the times an operator writes in configuration and
// zone files: TTLs and durations with units (300, 5m, 1h30m, 1d, 1w).
package units

import (
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"
)

// MaxTTL is the largest TTL RFC 2181 section 8 allows (2^31-1 seconds).
const MaxTTL = math.MaxInt32

// ParseTTL reads a TTL in seconds: a bare number ("300") or numbers with
// the units s, m, h, d, w ("5m", "1h30m", "1d"), as BIND and NSD take
// them. It is at most MaxTTL.
func ParseTTL(s string) (uint32, error) {
	if n, err := strconv.ParseUint(s, 10, 64); err == nil {
		if n > MaxTTL {
			return 0, fmt.Errorf("%s is more than the largest TTL, %d (68 years)", s, MaxTTL)
		}
		return uint32(n), nil
	}
	d, err := parseUnits(s)
	if err != nil {
		return 0, fmt.Errorf("%q is not a TTL: want seconds (300) or a number with a unit s, m, h, d or w (5m, 1h, 1d)", s)
	}
	if d%time.Second != 0 {
		return 0, fmt.Errorf("%q is not a whole number of seconds", s)
	}
	if d > MaxTTL*time.Second {
		return 0, fmt.Errorf("%s is more than the largest TTL, %d seconds (68 years)", s, MaxTTL)
	}
	return uint32(d / time.Second), nil
}

// ParseDuration is time.ParseDuration with days (d) and weeks (w) too;
// a bare number is refused, since it is unclear whether it means seconds.
func ParseDuration(s string) (time.Duration, error) {
	if s == "0" {
		return 0, nil
	}
	if _, err := strconv.ParseFloat(s, 64); err == nil {
		return 0, fmt.Errorf("%q has no unit: want e.g. 30s, 5m, 1h, 1d", s)
	}
	d, err := parseUnits(s)
	if err != nil {
		return 0, fmt.Errorf("%q is not a duration: want e.g. 30s, 5m, 1h30m, 1d", s)
	}
	return d, nil
}

// parseUnits turns each "Nd" and "Nw" into hours for time.ParseDuration.
func parseUnits(s string) (time.Duration, error) {
	if s == "" || strings.HasPrefix(s, "-") {
		return 0, fmt.Errorf("empty or negative")
	}
	var b strings.Builder
	num := 0 // start of the current number in s
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= '0' && c <= '9' || c == '.' {
			continue
		}
		switch c {
		case 'd', 'w':
			n, err := strconv.ParseFloat(s[num:i], 64)
			if err != nil || i == num {
				return 0, fmt.Errorf("bad number")
			}
			h := n * 24
			if c == 'w' {
				h *= 7
			}
			if h > float64(math.MaxInt64/time.Hour) {
				return 0, fmt.Errorf("too large")
			}
			b.WriteString(strconv.FormatFloat(h, 'f', -1, 64) + "h")
			num = i + 1
		default:
			// A unit time.ParseDuration knows (ns, us, ms, s, m, h):
			// copy the number and its unit letters through.
			j := i
			for j < len(s) && !(s[j] >= '0' && s[j] <= '9') {
				j++
			}
			b.WriteString(s[num:j])
			num, i = j, j-1
		}
	}
	if num != len(s) {
		return 0, fmt.Errorf("number without a unit")
	}
	return time.ParseDuration(b.String())
}
