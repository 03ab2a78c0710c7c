package benchmarks

import (
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"

	"github.com/geodns/geodns/dnssec"
	"github.com/geodns/geodns/resolver"
	"github.com/geodns/geodns/route"
	"github.com/geodns/geodns/zones"
	"github.com/miekg/dns"
)

// BenchmarkPresignedFlood: a random-subdomain flood with DO against the
// pre-signed zones of cmd/geodns/testdata/presigned: every query a name
// not asked before, answered NXDOMAIN with the file's proofs (NSEC: two
// records; NSEC3: three, each a hash of 1 + iterations SHA-1s) and their
// signatures. Such answers are not kept by the cache (a name asked once),
// so this is what each costs.
func BenchmarkPresignedFlood(b *testing.B) {
	for _, origin := range []string{"nsec.test.", "nsec3.test.", "optout.test."} {
		b.Run(origin[:len(origin)-6], func(b *testing.B) {
			dir := b.TempDir()
			data, err := os.ReadFile(filepath.Join("../cmd/geodns/testdata/presigned", origin+"zone"))
			if err != nil {
				b.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(dir, origin+"zone"), data, 0o644); err != nil {
				b.Fatal(err)
			}
			yaml := filepath.Join(dir, origin+"yaml")
			if err := os.WriteFile(yaml, []byte("import: "+origin+"zone\n"), 0o644); err != nil {
				b.Fatal(err)
			}
			z, err := zones.LoadFile(yaml, nil)
			if err != nil {
				b.Fatal(err)
			}
			var set atomic.Pointer[zones.Set]
			set.Store(zones.NewSet(z))
			// A signer that signs no zone, as every server has one.
			m := dnssec.NewManager(dnssec.Options{Store: dnssec.Store{Dir: b.TempDir()}})
			if err := m.Sync(nil); err != nil {
				b.Fatal(err)
			}
			h := resolver.NewHandler(&set, &route.Router{}, resolver.Config{Signer: resolver.NewSigner(m)}, nil)
			req := new(dns.Msg).SetQuestion("r0000000000."+origin, dns.TypeA)
			req.SetEdns0(1232, true)
			wire, err := req.Pack()
			if err != nil {
				b.Fatal(err)
			}
			digits := wire[14:24]
			buf := make([]byte, 0, 4096)
			n := 0
			b.ReportAllocs()
			for b.Loop() {
				putDigits(digits, n)
				n++
				resp := h.ServeWire(wire, testClient, false, buf)
				if len(resp) < 12 || resp[3]&0xF != dns.RcodeNameError || resp[9] < 4 { // the SOA, an NSEC (or NSEC3) at least, their RRSIGs
					b.Fatalf("not NXDOMAIN with proofs: rcode %d, %d authority records", resp[3]&0xF, resp[9])
				}
			}
		})
	}
}
