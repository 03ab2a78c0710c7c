package dnssec

import (
	"fmt"
	"os"
	"testing"
	"time"

	"github.com/miekg/dns"
)

func benchZone(n int) []dns.RR {
	rrs := make([]dns.RR, 0, n)
	for i := 0; i < n; i++ {
		rrs = append(rrs, &dns.A{Hdr: dns.RR_Header{Name: fmt.Sprintf("h%d.ex.test.", i), Rrtype: dns.TypeA, Class: dns.ClassINET, Ttl: 300},
			A: []byte{10, byte(i >> 16), byte(i >> 8), byte(i)}})
	}
	return rrs
}

// BenchmarkRevExport100k: a 100k-record zone exported cold (new window:
// every RRset signed) and warm (the same window: cached signatures).
func BenchmarkRevExport100k(b *testing.B) {
	for _, alg := range []string{"ECDSAP256SHA256", "ED25519"} {
		c := &clock{t: time.Date(2026, 12, 3, 12, 0, 0, 0, time.UTC)}
		m := NewManager(Options{Store: Store{Dir: b.TempDir()}, Now: c.now})
		a, _ := ParseAlgorithm(alg)
		if err := m.Sync([]ZoneConfig{{Origin: "ex.test.", Policy: Policy{Algorithm: a}}}); err != nil {
			b.Fatal(err)
		}
		rrs := benchZone(100000)
		soa := &dns.SOA{Hdr: dns.RR_Header{Name: "ex.test.", Rrtype: dns.TypeSOA, Class: dns.ClassINET, Ttl: 3600},
			Ns: "ns.ex.test.", Mbox: "h.ex.test.", Serial: 1, Refresh: 3600, Retry: 600, Expire: 1209600, Minttl: 300}
		b.Run(alg+"/cold", func(b *testing.B) {
			for i := 0; i < b.N; i++ {
				c.add(30 * 24 * time.Hour)
				if _, _, err := m.Export("ex.test.", soa, rrs); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run(alg+"/warm", func(b *testing.B) {
			for i := 0; i < b.N; i++ {
				if _, _, err := m.Export("ex.test.", soa, rrs); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run(alg+"/stamp", func(b *testing.B) {
			for i := 0; i < b.N; i++ {
				m.ExportStamp("ex.test.")
			}
		})
	}
}

// TestRevExportDelegations (REV_PERF=1): Export of a zone of n
// delegations (a registry-like zone): the cut check walks every cut so
// far for every name.
func TestRevExportDelegations(t *testing.T) {
	if os.Getenv("REV_PERF") == "" {
		t.Skip("REV_PERF")
	}
	c := &clock{t: time.Date(2026, 12, 3, 12, 0, 0, 0, time.UTC)}
	m := NewManager(Options{Store: Store{Dir: t.TempDir()}, Now: c.now})
	if err := m.Sync([]ZoneConfig{{Origin: "ex.test.", Policy: Policy{Algorithm: dns.ED25519}}}); err != nil {
		t.Fatal(err)
	}
	soa := &dns.SOA{Hdr: dns.RR_Header{Name: "ex.test.", Rrtype: dns.TypeSOA, Class: dns.ClassINET, Ttl: 3600},
		Ns: "ns.ex.test.", Mbox: "h.ex.test.", Serial: 1, Refresh: 3600, Retry: 600, Expire: 1209600, Minttl: 300}
	for _, n := range []int{10000, 20000, 40000} {
		var rrs []dns.RR
		for i := 0; i < n; i++ {
			rrs = append(rrs, &dns.NS{Hdr: dns.RR_Header{Name: fmt.Sprintf("d%d.ex.test.", i), Rrtype: dns.TypeNS, Class: dns.ClassINET, Ttl: 300}, Ns: "ns.elsewhere.test."})
		}
		m.Export("ex.test.", soa, rrs) // signatures cached
		start := time.Now()
		if _, _, err := m.Export("ex.test.", soa, rrs); err != nil {
			t.Fatal(err)
		}
		t.Logf("%d delegations, warm: %v", n, time.Since(start))
	}
}
