package etcdtest

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
)

// TestClusterSurvivesOneMember: the v3.7 client works against the Debian
// etcd 3.4 over mTLS; with one member killed the cluster still writes,
// and the member rejoins with what it missed.
func TestClusterSurvivesOneMember(t *testing.T) {
	c := Start(t, Options{TLS: true})
	cli := c.Client()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	_, err := cli.Put(ctx, "k", "1")
	require.NoError(t, err)
	c.Kill(0)
	// A write in flight at the old leader when it died times out rather
	// than be retried by etcd: the caller retries (a transaction would be
	// safe to).
	require.Eventually(t, func() bool {
		pctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		defer cancel()
		_, err := cli.Put(pctx, "k", "2")
		return err == nil
	}, 15*time.Second, 10*time.Millisecond, "two of three members are a quorum")
	c.RestartAll()
	r, err := cli.Get(ctx, "k")
	require.NoError(t, err)
	require.Equal(t, "2", string(r.Kvs[0].Value))

	// Without a client certificate the members refuse.
	tc, err := c.Certs.ClientTLS("test")
	require.NoError(t, err)
	tc.Certificates = nil
	anon, err := clientv3.New(clientv3.Config{Endpoints: c.Endpoints(), TLS: tc, Logger: zap.NewNop()})
	require.NoError(t, err)
	defer anon.Close()
	short, cancel2 := context.WithTimeout(ctx, time.Second)
	defer cancel2()
	_, err = anon.Get(short, "k")
	require.Error(t, err, "a client without a certificate of the CA is refused")
}

// TestFreePortsDistinct: ports are handed out once per process. Before,
// two members of one cluster could get the same peer port (it is bound
// only when the member starts), and etcd refused "duplicate url".
func TestFreePortsDistinct(t *testing.T) {
	seen := map[int]bool{}
	for range 500 {
		p := freePort(t)
		require.False(t, seen[p], "port %d handed out twice", p)
		seen[p] = true
	}
}
