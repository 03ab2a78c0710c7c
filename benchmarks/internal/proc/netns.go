package proc

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
)

// RunInNetNS runs this tool again inside a new network namespace
// (unshare --net, as root), with env set to value and -geodns made
// absolute (the child may run elsewhere), and exits with its status. The
// benchmark tools call it first when env is unset: their load then stays
// on the namespace's own loopback.
func RunInNetNS(tool, env, value, geodns string) {
	self, err := os.Executable()
	if err == nil {
		geodns, err = filepath.Abs(geodns)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, tool+":", err)
		os.Exit(1)
	}
	args := append([]string{"--net", "--", self}, os.Args[1:]...)
	args = append(args, "-geodns", geodns)
	cmd := exec.Command("unshare", args...)
	cmd.Env = append(os.Environ(), env+"="+value)
	cmd.Stdout, cmd.Stderr = os.Stdout, os.Stderr
	if err := cmd.Run(); err != nil {
		// Not root: unshare could not start the tool. Otherwise the tool
		// ran and failed, and has said why.
		if os.Geteuid() != 0 {
			fmt.Fprintf(os.Stderr, "%s: needs root for unshare --net: %v\n", tool, err)
		}
		if x, ok := err.(*exec.ExitError); ok && x.ExitCode() > 0 {
			os.Exit(x.ExitCode())
		}
		os.Exit(1)
	}
	os.Exit(0)
}
