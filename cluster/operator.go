package cluster

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/geodns/geodns/opstate"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// OperatorStore is the opstate.Store of a node in an NS set: the operator
// state lives in etcd under P/operator, changed by transactions on its
// mod revision (two nodes' concurrent changes both land, one after the
// other); every node applies what the watch brings to its local store,
// which persists it in the state file. So a node that starts while etcd
// is unreachable serves its last persisted state, never "no drains".
//
// When the key does not exist yet (a new cluster, or one whose data was
// lost), the first node to see that puts its local state there: a single
// node joining a set brings its drains with it.
type OperatorStore struct {
	c     *Cluster
	local *opstate.FileStore
	// OnApplied, if set, is called after each state applied from etcd
	// (the node's report carries the revision). It must not block.
	OnApplied func()

	mu      sync.Mutex // orders Apply's with the mirror's applies
	cond    *sync.Cond // Broadcast when applied moves
	applied atomic.Int64
	epoch   int64 // of applied (Update.Epoch); under mu
	badMu   sync.Mutex
	bad     error // the value in etcd does not decode (Warning)
	badRev  int64 // its mod revision, logged once
}

var _ opstate.Store = (*OperatorStore)(nil)

// NewOperatorStore makes the shared store over local (the node's state
// file, already loaded). Run it with Run.
func NewOperatorStore(c *Cluster, local *opstate.FileStore) *OperatorStore {
	s := &OperatorStore{c: c, local: local}
	s.cond = sync.NewCond(&s.mu)
	return s
}

const operatorKey = "operator"

// Load implements opstate.Store: the state last applied.
func (s *OperatorStore) Load() *opstate.State { return s.local.Load() }

// Watch implements opstate.Store.
func (s *OperatorStore) Watch(f func(*opstate.State)) { s.local.Watch(f) }

// Err implements opstate.Store: the local state file's last write failed.
func (s *OperatorStore) Err() error { return s.local.Err() }

// Warning returns why the operator state in etcd is not applied: its
// value does not decode (the key and the error). The node keeps its last
// state meanwhile, which serves right, so it is not an Err (not ready
// would take every node of the set out at once); the next change made
// through the API replaces the value. nil: none.
func (s *OperatorStore) Warning() error {
	s.badMu.Lock()
	defer s.badMu.Unlock()
	return s.bad
}

// Revision returns the etcd mod revision of the operator state this node
// has applied; 0 before it has applied any.
func (s *OperatorStore) Revision() int64 { return s.applied.Load() }

// Apply implements opstate.Store: c is applied to the newest state in
// etcd and written back in one transaction (retried while another node's
// change comes first); it returns once this node has applied the result
// from its watch, so the change is in effect here when acknowledged, and
// on every connected node within a watch round trip. While etcd does not
// answer, nothing is changed: ErrNotSaved.
func (s *OperatorStore) Apply(c opstate.Change) (*opstate.State, error) {
	if err := c.Check(); err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*s.c.opts.Timeout)
	defer cancel()
	key := s.c.Key(operatorKey)
	var rev, epoch int64
	for {
		if err := ctx.Err(); err != nil {
			return nil, fmt.Errorf("%w: etcd did not answer (%v); the change is not made", opstate.ErrNotSaved, err)
		}
		actx, acancel := context.WithTimeout(ctx, s.c.opts.Timeout)
		f := s.c.floor()
		r, err := s.c.cli.Get(actx, key)
		if err != nil {
			acancel()
			// A request lost with a dying leader times out rather than
			// fail over: try again while there is time.
			sleep(ctx, 50*time.Millisecond)
			continue
		}
		s.c.observe(f, r.Header.Revision)
		cur, cmp := s.local.Load(), clientv3.Compare(clientv3.CreateRevision(key), "=", 0)
		if len(r.Kvs) > 0 {
			if st, err := opstate.Unmarshal(r.Kvs[0].Value, 0); err == nil {
				cur = st
			} else {
				// Replaced from the last state this node applied, which
				// every node has kept since (the change is made to that).
				s.c.log.Warn("cluster: replacing the unreadable operator state in etcd with this node's last one and the change",
					"key", key, "error", err)
			}
			cmp = clientv3.Compare(clientv3.ModRevision(key), "=", r.Kvs[0].ModRevision)
		}
		b, err := opstate.Marshal(cur.With(c, time.Now(), 0))
		if err != nil {
			acancel()
			return nil, err
		}
		f = s.c.floor()
		t, err := s.c.cli.Txn(actx).If(cmp).Then(clientv3.OpPut(key, string(b))).Commit()
		acancel()
		if err != nil {
			sleep(ctx, 50*time.Millisecond)
			continue
		}
		s.c.touch()
		epoch, _ = s.c.observe(f, t.Header.Revision)
		if t.Succeeded {
			rev = t.Header.Revision
			break
		}
		// Another node's change came first: apply c to it.
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	stop := context.AfterFunc(ctx, func() { s.mu.Lock(); s.cond.Broadcast(); s.mu.Unlock() })
	defer stop()
	// A revision is compared within its epoch: after etcd lost its data,
	// the revision applied before the loss says nothing of this one.
	pending := func() bool { return s.epoch < epoch || s.epoch == epoch && s.applied.Load() < rev }
	for pending() && ctx.Err() == nil {
		s.cond.Wait()
	}
	if pending() {
		// Written, but the watch has not brought it back yet: it will be
		// in effect here when it does.
		return nil, fmt.Errorf("%w: the change is saved in etcd (revision %d) but not yet in effect on this node; it will be when its watch brings it", opstate.ErrNotSaved, rev)
	}
	return s.local.Load(), nil
}

// Run applies the operator state from etcd until ctx ends.
func (s *OperatorStore) Run(ctx context.Context) error {
	s.c.Mirror(ctx, operatorKey, func(u Update) { s.apply(ctx, u) })
	return nil
}

func (s *OperatorStore) apply(ctx context.Context, u Update) {
	v, put := u.Puts[""]
	var modRev int64
	switch {
	case put:
		modRev = u.Mods[""]
		st, err := opstate.Unmarshal(v, 0)
		if err != nil {
			s.setBad(modRev, fmt.Errorf("the operator state in etcd (%s) is not readable: %v; this node keeps its last one (revision %d) until a change through the API replaces it",
				s.c.Key(operatorKey), err, s.applied.Load()))
			return
		}
		s.setBad(0, nil)
		if _, err := s.local.Replace(st); err != nil {
			s.c.log.Error("cluster: operator state applied but not saved locally", "error", err)
		}
	case u.Reset || indexOf(u.Deletes, "") >= 0:
		// No state in etcd: seed it with ours. The watch brings it back.
		b, err := opstate.Marshal(s.local.Load())
		if err != nil {
			return
		}
		key := s.c.Key(operatorKey)
		sctx, cancel := context.WithTimeout(ctx, s.c.opts.Timeout)
		t, err := s.c.cli.Txn(sctx).If(clientv3.Compare(clientv3.CreateRevision(key), "=", 0)).
			Then(clientv3.OpPut(key, string(b))).Commit()
		cancel()
		switch {
		case err != nil && !errors.Is(err, context.Canceled):
			s.c.log.Warn("cluster: operator state not seeded in etcd", "error", err)
		case err == nil && t.Succeeded:
			s.c.log.Info("cluster: operator state seeded in etcd from this node's", "key", key)
		}
		return
	default:
		return
	}
	s.mu.Lock()
	s.applied.Store(modRev)
	s.epoch = u.Epoch
	s.cond.Broadcast()
	s.mu.Unlock()
	if s.OnApplied != nil {
		s.OnApplied()
	}
}

// setBad sets Warning, and logs a new unreadable value (of mod revision
// rev) once.
func (s *OperatorStore) setBad(rev int64, err error) {
	s.badMu.Lock()
	defer s.badMu.Unlock()
	s.bad = err
	if err != nil && rev != s.badRev {
		s.c.log.Error("cluster: "+err.Error(), "key", s.c.Key(operatorKey), "revision", rev)
	}
	s.badRev = rev
}
