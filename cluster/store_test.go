package cluster

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/geodns/geodns/internal/etcdtest"
	"github.com/geodns/geodns/opstate"
	"github.com/geodns/geodns/zones"
	"github.com/stretchr/testify/require"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// TestMirrorResyncsAfterCompaction: a mirror whose member was down while
// the others changed keys and compacted the history cannot watch from its
// revision; it reads everything again (Reset), and its view matches etcd,
// deletions included.
func TestMirrorResyncsAfterCompaction(t *testing.T) {
	ec := etcdtest.Start(t, etcdtest.Options{})
	cfg := testConfig(ec, "ns1", "eu")
	cfg.Etcd = cfg.Etcd[:1] // this node knows member 0 only
	c, err := New(Options{Config: cfg, TTL: 2 * time.Second, Timeout: time.Second, Log: quiet})
	require.NoError(t, err)
	defer c.Close()
	admin := ec.Client()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	_, err = admin.Put(ctx, "/test/m/a", "1")
	require.NoError(t, err)
	_, err = admin.Put(ctx, "/test/m/b", "1")
	require.NoError(t, err)

	var mu sync.Mutex
	view, resets := map[string]string{}, 0
	go c.Mirror(ctx, "m/", func(u Update) {
		mu.Lock()
		defer mu.Unlock()
		if u.Reset {
			resets++
			clear(view)
		}
		for k, v := range u.Puts {
			view[k] = string(v)
		}
		for _, k := range u.Deletes {
			delete(view, k)
		}
	})
	same := func(want map[string]string) func() bool {
		return func() bool {
			mu.Lock()
			defer mu.Unlock()
			return fmt.Sprint(view) == fmt.Sprint(want)
		}
	}
	require.Eventually(t, same(map[string]string{"a": "1", "b": "1"}), 10*time.Second, 10*time.Millisecond)
	_, err = admin.Put(ctx, "/test/m/a", "2")
	require.NoError(t, err)
	require.Eventually(t, same(map[string]string{"a": "2", "b": "1"}), 5*time.Second, 10*time.Millisecond, "watched")

	ec.Kill(0)
	require.Eventually(t, func() bool {
		wctx, wcancel := context.WithTimeout(ctx, time.Second)
		defer wcancel()
		_, err1 := admin.Delete(wctx, "/test/m/b")
		if err1 != nil {
			return false
		}
		r, err2 := admin.Put(wctx, "/test/m/c", "3")
		if err2 != nil {
			return false
		}
		_, err3 := admin.Compact(wctx, r.Header.Revision, clientv3.WithCompactPhysical())
		return err3 == nil
	}, 15*time.Second, 50*time.Millisecond)
	ec.Restart(0)
	require.Eventually(t, same(map[string]string{"a": "2", "c": "3"}), 15*time.Second, 10*time.Millisecond, "resynced after the compaction")
	mu.Lock()
	defer mu.Unlock()
	require.Equal(t, 2, resets, "one full read at start, one after the compaction")
}

// startOperator runs the shared operator state of a node named name, over
// the state file at path, until the test ends.
func startOperator(t *testing.T, ec *etcdtest.Cluster, name, path string) *OperatorStore {
	c, _ := startNode(t, testConfig(ec, name, "eu"))
	s := NewOperatorStore(c, opstate.OpenFile(opstate.FileOptions{Path: path, Log: quiet}))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { s.Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	return s
}

// TestOperatorConcurrentChanges: changes made at once through two nodes
// all land (transactions on the key's revision, none lost), each node
// applies them all, and a node started while etcd is down serves what it
// persisted.
func TestOperatorConcurrentChanges(t *testing.T) {
	ec := etcdtest.Start(t, etcdtest.Options{TLS: true})
	dirs := []string{t.TempDir(), t.TempDir()}
	var stores []*OperatorStore
	for i, name := range []string{"ns1", "ns2"} {
		stores = append(stores, startOperator(t, ec, name, filepath.Join(dirs[i], "operator.json")))
	}
	var wg sync.WaitGroup
	const each = 10
	for i, s := range stores {
		wg.Go(func() {
			for j := range each {
				_, err := s.Apply(opstate.Site(fmt.Sprintf("site-%d-%d", i, j), opstate.Drain))
				require.NoError(t, err)
			}
		})
	}
	wg.Wait()
	for _, s := range stores {
		require.Eventually(t, func() bool { return len(s.Load().Sites()) == 2*each }, 5*time.Second, 10*time.Millisecond,
			"every change of both nodes, none lost: %v", s.Load().Sites())
	}
	require.Eventually(t, func() bool { return stores[0].Revision() == stores[1].Revision() }, 5*time.Second, 10*time.Millisecond)

	// etcd gone: a change is refused; a node opened on its state file
	// alone has every drain.
	ec.KillAll()
	_, err := stores[0].Apply(opstate.Site("late", opstate.Drain))
	require.ErrorIs(t, err, opstate.ErrNotSaved)
	c, _ := startNode(t, testConfig(ec, "ns1", "eu"))
	fresh := NewOperatorStore(c, opstate.OpenFile(opstate.FileOptions{Path: filepath.Join(dirs[0], "operator.json"), Log: quiet}))
	require.Len(t, fresh.Load().Sites(), 2*each, "the persisted state, without etcd")
	require.NotContains(t, fresh.Load().Sites(), "late")
}

// TestSerialsOneForOneContent: nodes asking at once for the serial of a
// new content, each with its own automatic serial, all get one; a newer
// content gets a later one even when its own mtime is older; a return to
// an older content moves past the newest.
func TestSerialsOneForOneContent(t *testing.T) {
	ec := etcdtest.Start(t, etcdtest.Options{})
	var srcs []*Serials
	for _, name := range []string{"ns1", "ns2", "ns3"} {
		c, _ := startNode(t, testConfig(ec, name, "eu"))
		srcs = append(srcs, NewSerials(c, nil))
	}
	a, b := [32]byte{1}, [32]byte{2}
	got := make([]uint32, 3)
	var wg sync.WaitGroup
	for i, s := range srcs {
		wg.Go(func() {
			var ok bool
			got[i], ok = s.Serial("example.com.", a, uint32(1000+i*100), 0, false)
			require.True(t, ok)
		})
	}
	wg.Wait()
	require.Equal(t, got[0], got[1])
	require.Equal(t, got[1], got[2])
	require.Contains(t, []uint32{1000, 1100, 1200}, got[0], "one node's own serial")

	sb, ok := srcs[1].Serial("example.com.", b, 500, got[0], true) // an older mtime
	require.True(t, ok)
	require.Equal(t, got[0]+1, sb, "after the newest")
	sb3, _ := srcs[2].Serial("example.com.", b, 9999, got[0], true)
	require.Equal(t, sb, sb3, "the same content: its serial")

	back, _ := srcs[0].Serial("example.com.", a, 1000, sb, true)
	require.Equal(t, sb+1, back, "a return to older content moves on")
	back2, _ := srcs[1].Serial("example.com.", a, 1000, sb, true)
	require.Equal(t, back, back2)
	fresh, _ := srcs[2].Serial("example.com.", a, 1, 0, false)
	require.Equal(t, back, fresh, "a node (re)starting on that content")
	other, _ := srcs[2].Serial("other.example.", a, 77, 0, false)
	require.Equal(t, uint32(77), other, "per zone")

	ec.KillAll()
	s, ok := srcs[0].Serial("example.com.", b, 4242, back, true)
	require.False(t, ok, "etcd gone: numbered alone")
	require.Equal(t, uint32(4242), s)
	require.Equal(t, []string{"example.com."}, srcs[0].Local())
	start := time.Now()
	_, ok = srcs[0].Serial("other.example.", b, 5, 0, false)
	require.False(t, ok)
	require.Less(t, time.Since(start), 100*time.Millisecond, "the next zone does not wait for etcd again")
	require.Equal(t, []string{"example.com.", "other.example."}, srcs[0].Local())
}

// TestOperatorAfterEtcdDataLoss: etcd rebuilt empty starts its revisions
// again from 1. Before, each node's watch resumed from its last revision,
// far ahead, and waited silently, while a change acknowledged by one node
// (its revision below the one that node had applied) was in effect
// nowhere. Now a node sees the revision go back, reads everything again,
// and the change is in effect on every node when acknowledged.
func TestOperatorAfterEtcdDataLoss(t *testing.T) {
	ec := etcdtest.Start(t, etcdtest.Options{Members: 1})
	var stores []*OperatorStore
	for _, name := range []string{"ns1", "ns2"} {
		stores = append(stores, startOperator(t, ec, name, filepath.Join(t.TempDir(), "operator.json")))
	}
	// Revisions well past where the rebuilt etcd will be.
	admin := ec.Client()
	for i := range 30 {
		_, err := admin.Put(context.Background(), fmt.Sprintf("/test/filler/%d", i), "x")
		require.NoError(t, err)
	}
	_, err := stores[0].Apply(opstate.Site("east", opstate.Drain))
	require.NoError(t, err)
	for _, s := range stores {
		require.Eventually(t, func() bool { return len(s.Load().Sites()) == 1 }, 5*time.Second, 10*time.Millisecond)
	}

	ec.Wipe()
	// The new history passes what either node saw of the old one other
	// than through its watch (its first reads, its lease): a node that
	// held only those as the revisions seen missed the rewind and stalled
	// (a verification run, one node in three).
	for i := range 15 {
		_, err := admin.Put(context.Background(), fmt.Sprintf("/test/new/%d", i), "x")
		require.NoError(t, err)
	}
	// The change made through ns2 is acknowledged only once in effect
	// there (a write in the new history), and reaches ns1 too.
	require.Eventually(t, func() bool {
		_, err := stores[1].Apply(opstate.Site("east", ""))
		return err == nil
	}, 20*time.Second, 100*time.Millisecond)
	require.Empty(t, stores[1].Load().Sites(), "in effect on the node that acknowledged it")
	require.Eventually(t, func() bool { return len(stores[0].Load().Sites()) == 0 }, 10*time.Second, 10*time.Millisecond,
		"in effect on the other node: %v", stores[0].Load().Sites())
	_, err = stores[0].Apply(opstate.Site("west", opstate.Drain))
	require.NoError(t, err)
	require.Eventually(t, func() bool { return len(stores[1].Load().Sites()) == 1 }, 10*time.Second, 10*time.Millisecond)
}

// TestSerialsKeptForAnOutage: a node keeps the serial etcd gave each
// zone's content; restarted while etcd is down, it gives that content the
// same serial (the set's), and only new content one of its own. Before,
// it numbered every zone by its files' mtimes, unlike the other nodes.
func TestSerialsKeptForAnOutage(t *testing.T) {
	ec := etcdtest.Start(t, etcdtest.Options{Members: 1})
	cache := filepath.Join(t.TempDir(), "serials.json")
	c, stop := startNode(t, testConfig(ec, "ns1", "eu"))
	s := NewSerials(c, nil)
	s.SetCache(cache)
	a, b := [32]byte{1}, [32]byte{2}
	first, ok := s.Serial("example.com.", a, 1000, 0, false)
	require.True(t, ok)
	s.Flush() // as serve does when it stops
	stop()

	ec.KillAll()
	c2, _ := startNode(t, testConfig(ec, "ns1", "eu"))
	s2 := NewSerials(c2, nil)
	s2.SetCache(cache)
	got, ok := s2.Serial("example.com.", a, 5555, 0, false)
	require.False(t, ok, "etcd is down")
	require.Equal(t, first, got, "the serial etcd gave this content")
	require.Equal(t, []string{"example.com."}, s2.Local(), "still to be confirmed when etcd is back")
	other, _ := s2.Serial("example.com.", b, 6666, got, true)
	require.Equal(t, uint32(6666), other, "new content: numbered alone")
	back, _ := s2.Serial("example.com.", a, 7777, other, true)
	require.Equal(t, uint32(7777), back, "a return to the first content: its kept serial would go back")
}

// TestGenerationShowsAReplacedHistory: etcd rebuilt and written past every
// revision a node saw before it reconnects shows no revision going back;
// the generation key, gone with the old data, shows it. Before, such a node
// kept watching the new history from its old revision: no full read, and
// a key written below that revision was never seen.
func TestGenerationShowsAReplacedHistory(t *testing.T) {
	ec := etcdtest.Start(t, etcdtest.Options{Members: 1})
	c, _ := startNode(t, testConfig(ec, "ns1", "eu"))
	require.Eventually(t, c.Connected, 10*time.Second, 10*time.Millisecond)
	require.Eventually(t, func() bool { c.revMu.Lock(); defer c.revMu.Unlock(); return c.generation != "" }, 5*time.Second, 10*time.Millisecond)
	require.Zero(t, c.floor().epoch)

	// The old data gone, and a new history far past the node's revisions.
	admin := ec.Client()
	ctx := context.Background()
	_, err := admin.Delete(ctx, "/test/", clientv3.WithPrefix())
	require.NoError(t, err)
	for i := range 200 {
		_, err := admin.Put(ctx, fmt.Sprintf("/other/%d", i), "x")
		require.NoError(t, err)
	}
	lease, _ := c.Lease()
	_, err = admin.Revoke(ctx, lease) // gone with the data, as in a rebuild
	require.NoError(t, err)
	require.Eventually(t, func() bool { return c.floor().epoch == 1 }, 10*time.Second, 10*time.Millisecond)
}

// TestZoneKeepsItsSerialThroughAnOutage: the same through the zone
// loader. A node restarted while etcd is down loads a zone whose content
// etcd numbered before (its file's mtime now later): it serves the serial
// etcd gave it, the set's. Before, Serials returned the kept serial with
// ok false, and the loader dropped it for the file's mtime.
func TestZoneKeepsItsSerialThroughAnOutage(t *testing.T) {
	ec := etcdtest.Start(t, etcdtest.Options{Members: 1})
	first, got, later := keptSerialRun(t, ec, ec.KillAll)
	t.Logf("serial from etcd %d; restarted in the outage: %d (the file's mtime: %d)", first, got, later.Unix())
	require.Equal(t, first, got, "the serial etcd gave this content")
}

// keptSerialRun loads a zone on node ns1 (its file an hour old), stops
// the node, lets between change etcd, then makes the same content's file
// ten minutes newer and loads it again on a new ns1 with the same state
// directory: the serials of the two loads, and the second file's time.
func keptSerialRun(t *testing.T, ec *etcdtest.Cluster, between func()) (first, got uint32, later time.Time) {
	dir, state := t.TempDir(), t.TempDir()
	file := filepath.Join(dir, "example.com.yaml")
	require.NoError(t, os.WriteFile(file, []byte("soa: {ns: ns1.example.com., mbox: h.example.com.}\nrecords:\n  \"@\": {NS: [ns1.example.com.], A: [192.0.2.1]}\n"), 0o644))
	mtime := time.Now().Add(-time.Hour).Truncate(time.Second)
	require.NoError(t, os.Chtimes(file, mtime, mtime))
	load := func(c *Cluster) *zones.Zone {
		s := NewSerials(c, nil)
		s.SetCache(filepath.Join(state, "serials.json"))
		var set atomic.Pointer[zones.Set]
		w := zones.NewWatcher(dir, &set, nil, quiet)
		w.Serials = s
		require.NoError(t, w.Scan(true))
		s.Flush() // as serve does when it stops
		return set.Load().Zone("example.com.")
	}
	c, stop := startNode(t, testConfig(ec, "ns1", "eu"))
	first = load(c).Serial
	stop()

	between()
	later = mtime.Add(10 * time.Minute) // the same content, deployed again
	require.NoError(t, os.Chtimes(file, later, later))
	c2, _ := startNode(t, testConfig(ec, "ns1", "eu"))
	return first, load(c2).Serial, later
}

// TestOperatorUnreadableInEtcd: a value at P/operator that does not
// decode (written by hand) leaves every node on its last state, ready
// (its DNS answers are right), and says which key and why; a change made
// through the API replaces it, from the last state the nodes applied.
// Before, every node's Err (and so /readyz) failed with "state file not
// written", and every change was refused until the key was fixed by hand.
func TestOperatorUnreadableInEtcd(t *testing.T) {
	ec := etcdtest.Start(t, etcdtest.Options{Members: 1})
	stores := []*OperatorStore{
		startOperator(t, ec, "ns1", filepath.Join(t.TempDir(), "operator.json")),
		startOperator(t, ec, "ns2", filepath.Join(t.TempDir(), "operator.json")),
	}
	_, err := stores[0].Apply(opstate.Site("east", opstate.Drain))
	require.NoError(t, err)
	for _, s := range stores {
		require.Eventually(t, func() bool { return len(s.Load().Sites()) == 1 }, 5*time.Second, 10*time.Millisecond)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_, err = ec.Client().Put(ctx, "/test/operator", "not json")
	require.NoError(t, err)
	for _, s := range stores {
		require.Eventually(t, func() bool { return s.Warning() != nil }, 5*time.Second, 10*time.Millisecond)
		require.NoError(t, s.Err(), "the node serves its last state: ready")
		require.ErrorContains(t, s.Warning(), "the operator state in etcd (/test/operator) is not readable: invalid character 'o'")
		require.Contains(t, s.Load().Sites(), "east", "the last state is kept")
	}
	_, err = stores[1].Apply(opstate.Site("west", opstate.Drain))
	require.NoError(t, err, "a change replaces the unreadable value")
	for _, s := range stores {
		require.Eventually(t, func() bool { return len(s.Load().Sites()) == 2 && s.Warning() == nil }, 5*time.Second, 10*time.Millisecond,
			"both drains, from the last state applied")
	}
}

// TestReportTooLargeForEtcd: a node whose report (every zone's serial
// and hash) is larger than etcd takes in one request publishes it
// without its zones, says how many it left out, and shows in the other
// nodes' view. Before, the put failed again every lease_ttl/4 without
// end ("request is too large"): the node was missing from every view
// and drift, and its gone record was never deleted. Both limits: the
// members' --max-request-bytes (16 KiB here), and, with the members'
// raised to 8 MiB as the docs advise, the client's own 2 MiB on what it
// sends (a gRPC ResourceExhausted, which the fallback missed at first).
func TestReportTooLargeForEtcd(t *testing.T) {
	for _, tc := range []struct {
		name     string
		maxBytes int
		zones    int
		label    string // lengthens each zone's name, and so its report entry
	}{
		{"member limit", 16 << 10, 300, ""},
		{"client limit", 8 << 20, 12000, strings.Repeat("x", 60) + "."},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ec := etcdtest.Start(t, etcdtest.Options{Members: 1, MaxRequestBytes: tc.maxBytes})
			var zs []*zones.Zone
			for i := range tc.zones {
				origin := fmt.Sprintf("zone-%05d.%sexample.", i, tc.label)
				z, err := zones.Compile(origin+"yaml", []byte("soa: {ns: ns1.example.net., mbox: h.example.net.}\nrecords:\n  \"@\": {A: [192.0.2.1]}\n"), origin, time.Now(), nil)
				require.NoError(t, err)
				zs = append(zs, z)
			}
			big := zones.NewSet(zs...)
			small := zones.NewSet(zs[0])
			run := func(name string, set *zones.Set) *Reports {
				c, err := New(Options{Config: testConfig(ec, name, "eu"), Version: "test", TTL: 3 * time.Second, Timeout: time.Second, Log: quiet})
				require.NoError(t, err)
				r := NewReports(c, Sources{Zones: func() *zones.Set { return set }})
				ctx, cancel := context.WithCancel(context.Background())
				done := make(chan struct{}, 2)
				go func() { c.Run(ctx); done <- struct{}{} }()
				go func() { r.Run(ctx); done <- struct{}{} }()
				t.Cleanup(func() { cancel(); <-done; <-done; c.Close() })
				return r
			}
			run("big1", big)
			other := run("ns2", small)
			var seen NodeView
			require.Eventually(t, func() bool {
				for _, n := range other.View().Nodes {
					if n.Node == "big1" && n.State == StateLive {
						seen = n
						return true
					}
				}
				return false
			}, 20*time.Second, 20*time.Millisecond, "big1 is in ns2's view")
			require.Equal(t, tc.zones, seen.ZonesOmitted)
			require.Empty(t, seen.Zones)
			require.Empty(t, seen.Drift, "zones left out are not drift")
		})
	}
}

// TestRevertedContentConverges: two nodes serve content H under
// one serial; one of them gets a bad push (B) and then H back, which it
// must number past B's serial. The other node, which kept serving H,
// takes that new serial within seconds (one content, one serial), with
// no change to its files. Before, it kept the old one and the set showed
// drift until its file next changed.
func TestRevertedContentConverges(t *testing.T) {
	ec := etcdtest.Start(t, etcdtest.Options{Members: 1})
	zone := func(addr string) string {
		return "soa: {ns: ns1.example.com., mbox: h.example.com.}\nrecords:\n  \"@\": {NS: [ns1.example.com.], A: [" + addr + "]}\n"
	}
	type node struct {
		dir string
		set atomic.Pointer[zones.Set]
		w   *zones.Watcher
	}
	start := func(name string) *node {
		n := &node{dir: t.TempDir()}
		require.NoError(t, os.WriteFile(filepath.Join(n.dir, "example.com.yaml"), []byte(zone("192.0.2.1")), 0o644))
		var s *Serials
		// NewSerials with a reload hooks the session: before Run.
		startNodeTTL(t, testConfig(ec, name, "eu"), 3*time.Second, func(c *Cluster) {
			s = NewSerials(c, func() { go n.w.ReloadAll() })
		})
		n.w = zones.NewWatcher(n.dir, &n.set, nil, quiet)
		n.w.Serials = s
		require.NoError(t, n.w.Scan(true))
		ctx, cancel := context.WithCancel(context.Background())
		t.Cleanup(cancel)
		go s.Run(ctx)
		return n
	}
	serial := func(n *node) uint32 { return n.set.Load().Zone("example.com.").Serial }
	a, b := start("ns1"), start("ns2")
	h := serial(a)
	require.Equal(t, h, serial(b), "one content, one serial")

	// The bad push and its revert, on ns2 only.
	for _, addr := range []string{"192.0.2.66", "192.0.2.1"} {
		require.NoError(t, os.WriteFile(filepath.Join(b.dir, "example.com.yaml"), []byte(zone(addr)), 0o644))
		require.NoError(t, b.w.ReloadAll())
	}
	back := serial(b)
	require.True(t, serialAfter(back, h), "the reverted content comes after the bad push's serial on ns2: %d after %d", back, h)
	require.Eventually(t, func() bool { return serial(a) == back }, 10*time.Second, 20*time.Millisecond,
		"ns1 takes the serial the content has now (%d), not %d", back, serial(a))
}

// TestKeptSerialAfterEtcdDataLoss: etcd's serials are gone (its data lost
// and rebuilt) and a node loads a zone whose content it had numbered
// before: it records the serial it kept for that content, the one the
// other nodes still serve, not its file's time. Before, it recorded the
// mtime rule's serial and the set showed drift for good (the cluster
// review's 3b).
func TestKeptSerialAfterEtcdDataLoss(t *testing.T) {
	ec := etcdtest.Start(t, etcdtest.Options{Members: 1})
	first, got, later := keptSerialRun(t, ec, func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_, err := ec.Client().Delete(ctx, "/test/serials/", clientv3.WithPrefix())
		require.NoError(t, err)
	})
	t.Logf("serial before the loss %d; after: %d (the file's mtime: %d)", first, got, later.Unix())
	require.Equal(t, first, got, "the serial this node kept for the content")
}
