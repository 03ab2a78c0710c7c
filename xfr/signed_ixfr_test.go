package xfr

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/geodns/geodns/dnssec"
	"github.com/geodns/geodns/internal/testclock"
	"github.com/geodns/geodns/resolver"
	"github.com/miekg/dns"
	"github.com/stretchr/testify/require"
)

const signedSrc = zoneSrc + "dnssec: {algorithm: ECDSAP256SHA256}\n"

// signedHarnessRO is signedHarness with the zone source and manager options
// given; it returns the manager too.
func signedHarnessRO(t *testing.T, stateDir, keyDir string, c *testclock.Clock, src string, ro bool) (*harness, *dnssec.Manager) {
	m := dnssec.NewManager(dnssec.Options{Store: dnssec.Store{Dir: keyDir}, Now: c.Now, ReadOnly: ro})
	h := newHarnessSrc(t, stateDir, src, func(o *Options, cfg *resolver.Config) {
		if strings.Contains(src, "dnssec:") {
			err := m.Sync([]dnssec.ZoneConfig{{Origin: "t.test."}})
			if !ro {
				require.NoError(t, err)
			}
		}
		o.Signer = m
		cfg.Signer = resolver.NewSigner(m)
	})
	return h, m
}

// secondary is what a stock secondary holds: a serial and records
// (the SOA excluded).
type secondary struct {
	t      *testing.T
	serial uint32
	have   map[string]bool
}

func (s *secondary) axfr(h *harness) {
	rrs, err := h.xfr("t.test.", dns.TypeAXFR, 0, keyName, dns.HmacSHA256, keySecret)
	require.NoError(s.t, err)
	s.serial = rrs[0].(*dns.SOA).Serial
	s.have = map[string]bool{}
	for _, rr := range rrs[1 : len(rrs)-1] {
		s.have[rr.String()] = true
	}
}

// ixfr applies an IXFR from s.serial, checking each deletion is of a
// record held. It returns false if the answer was a full transfer.
func (s *secondary) ixfr(h *harness) (incremental bool) {
	t := s.t
	t.Helper()
	rrs, err := h.xfr("t.test.", dns.TypeIXFR, s.serial, keyName, dns.HmacSHA256, keySecret)
	require.NoError(t, err)
	newSerial := rrs[0].(*dns.SOA).Serial
	if len(rrs) == 1 {
		return true
	}
	if second, ok := rrs[1].(*dns.SOA); !ok || second.Serial != s.serial {
		// AXFR-style
		s.serial = newSerial
		s.have = map[string]bool{}
		for _, rr := range rrs[1 : len(rrs)-1] {
			s.have[rr.String()] = true
		}
		return false
	}
	require.True(t, serialAfter(newSerial, s.serial), "IXFR to %d from %d: not forward", newSerial, s.serial)
	adding := true
	for _, rr := range rrs[1 : len(rrs)-1] {
		if _, ok := rr.(*dns.SOA); ok {
			adding = !adding
			continue
		}
		if adding {
			require.False(t, s.have[rr.String()], "IXFR adds a record already held: %v", rr)
			s.have[rr.String()] = true
			continue
		}
		require.True(t, s.have[rr.String()], "IXFR deletes a record not held: %v", rr)
		delete(s.have, rr.String())
	}
	s.serial = newSerial
	return true
}

// equalsAXFR checks s holds what an AXFR gives now.
func (s *secondary) equalsAXFR(h *harness, msg string) {
	t := s.t
	t.Helper()
	o := &secondary{t: t}
	o.axfr(h)
	require.Equal(t, o.serial, s.serial, "%s: serial", msg)
	require.Equal(t, sortedKeys(o.have), sortedKeys(s.have), "%s: content after IXFR != AXFR", msg)
}

func sortedKeys(m map[string]bool) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

func notifySrc(h *harness, src string) string {
	return strings.Replace(src, "NOTIFY", `"`+h.set.Load().Zone("t.test.").Transfer.Notify[0].String()+`"`, 1)
}

func waitSerial(t *testing.T, h *harness, want uint32) {
	t.Helper()
	require.Eventually(t, func() bool { s, _ := h.srv.Serial("t.test."); return s == want && h.srv.Built() == h.set.Load() },
		5*time.Second, 10*time.Millisecond, "serial %d", want)
}

// TestRestartSerialOnlyBump: geodns stopped, the zone's serial bumped
// (nothing else), restarted within the same export window: the IXFR from
// the secondary's serial must swap the SOA's RRSIG.
func TestRestartSerialOnlyBump(t *testing.T) {
	stateDir, keyDir := t.TempDir(), t.TempDir()
	c := testclock.New(time.Now())
	h, _ := signedHarnessRO(t, stateDir, keyDir, c, signedSrc, false)
	sec := &secondary{t: t}
	sec.axfr(h)
	require.Equal(t, uint32(100), sec.serial)

	h2, _ := signedHarnessRO(t, stateDir, keyDir, c, strings.Replace(signedSrc, "serial: 100", "serial: 101", 1), false)
	waitSerial(t, h2, 101)
	require.True(t, sec.ixfr(h2), "incremental")
	sec.equalsAXFR(h2, "after restart with a serial-only bump")
}

// TestSignedToUnsigned: dnssec: removed. The IXFR must delete every
// signature, the SOA's too.
func TestSignedToUnsigned(t *testing.T) {
	stateDir, keyDir := t.TempDir(), t.TempDir()
	c := testclock.New(time.Now())
	h, m := signedHarnessRO(t, stateDir, keyDir, c, signedSrc, false)
	sec := &secondary{t: t}
	sec.axfr(h)
	// dnssec: removed, as main.go does it: signer first, then transfers.
	require.NoError(t, m.Sync(nil))
	h.load(notifySrc(h, strings.Replace(zoneSrc, "serial: 100", "serial: 101", 1)))
	waitSerial(t, h, 101)
	sec.ixfr(h)
	sec.equalsAXFR(h, "signed -> unsigned")

	// And back: unsigned -> signed.
	require.NoError(t, m.Sync([]dnssec.ZoneConfig{{Origin: "t.test."}}))
	h.load(notifySrc(h, strings.Replace(signedSrc, "serial: 100", "serial: 102", 1)))
	waitSerial(t, h, 102)
	sec.ixfr(h)
	sec.equalsAXFR(h, "unsigned -> signed")
}

// exportedPastZoneSerial serves signedSrc with its keys in keyDir and
// moves the signing window once: the exported serial is 101, past the
// zone's own 100.
func exportedPastZoneSerial(t *testing.T) (h *harness, stateDir, keyDir string, c *testclock.Clock) {
	stateDir, keyDir = t.TempDir(), t.TempDir()
	c = testclock.New(time.Now())
	h, _ = signedHarnessRO(t, stateDir, keyDir, c, signedSrc, false)
	c.Add(7 * 24 * time.Hour)
	h.srv.Changed(nil)
	waitSerial(t, h, 101)
	return h, stateDir, keyDir, c
}

// TestSignerLostAtRestart: the exported serial moved past the zone's
// own (a window move); after a restart where the keys cannot be loaded
// (read-only key directory without the file, as a follow: node before
// they arrive), the exported serial must not go back.
func TestSignerLostAtRestart(t *testing.T) {
	_, stateDir, _, c := exportedPastZoneSerial(t)

	h2, _ := signedHarnessRO(t, stateDir, t.TempDir(), c, signedSrc, true)
	s, ok := h2.srv.Serial("t.test.")
	require.True(t, !ok || serialAfter(s, 101) || s == 101, "exported serial went back from 101 to %d", s)
	r, err := dns.Exchange(new(dns.Msg).SetQuestion("t.test.", dns.TypeSOA), h2.addr)
	require.NoError(t, err)
	t.Logf("view: %v; SOA answer serial %d", ok, r.Answer[0].(*dns.SOA).Serial)
}

// TestWindowMovesAndEdits: edits and window moves interleaved, each
// IXFR applied; the secondary ends as the AXFR.
func TestWindowMovesAndEdits(t *testing.T) {
	stateDir, keyDir := t.TempDir(), t.TempDir()
	c := testclock.New(time.Now())
	h, _ := signedHarnessRO(t, stateDir, keyDir, c, signedSrc, false)
	sec := &secondary{t: t}
	sec.axfr(h)
	serial := 100
	for i := 0; i < 6; i++ {
		if i%2 == 0 {
			c.Add(7 * 24 * time.Hour)
			h.srv.Changed(nil)
		} else {
			src := strings.Replace(signedSrc, "serial: 100", "serial: 100", 1)
			src = strings.Replace(src, "ns1: {A: [192.0.2.53]}", "ns1: {A: [192.0.2."+string(rune('0'+i))+"]}", 1)
			h.load(notifySrc(h, src))
		}
		serial++
		waitSerial(t, h, uint32(serial))
		require.True(t, sec.ixfr(h))
		sec.equalsAXFR(h, "step")
	}
}

// TestReaddSigned: a signed zone removed and added back (keys kept)
// with only its serial bumped: the IXFR swaps the SOA's RRSIG.
func TestReaddSigned(t *testing.T) {
	stateDir, keyDir := t.TempDir(), t.TempDir()
	c := testclock.New(time.Now())
	h, m := signedHarnessRO(t, stateDir, keyDir, c, signedSrc, false)
	sec := &secondary{t: t}
	sec.axfr(h)
	src := notifySrc(h, signedSrc)
	require.NoError(t, m.Sync(nil))
	h.set.Store(h.set.Load().Without("t.test."))
	h.srv.Changed(nil)
	require.Eventually(t, func() bool { _, ok := h.srv.Serial("t.test."); return !ok }, 5*time.Second, 10*time.Millisecond)
	require.NoError(t, m.Sync([]dnssec.ZoneConfig{{Origin: "t.test."}}))
	h.load(strings.Replace(src, "serial: 100", "serial: 101", 1))
	waitSerial(t, h, 101)
	require.True(t, sec.ixfr(h))
	sec.equalsAXFR(h, "re-added")
}

type failingSigner struct {
	*dnssec.Manager
	calls atomic.Int32
}

func (f *failingSigner) Export(origin string, soa *dns.SOA, rrs []dns.RR) ([]dns.RR, func(*dns.SOA) []dns.RR, error) {
	f.calls.Add(1)
	return nil, nil, errors.New("signer broken")
}

// TestFailingSignerRetriedEveryPoll: a signer whose Export fails is not
// called (and logged) again at every 200 ms poll (it was: 10 calls in 2 s).
func TestFailingSignerRetriedEveryPoll(t *testing.T) {
	c := testclock.New(time.Now())
	m := dnssec.NewManager(dnssec.Options{Store: dnssec.Store{Dir: t.TempDir()}, Now: c.Now})
	f := &failingSigner{Manager: m}
	h := newHarnessSrc(t, t.TempDir(), signedSrc, func(o *Options, cfg *resolver.Config) {
		require.NoError(t, m.Sync([]dnssec.ZoneConfig{{Origin: "t.test."}}))
		o.Signer = f
		cfg.Signer = resolver.NewSigner(m)
	})
	_ = h
	n0 := f.calls.Load()
	time.Sleep(2 * time.Second)
	t.Logf("Export calls in 2 s with no change: %d", f.calls.Load()-n0)
	require.LessOrEqual(t, f.calls.Load()-n0, int32(1))
}

type slowSigner struct {
	*dnssec.Manager
	delay atomic.Int64
}

func (f *slowSigner) Export(origin string, soa *dns.SOA, rrs []dns.RR) ([]dns.RR, func(*dns.SOA) []dns.RR, error) {
	time.Sleep(time.Duration(f.delay.Load())) // a big zone
	return f.Manager.Export(origin, soa, rrs)
}

// TestPatchedSOAStaleSigs: while the views are being built (a big
// signed zone's Export takes seconds), a zone whose SOA fields changed is
// answered with its new SOA under the old exported serial and the old
// exported SOA's RRSIG: a signature that does not verify.
func TestPatchedSOAStaleSigs(t *testing.T) {
	c := testclock.New(time.Now())
	m := dnssec.NewManager(dnssec.Options{Store: dnssec.Store{Dir: t.TempDir()}, Now: c.Now})
	f := &slowSigner{Manager: m}
	h := newHarnessSrc(t, t.TempDir(), signedSrc, func(o *Options, cfg *resolver.Config) {
		require.NoError(t, m.Sync([]dnssec.ZoneConfig{{Origin: "t.test."}}))
		o.Signer = f
		cfg.Signer = resolver.NewSigner(m)
	})
	c.Add(7 * 24 * time.Hour) // the window moves: exported 101, the zone's own 100
	h.srv.Changed(nil)
	waitSerial(t, h, 101)
	keys, _ := m.Apex("t.test.", dns.TypeDNSKEY)

	f.delay.Store(int64(2 * time.Second))
	// An edit of the SOA's expire (or refresh, negative TTL...) and a serial bump.
	h.load(notifySrc(h, strings.Replace(strings.Replace(signedSrc, "serial: 100", "serial: 100, expire: 1209601", 1), "ns1: {A: [192.0.2.53]}", "ns1: {A: [192.0.2.54]}", 1)))
	time.Sleep(100 * time.Millisecond)
	q := new(dns.Msg).SetQuestion("t.test.", dns.TypeSOA)
	q.SetEdns0(1232, true)
	r, err := dns.Exchange(q, h.addr)
	require.NoError(t, err)
	var soa *dns.SOA
	var sig *dns.RRSIG
	for _, rr := range r.Answer {
		switch x := rr.(type) {
		case *dns.SOA:
			soa = x
		case *dns.RRSIG:
			sig = x
		}
	}
	require.NotNil(t, sig)
	var key *dns.DNSKEY
	for _, k := range keys {
		if k.(*dns.DNSKEY).KeyTag() == sig.KeyTag {
			key = k.(*dns.DNSKEY)
		}
	}
	t.Logf("answer: %v", soa)
	require.NoError(t, sig.Verify(key, []dns.RR{soa}), "the SOA answer's RRSIG does not verify")
}

// TestSignerLostSerialReused: as TestSignerLostAtRestart, then the
// keys come back in a later window: the serial the secondaries hold must
// not name another content.
func TestSignerLostSerialReused(t *testing.T) {
	h, stateDir, keyDir, c := exportedPastZoneSerial(t)
	sec := &secondary{t: t}
	sec.axfr(h)

	// Restart with the key file away (a follow: node, a volume not yet there).
	files, _ := filepath.Glob(filepath.Join(keyDir, "*"))
	require.NotEmpty(t, files)
	aside := t.TempDir()
	for _, f := range files {
		require.NoError(t, os.Rename(f, filepath.Join(aside, filepath.Base(f))))
	}
	h2, m2 := signedHarnessRO(t, stateDir, keyDir, c, signedSrc, true)
	s, ok := h2.srv.Serial("t.test.")
	t.Logf("restarted without keys: view %v, serial %d", ok, s)
	// A week later the keys are back.
	c.Add(7 * 24 * time.Hour)
	for _, f := range files {
		require.NoError(t, os.Rename(filepath.Join(aside, filepath.Base(f)), f))
	}
	require.NoError(t, m2.Sync([]dnssec.ZoneConfig{{Origin: "t.test."}}))
	h2.srv.Changed(nil)
	require.Eventually(t, func() bool { _, ok := m2.ExportStamp("t.test."); return ok }, time.Second, 10*time.Millisecond)
	time.Sleep(500 * time.Millisecond)
	o := &secondary{t: t}
	o.axfr(h2)
	t.Logf("keys back: serial %d (the secondary holds %d)", o.serial, sec.serial)
	if o.serial == sec.serial {
		require.Equal(t, sortedKeys(sec.have), sortedKeys(o.have), "serial %d names two contents", o.serial)
	}
	require.True(t, serialAfter(o.serial, sec.serial) || o.serial == sec.serial, "serial went back")
	sec.ixfr(h2)
	sec.equalsAXFR(h2, "after the keys came back")
}

// TestHeldZoneNotRebuiltEveryPoll: a signed zone held back (its signer
// has no keys, its serial behind the exported one) is looked at again
// when the zone or its signing changes, not at every 200 ms poll, which
// rebuilt and published the whole view map five times a second.
func TestHeldZoneNotRebuiltEveryPoll(t *testing.T) {
	_, stateDir, _, c := exportedPastZoneSerial(t)

	h2, _ := signedHarnessRO(t, stateDir, t.TempDir(), c, signedSrc, true) // no keys
	before := h2.srv.views.Load()
	time.Sleep(time.Second)
	require.Same(t, before, h2.srv.views.Load(), "the views were rebuilt with nothing changed")
}
