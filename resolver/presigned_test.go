package resolver

import (
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"

	"github.com/geodns/geodns/dnssec"
	"github.com/geodns/geodns/route"
	"github.com/geodns/geodns/zones"
	"github.com/miekg/dns"
	"github.com/stretchr/testify/require"
)

// newPresignedHandler serves cmd/geodns's pre-signed test zones (signed
// by ldns-signzone: NSEC, NSEC3, NSEC3 with opt-out).
func newPresignedHandler(t *testing.T) *Handler {
	t.Helper()
	dir := t.TempDir()
	var zs []*zones.Zone
	for _, origin := range []string{"nsec.test.", "nsec3.test.", "optout.test."} {
		data, err := os.ReadFile(filepath.Join("../cmd/geodns/testdata/presigned", origin+"zone"))
		require.NoError(t, err)
		require.NoError(t, os.WriteFile(filepath.Join(dir, origin+"zone"), data, 0o644))
		require.NoError(t, os.WriteFile(filepath.Join(dir, origin+"yaml"), []byte("import: "+origin+"zone\n"), 0o644))
		z, err := zones.LoadFile(filepath.Join(dir, origin+"yaml"), nil)
		require.NoError(t, err)
		zs = append(zs, z)
	}
	var set atomic.Pointer[zones.Set]
	set.Store(zones.NewSet(zs...))
	return NewHandler(&set, &route.Router{}, Config{Signer: idleSigner(t)}, nil)
}

// idleSigner is geodns's signer signing no zone: what every server has
// (geodns serve always makes one) when no zone has dnssec:.
func idleSigner(t *testing.T) Signer {
	m := dnssec.NewManager(dnssec.Options{Store: dnssec.Store{Dir: t.TempDir()}})
	require.NoError(t, m.Sync(nil))
	return NewSigner(m)
}

// TestUnsignedAbsentTemplatesWithDO: in a server with a signer (every
// server has one), names that do not exist in a zone it does not sign are
// answered from their encloser's template with DO as without. Before,
// every DO query for an absent name was resolved (most resolvers set DO):
// 1,000 names, 1,000 resolves.
func TestUnsignedAbsentTemplatesWithDO(t *testing.T) {
	h := newTestHandler(t, Config{Signer: idleSigner(t)})
	resolves := 0
	h.onResolve = func() { resolves++ }
	for i := range 1000 {
		q := new(dns.Msg).SetQuestion(fmt.Sprintf("r%d.nothere.example.net.", i), dns.TypeA)
		q.SetEdns0(1232, true)
		wire, err := q.Pack()
		require.NoError(t, err)
		m := new(dns.Msg)
		require.NoError(t, m.Unpack(h.ServeWire(wire, testClient, false, nil)))
		require.Equal(t, dns.RcodeNameError, m.Rcode)
	}
	require.Less(t, resolves, 10, "absent names with DO answered from the template")
}

// TestPresignedAbsentTemplates: names that do not exist in a pre-signed
// zone, asked with DO, are answered from one response per encloser and
// denial interval (serveAbsent, zones.Zone.ProofKey) exactly as the
// engine answers each by itself (the explain path, which keeps nothing):
// NXDOMAIN and its proofs, wildcard answers and wildcard NODATA, over UDP
// and TCP, for thousands of names each asked once. Before, each was
// resolved, signed proofs and all: 5.5-8.8 us a query
// (BenchmarkPresignedFlood), now a template's copy.
func TestPresignedAbsentTemplates(t *testing.T) {
	h := newPresignedHandler(t)
	resolves := 0
	h.onResolve = func() { resolves++ }
	rng := rand.New(rand.NewPCG(7, 7))
	asked := 0
	for i := range 6000 {
		origin := []string{"nsec.test.", "nsec3.test.", "optout.test."}[i%3]
		under := []string{"", "w.", "b.c.", "c.", "_tcp.", "deep.nx."}[rng.IntN(6)]
		name := fmt.Sprintf("%x.%s%s", rng.Uint64()>>rng.IntN(60), under, origin)
		q := new(dns.Msg).SetQuestion(name, []uint16{dns.TypeA, dns.TypeTXT, dns.TypeMX}[rng.IntN(3)])
		q.Id = uint16(i)
		q.SetEdns0(1232, true)
		tcp := rng.IntN(4) == 0
		wire, err := q.Pack()
		require.NoError(t, err)
		got := h.ServeWire(wire, testClient, tcp, make([]byte, 0, 1500))
		want, err := h.Uncounted().Answer(q, testClient, tcp).Pack()
		require.NoError(t, err)
		require.Equal(t, normalized(t, want), normalized(t, got), "%s %s tcp=%v", name, dns.TypeToString[q.Question[0].Qtype], tcp)
		asked++
	}
	t.Logf("%d names asked once each, %d resolved by ServeWire (the rest from templates)", asked, resolves-asked)
	require.Less(t, resolves-asked, asked/3, "most absent names are answered from a template")
}
