package resolver

import (
	"fmt"
	"testing"

	"github.com/geodns/geodns/dnssec"
	"github.com/miekg/dns"
	"github.com/stretchr/testify/require"
)

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
