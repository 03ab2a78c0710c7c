//go:build !linux

package main

// pinSelf: CPU affinity is set on Linux only, where the harness runs.
func pinSelf(string) {}
