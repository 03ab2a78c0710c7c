package resolver

import (
	"fmt"
	"net/netip"
	"testing"
	"time"

	"github.com/miekg/dns"
	"github.com/stretchr/testify/require"
)

func TestRRLAccounting(t *testing.T) {
	r := newRRL(RRLConfig{ResponsesPerSecond: 5, Slip: 2, Window: 2 * time.Second}, nil)
	h := newTestHandler(t, Config{})
	answer := h.Answer(new(dns.Msg).SetQuestion("www.example.net.", dns.TypeA), testClient, false)
	nx := h.Answer(new(dns.Msg).SetQuestion("nope.example.net.", dns.TypeA), testClient, false)
	nx2 := h.Answer(new(dns.Msg).SetQuestion("other.example.net.", dns.TypeAAAA), testClient, false)
	attacker, neighbour, other := netip.MustParseAddr("203.0.113.5"), netip.MustParseAddr("203.0.113.77"), netip.MustParseAddr("198.51.100.9")

	now := time.Unix(1700000000, 0)
	count := func(client netip.Addr, m *dns.Msg, n int, step time.Duration) (sent, slipped, dropped int) {
		for range n {
			switch r.check(client, r.class(m), now) {
			case rrlSend:
				sent++
			case rrlSlip:
				slipped++
			case rrlDrop:
				dropped++
			}
			now = now.Add(step)
		}
		return
	}
	// A burst of 100 within a moment: 5 go out, the rest alternate slip/drop.
	sent, slipped, dropped := count(attacker, answer, 100, 0)
	require.Equal(t, 5, sent)
	require.Equal(t, 47, slipped, "slip 2: every second limited response (2nd, 4th, ... 94th) is truncated")
	require.Equal(t, 48, dropped)

	// Another client network, same name: its own account.
	sent, _, _ = count(other, answer, 5, 0)
	require.Equal(t, 5, sent)
	// The attacker's /24 neighbour shares the account (ipv4_prefix 24).
	require.NotEqual(t, rrlSend, r.check(neighbour, r.class(answer), now))
	// NXDOMAINs for any name in the zone share one account.
	sent, _, _ = count(other, nx, 5, 0)
	require.Equal(t, 5, sent)
	require.NotEqual(t, rrlSend, r.check(other, r.class(nx2), now), "NXDOMAIN is accounted per zone, not per name")

	// Debt is bounded by the window: after it passes (plus a second of
	// credit), the account sends again at its rate.
	now = now.Add(3 * time.Second)
	sent, _, _ = count(attacker, answer, 10, 200*time.Millisecond) // 5/s: one per 200 ms is within rate
	require.Equal(t, 10, sent)
}

func TestRRLOff(t *testing.T) {
	require.Nil(t, newRRL(RRLConfig{}, nil))
}

// BenchmarkRRLCheck measures one account's check: the clock read, the
// slot's hash and its compare-and-swap; and a cache hit's, without the
// clock read.
func BenchmarkRRLCheck(b *testing.B) {
	r := newRRL(RRLConfig{ResponsesPerSecond: 1 << 30}, nil)
	c := rrlClass{kind: kindAnswer, hash: 12345}
	for _, client := range []netip.Addr{netip.MustParseAddr("198.51.100.7"), netip.MustParseAddr("2001:db8::7")} {
		b.Run(map[bool]string{true: "v4", false: "v6"}[client.Is4()], func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if r.check(client, c, time.Now()) != rrlSend {
					b.Fatal("limited")
				}
			}
		})
	}
	b.Run("lazy", func(b *testing.B) { // a cache hit's: a recent clock reading
		client := netip.MustParseAddr("198.51.100.7")
		b.ReportAllocs()
		for b.Loop() {
			if r.checkLazy(client, c, time.Now, false) != rrlSend {
				b.Fatal("limited")
			}
		}
	})
	b.Run("clock", func(b *testing.B) {
		for b.Loop() {
			_ = time.Since(r.base)
		}
	})
}

// TestRRLLazyClock: a cache hit's check decides on a recent reading of
// the clock, and reads the clock before limiting: an account that has
// earned credit since the reading is sent, one that has not is limited.
func TestRRLLazyClock(t *testing.T) {
	r := newRRL(RRLConfig{ResponsesPerSecond: 5, Slip: -1}, nil)
	now := time.Unix(1_800_000_000, 0)
	clock := func() time.Time { return now }
	c := rrlClass{kind: kindAnswer, hash: 42}
	client := netip.MustParseAddr("198.51.100.7")
	for i := range 5 {
		require.Equal(t, rrlSend, r.checkLazy(client, c, clock, i == 0), "response %d within the rate", i)
	}
	require.Equal(t, rrlDrop, r.checkLazy(client, c, clock, false), "over the rate")
	now = now.Add(time.Second) // the reading is now a second stale
	for i := range 4 {         // a second's credit, less the limited response's debt (as BIND)
		require.Equal(t, rrlSend, r.checkLazy(client, c, clock, false), "a second later: credit again (%d)", i)
	}
	require.Equal(t, rrlDrop, r.checkLazy(client, c, clock, false))
}

// TestRRLWildcardIsOneClass: answers synthesized from a wildcard are
// accounted to the wildcard, as BIND does, so a client asking random names
// below it is limited as one asking one name; a name that exists keeps
// its own account.
func TestRRLWildcardIsOneClass(t *testing.T) {
	h := newTestHandler(t, Config{RRL: RRLConfig{ResponsesPerSecond: 5, Slip: -1, Window: 2 * time.Second}})
	now := time.Unix(1_800_000_000, 0)
	h.now = func() time.Time { return now }
	client := netip.MustParseAddr("203.0.113.5")
	buf := make([]byte, 0, 4096)
	ask := func(name string) bool {
		wire, err := new(dns.Msg).SetQuestion(name, dns.TypeA).Pack()
		require.NoError(t, err)
		return h.ServeWire(wire, client, false, buf) != nil
	}
	sent := 0
	for i := range 50 {
		if ask(fmt.Sprintf("r%d.wild.example.net.", i)) {
			sent++
		}
	}
	require.Equal(t, 5, sent, "50 random names below one wildcard, in one moment")
	require.True(t, ask("www.example.net."), "an existing name has its own account")
}

// TestRRLSlipOffStaysLimited: with slip off (-1) a flood stays limited.
// The count of limited responses, kept for slip in 4 bits, used to grow
// without bound there and carry into the account's tag: after 16 drops the
// account was no longer recognised and started again with full credit,
// letting 5 of every 21 responses out.
func TestRRLSlipOffStaysLimited(t *testing.T) {
	r := newRRL(RRLConfig{ResponsesPerSecond: 5, Slip: -1, Window: 2 * time.Second}, nil)
	now := time.Unix(1_800_000_000, 0)
	client := netip.MustParseAddr("203.0.113.5")
	// Several classes: the carry showed only where the tag's lowest bit
	// was clear.
	for hash := range uint64(8) {
		c := rrlClass{kind: kindAnswer, hash: hash}
		sent := 0
		for range 200 {
			if r.check(client, c, now) == rrlSend {
				sent++
			}
		}
		require.Equal(t, 5, sent, "class %d: 200 responses in one moment at 5/s", hash)
	}
}
