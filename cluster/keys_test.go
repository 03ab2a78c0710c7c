package cluster

import (
	"context"
	"strings"
	"sync"
	"testing"

	"github.com/geodns/geodns/dnssec"
	"github.com/geodns/geodns/internal/etcdtest"
	"github.com/miekg/dns"
	"github.com/stretchr/testify/require"
)

const keySecret = "a secret of the set, the same file on every node"

// keyNode is a node's signer on the set's key store.
type keyNode struct {
	store *KeyStore
	m     *dnssec.Manager
	local string
}

func newKeyNode(t *testing.T, c *Cluster, secret string) *keyNode {
	t.Helper()
	local := t.TempDir()
	ks, err := NewKeyStore(c, []byte(secret), dnssec.Store{Dir: local})
	require.NoError(t, err)
	return &keyNode{store: ks, m: dnssec.NewManager(dnssec.Options{Store: ks}), local: local}
}

func (n *keyNode) dnskeys(origin string) string {
	rrs, _ := n.m.Apex(origin, dns.TypeDNSKEY)
	var tags []string
	for _, rr := range rrs {
		tags = append(tags, rr.String())
	}
	return strings.Join(tags, "\n")
}

// TestKeyStoreSharesKeys: nodes that start together sign with one set of
// keys (one node's, made once), a rollover started on one reaches the
// others at their next tick, a step based on keys another node changed
// first is refused and the stored keys taken instead, and etcd holds no
// private key in the clear.
func TestKeyStoreSharesKeys(t *testing.T) {
	ec := etcdtest.Start(t, etcdtest.Options{Members: 1})
	var nodes []*keyNode
	var clusters []*Cluster
	for _, name := range []string{"ns1", "ns2", "ns3"} {
		c, _ := startNode(t, testConfig(ec, name, "eu"))
		clusters = append(clusters, c)
		nodes = append(nodes, newKeyNode(t, c, keySecret))
	}
	cfg := []dnssec.ZoneConfig{{Origin: "example.com."}}
	var wg sync.WaitGroup
	for _, n := range nodes {
		wg.Go(func() { require.NoError(t, n.m.Sync(cfg)) })
	}
	wg.Wait()
	first := nodes[0].dnskeys("example.com.")
	require.NotEmpty(t, first)
	for _, n := range nodes[1:] {
		require.Equal(t, first, n.dnskeys("example.com."), "one DNSKEY RRset on every node")
	}
	t.Logf("three nodes starting at once sign with:\n%s", first)

	r, err := clusters[0].Client().Get(context.Background(), clusters[0].Key("dnssec/example.com."))
	require.NoError(t, err)
	require.Len(t, r.Kvs, 1)
	raw := string(r.Kvs[0].Value)
	require.NotContains(t, raw, "Private-key-format")
	require.NotContains(t, raw, "PrivateKey")
	require.NotContains(t, raw, "example.com", "sealed, not readable")

	// A rollover started on ns2. ns3, not yet ticked, starts one too on
	// the keys it has: refused (ns2 changed them first), and ns3 takes
	// ns2's. ns1 gets them at its next tick.
	require.NoError(t, nodes[1].m.Rollover("example.com.", dnssec.CSK))
	rolled := nodes[1].dnskeys("example.com.")
	require.NotEqual(t, first, rolled)
	require.Equal(t, first, nodes[2].dnskeys("example.com."))
	err = nodes[2].m.Rollover("example.com.", dnssec.CSK)
	require.ErrorIs(t, err, dnssec.ErrConflict)
	require.Equal(t, rolled, nodes[2].dnskeys("example.com."), "the stored keys taken")
	nodes[0].m.Tick(context.Background())
	require.Equal(t, rolled, nodes[0].dnskeys("example.com."))
	zk, _, ok := nodes[0].m.Keys("example.com.")
	require.True(t, ok)
	require.NotNil(t, zk.Roll)
	t.Logf("after ns2's rollover, on every node:\n%s", rolled)

	// Another secret does not open the keys, and says why.
	odd := newKeyNode(t, clusters[0], "another secret, not the set's one")
	err = odd.m.Sync(cfg)
	require.ErrorContains(t, err, "key_secret_file differs between nodes")
}

// TestKeyStoreWithoutEtcd: a node that starts while etcd is unreachable
// signs with its local copy of the keys; one without a copy makes no
// keys of its own (they would not be the set's); etcd rebuilt empty, or
// restored from a backup older than a rollover, gets a node's copy back
// rather than new keys or the old ones.
func TestKeyStoreWithoutEtcd(t *testing.T) {
	ec := etcdtest.Start(t, etcdtest.Options{Members: 1})
	c, _ := startNode(t, testConfig(ec, "ns1", "eu"))
	n := newKeyNode(t, c, keySecret)
	cfg := []dnssec.ZoneConfig{{Origin: "example.com."}}
	require.NoError(t, n.m.Sync(cfg))
	want := n.dnskeys("example.com.")

	// etcd rebuilt empty: the key is gone; a new node with this node's
	// local copy puts it back, and a node with none then reads it.
	_, err := c.Client().Delete(context.Background(), c.Key("dnssec/example.com."))
	require.NoError(t, err)
	again, err := NewKeyStore(c, []byte(keySecret), dnssec.Store{Dir: n.local})
	require.NoError(t, err)
	m := dnssec.NewManager(dnssec.Options{Store: again})
	require.NoError(t, m.Sync(cfg))
	fresh := newKeyNode(t, c, keySecret)
	require.NoError(t, fresh.m.Sync(cfg))
	require.Equal(t, want, fresh.dnskeys("example.com."), "the copy went back to etcd, not new keys")

	// etcd restored from a backup taken before a rollover: the older
	// keys (their key alone) come back to etcd. The node, which has moved
	// past them, does not take them: its copy goes back.
	backup, err := c.Client().Get(context.Background(), c.Key("dnssec/example.com."))
	require.NoError(t, err)
	n.m.Tick(context.Background()) // the keys' revision moved when they went back
	require.NoError(t, n.m.Rollover("example.com.", dnssec.CSK))
	rolled := n.dnskeys("example.com.")
	require.NotEqual(t, want, rolled)
	_, err = c.Client().Put(context.Background(), c.Key("dnssec/example.com."), string(backup.Kvs[0].Value))
	require.NoError(t, err)
	n.m.Tick(context.Background())
	require.Equal(t, rolled, n.dnskeys("example.com."), "the node kept the newer keys")
	late := newKeyNode(t, c, keySecret)
	require.NoError(t, late.m.Sync(cfg))
	require.Equal(t, rolled, late.dnskeys("example.com."), "etcd holds them again")
	want = rolled

	ec.KillAll()
	restarted, err := NewKeyStore(c, []byte(keySecret), dnssec.Store{Dir: n.local})
	require.NoError(t, err)
	m = dnssec.NewManager(dnssec.Options{Store: restarted})
	require.NoError(t, m.Sync(cfg), "the local copy signs")
	rrs, _ := m.Apex("example.com.", dns.TypeDNSKEY)
	require.Len(t, rrs, 2)
	for _, rr := range rrs {
		require.Contains(t, want, rr.(*dns.DNSKEY).PublicKey)
	}

	none := newKeyNode(t, c, keySecret)
	err = none.m.Sync(cfg)
	require.ErrorContains(t, err, "this node has no copy of the keys")
	require.False(t, none.m.Signs("example.com."), "no keys of its own")
}

// TestKeyStoreTickReadsAllVersionsAtOnce: with several zones, a node's
// tick learns which keys changed from one read of the prefix; a rollover
// of one zone on another node reaches it, and the other zone is left be.
func TestKeyStoreTickReadsAllVersionsAtOnce(t *testing.T) {
	ec := etcdtest.Start(t, etcdtest.Options{Members: 1})
	c1, _ := startNode(t, testConfig(ec, "ns1", "eu"))
	c2, _ := startNode(t, testConfig(ec, "ns2", "eu"))
	a, b := newKeyNode(t, c1, keySecret), newKeyNode(t, c2, keySecret)
	cfg := []dnssec.ZoneConfig{{Origin: "one.test."}, {Origin: "two.test."}}
	require.NoError(t, a.m.Sync(cfg))
	require.NoError(t, b.m.Sync(cfg))
	vs, err := b.store.AllKeysVersions()
	require.NoError(t, err)
	require.Len(t, vs, 2)
	for _, z := range []string{"one.test.", "two.test."} {
		v, err := b.store.KeysVersion(z)
		require.NoError(t, err)
		require.Equal(t, v, vs[z], z)
	}
	one := b.dnskeys("one.test.")
	require.NoError(t, a.m.Rollover("two.test.", dnssec.CSK))
	b.m.Tick(context.Background())
	require.Equal(t, a.dnskeys("two.test."), b.dnskeys("two.test."))
	require.Equal(t, one, b.dnskeys("one.test."))
}
