// Package proc reads a process's CPU time and memory from /proc, for the
// benchmark tools.
package proc

import (
	"bufio"
	"fmt"
	"os"
	"strconv"
	"strings"
)

// TicksPerSecond is Linux's USER_HZ, the unit of CPU times in /proc.
const TicksPerSecond = 100

// CPU returns a process's user and system time in clock ticks.
func CPU(pid int) (user, sys int64, err error) {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, 0, err
	}
	// The command name may hold spaces; count fields from after its ')'.
	f := strings.Fields(string(data[strings.LastIndexByte(string(data), ')')+2:]))
	user, _ = strconv.ParseInt(f[11], 10, 64)
	sys, _ = strconv.ParseInt(f[12], 10, 64)
	return user, sys, nil
}

// RSSKB returns a process's resident set size in KiB (0 if unknown).
func RSSKB(pid int) int {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), "VmRSS:"); ok {
			kb, _ := strconv.Atoi(strings.Fields(rest)[0])
			return kb
		}
	}
	return 0
}
