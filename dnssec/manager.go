package dnssec

import (
	"context"
	"crypto"
	"errors"
	"fmt"
	"log/slog"
	"reflect"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/miekg/dns"
	"github.com/prometheus/client_golang/prometheus"
)

// Options configure a Manager; the zero value is usable but for Store.
type Options struct {
	// Store keeps the keys: a directory (Store) or etcd. Required.
	Store KeyStore
	// ReadOnly follows the key files without writing them or rolling
	// keys: for the nodes of a set that share a key directory with the
	// one node that rolls. Default false.
	ReadOnly bool
	// CacheBytes bounds the signature cache. Default 32 MiB.
	CacheBytes int64
	// Registerer receives the metrics. Default nil: not registered.
	Registerer prometheus.Registerer
	// Log receives key events. Default slog.Default().
	Log *slog.Logger
	// Now is the clock. Default time.Now.
	Now func() time.Time
	// ParentDS asks the parent for a zone's DS. Default QueryParentDS.
	ParentDS ParentDS
	// Interval is how often Run steps rollovers, checks the key files and
	// the signatures' age. Default 1 minute.
	Interval time.Duration
}

// ZoneConfig is a zone to sign.
type ZoneConfig struct {
	Origin string // canonical
	Policy Policy
}

// Manager signs the zones it is given with their keys, rolls the keys and
// renews the signatures. Its query-side methods (Signs, Sign, Deny, Apex,
// ApexTypes, Generation) are safe for concurrent use and read immutable
// state through an atomic pointer; the records they return are shared and
// must not be mutated.
type Manager struct {
	opts    Options
	metrics *Metrics
	cache   *sigCache
	states  atomic.Pointer[map[string]*state]
	gen     atomic.Uint64
	ids     atomic.Uint64

	mu    sync.Mutex // writers: Sync, Run's steps, Rollover
	zones map[string]*zoneEntry
	// pending are the zones Sync could not load keys for (the store
	// unreachable, a follower before the keys are made): Tick tries
	// them again.
	pending map[string]ZoneConfig

	exports exportCache // signatures of transfers (export.go)
}

type zoneEntry struct {
	cfg     ZoneConfig
	keys    *ZoneKeys
	version string // of keys in the store (KeyStore.KeysVersion)
}

// state is one zone's signing state: its keys and signing window. It is
// immutable; a new one replaces it.
type state struct {
	origin     string
	id         uint64
	policy     Policy
	zsks, ksks []*Key // what signs data, and what signs the key RRsets
	inception  uint32
	expiration uint32
	opened     time.Time
	apex       map[uint16][2][]dns.RR // DNSKEY, CDS, CDNSKEY: the RRset and its signatures
	types      []uint16
	signed     prometheus.Counter

	exportOnce sync.Once // exportID, made when first needed (export.go)
	exportID   string
}

// NewManager returns a manager with no zones.
func NewManager(opts Options) *Manager {
	if opts.CacheBytes <= 0 {
		opts.CacheBytes = 32 << 20
	}
	if opts.Log == nil {
		opts.Log = slog.Default()
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.ParentDS == nil {
		opts.ParentDS = QueryParentDS
	}
	if opts.Interval <= 0 {
		opts.Interval = time.Minute
	}
	m := &Manager{opts: opts, metrics: NewMetrics(opts.Registerer), cache: newSigCache(opts.CacheBytes),
		zones: map[string]*zoneEntry{}, pending: map[string]ZoneConfig{}}
	empty := map[string]*state{}
	m.states.Store(&empty)
	return m
}

// Generation changes whenever what any zone's answers are signed with
// changes (a key event, a new signing window): caches of signed answers
// made under another generation are stale.
func (m *Manager) Generation() uint64 { return m.gen.Load() }

func (m *Manager) state(origin string) *state { return (*m.states.Load())[origin] }

// Signs reports whether zone origin is signed.
func (m *Manager) Signs(origin string) bool { return m.state(origin) != nil }

// Sync makes the zones signed those of cfgs: keys are loaded, or made and
// saved for a zone that has none; zones no longer listed stop being signed
// (their key files stay). A zone that fails keeps its previous state, if it
// had one; the errors are returned joined.
func (m *Manager) Sync(cfgs []ZoneConfig) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	var errs []error
	now := m.opts.Now()
	seen := map[string]bool{}
	next := map[string]*state{}
	for _, c := range cfgs {
		seen[c.Origin] = true
		old := m.state(c.Origin)
		if e := m.zones[c.Origin]; e != nil && reflect.DeepEqual(e.cfg, c) && old != nil {
			next[c.Origin] = old
			continue
		}
		var zk *ZoneKeys
		var version string
		if e := m.zones[c.Origin]; e != nil {
			// Its policy changed (a TTL edit moves MaxZoneTTL): the keys
			// loaded serve, not read again (from etcd, perhaps slow);
			// Tick follows the store.
			zk, version = e.keys, e.version
		} else {
			var err error
			if zk, version, err = m.loadOrCreate(c, now); err != nil {
				errs = append(errs, fmt.Errorf("zone %s: %w", c.Origin, err))
				if old != nil {
					next[c.Origin] = old
				} else {
					m.pending[c.Origin] = c
				}
				continue
			}
		}
		delete(m.pending, c.Origin)
		m.zones[c.Origin] = &zoneEntry{cfg: c, keys: zk, version: version}
		st, err := m.build(c, zk, now)
		if err != nil {
			errs = append(errs, fmt.Errorf("zone %s: %w", c.Origin, err))
			if old != nil {
				next[c.Origin] = old
			}
			continue
		}
		next[c.Origin] = st
	}
	for origin := range m.zones {
		if !seen[origin] {
			delete(m.zones, origin)
			m.metrics.forget(origin)
		}
	}
	for origin := range m.pending {
		if !seen[origin] {
			delete(m.pending, origin)
		}
	}
	prev := *m.states.Load()
	m.states.Store(&next)
	m.gen.Add(1)
	for origin, st := range prev {
		if next[origin] != st {
			m.cache.drop(st.id)
		}
	}
	m.forgetExport(func(origin string) bool { return next[origin] != nil })
	m.updateMetrics(now)
	return errors.Join(errs...)
}

func (m *Manager) loadOrCreate(c ZoneConfig, now time.Time) (*ZoneKeys, string, error) {
	zk, version, err := m.opts.Store.LoadKeys(c.Origin)
	if err != nil {
		return nil, "", err
	}
	if zk == nil {
		if m.opts.ReadOnly {
			return nil, "", errors.New("no key file (read-only key directory)")
		}
		zk = &ZoneKeys{Origin: c.Origin}
		if err := zk.setup(c.Policy.withDefaults(), now); err != nil {
			return nil, "", err
		}
		zk.Generation = 1
		version, err = m.opts.Store.SaveKeys(zk, "")
		if errors.Is(err, ErrConflict) {
			// Another node made the zone's keys first: those sign.
			if zk, version, err = m.opts.Store.LoadKeys(c.Origin); err == nil && zk == nil {
				err = errors.New("the keys another node stored are gone")
			}
			if err != nil {
				return nil, "", err
			}
			m.opts.Log.Info("dnssec: keys made by another node", "zone", c.Origin, "keys", tags(zk))
			return zk, version, nil
		}
		if err != nil {
			return nil, "", err
		}
		m.opts.Log.Info("dnssec: keys made", "zone", c.Origin, "keys", tags(zk))
	}
	return zk, version, nil
}

// adopt replaces e's keys by the stored ones, which another writer
// changed; false if they cannot be read.
func (m *Manager) adopt(e *zoneEntry, why string) bool {
	zk, version, err := m.opts.Store.LoadKeys(e.cfg.Origin)
	if err != nil || zk == nil {
		m.opts.Log.Error("dnssec: cannot reload the keys; signing with the keys loaded", "zone", e.cfg.Origin, "error", err)
		return false
	}
	e.keys, e.version = zk, version
	m.opts.Log.Info("dnssec: keys reloaded: "+why, "zone", e.cfg.Origin, "keys", tags(zk), "roll", rollString(zk.Roll))
	return true
}

func tags(zk *ZoneKeys) []string {
	var out []string
	for _, k := range zk.Keys {
		out = append(out, fmt.Sprintf("%s %d %s", k.Role, k.Tag, k.State))
	}
	return out
}

// build makes a zone's signing state: a new window opened at now, the
// key RRsets signed.
func (m *Manager) build(c ZoneConfig, zk *ZoneKeys, now time.Time) (*state, error) {
	p := c.Policy.withDefaults()
	st := &state{origin: c.Origin, id: m.ids.Add(1), policy: p, opened: now,
		inception:  uint32(now.Add(-p.Backdate).Unix()),
		expiration: uint32(now.Add(p.Validity).Unix()),
		apex:       map[uint16][2][]dns.RR{},
		signed:     m.metrics.signatures.WithLabelValues(c.Origin)}
	var dnskeys []dns.RR
	for _, k := range zk.Keys {
		dk := *k.DNSKEY()
		dk.Hdr.Name, dk.Hdr.Ttl = c.Origin, p.DNSKEYTTL
		dnskeys = append(dnskeys, &dk)
		if k.State != Active {
			continue
		}
		if k.Role == ZSK || k.Role == CSK {
			st.zsks = append(st.zsks, k)
		}
		if k.Role == KSK || k.Role == CSK {
			st.ksks = append(st.ksks, k)
		}
	}
	if len(st.zsks) == 0 || len(st.ksks) == 0 {
		return nil, errors.New("no active key to sign with")
	}
	st.types = []uint16{dns.TypeDNSKEY}
	if err := st.putApex(dnskeys); err != nil {
		return nil, err
	}
	if r := zk.Roll; r != nil && r.Role != ZSK && (r.Phase == PhaseDS || r.Phase == PhaseDSWait) {
		if nk := zk.key(r.New, r.Role); nk != nil {
			ds := nk.DS()
			cds := ds.ToCDS()
			cds.Hdr = dns.RR_Header{Name: c.Origin, Rrtype: dns.TypeCDS, Class: dns.ClassINET, Ttl: p.DNSKEYTTL}
			cdk := nk.DNSKEY().ToCDNSKEY()
			cdk.Hdr = dns.RR_Header{Name: c.Origin, Rrtype: dns.TypeCDNSKEY, Class: dns.ClassINET, Ttl: p.DNSKEYTTL}
			if err := st.putApex([]dns.RR{cds}); err != nil {
				return nil, err
			}
			if err := st.putApex([]dns.RR{cdk}); err != nil {
				return nil, err
			}
			st.types = append(st.types, dns.TypeCDS, dns.TypeCDNSKEY)
		}
	}
	return st, nil
}

func (st *state) putApex(rrset []dns.RR) error {
	sigs, err := st.sign(rrset)
	if err != nil {
		return err
	}
	st.apex[rrset[0].Header().Rrtype] = [2][]dns.RR{rrset, sigs}
	return nil
}

// sign signs rrset with each of the state's keys for its type.
func (st *state) sign(rrset []dns.RR) ([]dns.RR, error) {
	return st.signIn(rrset, st.inception, st.expiration, false)
}

// signIn signs rrset in the window given; det: deterministically (export.go).
func (st *state) signIn(rrset []dns.RR, inception, expiration uint32, det bool) ([]dns.RR, error) {
	keys := st.keysFor(rrset[0].Header().Rrtype)
	out := make([]dns.RR, 0, len(keys))
	for _, k := range keys {
		sig := &dns.RRSIG{Hdr: dns.RR_Header{Ttl: rrset[0].Header().Ttl}, Algorithm: k.Algorithm,
			KeyTag: k.Tag, SignerName: st.origin, Inception: inception, Expiration: expiration,
			OrigTtl: rrset[0].Header().Ttl}
		var s crypto.Signer = k.signer
		if det {
			s = deterministic{s}
		}
		if err := sig.Sign(s, rrset); err != nil {
			return nil, err
		}
		out = append(out, sig)
	}
	st.signed.Add(float64(len(out)))
	return out, nil
}

// keysFor returns the keys that sign RRsets of type t.
func (st *state) keysFor(t uint16) []*Key {
	switch t {
	case dns.TypeDNSKEY, dns.TypeCDS, dns.TypeCDNSKEY:
		return st.ksks
	}
	return st.zsks
}

// Sign returns the RRSIG records of rrset (records of one owner and type
// from zone origin, not mutated afterwards), from the cache or made now;
// nil if the zone is not signed or the set cannot be signed.
func (m *Manager) Sign(origin string, rrset []dns.RR) []dns.RR {
	st := m.state(origin)
	if st == nil || len(rrset) == 0 {
		return nil
	}
	var kb [512]byte
	key, ok := appendKey(kb[:0], st.id, rrset)
	if !ok {
		return nil
	}
	if e := m.cache.get(key); e != nil {
		m.metrics.hits.Inc()
		return e.sigs
	}
	m.metrics.misses.Inc()
	sigs, err := st.sign(rrset)
	if err != nil {
		return nil
	}
	m.cache.put(key, &sigEntry{state: st.id, zone: origin, rrset: slices.Clone(rrset), sigs: sigs})
	return sigs
}

// Deny returns the compact denial of existence for name in zone origin
// (RFC 9824), to be signed with Sign: nx says the name does not exist (the
// NSEC lists NXNAME), otherwise types are the types it has (NODATA). ttl is
// the negative TTL, min(SOA TTL, SOA minimum).
func (m *Manager) Deny(origin, name string, ttl uint32, types []uint16, nx bool) []dns.RR {
	st := m.state(origin)
	if st == nil {
		return nil
	}
	var nsec *dns.NSEC
	if nx {
		nsec = NXNameNSEC(name, ttl)
	} else {
		if name == origin || dns.CanonicalName(name) == origin {
			types = append(slices.Clone(types), st.types...)
		}
		nsec = NoDataNSEC(name, ttl, types)
	}
	return []dns.RR{nsec}
}

// Apex returns the DNSKEY, CDS or CDNSKEY RRset (qtype) of zone origin and
// its signatures; nil if the zone does not publish one.
func (m *Manager) Apex(origin string, qtype uint16) (rrset, sigs []dns.RR) {
	st := m.state(origin)
	if st == nil {
		return nil, nil
	}
	a := st.apex[qtype]
	return a[0], a[1]
}

// ApexTypes returns the types the signer publishes at the apex of origin
// (DNSKEY, and CDS and CDNSKEY during a rollover).
func (m *Manager) ApexTypes(origin string) []uint16 {
	if st := m.state(origin); st != nil {
		return st.types
	}
	return nil
}

// Run steps rollovers, follows key files changed by others (the CLI,
// another node) and renews signatures, every Options.Interval until ctx
// ends.
func (m *Manager) Run(ctx context.Context) {
	t := time.NewTicker(m.opts.Interval)
	defer t.Stop()
	for {
		m.Tick(ctx)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// Tick does one round of Run's work now.
func (m *Manager) Tick(ctx context.Context) {
	m.mu.Lock()
	defer m.mu.Unlock()
	now := m.opts.Now()
	// Every zone's version in one request when the store can (etcd: one
	// read of the prefix, not one per zone with the lock held).
	var versions map[string]string
	if all, ok := m.opts.Store.(interface {
		AllKeysVersions() (map[string]string, error)
	}); ok && len(m.zones) > 1 {
		versions, _ = all.AllKeysVersions()
	}
	for origin, e := range m.zones {
		changed := false
		v, err := "", error(nil)
		if versions != nil {
			v = versions[origin]
		} else {
			v, err = m.opts.Store.KeysVersion(origin)
		}
		if err == nil && v != e.version {
			changed = m.adopt(e, "changed in the store")
		}
		if !m.opts.ReadOnly {
			ch, err := m.step(ctx, e, now)
			if err != nil {
				m.opts.Log.Warn("dnssec: key rollover step", "zone", origin, "error", err)
			}
			changed = changed || ch
		}
		st := m.state(origin)
		if !changed && st != nil && now.Before(st.opened.Add(st.policy.Validity-st.policy.Refresh)) {
			continue
		}
		if err := m.renew(e, now); err != nil {
			m.opts.Log.Error("dnssec: cannot re-sign; serving the previous signatures", "zone", origin, "error", err)
		}
	}
	for origin, c := range m.pending {
		zk, version, err := m.loadOrCreate(c, now)
		if err != nil {
			continue // said at Sync; tried again at the next tick
		}
		e := &zoneEntry{cfg: c, keys: zk, version: version}
		if err := m.renew(e, now); err != nil {
			m.opts.Log.Error("dnssec: zone not signed", "zone", origin, "error", err)
			continue
		}
		delete(m.pending, origin)
		m.zones[origin] = e
		m.opts.Log.Info("dnssec: keys loaded; the zone is signed", "zone", origin, "keys", tags(zk))
	}
	m.updateMetrics(now)
}

// step moves e's rollover on and saves the keys when they changed.
func (m *Manager) step(ctx context.Context, e *zoneEntry, now time.Time) (bool, error) {
	// The step is made on a copy: e.keys change only once it is stored
	// (a step that is not stored must not sign, nor be built upon).
	zk := e.keys.clone()
	before := zk.Roll
	var phase Phase
	if before != nil {
		phase = before.Phase
	}
	parent := func(ctx context.Context, origin string, servers []string) ([]*dns.DS, uint32, error) {
		ds, ttl, err := m.opts.ParentDS(ctx, origin, servers)
		switch {
		case err != nil:
			m.metrics.dsChecks.WithLabelValues(origin, "error").Inc()
		case zk.Roll != nil && hasDS(ds, zk.key(zk.Roll.New, zk.Roll.Role).DNSKEY()):
			m.metrics.dsChecks.WithLabelValues(origin, "found").Inc()
		default:
			m.metrics.dsChecks.WithLabelValues(origin, "missing").Inc()
		}
		return ds, ttl, err
	}
	changed, _, err := zk.Step(ctx, e.cfg.Policy, now, parent)
	after := zk.Roll
	moved := changed || (before == nil) != (after == nil) || (after != nil && after.Phase != phase)
	if !moved {
		e.keys = zk
		return false, err
	}
	zk.Generation++
	v, serr := m.opts.Store.SaveKeys(zk, e.version)
	if errors.Is(serr, ErrConflict) {
		// Another node stepped first: its keys, not these, are the
		// zone's (this step is dropped, made again from them if due).
		return m.adopt(e, "another node moved the rollover first"), err
	}
	if serr != nil {
		// Not stored: signing goes on with the stored keys, and the
		// step is made again at the next tick.
		return m.adopt(e, "the step could not be stored"), errors.Join(err, serr)
	}
	e.keys, e.version = zk, v
	m.opts.Log.Info("dnssec: key event", "zone", e.cfg.Origin, "keys", tags(zk), "roll", rollString(after))
	return changed, err
}

func rollString(r *Roll) string {
	if r == nil {
		return "none"
	}
	return fmt.Sprintf("%s %d -> %d, %s", r.Role, r.Old, r.New, r.Phase)
}

// renew opens a new signing window for e: every RRset the cache holds
// under the zone's current state is signed again in the background (here),
// then the new state is published and the generation moves.
func (m *Manager) renew(e *zoneEntry, now time.Time) error {
	st, err := m.build(e.cfg, e.keys, now)
	if err != nil {
		return err
	}
	old := m.state(e.cfg.Origin)
	if old != nil {
		var kb []byte
		for _, ce := range m.cache.entries(old.id) {
			sigs, err := st.sign(ce.rrset)
			if err != nil {
				continue
			}
			key, ok := appendKey(kb[:0], st.id, ce.rrset)
			if !ok {
				continue
			}
			m.cache.put(key, &sigEntry{state: st.id, zone: ce.zone, rrset: ce.rrset, sigs: sigs})
			kb = key
		}
	}
	cur := *m.states.Load()
	next := make(map[string]*state, len(cur))
	for k, v := range cur {
		next[k] = v
	}
	next[e.cfg.Origin] = st
	m.states.Store(&next)
	m.gen.Add(1)
	if old != nil {
		m.cache.drop(old.id)
	}
	return nil
}

func (m *Manager) updateMetrics(now time.Time) {
	m.metrics.cacheBytes.Set(float64(m.cache.bytes()))
	for origin, e := range m.zones {
		next, _ := e.keys.NextEvent(e.cfg.Policy)
		v := 0.0
		if !next.IsZero() {
			v = float64(next.Unix())
		}
		m.metrics.nextEvent.WithLabelValues(origin).Set(v)
		if st := m.state(origin); st != nil {
			m.metrics.expiry.WithLabelValues(origin).Set(time.Unix(int64(st.expiration), 0).Sub(now).Seconds())
		}
	}
}

// Rollover starts rolling zone origin's active key of role r now; Run
// carries it through.
func (m *Manager) Rollover(origin string, r Role) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	e := m.zones[origin]
	if e == nil {
		return fmt.Errorf("zone %s is not signed", origin)
	}
	now := m.opts.Now()
	zk := e.keys.clone() // e.keys change once the rollover is stored
	if err := zk.StartRoll(e.cfg.Policy, r, now); err != nil {
		return err
	}
	zk.Generation++
	v, err := m.opts.Store.SaveKeys(zk, e.version)
	if err != nil {
		if m.adopt(e, "the rollover could not be stored") {
			if rerr := m.renew(e, now); rerr != nil {
				return errors.Join(err, rerr)
			}
		}
		return err
	}
	e.keys, e.version = zk, v
	return m.renew(e, now)
}

// Keys returns a copy of zone origin's keys and rollover, for status.
func (m *Manager) Keys(origin string) (ZoneKeys, Policy, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	e := m.zones[origin]
	if e == nil {
		return ZoneKeys{}, Policy{}, false
	}
	zk := ZoneKeys{Origin: e.keys.Origin, Keys: slices.Clone(e.keys.Keys)}
	if e.keys.Roll != nil {
		r := *e.keys.Roll
		zk.Roll = &r
	}
	return zk, e.cfg.Policy, true
}
