package dnssec

import (
	"context"
	"errors"
	"strings"
	"time"

	"github.com/miekg/dns"
)

// Policy is how a zone is signed and its keys rolled; the zero value is
// the default everywhere.
type Policy struct {
	// Algorithm of new keys. Default dns.ECDSAP256SHA256.
	Algorithm uint8
	// Split makes a KSK and a ZSK instead of one CSK. Default false.
	Split bool
	// CSKLifetime, KSKLifetime and ZSKLifetime: a key older than this is
	// rolled. Defaults 365, 365 and 90 days; negative: never.
	CSKLifetime, KSKLifetime, ZSKLifetime time.Duration
	// DNSKEYTTL is the TTL of the DNSKEY, CDS and CDNSKEY RRsets. Default 3600.
	DNSKEYTTL uint32
	// MaxZoneTTL is the largest TTL in the zone: how long a retired ZSK's
	// signatures may stay in caches. Default 86400.
	MaxZoneTTL uint32
	// Propagation is the time a change takes to reach every nameserver
	// of the zone (Dprp of RFC 7583). Default 1 h.
	Propagation time.Duration
	// Validity is the lifetime of signatures. Default 14 days, at most
	// 3660 days.
	Validity time.Duration
	// Refresh: signatures are remade when less than this is left. Default
	// 7 days; it must be less than Validity.
	Refresh time.Duration
	// Backdate moves the inception of signatures into the past, for
	// validators whose clocks run behind. Default 1 h.
	Backdate time.Duration
	// Parent lists the parent's nameservers (address:port) asked for the
	// zone's DS during a KSK or CSK rollover. Default: the NS of the
	// closest enclosing zone found through the system resolver.
	Parent []string
}

const day = 24 * time.Hour

func (p Policy) withDefaults() Policy {
	if p.Algorithm == 0 {
		p.Algorithm = dns.ECDSAP256SHA256
	}
	if p.CSKLifetime == 0 {
		p.CSKLifetime = 365 * day
	}
	if p.KSKLifetime == 0 {
		p.KSKLifetime = 365 * day
	}
	if p.ZSKLifetime == 0 {
		p.ZSKLifetime = 90 * day
	}
	if p.DNSKEYTTL == 0 {
		p.DNSKEYTTL = 3600
	}
	if p.MaxZoneTTL == 0 {
		p.MaxZoneTTL = 86400
	}
	if p.Propagation == 0 {
		p.Propagation = time.Hour
	}
	if p.Validity == 0 {
		p.Validity = 14 * day
	}
	// Past 2^31 s a signature's expiration reads as before its inception
	// (RFC 4034 3.1.5); zones refuses more than this, as BIND does.
	p.Validity = min(p.Validity, 3660*day)
	if p.Refresh == 0 || p.Refresh >= p.Validity {
		p.Refresh = p.Validity / 2
	}
	if p.Backdate == 0 {
		p.Backdate = time.Hour
	}
	return p
}

func (p Policy) lifetime(r Role) time.Duration {
	switch r {
	case KSK:
		return p.KSKLifetime
	case ZSK:
		return p.ZSKLifetime
	}
	return p.CSKLifetime
}

func ttlDur(ttl uint32) time.Duration { return time.Duration(ttl) * time.Second }

// ParentDS returns the DS RRset the parent serves for a zone and its TTL.
type ParentDS func(ctx context.Context, origin string, servers []string) ([]*dns.DS, uint32, error)

// errNoKeys: a zone without keys is not stepped but set up.
var errNoKeys = errors.New("dnssec: zone has no keys")

// setup gives a zone without keys its first: a CSK, or a KSK and a ZSK.
func (zk *ZoneKeys) setup(p Policy, now time.Time) error {
	roles := []Role{CSK}
	if p.Split {
		roles = []Role{KSK, ZSK}
	}
	for _, r := range roles {
		k, err := newKey(zk.Origin, r, p.Algorithm, now)
		if err != nil {
			return err
		}
		k.State, k.Activated = Active, now.UTC()
		zk.Keys = append(zk.Keys, k)
	}
	return nil
}

// sepRole is the role of the keys that sign the key RRsets.
func sepRole(p Policy) Role {
	if p.Split {
		return KSK
	}
	return CSK
}

// StartRoll begins rolling the active key of role r (CSK, KSK or ZSK).
func (zk *ZoneKeys) StartRoll(p Policy, r Role, now time.Time) error {
	p = p.withDefaults()
	if zk.Roll != nil {
		return errors.New("dnssec: a rollover is in progress (" + string(zk.Roll.Role) + ", " + string(zk.Roll.Phase) + ")")
	}
	var old *Key
	for _, k := range zk.Keys {
		if k.Role == r && k.State == Active {
			old = k
		}
	}
	if old == nil {
		return errors.New("dnssec: no active " + strings.ToUpper(string(r)) + " to roll")
	}
	k, err := newKey(zk.Origin, r, p.Algorithm, now)
	if err != nil {
		return err
	}
	if r == ZSK {
		k.State = Published // pre-publication
	} else {
		k.State, k.Activated = Active, now.UTC() // double signature
	}
	zk.Keys = append(zk.Keys, k)
	zk.Roll = &Roll{Role: r, Old: old.Tag, New: k.Tag, Phase: PhasePublish, Since: now.UTC()}
	return nil
}

// Step advances the zone's keys at now: starts a rollover whose time has
// come and moves one in progress on. parent is asked for the DS while a
// KSK or CSK rollover waits for it. changed says whether what is published
// or signs changed (the zone must be re-signed); next is when the next
// event is due (zero: none scheduled).
func (zk *ZoneKeys) Step(ctx context.Context, p Policy, now time.Time, parent ParentDS) (changed bool, next time.Time, err error) {
	p = p.withDefaults()
	if len(zk.Keys) == 0 {
		return false, time.Time{}, errNoKeys
	}
	if zk.Roll == nil {
		for _, k := range zk.Keys {
			l := p.lifetime(k.Role)
			if k.State != Active || l < 0 {
				continue
			}
			due := k.Activated.Add(l)
			if !now.Before(due) {
				if err := zk.StartRoll(p, k.Role, now); err != nil {
					return false, time.Time{}, err
				}
				changed = true
				break
			}
			if next.IsZero() || due.Before(next) {
				next = due
			}
		}
		if zk.Roll == nil {
			return changed, next, nil
		}
	}
	r := zk.Roll
	for {
		switch r.Phase {
		case PhasePublish:
			due := r.Since.Add(ttlDur(p.DNSKEYTTL) + p.Propagation)
			if now.Before(due) {
				return changed, due, nil
			}
			if r.Role == ZSK {
				nk, ok := zk.key(r.New, ZSK), zk.key(r.Old, ZSK)
				if nk != nil {
					nk.State, nk.Activated = Active, now.UTC()
				}
				if ok != nil {
					ok.State, ok.Retired = Retired, now.UTC()
				}
				r.Phase, r.Since = PhaseRetire, now.UTC()
			} else {
				r.Phase, r.Since = PhaseDS, now.UTC() // CDS and CDNSKEY go up
			}
			changed = true
		case PhaseRetire:
			due := r.Since.Add(ttlDur(p.MaxZoneTTL) + p.Propagation)
			if now.Before(due) {
				return changed, due, nil
			}
			zk.remove(r.Old, r.Role)
			zk.Roll = nil
			return true, time.Time{}, nil
		case PhaseDS:
			nk := zk.key(r.New, r.Role)
			if nk == nil || parent == nil {
				return changed, time.Time{}, nil
			}
			ds, ttl, err := parent(ctx, zk.Origin, p.Parent)
			if err != nil {
				return changed, time.Time{}, err
			}
			if !hasDS(ds, nk.DNSKEY()) {
				return changed, time.Time{}, nil // asked again on the next check
			}
			r.Phase, r.Since, r.DSSeen, r.DSTTL = PhaseDSWait, now.UTC(), now.UTC(), ttl
		case PhaseDSWait:
			due := r.DSSeen.Add(ttlDur(r.DSTTL) + p.Propagation)
			if now.Before(due) {
				return changed, due, nil
			}
			zk.remove(r.Old, r.Role)
			zk.Roll = nil
			return true, time.Time{}, nil
		default:
			return changed, time.Time{}, errors.New("dnssec: unknown rollover phase " + string(r.Phase))
		}
	}
}

func (zk *ZoneKeys) remove(tag uint16, r Role) {
	out := zk.Keys[:0]
	for _, k := range zk.Keys {
		if k.Tag != tag || k.Role != r {
			out = append(out, k)
		}
	}
	zk.Keys = out
}

// hasDS reports whether ds holds a DS record of key.
func hasDS(ds []*dns.DS, key *dns.DNSKEY) bool {
	for _, d := range ds {
		if d.KeyTag != key.KeyTag() || d.Algorithm != key.Algorithm {
			continue
		}
		if want := key.ToDS(d.DigestType); want != nil && strings.EqualFold(want.Digest, d.Digest) {
			return true
		}
	}
	return false
}

// NextEvent returns when the zone's next key event is due (zero: none),
// and what it is.
func (zk *ZoneKeys) NextEvent(p Policy) (time.Time, string) {
	p = p.withDefaults()
	if r := zk.Roll; r != nil {
		switch r.Phase {
		case PhasePublish:
			if r.Role == ZSK {
				return r.Since.Add(ttlDur(p.DNSKEYTTL) + p.Propagation), "new ZSK starts signing"
			}
			return r.Since.Add(ttlDur(p.DNSKEYTTL) + p.Propagation), "CDS/CDNSKEY of the new " + strings.ToUpper(string(r.Role)) + " published"
		case PhaseRetire:
			return r.Since.Add(ttlDur(p.MaxZoneTTL) + p.Propagation), "old ZSK removed"
		case PhaseDS:
			return time.Time{}, "waiting for the parent's DS of key " + itoa(r.New)
		case PhaseDSWait:
			return r.DSSeen.Add(ttlDur(r.DSTTL) + p.Propagation), "old " + strings.ToUpper(string(r.Role)) + " removed"
		}
	}
	var next time.Time
	what := ""
	for _, k := range zk.Keys {
		if l := p.lifetime(k.Role); k.State == Active && l >= 0 {
			if due := k.Activated.Add(l); next.IsZero() || due.Before(next) {
				next, what = due, strings.ToUpper(string(k.Role))+" "+itoa(k.Tag)+" rolled"
			}
		}
	}
	return next, what
}

func itoa(v uint16) string {
	if v == 0 {
		return "0"
	}
	var b [5]byte
	i := len(b)
	for v > 0 {
		i--
		b[i] = byte('0' + v%10)
		v /= 10
	}
	return string(b[i:])
}
