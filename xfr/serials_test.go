package xfr

import (
	"testing"

	"github.com/geodns/geodns/resolver"
	"github.com/stretchr/testify/require"
)

// keptSerials is a serial source that cannot answer (etcd down) but kept
// the serial it gave the export before: cluster.Serials in an outage.
type keptSerials struct{ kept uint32 }

func (k keptSerials) Serial(origin string, hash [32]byte, want, prev uint32, moved bool) (uint32, bool) {
	if origin == "export:t.test." {
		return k.kept, false
	}
	return want, false
}

// TestExportKeepsSerialThroughAnOutage: a node restarted while its serial
// source cannot answer exports the serial the source kept for this
// content (the set's), as the zone loader serves it (zones.SerialSource:
// the serial returned is used either way). Before, the export dropped it
// for its own numbering.
func TestExportKeepsSerialThroughAnOutage(t *testing.T) {
	h := newHarnessSrc(t, t.TempDir(), zoneSrc, func(o *Options, _ *resolver.Config) { o.Serials = keptSerials{kept: 555} })
	s, ok := h.srv.Serial("t.test.")
	require.True(t, ok)
	require.Equal(t, uint32(555), s, "the serial the source kept, not the zone's own 100")
}
