// Package resolver owns the DNS side of geodns: it turns a question, the
// client and the current zone snapshot into exactly one response message,
// and runs the UDP and TCP servers that carry them.
package resolver
