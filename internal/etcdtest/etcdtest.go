// Package etcdtest starts real etcd clusters for tests: members of the
// Debian etcd (/usr/bin/etcd, package etcd-server, installed by
// scripts/test-deps.sh) on loopback, with ports picked free and data in
// t.TempDir(). A test can kill and restart single members, or all of
// them, to play etcd's failures; every process is stopped by its PID at
// cleanup. With TLS, a CA, a server certificate and client certificates
// (one identity per geodns node) are made in the test, and the members
// require client certificates, so the mTLS path is the one tested.
package etcdtest

import (
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
)

// Binary is the etcd server the tests run.
const Binary = "/usr/bin/etcd"

// Options shape a cluster; the zero value is three members without TLS.
type Options struct {
	Members int  // default 3
	TLS     bool // clients must present a certificate of the test CA
	// Host is the address clients connect to; default 127.0.0.1 (another
	// is for tests whose clients live in network namespaces of their own).
	Host string
	// MaxRequestBytes is each member's --max-request-bytes; default
	// etcd's (1.5 MiB).
	MaxRequestBytes int
}

// Cluster is a running etcd cluster.
type Cluster struct {
	t       testing.TB
	Certs   *Certs // nil without TLS
	mu      sync.Mutex
	members []*member
}

type member struct {
	name, dir, client, peer string
	args                    []string
	cmd                     *exec.Cmd
	done                    chan struct{}
	log                     *os.File
}

// Start starts a cluster and returns once every member answers.
func Start(t testing.TB, opts Options) *Cluster {
	t.Helper()
	if opts.Members == 0 {
		opts.Members = 3
	}
	if _, err := os.Stat(Binary); err != nil {
		t.Fatalf("etcd is not installed (%v): run scripts/test-deps.sh", err)
	}
	dir := t.TempDir()
	c := &Cluster{t: t}
	scheme := "http"
	if opts.TLS {
		c.Certs = NewCerts(t, filepath.Join(dir, "certs"))
		scheme = "https"
	}
	var initial []string
	for i := range opts.Members {
		m := &member{name: fmt.Sprintf("m%d", i), dir: filepath.Join(dir, fmt.Sprintf("m%d", i))}
		host := opts.Host
		if host == "" {
			host = "127.0.0.1"
		}
		m.client = fmt.Sprintf("%s://%s:%d", scheme, host, freePortOn(t, host))
		m.peer = fmt.Sprintf("http://127.0.0.1:%d", freePort(t))
		initial = append(initial, m.name+"="+m.peer)
		c.members = append(c.members, m)
	}
	for _, m := range c.members {
		m.args = []string{
			"--name", m.name, "--data-dir", filepath.Join(m.dir, "data"),
			"--listen-client-urls", m.client, "--advertise-client-urls", m.client,
			"--listen-peer-urls", m.peer, "--initial-advertise-peer-urls", m.peer,
			"--initial-cluster", strings.Join(initial, ","), "--initial-cluster-state", "new",
			"--initial-cluster-token", "geodns-test",
			// Elections in about a second, so a test sees a lost member
			// quickly, yet no false ones on a loaded 2-core machine (50/500
			// ms lost the leader, and the leases, under a load of 25); the
			// minimum lease TTL follows (1.5 election timeouts: 2 s).
			"--heartbeat-interval", "100", "--election-timeout", "1000",
			"--log-level", "warn", "--logger", "zap",
		}
		if opts.MaxRequestBytes > 0 {
			m.args = append(m.args, "--max-request-bytes", fmt.Sprint(opts.MaxRequestBytes))
		}
		if opts.TLS {
			m.args = append(m.args, "--cert-file", c.Certs.ServerCert, "--key-file", c.Certs.ServerKey,
				"--trusted-ca-file", c.Certs.CA, "--client-cert-auth")
		}
		if err := os.MkdirAll(m.dir, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	t.Cleanup(c.stopAll)
	for i := range c.members {
		c.start(i)
	}
	c.WaitHealthy()
	return c
}

// freePort returns a port that was free a moment ago.
func freePort(t testing.TB) int { return freePortOn(t, "127.0.0.1") }

// portsTaken are the ports freePortOn has handed out in this process.
var (
	portsMu    sync.Mutex
	portsTaken = map[int]bool{}
)

// freePortOn picks a free port below Linux's ephemeral range (32768 and
// up): a member restarted on its port after a kill must find it still
// free, and ports in the ephemeral range are handed to other tests'
// ":0" listeners and to outgoing connections meanwhile (a restart failed
// with "address already in use" in a full run).
//
// A port is handed out once per process: a member's peer port is only
// bound when it starts, so two picks for one cluster could otherwise be
// the same free port ("initial cluster ... has duplicate url", in a
// fresh-clone run).
func freePortOn(t testing.TB, host string) int {
	for range 1000 {
		port := 20000 + rand.IntN(12000)
		portsMu.Lock()
		taken := portsTaken[port]
		portsTaken[port] = true
		portsMu.Unlock()
		if taken {
			continue
		}
		ln, err := net.Listen("tcp", net.JoinHostPort(host, strconv.Itoa(port)))
		if err != nil {
			continue
		}
		ln.Close()
		return port
	}
	t.Fatal("etcdtest: no free port in 20000-31999")
	return 0
}

func (c *Cluster) start(i int) {
	m := c.members[i]
	log, err := os.OpenFile(filepath.Join(m.dir, "etcd.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		c.t.Fatal(err)
	}
	cmd := exec.Command(Binary, m.args...)
	cmd.Stdout, cmd.Stderr = log, log
	cmd.SysProcAttr = procAttr()
	if err := cmd.Start(); err != nil {
		log.Close()
		c.t.Fatalf("start etcd %s: %v", m.name, err)
	}
	m.cmd, m.log, m.done = cmd, log, make(chan struct{})
	go func(done chan struct{}) { cmd.Wait(); log.Close(); close(done) }(m.done)
}

// running reports whether member m's process is up (not killed).
func (c *Cluster) running(m *member) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return m.cmd != nil
}

// Endpoints returns the members' client URLs.
func (c *Cluster) Endpoints() []string {
	var out []string
	for _, m := range c.members {
		out = append(out, m.client)
	}
	return out
}

// Kill kills member i (SIGKILL, by its PID) and waits for it to exit.
func (c *Cluster) Kill(i int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	m := c.members[i]
	if m.cmd == nil {
		return
	}
	m.cmd.Process.Kill()
	<-m.done
	m.cmd = nil
}

// KillAll kills every member.
func (c *Cluster) KillAll() {
	for i := range c.members {
		c.Kill(i)
	}
}

// Restart starts member i again on its data and ports.
func (c *Cluster) Restart(i int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.members[i].cmd == nil {
		c.start(i)
	}
}

// RestartAll starts every killed member and waits until the cluster answers.
func (c *Cluster) RestartAll() {
	for i := range c.members {
		c.Restart(i)
	}
	c.WaitHealthy()
}

// Wipe plays the loss of etcd's data: every member is killed, its data
// directory removed, and the cluster started again empty, on the same
// addresses and with the same cluster ID; it returns once it answers.
func (c *Cluster) Wipe() {
	c.KillAll()
	for _, m := range c.members {
		if err := os.RemoveAll(filepath.Join(m.dir, "data")); err != nil {
			c.t.Fatal(err)
		}
	}
	c.RestartAll()
}

func (c *Cluster) stopAll() {
	c.KillAll()
	if c.t.Failed() {
		for _, m := range c.members {
			if b, err := os.ReadFile(filepath.Join(m.dir, "etcd.log")); err == nil {
				c.t.Logf("etcd %s log (last 2 KB):\n%s", m.name, tail(b, 2048))
			}
		}
	}
}

func tail(b []byte, n int) []byte {
	if len(b) > n {
		b = b[len(b)-n:]
		if i := bytes.IndexByte(b, '\n'); i >= 0 {
			b = b[i+1:]
		}
	}
	return b
}

// Client returns a client of the cluster (with the CA's "test" identity
// under TLS), closed at cleanup.
func (c *Cluster) Client() *clientv3.Client {
	cli := c.newClient()
	c.t.Cleanup(func() { cli.Close() })
	return cli
}

func (c *Cluster) newClient() *clientv3.Client {
	cfg := clientv3.Config{Endpoints: c.Endpoints(), DialTimeout: 5 * time.Second, Logger: zap.NewNop()}
	if c.Certs != nil {
		tc, err := c.Certs.ClientTLS("test")
		if err != nil {
			c.t.Fatal(err)
		}
		cfg.TLS = tc
	}
	cli, err := clientv3.New(cfg)
	if err != nil {
		c.t.Fatal(err)
	}
	return cli
}

// WaitHealthy waits (up to 30 s) until a linearizable read succeeds on
// every running member: each has joined and the cluster has a leader.
func (c *Cluster) WaitHealthy() {
	c.t.Helper()
	cli := c.newClient()
	defer cli.Close()
	deadline := time.Now().Add(30 * time.Second)
	for _, m := range c.members {
		if !c.running(m) {
			continue
		}
		for {
			ctx, cancel := context.WithTimeout(context.Background(), time.Second)
			_, err := cli.Status(ctx, m.client)
			if err == nil {
				_, err = cli.Get(ctx, "health")
			}
			cancel()
			if err == nil {
				break
			}
			if time.Now().After(deadline) {
				c.t.Fatalf("etcd member %s not healthy after 30s: %v", m.name, err)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
}

// Leader returns the index of the member that leads the cluster now (-1
// when no running member names a leader it knows). Killing the leader
// makes etcd elect another, which pauses every write and lease keep-alive
// for an election timeout or two; killing a follower pauses nothing.
func (c *Cluster) Leader() int {
	c.t.Helper()
	cli := c.newClient()
	defer cli.Close()
	ids := map[uint64]int{}
	var leader uint64
	for i, m := range c.members {
		if !c.running(m) {
			continue
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		st, err := cli.Status(ctx, m.client)
		cancel()
		if err != nil {
			continue
		}
		ids[st.Header.MemberId] = i
		if st.Leader != 0 {
			leader = st.Leader
		}
	}
	if i, ok := ids[leader]; ok {
		return i
	}
	return -1
}
