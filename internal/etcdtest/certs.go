package etcdtest

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"
)

// Certs is a test CA with a server certificate for 127.0.0.1 and client
// certificates made on demand, as PEM files in Dir.
type Certs struct {
	Dir                       string
	CA, ServerCert, ServerKey string // file paths

	t      testing.TB
	mu     sync.Mutex
	caCert *x509.Certificate
	caKey  *ecdsa.PrivateKey
	serial int64
}

// NewCerts makes a CA and a server certificate in dir.
func NewCerts(t testing.TB, dir string) *Certs {
	t.Helper()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	c := &Certs{Dir: dir, t: t}
	key := newKey(t)
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "geodns test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	c.caCert, _ = x509.ParseCertificate(der)
	c.caKey, c.serial = key, 1
	c.CA = filepath.Join(dir, "ca.pem")
	writePEM(t, c.CA, "CERTIFICATE", der)
	c.ServerCert, c.ServerKey = c.issue("etcd", true)
	return c
}

// Client returns the certificate and key files of a client identity
// (a geodns node), made on first use.
func (c *Certs) Client(name string) (cert, key string) {
	cert, key = filepath.Join(c.Dir, name+".pem"), filepath.Join(c.Dir, name+"-key.pem")
	if _, err := os.Stat(cert); err == nil {
		return cert, key
	}
	return c.issue(name, false)
}

// ClientTLS returns a client TLS config with the identity name.
func (c *Certs) ClientTLS(name string) (*tls.Config, error) {
	cert, key := c.Client(name)
	pair, err := tls.LoadX509KeyPair(cert, key)
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	pool.AddCert(c.caCert)
	return &tls.Config{RootCAs: pool, Certificates: []tls.Certificate{pair}, MinVersion: tls.VersionTLS12}, nil
}

func (c *Certs) issue(name string, server bool) (cert, key string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.serial++
	k := newKey(c.t)
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(c.serial), Subject: pkix.Name{CommonName: name},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		KeyUsage:    x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}
	if server {
		// etcd's own peers and the health check dial it as clients too.
		tmpl.ExtKeyUsage = append(tmpl.ExtKeyUsage, x509.ExtKeyUsageServerAuth)
		tmpl.IPAddresses = []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback}
		tmpl.DNSNames = []string{"localhost"}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, c.caCert, &k.PublicKey, c.caKey)
	if err != nil {
		c.t.Fatal(err)
	}
	kb, err := x509.MarshalECPrivateKey(k)
	if err != nil {
		c.t.Fatal(err)
	}
	cert, key = filepath.Join(c.Dir, name+".pem"), filepath.Join(c.Dir, name+"-key.pem")
	writePEM(c.t, cert, "CERTIFICATE", der)
	writePEM(c.t, key, "EC PRIVATE KEY", kb)
	return cert, key
}

func newKey(t testing.TB) *ecdsa.PrivateKey {
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func writePEM(t testing.TB, path, typ string, der []byte) {
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
}
