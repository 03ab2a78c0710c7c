package cluster

import (
	"bytes"
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/geodns/geodns/dnssec"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// KeyStore keeps the set's DNSSEC keys in etcd, at P/dnssec/<zone>, so
// that every node signs with the same keys and any node can roll them: a
// write is a transaction on the key's revision (dnssec.ErrConflict when
// another node wrote first; the manager then takes the stored keys).
//
// The value is the key file's JSON sealed with AES-256-GCM under a key
// derived from the set's secret (dnssec.key_secret_file, the same file on
// every node), the key's path as additional data: etcd, its backups and
// whoever reads them see no private key, and a value copied to another
// zone's key does not open.
//
// Each node keeps a copy in its own key directory (local). A node that
// starts while etcd is unreachable signs with that copy; one that finds
// etcd without a zone's keys (etcd rebuilt) stores its copy there rather
// than make new keys, which would break the chain of trust from the DS.
// No node makes keys while etcd is unreachable.
type KeyStore struct {
	c     *Cluster
	aead  cipher.AEAD
	local dnssec.Store

	check []byte // the value of P/dnssec-secret: the secret's fingerprint

	mu      sync.Mutex
	down    time.Time // when etcd last failed: local copies are read for a while
	checked bool      // P/dnssec-secret was found to be this node's check
}

// errSecret is SaveKeys's error when the set's keys are sealed with
// another secret than this node's.
var errSecret = errors.New("the set's DNSSEC keys are sealed with another key_secret_file than this node's: it stores none")

// MinSecret is the shortest key secret: the secret keys the seal
// directly (no password stretching), so it must be random and long.
const minSecret = 32

// downFor is how long after a failure etcd is not asked again: a start
// in an outage reads every zone's keys locally, not after a timeout each.
const downFor = 10 * time.Second

// NewKeyStore returns the key store of the set: secret is the content of
// the secret file (at least 32 bytes: it is used as a key, not
// stretched like a password), local the node's key directory
// (Dir "": no local copy, as for a command that only reads or starts a
// rollover).
func NewKeyStore(c *Cluster, secret []byte, local dnssec.Store) (*KeyStore, error) {
	secret = bytes.TrimSpace(secret)
	if len(secret) < minSecret {
		return nil, fmt.Errorf("the DNSSEC key secret has fewer than %d bytes (make one with: head -c 32 /dev/urandom | base64)", minSecret)
	}
	k := sha256.Sum256(append([]byte("geodns dnssec keys\x00"), secret...))
	block, err := aes.NewCipher(k[:])
	if err != nil {
		return nil, err
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, err
	}
	// A fingerprint of the secret, not a way back to it: the first node
	// to write keys stores it, and a node whose secret differs writes
	// none (keys sealed with its secret would open on no other node).
	check := sha256.Sum256(append([]byte("geodns dnssec secret check\x00"), secret...))
	return &KeyStore{c: c, aead: aead, local: local, check: []byte(fmt.Sprintf("%x", check))}, nil
}

// checkSecret makes sure that the set's secret is this node's before it
// writes keys: P/dnssec-secret holds its fingerprint (put there by the
// first node to write).
func (s *KeyStore) checkSecret(ctx context.Context) error {
	s.mu.Lock()
	ok := s.checked
	s.mu.Unlock()
	if ok {
		return nil
	}
	key := s.c.Key("dnssec-secret")
	r, err := s.c.cli.Txn(ctx).If(clientv3.Compare(clientv3.CreateRevision(key), "=", 0)).
		Then(clientv3.OpPut(key, string(s.check))).Else(clientv3.OpGet(key)).Commit()
	if err != nil {
		return s.failed(err)
	}
	s.c.saw(r.Header.Revision)
	if !r.Succeeded {
		kvs := r.Responses[0].GetResponseRange().Kvs
		if len(kvs) == 0 || !bytes.Equal(kvs[0].Value, s.check) {
			return errSecret
		}
	}
	s.mu.Lock()
	s.checked = true
	s.mu.Unlock()
	return nil
}

func (s *KeyStore) key(origin string) string { return s.c.Key("dnssec/" + origin) }

// ctx bounds one request to etcd.
func (s *KeyStore) ctx() (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), s.c.Timeout())
}

// reachable says whether etcd is worth asking (it did not fail lately).
func (s *KeyStore) reachable() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return time.Since(s.down) > downFor
}

func (s *KeyStore) failed(err error) error {
	s.mu.Lock()
	s.down = time.Now()
	s.mu.Unlock()
	return fmt.Errorf("etcd: %w", err)
}

func (s *KeyStore) seal(origin string, b []byte) ([]byte, error) {
	nonce := make([]byte, s.aead.NonceSize())
	if _, err := rand.Read(nonce); err != nil {
		return nil, err
	}
	return s.aead.Seal(nonce, nonce, b, []byte(s.key(origin))), nil
}

func (s *KeyStore) open(origin string, v []byte) ([]byte, error) {
	n := s.aead.NonceSize()
	if len(v) < n {
		return nil, errors.New("the stored keys are too short to be sealed keys")
	}
	b, err := s.aead.Open(nil, v[:n], v[n:], []byte(s.key(origin)))
	if err != nil {
		return nil, errors.New("the stored keys do not open with this node's key secret (key_secret_file differs between nodes?)")
	}
	return b, nil
}

// LoadKeys implements dnssec.KeyStore: the keys in etcd, kept locally
// too; the local copy (version "", so that no write is based on it) when
// etcd cannot be reached.
func (s *KeyStore) LoadKeys(origin string) (*dnssec.ZoneKeys, string, error) {
	if !s.reachable() {
		return s.fallback(origin, nil)
	}
	ctx, cancel := s.ctx()
	defer cancel()
	r, err := s.c.cli.Get(ctx, s.key(origin))
	if err != nil {
		return s.fallback(origin, s.failed(err))
	}
	s.c.saw(r.Header.Revision)
	if len(r.Kvs) == 0 {
		// None in etcd: this node's copy, if it has one, goes there.
		if s.local.Dir == "" {
			return nil, "", nil
		}
		zk, err := s.local.Load(origin)
		if err != nil || zk == nil {
			return nil, "", err
		}
		v, err := s.SaveKeys(zk, "")
		if errors.Is(err, dnssec.ErrConflict) {
			return s.LoadKeys(origin) // another node's copy went first
		}
		if err != nil {
			return zk, "", nil
		}
		s.c.log.Warn("dnssec: etcd had no keys for the zone; stored this node's copy", "zone", origin)
		return zk, v, nil
	}
	kv := r.Kvs[0]
	b, err := s.open(origin, kv.Value)
	if err != nil {
		return nil, "", err
	}
	zk, err := dnssec.UnmarshalKeys(b)
	if err != nil {
		return nil, "", fmt.Errorf("etcd %s: %w", s.key(origin), err)
	}
	rev := strconv.FormatInt(kv.ModRevision, 10)
	if s.local.Dir != "" {
		// etcd restored from an older backup holds keys the set has moved
		// past (a key the parent's DS no longer names): this node's newer
		// copy goes back instead.
		if mine, err := s.local.Load(origin); err == nil && mine != nil && mine.Generation > zk.Generation {
			v, err := s.SaveKeys(mine, rev)
			if errors.Is(err, dnssec.ErrConflict) {
				return s.LoadKeys(origin)
			}
			if err != nil {
				return mine, "", nil
			}
			s.c.log.Warn("dnssec: etcd held older keys than this node's copy (restored from a backup?); stored the copy",
				"zone", origin, "etcd_generation", zk.Generation, "copy_generation", mine.Generation)
			return mine, v, nil
		}
	}
	s.keepLocal(zk)
	return zk, rev, nil
}

// fallback reads the local copy when etcd could not be asked (err says
// why, nil: it failed lately).
func (s *KeyStore) fallback(origin string, err error) (*dnssec.ZoneKeys, string, error) {
	if err == nil {
		err = errors.New("etcd is unreachable")
	}
	if s.local.Dir == "" {
		return nil, "", err
	}
	zk, lerr := s.local.Load(origin)
	if lerr != nil || zk == nil {
		return nil, "", errors.Join(err, lerr, errors.New("and this node has no copy of the keys"))
	}
	return zk, "", nil
}

// keepLocal writes zk to the local copy (Store.Save leaves it alone if
// it holds zk already).
func (s *KeyStore) keepLocal(zk *dnssec.ZoneKeys) {
	if s.local.Dir == "" {
		return
	}
	if err := s.local.Save(zk); err != nil {
		s.c.log.Warn("dnssec: cannot keep a local copy of the keys", "zone", zk.Origin, "error", err)
	}
}

// SaveKeys implements dnssec.KeyStore: stored only if etcd holds version
// prev of the zone's keys ("": none), then kept locally.
func (s *KeyStore) SaveKeys(zk *dnssec.ZoneKeys, prev string) (string, error) {
	b, err := dnssec.MarshalKeys(zk)
	if err != nil {
		return "", err
	}
	v, err := s.seal(zk.Origin, b)
	if err != nil {
		return "", err
	}
	key := s.key(zk.Origin)
	cmp := clientv3.Compare(clientv3.CreateRevision(key), "=", 0)
	if prev != "" {
		rev, err := strconv.ParseInt(prev, 10, 64)
		if err != nil {
			return "", fmt.Errorf("dnssec keys: version %q is not etcd's", prev)
		}
		cmp = clientv3.Compare(clientv3.ModRevision(key), "=", rev)
	}
	if !s.reachable() {
		// Failed lately: each zone's key event would wait a timeout.
		return "", errors.New("etcd is unreachable")
	}
	ctx, cancel := s.ctx()
	defer cancel()
	if err := s.checkSecret(ctx); err != nil {
		return "", err
	}
	r, err := s.c.cli.Txn(ctx).If(cmp).Then(clientv3.OpPut(key, string(v))).Commit()
	if err != nil {
		return "", s.failed(err)
	}
	s.c.saw(r.Header.Revision)
	if !r.Succeeded {
		return "", dnssec.ErrConflict
	}
	s.keepLocal(zk)
	return strconv.FormatInt(r.Header.Revision, 10), nil
}

// AllKeysVersions returns every zone's KeysVersion from one read of the
// prefix (the manager's tick asks for all of them).
func (s *KeyStore) AllKeysVersions() (map[string]string, error) {
	if !s.reachable() {
		return nil, errors.New("etcd is unreachable")
	}
	ctx, cancel := s.ctx()
	defer cancel()
	prefix := s.key("")
	r, err := s.c.cli.Get(ctx, prefix, clientv3.WithPrefix(), clientv3.WithKeysOnly())
	if err != nil {
		return nil, s.failed(err)
	}
	s.c.saw(r.Header.Revision)
	out := make(map[string]string, len(r.Kvs))
	for _, kv := range r.Kvs {
		out[strings.TrimPrefix(string(kv.Key), prefix)] = strconv.FormatInt(kv.ModRevision, 10)
	}
	return out, nil
}

// KeysVersion implements dnssec.KeyStore: the key's revision in etcd.
func (s *KeyStore) KeysVersion(origin string) (string, error) {
	if !s.reachable() {
		return "", errors.New("etcd is unreachable")
	}
	ctx, cancel := s.ctx()
	defer cancel()
	r, err := s.c.cli.Get(ctx, s.key(origin), clientv3.WithKeysOnly())
	if err != nil {
		return "", s.failed(err)
	}
	s.c.saw(r.Header.Revision)
	if len(r.Kvs) == 0 {
		return "", nil
	}
	return strconv.FormatInt(r.Kvs[0].ModRevision, 10), nil
}
