package dnssec

import (
	"fmt"
	"testing"
	"time"

	"github.com/geodns/geodns/internal/testclock"
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

// BenchmarkExport100k: a 100k-record zone exported cold (new window:
// every RRset signed) and warm (the same window: cached signatures).
func BenchmarkExport100k(b *testing.B) {
	for _, alg := range []string{"ECDSAP256SHA256", "ED25519"} {
		c := testclock.New(time.Date(2026, 12, 3, 12, 0, 0, 0, time.UTC))
		m := NewManager(Options{Store: Store{Dir: b.TempDir()}, Now: c.Now})
		a, _ := ParseAlgorithm(alg)
		if err := m.Sync([]ZoneConfig{{Origin: "ex.test.", Policy: Policy{Algorithm: a}}}); err != nil {
			b.Fatal(err)
		}
		rrs := benchZone(100000)
		soa := &dns.SOA{Hdr: dns.RR_Header{Name: "ex.test.", Rrtype: dns.TypeSOA, Class: dns.ClassINET, Ttl: 3600},
			Ns: "ns.ex.test.", Mbox: "h.ex.test.", Serial: 1, Refresh: 3600, Retry: 600, Expire: 1209600, Minttl: 300}
		b.Run(alg+"/cold", func(b *testing.B) {
			for i := 0; i < b.N; i++ {
				c.Add(30 * 24 * time.Hour)
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

// BenchmarkExportDelegations: a warm Export (signatures cached) of a
// registry-like zone of 20,000 delegations. Checking each name against
// every cut before it made this quadratic: 22.5 s, 0.29 s since.
func BenchmarkExportDelegations(b *testing.B) {
	c := testclock.New(time.Date(2026, 12, 3, 12, 0, 0, 0, time.UTC))
	m := NewManager(Options{Store: Store{Dir: b.TempDir()}, Now: c.Now})
	if err := m.Sync([]ZoneConfig{{Origin: "ex.test.", Policy: Policy{Algorithm: dns.ED25519}}}); err != nil {
		b.Fatal(err)
	}
	soa := &dns.SOA{Hdr: dns.RR_Header{Name: "ex.test.", Rrtype: dns.TypeSOA, Class: dns.ClassINET, Ttl: 3600},
		Ns: "ns.ex.test.", Mbox: "h.ex.test.", Serial: 1, Refresh: 3600, Retry: 600, Expire: 1209600, Minttl: 300}
	var rrs []dns.RR
	for i := 0; i < 20000; i++ {
		rrs = append(rrs, &dns.NS{Hdr: dns.RR_Header{Name: fmt.Sprintf("d%d.ex.test.", i), Rrtype: dns.TypeNS, Class: dns.ClassINET, Ttl: 300}, Ns: "ns.elsewhere.test."})
	}
	if _, _, err := m.Export("ex.test.", soa, rrs); err != nil { // signatures cached
		b.Fatal(err)
	}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, _, err := m.Export("ex.test.", soa, rrs); err != nil {
			b.Fatal(err)
		}
	}
}
