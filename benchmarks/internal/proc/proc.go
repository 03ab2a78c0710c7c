// Package proc reads a process's CPU time and memory, and CPUs' idle
// time, from /proc, for the benchmark tools.
package proc

import (
	"bufio"
	"fmt"
	"os"
	"slices"
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

// IdleTicks returns the idle time of the CPUs given (idle and iowait in
// /proc/stat, in clock ticks), which the kernel measures for a tickless
// idle CPU. The busy fields there are sampled at ticks: on the benchmark
// VM they added up to less than a server's own CPU time.
func IdleTicks(cpus []int) (int64, error) {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0, err
	}
	var t int64
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) < 6 || !strings.HasPrefix(f[0], "cpu") { // "cpu" itself, the sum, has no number: skipped below
			continue
		}
		if n, err := strconv.Atoi(f[0][3:]); err == nil && slices.Contains(cpus, n) {
			idle, _ := strconv.ParseInt(f[4], 10, 64)
			iowait, _ := strconv.ParseInt(f[5], 10, 64)
			t += idle + iowait
		}
	}
	return t, nil
}
