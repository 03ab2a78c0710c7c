package cluster

import (
	"context"
	"strings"
	"time"

	"go.etcd.io/etcd/api/v3/mvccpb"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// Update is one step of a mirrored prefix. Keys are relative to the
// mirrored prefix.
type Update struct {
	Revision int64             // the etcd revision the mirror has reached
	Epoch    int64             // the times etcd went back in time before it (Cluster.observe): revisions compare within one epoch
	Reset    bool              // a full read: Puts is every key; forget any other
	Puts     map[string][]byte // keys set (created or changed)
	Mods     map[string]int64  // the mod revision of each key in Puts
	Deletes  []string          // keys deleted (or expired with their lease)
}

// Mirror keeps f told of every change under path (relative to the
// prefix) until ctx ends: a full read first (Reset), then a watch from
// the revision after it. A broken watch resumes from the last revision it
// delivered; one whose revision was compacted away, or which etcd has gone
// back from (its data lost: Cluster.observe), reads everything again
// (Reset). f is called from one goroutine, one update at a time. Mirror
// blocks until ctx ends; while etcd is unreachable it delivers nothing,
// so the consumer keeps its last view.
func (c *Cluster) Mirror(ctx context.Context, path string, f func(Update)) {
	prefix := c.Key(path)
	var rev int64 // 0: read everything first
	var epoch int64
	var rewound <-chan struct{}
	backoff := 100 * time.Millisecond
	pause := func() {
		sleep(ctx, backoff)
		backoff = min(2*backoff, time.Second)
	}
	for ctx.Err() == nil {
		if rev == 0 {
			gctx, cancel := context.WithTimeout(ctx, c.opts.Timeout)
			fl := c.floor()
			r, err := c.cli.Get(gctx, prefix, clientv3.WithPrefix())
			cancel()
			if err != nil {
				pause()
				continue
			}
			c.touch()
			epoch, rewound = c.observe(fl, r.Header.Revision)
			u := Update{Revision: r.Header.Revision, Epoch: epoch, Reset: true, Puts: make(map[string][]byte, len(r.Kvs)), Mods: make(map[string]int64, len(r.Kvs))}
			for _, kv := range r.Kvs {
				k := strings.TrimPrefix(string(kv.Key), prefix)
				u.Puts[k], u.Mods[k] = kv.Value, kv.ModRevision
			}
			f(u)
			rev = r.Header.Revision
		}
		// RequireLeader: a member cut off from the others ends the watch
		// (and another member is tried) rather than keep it silent.
		wctx, cancel := context.WithCancel(clientv3.WithRequireLeader(ctx))
		wch := c.cli.Watch(wctx, prefix, clientv3.WithPrefix(), clientv3.WithRev(rev+1), clientv3.WithProgressNotify())
	watch:
		for {
			var wr clientv3.WatchResponse
			var ok bool
			select {
			case <-rewound:
				rev = 0
				break watch
			case wr, ok = <-wch:
			}
			if !ok {
				break
			}
			if wr.CompactRevision != 0 {
				c.log.Warn("cluster: watch fell behind a compaction; reading everything again", "prefix", prefix,
					"revision", rev, "compacted", wr.CompactRevision)
				rev = 0
				break
			}
			if wr.Err() != nil {
				break
			}
			c.touch()
			c.saw(wr.Header.Revision)
			backoff = 100 * time.Millisecond
			if len(wr.Events) == 0 {
				continue // progress
			}
			u := Update{Revision: wr.Header.Revision, Epoch: epoch, Puts: map[string][]byte{}, Mods: map[string]int64{}}
			for _, ev := range wr.Events {
				k := strings.TrimPrefix(string(ev.Kv.Key), prefix)
				if ev.Type == mvccpb.DELETE {
					delete(u.Puts, k)
					delete(u.Mods, k)
					u.Deletes = append(u.Deletes, k)
				} else {
					u.Puts[k], u.Mods[k] = ev.Kv.Value, ev.Kv.ModRevision
					if i := indexOf(u.Deletes, k); i >= 0 {
						u.Deletes = append(u.Deletes[:i], u.Deletes[i+1:]...)
					}
				}
			}
			f(u)
			rev = wr.Header.Revision
		}
		cancel()
		pause()
	}
}

func indexOf(s []string, k string) int {
	for i, x := range s {
		if x == k {
			return i
		}
	}
	return -1
}
