//go:build !linux

package etcdtest

import "syscall"

// procAttr: no parent-death signal outside Linux; Cleanup stops etcd.
func procAttr() *syscall.SysProcAttr { return nil }
