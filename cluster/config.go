package cluster

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"net/url"
	"os"
	"regexp"
	"strings"
	"time"
)

// Config is the server config's cluster: section.
type Config struct {
	Etcd   []string  `yaml:"etcd"`   // client URLs of the etcd members
	Node   string    `yaml:"node"`   // this node's name, unique in the set
	Region string    `yaml:"region"` // where it is (reports, probe placement)
	Prefix string    `yaml:"prefix"` // key prefix; default /geodns
	TLS    TLSConfig `yaml:"tls"`    // mTLS: one identity per node
	// LeaseTTL is how long a node's lease (its registration, report and
	// votes) outlives its last keep-alive. Default 10s; whole seconds,
	// at least 2s.
	LeaseTTL time.Duration `yaml:"lease_ttl"`
	// Probers is how many live nodes probe each target (rendezvous
	// hashing over the live-node list); 0: every live node, up to 3.
	Probers int `yaml:"probers"`
	// PartitionGrace is how long a node cut off from etcd keeps the last
	// agreed health before its own probes decide (and it probes every
	// target itself); default 10s.
	PartitionGrace time.Duration `yaml:"partition_grace"`
}

// TLSConfig names the PEM files of the etcd CA and this node's client
// certificate and key.
type TLSConfig struct {
	CA   string `yaml:"ca"`
	Cert string `yaml:"cert"`
	Key  string `yaml:"key"`
}

// DefaultPrefix is the key prefix when none is configured.
const DefaultPrefix = "/geodns"

// Enabled reports whether a cluster is configured.
func (c Config) Enabled() bool {
	return len(c.Etcd) > 0 || c.Node != "" || c.Region != "" || c.Prefix != "" || c.TLS != (TLSConfig{}) || c.LeaseTTL != 0 ||
		c.Probers != 0 || c.PartitionGrace != 0
}

// prefix returns the key prefix without a trailing slash.
func (c Config) prefix() string {
	if c.Prefix == "" {
		return DefaultPrefix
	}
	return strings.TrimRight(c.Prefix, "/")
}

var nodeName = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$`)

// Problem is one invalid value of a Config: its key (etcd, node, ...,
// tls.ca: dotted below the section; Item is the list index for etcd,
// else -1) and what is wrong.
type Problem struct {
	Key  string
	Item int
	Msg  string
}

// Check lists what is wrong with c (nothing for a valid or absent
// section). The config loader positions each problem at its key.
func (c Config) Check() []Problem {
	if !c.Enabled() {
		return nil
	}
	var out []Problem
	add := func(key string, item int, format string, args ...any) {
		out = append(out, Problem{key, item, fmt.Sprintf(format, args...)})
	}
	if len(c.Etcd) == 0 {
		add("etcd", -1, "cluster.etcd: list the etcd members' client URLs, e.g. [https://10.0.0.1:2379]")
	}
	tlsSet := c.TLS != (TLSConfig{})
	for i, e := range c.Etcd {
		u, err := url.Parse(e)
		switch {
		case err != nil || u.Host == "" || (u.Scheme != "http" && u.Scheme != "https"):
			add("etcd", i, "cluster.etcd: %q: want a URL like https://10.0.0.1:2379", e)
		case u.Scheme == "https" && !tlsSet:
			add("etcd", i, "cluster.etcd: %q is https: give cluster.tls {ca, cert, key}", e)
		case u.Scheme == "http" && tlsSet:
			add("etcd", i, "cluster.etcd: %q is plain http while cluster.tls is set: use https", e)
		}
	}
	if c.Node == "" {
		add("node", -1, "cluster.node: name this node (e.g. ns1), unique in the NS set")
	} else if !nodeName.MatchString(c.Node) {
		add("node", -1, "cluster.node: %q: letters, digits, '.', '_' and '-' only, at most 63", c.Node)
	}
	if c.Region != "" && !nodeName.MatchString(c.Region) {
		add("region", -1, "cluster.region: %q: letters, digits, '.', '_' and '-' only, at most 63", c.Region)
	}
	if c.Prefix != "" && (!strings.HasPrefix(c.Prefix, "/") || strings.TrimRight(c.Prefix, "/") == "") {
		add("prefix", -1, "cluster.prefix: %q: want a key prefix like /geodns", c.Prefix)
	}
	if c.LeaseTTL != 0 && (c.LeaseTTL < 2*time.Second || c.LeaseTTL%time.Second != 0) {
		add("lease_ttl", -1, "cluster.lease_ttl: %v: want whole seconds, at least 2s (default 10s)", c.LeaseTTL)
	}
	if c.Probers < 0 || c.Probers > 100 {
		add("probers", -1, "cluster.probers: %d: want 1 to 100 (0 or absent: every live node, up to 3)", c.Probers)
	}
	if c.PartitionGrace < 0 {
		add("partition_grace", -1, "cluster.partition_grace: %v is negative", c.PartitionGrace)
	}
	if tlsSet && (c.TLS.CA == "" || c.TLS.Cert == "" || c.TLS.Key == "") {
		add("tls", -1, "cluster.tls: give all of ca, cert and key (mTLS: one identity per node)")
	}
	return out
}

// CheckFiles loads the TLS files as New does and lists what is wrong
// with them, each at its key (tls.ca, tls.cert, tls.key); for a Config
// that Check passes, so that `geodns check` finds what serve would.
func (c Config) CheckFiles() []Problem {
	_, ps := c.loadTLS()
	return ps
}

// tlsConfig loads the mTLS files; nil without TLS.
func (c Config) tlsConfig() (*tls.Config, error) {
	tc, ps := c.loadTLS()
	if len(ps) > 0 {
		var errs []error
		for _, p := range ps {
			errs = append(errs, errors.New(p.Msg))
		}
		return nil, errors.Join(errs...)
	}
	return tc, nil
}

// loadTLS reads and parses the mTLS files; nil without TLS. Each file is
// checked on its own, so one pass reports every bad one.
func (c Config) loadTLS() (*tls.Config, []Problem) {
	if c.TLS == (TLSConfig{}) {
		return nil, nil
	}
	var ps []Problem
	bad := func(key, format string, args ...any) {
		ps = append(ps, Problem{key, -1, "cluster." + key + ": " + fmt.Sprintf(format, args...)})
	}
	pool := x509.NewCertPool()
	if ca, err := os.ReadFile(c.TLS.CA); err != nil {
		bad("tls.ca", "%v", err)
	} else if !pool.AppendCertsFromPEM(ca) {
		bad("tls.ca", "no PEM certificate in %s", c.TLS.CA)
	}
	cert := readPEM("tls.cert", c.TLS.Cert, "certificate", func(t string) bool { return t == "CERTIFICATE" }, bad)
	key := readPEM("tls.key", c.TLS.Key, "private key", func(t string) bool { return strings.HasSuffix(t, "PRIVATE KEY") }, bad)
	if cert == nil || key == nil {
		return nil, ps
	}
	// Both files hold PEM of the right kind: what is left is a key that
	// does not go with the certificate, or one that does not parse.
	pair, err := tls.X509KeyPair(cert, key)
	if err != nil {
		bad("tls.key", "%s with cert %s: %v", c.TLS.Key, c.TLS.Cert, err)
	}
	if len(ps) > 0 {
		return nil, ps
	}
	return &tls.Config{RootCAs: pool, Certificates: []tls.Certificate{pair}, MinVersion: tls.VersionTLS12}, nil
}

// readPEM reads file (the value of key) and returns it if it holds a PEM
// block of a type that want accepts; else it reports why to bad.
func readPEM(key, file, what string, want func(string) bool, bad func(key, format string, args ...any)) []byte {
	data, err := os.ReadFile(file)
	if err != nil {
		bad(key, "%v", err)
		return nil
	}
	for rest := data; ; {
		var b *pem.Block
		if b, rest = pem.Decode(rest); b == nil {
			bad(key, "no PEM %s in %s", what, file)
			return nil
		}
		if want(b.Type) {
			return data
		}
	}
}
