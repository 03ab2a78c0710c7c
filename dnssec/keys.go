package dnssec

import (
	"bytes"
	"crypto"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/miekg/dns"
)

// Role is what a key signs.
type Role string

// Key roles.
const (
	CSK Role = "csk" // combined: signs everything (flags 257)
	KSK Role = "ksk" // signs the DNSKEY, CDS and CDNSKEY RRsets (flags 257)
	ZSK Role = "zsk" // signs every other RRset (flags 256)
)

// State is where a key is in its life.
type State string

// Key states.
const (
	// Published: in the DNSKEY RRset, not signing yet (a ZSK pre-published).
	Published State = "published"
	// Active: in the DNSKEY RRset and signing.
	Active State = "active"
	// Retired: in the DNSKEY RRset, no longer signing (a ZSK waiting for
	// its signatures to leave caches).
	Retired State = "retired"
)

// Algorithm names accepted in zone configuration.
var algorithms = map[string]uint8{
	"ECDSAP256SHA256": dns.ECDSAP256SHA256,
	"ED25519":         dns.ED25519,
}

// ParseAlgorithm returns the DNSSEC algorithm number of name
// (ECDSAP256SHA256 or ED25519, any case); "" is ECDSAP256SHA256.
func ParseAlgorithm(name string) (uint8, error) {
	if name == "" {
		return dns.ECDSAP256SHA256, nil
	}
	if a, ok := algorithms[strings.ToUpper(name)]; ok {
		return a, nil
	}
	return 0, fmt.Errorf("unsupported DNSSEC algorithm %q (ECDSAP256SHA256 or ED25519)", name)
}

// Key is one DNSSEC key of a zone with its life's events. The zero times
// are events that have not happened.
type Key struct {
	Role      Role      `json:"role"`
	State     State     `json:"state"`
	Algorithm uint8     `json:"algorithm"`
	Tag       uint16    `json:"tag"`
	Public    string    `json:"dnskey"`  // the DNSKEY record, presentation format
	Private   string    `json:"private"` // BIND private-key format
	Created   time.Time `json:"created"`
	Activated time.Time `json:"activated,omitzero"` // started signing
	Retired   time.Time `json:"retired,omitzero"`   // stopped signing

	dnskey *dns.DNSKEY
	signer crypto.Signer
}

// DNSKEY returns the key's DNSKEY record (TTL unset). It must not be mutated.
func (k *Key) DNSKEY() *dns.DNSKEY { return k.dnskey }

// DS returns the DS record of the key (SHA-256).
func (k *Key) DS() *dns.DS { return k.dnskey.ToDS(dns.SHA256) }

func (k *Key) sep() bool { return k.Role != ZSK }

// newKey generates a key for zone origin.
func newKey(origin string, role Role, alg uint8, now time.Time) (*Key, error) {
	flags := uint16(dns.ZONE | dns.SEP)
	if role == ZSK {
		flags = dns.ZONE
	}
	k := &dns.DNSKEY{Hdr: dns.RR_Header{Name: origin, Rrtype: dns.TypeDNSKEY, Class: dns.ClassINET},
		Flags: flags, Protocol: 3, Algorithm: alg}
	var priv crypto.PrivateKey
	for {
		var err error
		if priv, err = k.Generate(256); err != nil {
			return nil, err
		}
		if k.KeyTag() != 0 { // miekg/dns refuses to sign with tag 0
			break
		}
	}
	s, ok := priv.(crypto.Signer)
	if !ok {
		return nil, errors.New("dnssec: generated key cannot sign")
	}
	return &Key{Role: role, Algorithm: alg, Tag: k.KeyTag(), Public: k.String(),
		Private: k.PrivateKeyString(priv), Created: now.UTC(), dnskey: k, signer: s}, nil
}

// load parses the key's records after it was read from a file.
func (k *Key) load() error {
	rr, err := dns.NewRR(k.Public)
	if err != nil {
		return fmt.Errorf("key %d: %w", k.Tag, err)
	}
	dk, ok := rr.(*dns.DNSKEY)
	if !ok {
		return fmt.Errorf("key %d: not a DNSKEY", k.Tag)
	}
	priv, err := dk.NewPrivateKey(k.Private)
	if err != nil {
		return fmt.Errorf("key %d: %w", k.Tag, err)
	}
	s, ok := priv.(crypto.Signer)
	if !ok {
		return fmt.Errorf("key %d: cannot sign", k.Tag)
	}
	if dk.KeyTag() != k.Tag {
		return fmt.Errorf("key %d: the DNSKEY's tag is %d", k.Tag, dk.KeyTag())
	}
	k.dnskey, k.signer = dk, s
	return nil
}

// Roll is a zone's rollover in progress.
type Roll struct {
	Role  Role      `json:"role"`
	Old   uint16    `json:"old"`
	New   uint16    `json:"new"`
	Phase Phase     `json:"phase"`
	Since time.Time `json:"since"` // when the phase began
	// DSSeen is when the parent was first seen serving the new key's DS,
	// DSTTL the TTL it served it with.
	DSSeen time.Time `json:"ds_seen,omitzero"`
	DSTTL  uint32    `json:"ds_ttl,omitempty"`
}

// Phase is a step of a rollover.
type Phase string

// Rollover phases (see the package documentation).
const (
	PhasePublish Phase = "publish" // new key published (and, for a CSK/KSK, signing): caches learn it
	PhaseDS      Phase = "ds"      // CDS/CDNSKEY published: waiting for the parent's DS
	PhaseDSWait  Phase = "ds-wait" // the parent serves the new DS: waiting for its TTL
	PhaseRetire  Phase = "retire"  // ZSK: the old key no longer signs: waiting for its signatures to expire from caches
)

// ZoneKeys is what the key file of a zone holds.
type ZoneKeys struct {
	Origin string `json:"origin"`
	Keys   []*Key `json:"keys"`
	Roll   *Roll  `json:"roll,omitempty"`
	// Generation counts the saves of the zone's keys: a store that went
	// back (etcd restored from a backup) holds a lower one than a node.
	Generation uint64 `json:"generation,omitempty"`
}

// clone returns a copy of zk that can be changed (a step, a rollover)
// without touching zk: the keys that sign now stay as stored until the
// change is.
func (zk *ZoneKeys) clone() *ZoneKeys {
	c := *zk
	c.Keys = make([]*Key, len(zk.Keys))
	for i, k := range zk.Keys {
		kc := *k
		c.Keys[i] = &kc
	}
	if zk.Roll != nil {
		r := *zk.Roll
		c.Roll = &r
	}
	return &c
}

func (zk *ZoneKeys) key(tag uint16, role Role) *Key {
	for _, k := range zk.Keys {
		if k.Tag == tag && k.Role == role {
			return k
		}
	}
	return nil
}

// Store keeps key files in a directory, one per zone, mode 0600.
type Store struct {
	Dir string
}

func (s Store) path(origin string) string {
	name := strings.TrimSuffix(strings.ToLower(origin), ".")
	if name == "" {
		name = "root"
	}
	name = strings.NewReplacer("/", "_", "\\", "_").Replace(name)
	return filepath.Join(s.Dir, name+".keys.json")
}

// KeyStore keeps the zones' keys: a directory of files (Store), shared by
// the nodes of a set or not, or etcd (cluster.KeyStore).
type KeyStore interface {
	// LoadKeys returns origin's keys and their version; nil keys (and
	// version "") if none are stored.
	LoadKeys(origin string) (*ZoneKeys, string, error)
	// SaveKeys stores zk if origin's stored version is still prev (""
	// when none was stored), and returns the new version; ErrConflict if
	// another writer stored keys meanwhile. A store with one writer may
	// not check.
	SaveKeys(zk *ZoneKeys, prev string) (string, error)
	// KeysVersion returns the version of origin's stored keys ("": none).
	KeysVersion(origin string) (string, error)
}

// ErrConflict is SaveKeys's error when the keys it would replace are not
// the ones stored: another node changed them first.
var ErrConflict = errors.New("dnssec: another node changed the keys first")

// MarshalKeys is a zone's keys as stored (JSON, private keys included).
func MarshalKeys(zk *ZoneKeys) ([]byte, error) { return json.MarshalIndent(zk, "", "  ") }

// UnmarshalKeys parses what MarshalKeys made.
func UnmarshalKeys(b []byte) (*ZoneKeys, error) {
	zk := &ZoneKeys{}
	if err := json.Unmarshal(b, zk); err != nil {
		return nil, err
	}
	for _, k := range zk.Keys {
		if err := k.load(); err != nil {
			return nil, err
		}
	}
	return zk, nil
}

// Load reads the keys of origin; a zone without a file has no keys
// (nil, nil).
func (s Store) Load(origin string) (*ZoneKeys, error) {
	b, err := os.ReadFile(s.path(origin))
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	zk, err := UnmarshalKeys(b)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", s.path(origin), err)
	}
	if !strings.EqualFold(zk.Origin, origin) {
		// A file copied or renamed by hand: its keys would be saved
		// back to the other zone's file (or etcd key).
		return nil, fmt.Errorf("%s: the keys of %s, not of %s", s.path(origin), zk.Origin, origin)
	}
	return zk, nil
}

// LoadKeys implements KeyStore.
func (s Store) LoadKeys(origin string) (*ZoneKeys, string, error) {
	v, err := s.KeysVersion(origin)
	if err != nil {
		return nil, "", err
	}
	zk, err := s.Load(origin)
	if zk == nil {
		v = ""
	}
	return zk, v, err
}

// SaveKeys implements KeyStore; a directory has one writer (the others
// follow), so prev is not checked.
func (s Store) SaveKeys(zk *ZoneKeys, _ string) (string, error) {
	if err := s.Save(zk); err != nil {
		return "", err
	}
	return s.KeysVersion(zk.Origin)
}

// KeysVersion implements KeyStore: the file's modification time and size.
func (s Store) KeysVersion(origin string) (string, error) {
	fi, err := os.Stat(s.path(origin))
	if errors.Is(err, os.ErrNotExist) {
		return "", nil
	}
	if err != nil {
		return "", err
	}
	return fmt.Sprintf("%d/%d", fi.ModTime().UnixNano(), fi.Size()), nil
}

// Save writes the keys of a zone: a new file, synced, renamed over the old,
// so a crash leaves one version or the other; nothing when the file holds
// them already.
func (s Store) Save(zk *ZoneKeys) error {
	if err := os.MkdirAll(s.Dir, 0o700); err != nil {
		return err
	}
	b, err := MarshalKeys(zk)
	if err != nil {
		return err
	}
	b = append(b, '\n')
	p := s.path(zk.Origin)
	if old, err := os.ReadFile(p); err == nil && bytes.Equal(old, b) {
		return nil // the same keys: no write, no new mtime for followers to reload
	}
	f, err := os.CreateTemp(s.Dir, ".keys-*")
	if err != nil {
		return err
	}
	defer os.Remove(f.Name())
	if err := f.Chmod(0o600); err != nil {
		f.Close()
		return err
	}
	if _, err := f.Write(b); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return os.Rename(f.Name(), p)
}
