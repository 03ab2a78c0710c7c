package xfr

import (
	"context"
	"net"
	"net/netip"
	"time"

	"github.com/miekg/dns"
)

// notifyTries and notifyFirstWait bound the retries of one NOTIFY: waits of
// 1, 2, 4, 8 and 16 s between tries (RFC 1996 4.0 leaves them to us).
const (
	notifyTries     = 6
	notifyFirstWait = time.Second
)

// notify sends NOTIFY for v to each of its secondaries, each in its own
// goroutine that retries until answered; a newer version cancels the
// retries of an older one to the same secondary. Called by Run only.
func (s *Server) notify(ctx context.Context, v *view) {
	if v.tr == nil {
		return
	}
	var k *key
	name := v.tr.NotifyKey
	if name == "" && len(v.tr.Keys) > 0 {
		name = v.tr.Keys[0]
	}
	if x, ok := s.opts.Keys[name]; ok {
		k = &x
	}
	for _, target := range v.tr.Notify {
		id := v.origin + " " + target.String()
		nctx, cancel := context.WithCancel(ctx)
		mine := &cancel // this NOTIFY's entry: a newer one replaces it
		s.notifyMu.Lock()
		if c := s.pending[id]; c != nil {
			(*c)()
		}
		s.pending[id] = mine
		s.notifyMu.Unlock()
		go func() {
			defer func() {
				s.notifyMu.Lock()
				cancel()
				if s.pending[id] == mine { // not the newer NOTIFY's
					delete(s.pending, id)
				}
				s.notifyMu.Unlock()
			}()
			s.notifyOne(nctx, v.origin, v.soa, target, k)
		}()
	}
}

func (s *Server) notifyOne(ctx context.Context, origin string, soa *dns.SOA, target netip.AddrPort, k *key) {
	wait := notifyFirstWait
	for try := 1; try <= notifyTries; try++ {
		m := new(dns.Msg)
		m.SetNotify(origin)
		m.Answer = []dns.RR{soa}
		c := &dns.Client{Net: "udp", Timeout: time.Second}
		if src, ok := notifySource(s.opts.NotifyFrom, target.Addr()); ok {
			c.Dialer = &net.Dialer{LocalAddr: net.UDPAddrFromAddrPort(netip.AddrPortFrom(src, 0)), Timeout: time.Second}
		}
		if k != nil {
			m.SetTsig(k.name, k.alg, 300, time.Now().Unix())
			c.TsigSecret = map[string]string{k.name: k.secret}
		}
		s.notifies.Add(1)
		r, _, err := c.ExchangeContext(ctx, m, target.String())
		if err == nil && r.Rcode == dns.RcodeSuccess {
			return
		}
		if ctx.Err() != nil {
			return
		}
		rcode := -1
		if r != nil {
			rcode = r.Rcode
		}
		s.opts.Log.Debug("NOTIFY not acknowledged", "zone", origin, "serial", soa.Serial, "to", target.String(),
			"try", try, "rcode", rcode, "error", err)
		select {
		case <-ctx.Done():
			return
		case <-time.After(wait):
		}
		wait *= 2
	}
	s.opts.Log.Warn("NOTIFY never acknowledged", "zone", origin, "serial", soa.Serial, "to", target.String())
}

// notifySource is the address NOTIFY to dst leaves from: the first of
// from of dst's family that can reach it. A loopback or link-local
// address reaches only its own kind (sending from 127.0.0.1 to another
// host fails: "invalid argument"), so with listen: [127.0.0.1:53,
// 192.0.2.53:53] a remote secondary is notified from 192.0.2.53. None
// fits: the system picks.
func notifySource(from []netip.Addr, dst netip.Addr) (netip.Addr, bool) {
	dst = dst.Unmap()
	for _, src := range from {
		src = src.Unmap()
		switch {
		case src.Is4() != dst.Is4():
		case src.IsLoopback() != dst.IsLoopback():
		case src.IsLinkLocalUnicast() && !dst.IsLinkLocalUnicast():
		default:
			return src, true
		}
	}
	return netip.Addr{}, false
}
