package cluster

import (
	"bytes"
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/geodns/geodns/dnssec"
	"github.com/geodns/geodns/internal/etcdtest"
	"github.com/geodns/geodns/internal/testclock"
	"github.com/miekg/dns"
	"github.com/stretchr/testify/require"
)

// reviewNode is newKeyNode with a clock, a parent stub and a log.
func reviewNode(t *testing.T, c *Cluster, clk *testclock.Clock, log *slog.Logger) *keyNode {
	t.Helper()
	local := t.TempDir()
	ks, err := NewKeyStore(c, []byte(keySecret), dnssec.Store{Dir: local})
	require.NoError(t, err)
	if log == nil {
		log = quiet
	}
	m := dnssec.NewManager(dnssec.Options{Store: ks, Now: clk.Now, Log: log,
		ParentDS: func(context.Context, string, []string) ([]*dns.DS, uint32, error) { return nil, 0, nil }})
	return &keyNode{store: ks, m: m, local: local}
}

func (n *keyNode) dnskeyTags(origin string) map[uint16]bool {
	rrs, _ := n.m.Apex(origin, dns.TypeDNSKEY)
	out := map[uint16]bool{}
	for _, rr := range rrs {
		out[rr.(*dns.DNSKEY).KeyTag()] = true
	}
	return out
}

// TestKeyStoreZoneSignedAfterEtcdIsBack: a node that starts (or loads a
// zone) while etcd is unreachable, with no local copy, leaves the zone
// unsigned, as documented "until etcd is back": the next tick after etcd
// answers again loads its keys (Sync runs on a zone change only).
func TestKeyStoreZoneSignedAfterEtcdIsBack(t *testing.T) {
	ec := etcdtest.Start(t, etcdtest.Options{Members: 1})
	clk := testclock.New(time.Now())
	c1, _ := startNode(t, testConfig(ec, "ns1", "eu"))
	c2, _ := startNode(t, testConfig(ec, "ns2", "eu"))
	a := reviewNode(t, c1, clk, nil)
	cfg := []dnssec.ZoneConfig{{Origin: "example.com."}}
	require.NoError(t, a.m.Sync(cfg))

	ec.KillAll()
	b := reviewNode(t, c2, clk, nil) // a new node: no local copy
	err := b.m.Sync(cfg)
	require.ErrorContains(t, err, "no copy")
	require.False(t, b.m.Signs("example.com."))

	ec.RestartAll()
	time.Sleep(downFor + time.Second)
	// etcd answers again: the keys are there.
	r, err := c2.Client().Get(context.Background(), c2.Key("dnssec/example.com."))
	require.NoError(t, err)
	require.Len(t, r.Kvs, 1)
	b.m.Tick(context.Background())
	require.True(t, b.m.Signs("example.com."), "etcd is back and holds the keys: the zone is signed")
	require.Equal(t, a.dnskeys("example.com."), b.dnskeys("example.com."), "the set's keys")
}

// TestKeyStoreLostSaveLeavesKeysMutated: when a step (or Rollover) cannot
// be stored and the stored keys cannot be read back (a value in etcd
// that does not open: corrupt, or sealed with another node's secret), the
// manager keeps the keys it mutated but never stored, and signs with them
// at its next renewal. Two nodes each start a ZSK rollover on their own,
// with a new ZSK the other does not have.
func TestKeyStoreLostSaveLeavesKeysMutated(t *testing.T) {
	ec := etcdtest.Start(t, etcdtest.Options{Members: 1})
	clk := testclock.New(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))
	c1, _ := startNode(t, testConfig(ec, "ns1", "eu"))
	c2, _ := startNode(t, testConfig(ec, "ns2", "eu"))
	var logA bytes.Buffer
	a := reviewNode(t, c1, clk, slog.New(slog.NewTextHandler(&logA, nil)))
	b := reviewNode(t, c2, clk, nil)
	p := dnssec.Policy{Split: true, ZSKLifetime: 2 * time.Hour, DNSKEYTTL: 60, MaxZoneTTL: 300,
		Propagation: 10 * time.Second, Validity: 4 * time.Hour, Refresh: 2 * time.Hour}
	cfg := []dnssec.ZoneConfig{{Origin: "example.com.", Policy: p}}
	require.NoError(t, a.m.Sync(cfg))
	require.NoError(t, b.m.Sync(cfg))
	before := a.dnskeyTags("example.com.")
	require.Equal(t, before, b.dnskeyTags("example.com."))

	// A value that does not open lands in etcd.
	_, err := c1.Client().Put(context.Background(), c1.Key("dnssec/example.com."), "not sealed keys, corrupt")
	require.NoError(t, err)

	// A manual rollover on a: refused...
	err = a.m.Rollover("example.com.", dnssec.ZSK)
	require.Error(t, err)
	zk, _, _ := a.m.Keys("example.com.")
	t.Logf("a after the failed Rollover: roll %+v, %d keys", zk.Roll, len(zk.Keys))
	require.Nil(t, zk.Roll, "Rollover returned %v, yet a rollover is under way in a's keys", err)
}

// TestKeyStoreLostStepsDiverge: as above, through Tick: the ZSK's lifetime
// ends; each node starts the rollover with its own new ZSK, cannot store
// it, and publishes it at its next renewal anyway.
func TestKeyStoreLostStepsDiverge(t *testing.T) {
	ec := etcdtest.Start(t, etcdtest.Options{Members: 1})
	clk := testclock.New(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))
	c1, _ := startNode(t, testConfig(ec, "ns1", "eu"))
	c2, _ := startNode(t, testConfig(ec, "ns2", "eu"))
	a := reviewNode(t, c1, clk, nil)
	b := reviewNode(t, c2, clk, nil)
	p := dnssec.Policy{Split: true, ZSKLifetime: 2 * time.Hour, DNSKEYTTL: 60, MaxZoneTTL: 300,
		Propagation: 10 * time.Second, Validity: 4 * time.Hour, Refresh: 2 * time.Hour}
	cfg := []dnssec.ZoneConfig{{Origin: "example.com.", Policy: p}}
	require.NoError(t, a.m.Sync(cfg))
	require.NoError(t, b.m.Sync(cfg))
	require.Equal(t, a.dnskeyTags("example.com."), b.dnskeyTags("example.com."))

	_, err := c1.Client().Put(context.Background(), c1.Key("dnssec/example.com."), "not sealed keys, corrupt")
	require.NoError(t, err)
	clk.Add(2*time.Hour + time.Minute)
	a.m.Tick(context.Background())
	b.m.Tick(context.Background())
	ta, tb := a.dnskeyTags("example.com."), b.dnskeyTags("example.com.")
	t.Logf("DNSKEY tags: a %v, b %v", ta, tb)
	require.Equal(t, ta, tb, "the two nodes publish different DNSKEY RRsets, neither stored anywhere")
}

// TestKeyStoreLocalCopyOfAnotherZone: a local key file whose origin is not
// the zone's (a file copied or renamed by hand) was pushed to the other
// zone's key in etcd, and when that one existed LoadKeys recursed for
// ever (under the manager's lock: zone loading stalled). It is refused.
func TestKeyStoreLocalCopyOfAnotherZone(t *testing.T) {
	ec := etcdtest.Start(t, etcdtest.Options{Members: 1})
	clk := testclock.New(time.Now())
	c1, _ := startNode(t, testConfig(ec, "ns1", "eu"))
	a := reviewNode(t, c1, clk, nil)
	require.NoError(t, a.m.Sync([]dnssec.ZoneConfig{{Origin: "example.com."}}))
	b, err := os.ReadFile(filepath.Join(a.local, "example.com.keys.json"))
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(filepath.Join(a.local, "example.net.keys.json"), b, 0o600))

	done := make(chan error, 1)
	go func() { _, _, err := a.store.LoadKeys("example.net."); done <- err }()
	select {
	case err := <-done:
		require.ErrorContains(t, err, "the keys of example.com., not of example.net.")
	case <-time.After(10 * time.Second):
		t.Fatal("LoadKeys(example.net.) has not returned in 10 s")
	}
}

// TestKeyStoreWrongSecretMakesKeys: a node with another secret that loaded
// a new zone first made its keys, sealed with its secret: no other node
// could open them, and the zone was unsigned on every node but that one.
// The set's secret is fingerprinted in etcd by the first node to write
// keys; a node whose secret differs writes none, and says so.
func TestKeyStoreWrongSecretMakesKeys(t *testing.T) {
	ec := etcdtest.Start(t, etcdtest.Options{Members: 1})
	c1, _ := startNode(t, testConfig(ec, "ns1", "eu"))
	c2, _ := startNode(t, testConfig(ec, "ns2", "eu"))
	good := newKeyNode(t, c2, keySecret)
	require.NoError(t, good.m.Sync([]dnssec.ZoneConfig{{Origin: "example.com."}}))

	odd := newKeyNode(t, c1, "another secret, not the set's one")
	cfg := []dnssec.ZoneConfig{{Origin: "new.example."}}
	err := odd.m.Sync(cfg)
	require.ErrorContains(t, err, "sealed with another key_secret_file")
	require.False(t, odd.m.Signs("new.example."))
	require.NoError(t, good.m.Sync(cfg), "the set's node makes the zone's keys")
	require.True(t, good.m.Signs("new.example."))
	r, err := c1.Client().Get(context.Background(), c1.Key("dnssec-secret"))
	require.NoError(t, err)
	require.Len(t, r.Kvs, 1)
	require.NotContains(t, string(r.Kvs[0].Value), keySecret)
}
