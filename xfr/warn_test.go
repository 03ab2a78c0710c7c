package xfr

import (
	"strings"
	"testing"

	"github.com/miekg/dns"
	"github.com/stretchr/testify/require"
)

// TestSerialUnchangedWarningSaysExport: an exported record edited under
// an unchanged serial warns with what the server then does: the export
// moves to the next serial, NOTIFY and SOA answers say it, IXFR delivers
// the change. The warning used to say secondaries would not see it.
func TestSerialUnchangedWarningSaysExport(t *testing.T) {
	h := newHarness(t, t.TempDir())
	<-h.notify // serial 100
	h.load(notifySrc(h, strings.Replace(zoneSrc, "192.0.2.53", "192.0.2.54", 1)))
	z := h.set.Load().Zone("t.test.")
	require.Len(t, z.Warnings, 1)
	msg := z.Warnings[0].Error()
	t.Logf("warning: %s", msg)
	require.NotContains(t, msg, "will not see")
	require.Contains(t, msg, "the content changed but the SOA serial (100) did not: if what is transferred changed, transfers export it under the next serial")

	// What the warning says is what happens.
	waitSerial(t, h, 101)
	n := <-h.notify
	require.Equal(t, uint32(101), n.Answer[0].(*dns.SOA).Serial)
	require.Equal(t, uint32(101), soaSerial(t, h.addr))
	rrs, err := h.xfr("t.test.", dns.TypeIXFR, 100, keyName, dns.HmacSHA256, keySecret)
	require.NoError(t, err)
	require.Contains(t, texts(rrs), "192.0.2.54")
}
