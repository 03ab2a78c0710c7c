//go:build linux

package etcdtest

import "syscall"

// procAttr: etcd never outlives the test binary.
func procAttr() *syscall.SysProcAttr { return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL} }
