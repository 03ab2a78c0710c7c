package proc

import (
	"os"
	"runtime"
	"strconv"
	"strings"
	"testing"
)

// IdleTicks sums the per-CPU lines it is asked for, not the machine's
// aggregate "cpu" line: over all CPUs it matches that line's idle and
// iowait, read at the same moment but for the ticks in between.
func TestIdleTicks(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("/proc/stat is Linux's")
	}
	all := make([]int, runtime.NumCPU())
	for i := range all {
		all[i] = i
	}
	sum := idleOf(t, all)
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		t.Fatal(err)
	}
	f := strings.Fields(strings.SplitN(string(b), "\n", 2)[0])
	if f[0] != "cpu" {
		t.Fatalf("first line of /proc/stat: %v", f)
	}
	idle, _ := strconv.ParseInt(f[4], 10, 64)
	iowait, _ := strconv.ParseInt(f[5], 10, 64)
	if d := idle + iowait - sum; d < 0 || d > 100*int64(len(all)) {
		t.Errorf("idle over all CPUs %d, aggregate line %d (read after it)", sum, idle+iowait)
	}
	if len(all) > 1 {
		if one := idleOf(t, all[:1]); one <= 0 || one >= idleOf(t, all) {
			t.Errorf("CPU 0's idle %d, all CPUs' %d", one, idleOf(t, all))
		}
	}
	if n := idleOf(t, []int{len(all) + 1000}); n != 0 {
		t.Errorf("a CPU that does not exist: %d ticks", n)
	}
}

func idleOf(t *testing.T, cpus []int) int64 {
	t.Helper()
	n, err := IdleTicks(cpus)
	if err != nil {
		t.Fatal(err)
	}
	return n
}
