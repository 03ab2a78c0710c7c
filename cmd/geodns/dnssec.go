package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/geodns/geodns/cluster"
	"github.com/geodns/geodns/dnssec"
	"github.com/geodns/geodns/zones"
	"github.com/miekg/dns"
)

// dnssecConfig is the server's dnssec: key.
type dnssecConfig struct {
	// KeyDir holds the key files (0600), one per zone. Default
	// <state_dir>/dnssec, else ./dnssec-keys. Nodes of a set may share
	// one directory; then one of them rolls and the others set Follow.
	KeyDir string `yaml:"key_dir"`
	// Follow: read the key files, never write them or roll keys (another
	// node that shares key_dir does). Default false.
	Follow bool `yaml:"follow"`
	// KeySecretFile, in an NS set (cluster:), puts the keys in etcd,
	// sealed with a key derived from this file's content (the same file
	// on every node): the nodes share keys with no shared directory, and
	// key_dir keeps each node's copy (cluster.KeyStore).
	KeySecretFile string `yaml:"key_secret_file"`
	// SignatureCacheBytes bounds the signature cache. Default 32 MiB.
	SignatureCacheBytes int64 `yaml:"signature_cache_bytes"`
	// Interval is how often rollovers are stepped, key files checked and
	// signatures renewed. Default 1m.
	Interval time.Duration `yaml:"interval"`
}

// keyDir returns where the key files are.
func (c *config) keyDir() string {
	switch {
	case c.DNSSEC.KeyDir != "":
		return c.DNSSEC.KeyDir
	case c.StateDir != "":
		return filepath.Join(c.StateDir, "dnssec")
	}
	return "dnssec-keys"
}

// keySecret reads dnssec.key_secret_file.
func (c *config) keySecret() ([]byte, error) {
	b, err := os.ReadFile(c.DNSSEC.KeySecretFile)
	if err != nil {
		return nil, fmt.Errorf("dnssec.key_secret_file: %w", err)
	}
	if len(strings.TrimSpace(string(b))) < 32 {
		return nil, fmt.Errorf("dnssec.key_secret_file: %s has fewer than 32 bytes; make one with: head -c 32 /dev/urandom | base64 > %s",
			c.DNSSEC.KeySecretFile, c.DNSSEC.KeySecretFile)
	}
	return b, nil
}

// keyStore returns where the keys are: etcd (key_secret_file in an NS
// set; c is the node's cluster, or one made to reach etcd), else key_dir.
// copy: etcd's keys are kept in key_dir too (a node; not a command, whose
// key_dir may not be the node's).
func (c *config) keyStore(cl *cluster.Cluster, copy bool) (dnssec.KeyStore, string, error) {
	local := dnssec.Store{Dir: c.keyDir()}
	if c.DNSSEC.KeySecretFile == "" || cl == nil {
		return local, local.Dir, nil
	}
	where := "etcd " + cl.Key("dnssec/")
	if copy {
		where += " (a copy in " + local.Dir + ")"
	} else {
		local.Dir = ""
	}
	secret, err := c.keySecret()
	if err != nil {
		return nil, "", err
	}
	ks, err := cluster.NewKeyStore(cl, secret, local)
	if err != nil {
		return nil, "", fmt.Errorf("dnssec.key_secret_file: %w", err)
	}
	return ks, where, nil
}

// dnssecPolicy turns a zone's dnssec: key into the signer's policy.
func dnssecPolicy(z *zones.Zone) dnssec.Policy {
	c := z.DNSSEC
	alg, _ := dnssec.ParseAlgorithm(c.Algorithm) // validated by the zone compiler
	p := dnssec.Policy{Algorithm: alg, Split: c.Split, CSKLifetime: c.CSKLifetime, KSKLifetime: c.KSKLifetime,
		ZSKLifetime: c.ZSKLifetime, DNSKEYTTL: c.DNSKEYTTL, MaxZoneTTL: z.MaxTTL(), Propagation: c.Propagation,
		Validity: c.Validity, Refresh: c.Refresh}
	for _, ap := range c.Parent {
		p.Parent = append(p.Parent, ap.String())
	}
	return p
}

// dnssecZones lists the signed zones of s.
func dnssecZones(s *zones.Set) []dnssec.ZoneConfig {
	var out []dnssec.ZoneConfig
	if s == nil {
		return nil
	}
	for _, z := range s.Zones() {
		if z.DNSSEC != nil {
			out = append(out, dnssec.ZoneConfig{Origin: z.Origin, Policy: dnssecPolicy(z)})
		}
	}
	return out
}

// dnssecCmd is `geodns dnssec status|ds|rollover --zone Z`: it works on the
// key files; a running server follows their changes (Manager.Run).
func dnssecCmd(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, "usage: geodns dnssec status|ds|rollover --zone ZONE [--config FILE] [--zones DIR] [--key-dir DIR] [--role csk|ksk|zsk]\n")
		return 2
	}
	sub := args[0]
	fs := flag.NewFlagSet("dnssec "+sub, flag.ContinueOnError)
	fs.SetOutput(stderr)
	zone := fs.String("zone", "", "the zone")
	configFile := fs.String("config", "", "server config file (for state_dir and dnssec: key_dir)")
	zonesDir := fs.String("zones", "", "directory of <zone>.yaml files, for the zone's dnssec: policy (default: the config's, else zones)")
	keyDir := fs.String("key-dir", "", "key directory (default: the config's)")
	role := fs.String("role", "", "rollover: the key to roll, csk, ksk or zsk (default: the zone's CSK, or its KSK when split)")
	if err := fs.Parse(args[1:]); err != nil {
		return 2
	}
	if *zone == "" {
		fmt.Fprintln(stderr, "geodns dnssec: --zone is required")
		return 2
	}
	origin := dns.CanonicalName(*zone)
	cfg := defaultConfig()
	if *configFile != "" {
		if err := cfg.load(*configFile); err != nil {
			fmt.Fprintln(stderr, err)
			return 1
		}
	}
	if *zonesDir != "" {
		cfg.Zones = *zonesDir
	}
	if *keyDir != "" {
		cfg.DNSSEC.KeyDir = *keyDir
	}
	var cl *cluster.Cluster
	if cfg.Cluster.Enabled() && cfg.DNSSEC.KeySecretFile != "" && *keyDir == "" {
		// The keys are in etcd: asked there, as the nodes do.
		c, err := cluster.New(cluster.Options{Config: cfg.Cluster, Log: slog.New(slog.NewTextHandler(io.Discard, nil))})
		if err != nil {
			fmt.Fprintf(stderr, "geodns dnssec: cluster: %v\n", err)
			return 1
		}
		defer c.Close()
		cl = c
	}
	store, where, err := cfg.keyStore(cl, false)
	if err != nil {
		fmt.Fprintf(stderr, "geodns dnssec: %v\n", err)
		return 1
	}
	policy := dnssec.Policy{}
	if z, err := zones.LoadFile(filepath.Join(cfg.Zones, strings.TrimSuffix(origin, ".")+".yaml"), nil); err == nil && z.DNSSEC != nil {
		policy = dnssecPolicy(z)
	}
	zk, version, err := store.LoadKeys(origin)
	if err != nil {
		if cl != nil {
			err = fmt.Errorf("%w (etcd: %s)", err, strings.Join(cfg.Cluster.Etcd, ", "))
		}
		fmt.Fprintf(stderr, "geodns dnssec: %v\n", err)
		return 1
	}
	if zk == nil {
		fmt.Fprintf(stderr, "geodns dnssec: no keys for %s in %s (the server makes them when it loads a zone with a dnssec: key)\n", origin, where)
		return 1
	}
	switch sub {
	case "status":
		printKeyStatus(stdout, zk, policy)
	case "ds":
		// The DS of every key that signs the DNSKEY RRset: what the
		// registrar gets. During a rollover, the new key's too.
		for _, k := range zk.Keys {
			if k.Role == dnssec.ZSK || k.State != dnssec.Active {
				continue
			}
			ds := k.DS()
			ds.Hdr.Ttl = 0
			fmt.Fprintf(stdout, "%s IN DS %d %d %d %s\n", origin, ds.KeyTag, ds.Algorithm, ds.DigestType, strings.ToUpper(ds.Digest))
		}
	case "rollover":
		r := dnssec.CSK
		if policy.Split || hasRole(zk, dnssec.KSK) {
			r = dnssec.KSK
		}
		if *role != "" {
			r = dnssec.Role(strings.ToLower(*role))
		}
		if err := zk.StartRoll(policy, r, time.Now()); err != nil {
			fmt.Fprintf(stderr, "geodns dnssec: %v\n", err)
			return 1
		}
		if cl != nil && version == "" {
			fmt.Fprintf(stderr, "geodns dnssec: etcd is unreachable; a rollover is started only where every node sees it\n")
			return 1
		}
		zk.Generation++
		if _, err := store.SaveKeys(zk, version); err != nil {
			if errors.Is(err, dnssec.ErrConflict) {
				err = fmt.Errorf("a node changed the keys meanwhile; run the command again (%w)", err)
			}
			fmt.Fprintf(stderr, "geodns dnssec: %v\n", err)
			return 1
		}
		fmt.Fprintf(stdout, "%s: %s rollover started; a running server carries it through\n", origin, strings.ToUpper(string(r)))
		printKeyStatus(stdout, zk, policy)
	default:
		fmt.Fprintf(stderr, "geodns dnssec: unknown command %q (status, ds, rollover)\n", sub)
		return 2
	}
	return 0
}

func hasRole(zk *dnssec.ZoneKeys, r dnssec.Role) bool {
	for _, k := range zk.Keys {
		if k.Role == r {
			return true
		}
	}
	return false
}

func printKeyStatus(w io.Writer, zk *dnssec.ZoneKeys, p dnssec.Policy) {
	fmt.Fprintf(w, "zone %s\n", zk.Origin)
	for _, k := range zk.Keys {
		fmt.Fprintf(w, "  key %5d %s %-9s %s created %s", k.Tag, strings.ToUpper(string(k.Role)), k.State,
			dns.AlgorithmToString[k.Algorithm], k.Created.Format(time.RFC3339))
		if !k.Activated.IsZero() {
			fmt.Fprintf(w, " signing since %s", k.Activated.Format(time.RFC3339))
		}
		fmt.Fprintln(w)
	}
	if r := zk.Roll; r != nil {
		fmt.Fprintf(w, "  rollover: %s %d -> %d, phase %s since %s\n", strings.ToUpper(string(r.Role)), r.Old, r.New, r.Phase,
			r.Since.Format(time.RFC3339))
	} else {
		fmt.Fprintln(w, "  rollover: none")
	}
	if at, what := zk.NextEvent(p); !at.IsZero() {
		fmt.Fprintf(w, "  next event: %s at %s (in %s)\n", what, at.Format(time.RFC3339), time.Until(at).Round(time.Second))
	} else if what != "" {
		fmt.Fprintf(w, "  next event: %s\n", what)
	}
}

// startDNSSEC makes the signer and runs it until ctx ends. It is made
// whether or not a zone is signed yet (a reload may sign one); an unsigned
// zone costs a query one map lookup.
func startDNSSEC(ctx context.Context, cfg *config, store dnssec.KeyStore, where string, opts dnssec.Options, log *slog.Logger) *dnssec.Manager {
	opts.Store = store
	opts.ReadOnly = cfg.DNSSEC.Follow
	opts.CacheBytes = cfg.DNSSEC.SignatureCacheBytes
	opts.Interval = cfg.DNSSEC.Interval
	opts.Log = log
	if _, err := os.Stat(cfg.keyDir()); err == nil || cfg.DNSSEC.KeySecretFile != "" {
		log.Info("dnssec: keys", "in", where)
	}
	if f := cfg.DNSSEC.KeySecretFile; f != "" {
		// Whoever reads it opens every zone's private keys in etcd (and
		// its backups): said, not refused (a mounted secret may be 0644).
		if fi, err := os.Stat(f); err == nil && fi.Mode().Perm()&0o077 != 0 {
			log.Warn("dnssec: key_secret_file is readable by other users than its owner; with it, etcd's copy of the keys opens",
				"file", f, "mode", fmt.Sprintf("%04o", fi.Mode().Perm()))
		}
	}
	m := dnssec.NewManager(opts)
	go m.Run(ctx)
	return m
}
