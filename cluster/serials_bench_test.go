package cluster

import (
	"fmt"
	"path/filepath"
	"testing"
)

// BenchmarkSerialsCacheStart: a node's first start with 3,000 zones, each
// given a serial by etcd and kept in serials.json. Written whole and
// synced once per zone, this took 4.4 s (quadratic in the zones); with
// the writes coalesced, one write.
func BenchmarkSerialsCacheStart(b *testing.B) {
	hashes := make([]string, 3000)
	origins := make([]string, len(hashes))
	for i := range hashes {
		hashes[i], origins[i] = fmt.Sprintf("%064x", i), fmt.Sprintf("zone-%05d.example.", i)
	}
	for b.Loop() {
		s := &Serials{c: &Cluster{log: quiet}}
		s.SetCache(filepath.Join(b.TempDir(), "serials.json"))
		for i := range hashes {
			s.remember(origins[i], hashes[i], uint32(i))
		}
		s.Flush()
	}
}
