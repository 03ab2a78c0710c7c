// Package rawconn owns the raw socket reads and writes that the DNS server's
// TCP connections and the health checker's probes share: non-blocking
// system calls made without the runtime's system-call bookkeeping.
package rawconn
