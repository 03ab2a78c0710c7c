package resolver

import (
	"errors"
	"log/slog"
	"net"
	"net/netip"
	"syscall"
	"time"

	"golang.org/x/net/ipv4"
	"golang.org/x/net/ipv6"
)

// The portable UDP path: each socket has one goroutine that reads a batch
// of queries (recvmmsg where there is one), answers them in turn and sends
// the answers in one batch. Under load a read returns many queries at
// once, so waking the goroutine is paid per batch, not per packet, and no
// goroutine is started per query. Linux uses a blocking thread per socket
// instead (udp_linux.go).

const (
	udpBatch    = 64
	maxUDPQuery = 4096 // larger datagrams are not DNS queries we answer
)

// batchConn is ipv4.PacketConn or ipv6.PacketConn: both read and write
// batches of the same message type.
type batchConn interface {
	ReadBatch(ms []ipv4.Message, flags int) (int, error)
	WriteBatch(ms []ipv4.Message, flags int) (int, error)
}

func newBatchConn(c *net.UDPConn) batchConn {
	if a, ok := c.LocalAddr().(*net.UDPAddr); ok && a.IP.To4() != nil {
		return ipv4.NewPacketConn(c)
	}
	return ipv6.NewPacketConn(c)
}

// servePolled answers queries on c until c is closed.
func servePolled(c *net.UDPConn, h WireHandler, log *slog.Logger) {
	bc := newBatchConn(c)
	in := make([]ipv4.Message, udpBatch)
	out := make([]ipv4.Message, udpBatch)
	bufs := make([][]byte, udpBatch)
	for i := range in {
		in[i].Buffers = [][]byte{make([]byte, maxUDPQuery)}
		out[i].Buffers = make([][]byte, 1)
		bufs[i] = make([]byte, 0, 1500)
	}
	for {
		n, err := bc.ReadBatch(in, 0)
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			log.Warn("UDP read failed", "error", err)
			time.Sleep(10 * time.Millisecond) // a persistent error must not spin
			continue
		}
		k := 0
		for i := range n {
			m := &in[i]
			if m.Flags&syscall.MSG_TRUNC != 0 || m.N == 0 {
				continue // too long, or empty: no query
			}
			remote := udpAddr(m.Addr)
			resp := h.ServeWire(m.Buffers[0][:m.N], remote, false, bufs[k])
			if resp == nil {
				continue
			}
			if cap(resp) > cap(bufs[k]) {
				bufs[k] = resp[:0] // keep the bigger buffer for next time
			}
			out[k].Buffers[0], out[k].Addr = resp, m.Addr
			k++
		}
		for sent := 0; sent < k; {
			w, err := bc.WriteBatch(out[sent:k], 0)
			if err != nil {
				if errors.Is(err, net.ErrClosed) {
					return
				}
				// One bad destination fails the call at that message: skip it.
				w = max(w, 1)
			}
			sent += w
		}
	}
}

func udpAddr(a net.Addr) netip.Addr {
	if u, ok := a.(*net.UDPAddr); ok {
		ip, _ := netip.AddrFromSlice(u.IP)
		return ip.Unmap()
	}
	return addrOf(a)
}
