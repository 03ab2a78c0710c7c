package dnssec

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"time"

	"github.com/miekg/dns"
)

// QueryParentDS asks every one of servers (address:port) for origin's DS
// and returns the records all the servers that answered agree on, with
// the smallest TTL: a DS counts as published when each of the parent's
// servers serves it. Without servers, the nameservers of the closest
// enclosing zone are found through the system resolver.
func QueryParentDS(ctx context.Context, origin string, servers []string) ([]*dns.DS, uint32, error) {
	if len(servers) == 0 {
		var err error
		if servers, err = parentServers(ctx, origin); err != nil {
			return nil, 0, err
		}
	}
	var common []*dns.DS
	var ttl uint32
	answered := 0
	var errs []error
	c := &dns.Client{Timeout: 3 * time.Second}
	for _, s := range servers {
		q := new(dns.Msg)
		q.SetQuestion(dns.Fqdn(origin), dns.TypeDS)
		q.SetEdns0(1232, true)
		q.RecursionDesired = false
		r, _, err := c.ExchangeContext(ctx, q, s)
		if err == nil && r.Truncated {
			tc := &dns.Client{Net: "tcp", Timeout: 3 * time.Second}
			r, _, err = tc.ExchangeContext(ctx, q, s)
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", s, err))
			continue
		}
		if r.Rcode != dns.RcodeSuccess {
			errs = append(errs, fmt.Errorf("%s: %s", s, dns.RcodeToString[r.Rcode]))
			continue
		}
		var ds []*dns.DS
		for _, rr := range r.Answer {
			if d, ok := rr.(*dns.DS); ok && strings.EqualFold(d.Hdr.Name, dns.Fqdn(origin)) {
				ds = append(ds, d)
				if answered == 0 && len(ds) == 1 || d.Hdr.Ttl < ttl {
					ttl = d.Hdr.Ttl
				}
			}
		}
		if answered == 0 {
			common = ds
		} else {
			common = intersect(common, ds)
		}
		answered++
	}
	if answered == 0 {
		return nil, 0, errors.Join(append([]error{errors.New("dnssec: no parent nameserver answered")}, errs...)...)
	}
	return common, ttl, nil
}

func intersect(a, b []*dns.DS) []*dns.DS {
	var out []*dns.DS
	for _, x := range a {
		for _, y := range b {
			if x.KeyTag == y.KeyTag && x.Algorithm == y.Algorithm && x.DigestType == y.DigestType &&
				strings.EqualFold(x.Digest, y.Digest) {
				out = append(out, x)
				break
			}
		}
	}
	return out
}

// parentServers finds the nameservers of origin's closest enclosing zone.
func parentServers(ctx context.Context, origin string) ([]string, error) {
	name := dns.Fqdn(origin)
	for off, end := dns.NextLabel(name, 0); !end; off, end = dns.NextLabel(name, off) {
		parent := name[off:]
		nss, err := net.DefaultResolver.LookupNS(ctx, parent)
		if err != nil || len(nss) == 0 {
			continue
		}
		var out []string
		for _, ns := range nss {
			addrs, err := net.DefaultResolver.LookupHost(ctx, ns.Host)
			if err != nil {
				continue
			}
			for _, a := range addrs {
				out = append(out, net.JoinHostPort(a, "53"))
			}
		}
		if len(out) > 0 {
			return out, nil
		}
	}
	return nil, fmt.Errorf("dnssec: no nameservers found for the parent of %s", origin)
}
