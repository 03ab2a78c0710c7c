// Command nullserver is geodns's serving loop with the answer engine
// taken out: the same sockets, UDP readers and TCP event loops
// (resolver.Serve, with a P per reader as cmd/geodns adds), answering
// every query with the query itself, the QR bit set. It is no DNS server:
// it is the bound on what a faster engine could gain. The harness
// (benchmarks/peers, server geodns-null) measures it beside geodns and
// gdnsd; the difference between it and geodns is everything the engine
// costs, the difference between it and gdnsd what geodns's serving loop
// and the Go runtime cost against gdnsd's.
//
//	GOMAXPROCS=1 taskset -c 0 nullserver --listen 127.0.0.1:5400 [--listen ...]
package main

import (
	"context"
	"flag"
	"log"
	"net/netip"
	"os"
	"os/signal"
	"syscall"

	"github.com/geodns/geodns/internal/procs"
	"github.com/geodns/geodns/resolver"
)

// echo answers each query with itself as a response.
type echo struct{}

func (echo) ServeWire(q []byte, _ netip.Addr, _ bool, out []byte) []byte {
	if len(q) < 12 || q[2]&0x80 != 0 {
		return nil // a response: no answer, as geodns does
	}
	resp := append(out[:0], q...)
	resp[2] |= 0x80
	return resp
}

func main() {
	var addrs []string
	flag.Func("listen", "an address to serve, as geodns serve's --listen (repeat for more; default 127.0.0.1:5400)", func(a string) error {
		addrs = append(addrs, a)
		return nil
	})
	flag.Parse()
	if len(addrs) == 0 {
		addrs = []string{"127.0.0.1:5400"}
	}
	var lns []resolver.Listener
	for _, a := range addrs {
		l, err := resolver.Listen(a)
		if err != nil {
			log.Fatal(err)
		}
		lns = append(lns, l)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	err := resolver.Serve(ctx, echo{}, resolver.ServeOptions{
		ReaderProcs: procs.AddReaderProcs, // as cmd/geodns: each reader holds a P of its own while it waits
	}, lns...)
	if err != nil && ctx.Err() == nil {
		log.Fatal(err)
	}
}
