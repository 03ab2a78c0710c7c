package cluster

import (
	"context"
	"encoding/hex"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/geodns/geodns/zones"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// Serials is the zones.SerialSource of an NS set: one content of a zone,
// one serial on every node. The first node to load a content (by its
// hash, which leaves the serial out) records its serial in etcd with a
// create-if-absent transaction: its own automatic serial (the file's
// mtime), moved past the zone's newest serial (P/serials/<zone>/last) if
// it is not after it. Every node that loads the same content later, in
// any order, gets that serial. A content seen before gets a new serial
// only when its recorded one is not after the serial the node serves now
// (a return to older content: secondaries ignore a serial that goes
// back).
//
// While etcd does not answer, a node numbers the zone alone: with the
// serial etcd last gave this content, if the node kept it (SetCache: a
// node restarted in an outage then serves what the set serves), else by
// the mtime rule, and the difference shows as drift until the zone next
// loads.
type Serials struct {
	c *Cluster

	cache *zones.SerialFile // by zone: the last serial etcd gave, for its content; nil: not kept

	// failed: when the last ask failed (unix nanoseconds; 0: it did not).
	// Until etcd answers the node again, the next ones do not wait (a
	// reload of many zones in an outage).
	failed atomic.Int64

	mu     sync.Mutex
	local  map[string]bool         // zones numbered alone (etcd did not answer)
	served map[string]cachedSerial // by zone (and "export:" zone): the content and serial this node serves
	reload func()                  // NewSerials's
}

var _ zones.SerialSource = (*Serials)(nil)

// cachedSerial is a zone's content (its hash, hex) and its serial.
type cachedSerial struct {
	Hash   string
	Serial uint32
}

// SetCache keeps the serial etcd last gave each zone's content in path
// (a state file) and reads what is there; call before the zones load.
// Its writes are coalesced: thousands of zones loading at start write it
// once, not once each (whole and synced every time, that took 4.4 s for
// 3,000 zones, growing with the square of their number).
func (s *Serials) SetCache(path string) {
	s.cache = zones.OpenSerialFile(path, s.c.log)
}

// Flush writes the cache's pending changes (at shutdown).
func (s *Serials) Flush() {
	if s.cache != nil {
		s.cache.Flush()
	}
}

// remember records what etcd gave origin's content.
func (s *Serials) remember(origin, hash string, serial uint32) {
	if s.cache != nil {
		s.cache.Keep(origin, hash, serial)
	}
}

// recall returns the serial etcd last gave this content of origin.
func (s *Serials) recall(origin, hash string) (uint32, bool) {
	if s.cache == nil {
		return 0, false
	}
	return s.cache.Kept(origin, hash)
}

// NewSerials returns the serial source of c. reload, if set, is called
// when the node connects while some zone is numbered alone: it should
// load the zones again (SIGHUP's reload), which numbers them from etcd.
func NewSerials(c *Cluster, reload func()) *Serials {
	s := &Serials{c: c, local: map[string]bool{}, served: map[string]cachedSerial{}, reload: reload}
	if reload != nil {
		c.OnSession(func(ctx context.Context, _ clientv3.LeaseID) error {
			if len(s.Local()) > 0 {
				s.c.log.Info("cluster: connected; reloading the zones numbered alone", "zones", s.Local())
				reload()
			}
			return nil
		})
	}
	return s
}

// keep is how many contents' serials a zone keeps; older ones are
// dropped when a new one is recorded.
const keep = 32

// Serial implements zones.SerialSource.
func (s *Serials) Serial(origin string, hash [32]byte, want, prev uint32, moved bool) (uint32, bool) {
	h := hex.EncodeToString(hash[:])
	// A content this node numbered before is recorded, if etcd no longer
	// has it (its data lost and rebuilt), under the serial kept for it:
	// the one the other nodes still serve, not this node's file time.
	kept, found := s.recall(origin, h)
	if found = found && (!moved || serialAfter(kept, prev)); found {
		want = kept
	}
	serial, ok := want, false
	if f := s.failed.Load(); f == 0 || s.c.contact.Load() > f {
		serial, ok = s.serial(origin, h, want, prev, moved)
		if ok {
			s.failed.Store(0)
			s.remember(origin, h, serial)
		} else {
			s.failed.Store(time.Now().UnixNano())
		}
	}
	s.mu.Lock()
	if ok {
		delete(s.local, origin)
	} else {
		s.local[origin] = true
	}
	s.served[origin] = cachedSerial{h, serial}
	s.mu.Unlock()
	switch {
	case ok:
	case found:
		s.c.log.Info("cluster: etcd did not answer; the zone keeps the serial etcd gave this content", "zone", origin, "serial", kept)
	default:
		s.c.log.Warn("cluster: etcd did not answer; the zone's serial is this node's alone until it loads again", "zone", origin, "serial", want)
	}
	return serial, ok
}

// Run follows the serials the set records until ctx ends. A node that
// comes back to a content after another (a bad push reverted) numbers it
// anew, past the serial it served meanwhile; the nodes that kept serving
// that content under its old serial then load their zones again (the
// reload given to NewSerials) and take the new one. Without it, one
// content stayed under two serials, shown as drift, until the other
// nodes' files next changed.
func (s *Serials) Run(ctx context.Context) {
	if s.reload == nil {
		return
	}
	// One reload for a burst: a node reverting many zones writes one
	// serial each, and each would otherwise reload every zone here.
	var pending atomic.Bool
	s.c.Mirror(ctx, "serials/", func(u Update) {
		var stale []string
		s.mu.Lock()
		for k, v := range u.Puts {
			i := strings.LastIndexByte(k, '/')
			if i < 0 {
				continue
			}
			origin, hash := k[:i], k[i+1:]
			n, err := strconv.ParseUint(string(v), 10, 32)
			if cur, ok := s.served[origin]; ok && err == nil && cur.Hash == hash && serialAfter(uint32(n), cur.Serial) {
				stale = append(stale, origin)
			}
		}
		s.mu.Unlock()
		if len(stale) > 0 && pending.CompareAndSwap(false, true) {
			slices.Sort(stale)
			s.c.log.Info("cluster: another node renumbered content this node serves; reloading the zones", "zones", stale)
			time.AfterFunc(renumberDelay, func() {
				pending.Store(false) // a renumbering after this point reloads again
				if ctx.Err() == nil {
					s.reload()
				}
			})
		}
	})
}

// renumberDelay gathers the renumberings of a burst into one reload.
const renumberDelay = 300 * time.Millisecond

// Local returns the zones numbered alone since they last loaded.
func (s *Serials) Local() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []string
	for o := range s.local {
		out = append(out, o)
	}
	slices.Sort(out)
	return out
}

func (s *Serials) serial(origin, hash string, want, prev uint32, moved bool) (uint32, bool) {
	dir := s.c.Key("serials/" + strings.TrimSuffix(origin, ".") + "./")
	hk, lk := dir+hash, dir+"last"
	// A node cut off from etcd loads its zones at once, numbered alone,
	// rather than wait a full timeout for each.
	timeout := s.c.opts.Timeout
	if !s.c.Connected() {
		timeout = min(timeout, time.Second)
	}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	for range 10 {
		r, err := s.c.cli.Txn(ctx).Then(clientv3.OpGet(hk), clientv3.OpGet(lk)).Commit()
		if err != nil {
			return want, false
		}
		s.c.touch()
		entry, entryRev, hasEntry := value((*clientv3.GetResponse)(r.Responses[0].GetResponseRange()))
		last, lastRev, hasLast := value((*clientv3.GetResponse)(r.Responses[1].GetResponseRange()))
		if hasEntry && (!moved || serialAfter(entry, prev)) {
			return entry, true
		}
		next := want
		if hasLast && !serialAfter(next, last) {
			next = last + 1
		}
		if moved && !serialAfter(next, prev) {
			next = prev + 1
		}
		v := strconv.FormatUint(uint64(next), 10)
		t, err := s.c.cli.Txn(ctx).If(
			clientv3.Compare(clientv3.ModRevision(hk), "=", entryRev),
			clientv3.Compare(clientv3.ModRevision(lk), "=", lastRev),
		).Then(clientv3.OpPut(hk, v), clientv3.OpPut(lk, v)).Commit()
		if err != nil {
			return want, false
		}
		if t.Succeeded {
			s.prune(ctx, dir)
			return next, true
		}
		// Another node recorded this content or another first: read again.
	}
	return want, false
}

// value reads a serial from a one-key range: the serial, the key's mod
// revision (0 when absent) and whether it exists.
func value(r *clientv3.GetResponse) (uint32, int64, bool) {
	if r == nil || len(r.Kvs) == 0 {
		return 0, 0, false
	}
	n, err := strconv.ParseUint(string(r.Kvs[0].Value), 10, 32)
	if err != nil {
		return 0, r.Kvs[0].ModRevision, false
	}
	return uint32(n), r.Kvs[0].ModRevision, true
}

// prune drops all but the newest keep contents' serials of a zone.
func (s *Serials) prune(ctx context.Context, dir string) {
	r, err := s.c.cli.Get(ctx, dir, clientv3.WithPrefix(), clientv3.WithKeysOnly(), clientv3.WithCountOnly())
	if err != nil || r.Count <= keep+1 {
		return
	}
	r, err = s.c.cli.Get(ctx, dir, clientv3.WithPrefix(), clientv3.WithSort(clientv3.SortByModRevision, clientv3.SortAscend), clientv3.WithKeysOnly())
	if err != nil {
		return
	}
	drop := int(r.Count) - keep - 1
	for _, kv := range r.Kvs {
		if drop <= 0 {
			break
		}
		if strings.HasSuffix(string(kv.Key), "/last") {
			continue
		}
		s.c.cli.Delete(ctx, string(kv.Key))
		drop--
	}
}

// serialAfter reports whether a comes after b in RFC 1982 serial arithmetic.
func serialAfter(a, b uint32) bool { return a != b && a-b < 1<<31 }
