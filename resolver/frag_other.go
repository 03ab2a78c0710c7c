//go:build !linux

package resolver

import "net"

// fragments: the system's own handling of DF and path MTU (see
// frag_linux.go).
func fragments(*net.UDPConn, bool) error { return nil }
