package cluster

import (
	"crypto/tls"
	"crypto/x509"
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

// Problem is one invalid value of a Config: its key (etcd, node, ...;
// Item is the list index for etcd, else -1) and what is wrong.
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

// tlsConfig loads the mTLS files; nil without TLS.
func (c Config) tlsConfig() (*tls.Config, error) {
	if c.TLS == (TLSConfig{}) {
		return nil, nil
	}
	ca, err := os.ReadFile(c.TLS.CA)
	if err != nil {
		return nil, fmt.Errorf("cluster.tls.ca: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(ca) {
		return nil, errors.New("cluster.tls.ca: no PEM certificate in " + c.TLS.CA)
	}
	pair, err := tls.LoadX509KeyPair(c.TLS.Cert, c.TLS.Key)
	if err != nil {
		return nil, fmt.Errorf("cluster.tls: %w", err)
	}
	return &tls.Config{RootCAs: pool, Certificates: []tls.Certificate{pair}, MinVersion: tls.VersionTLS12}, nil
}
