package resolver

import (
	"crypto/rand"
	"crypto/subtle"
	"encoding/binary"
	"net/netip"
	"time"

	"github.com/dchest/siphash"
)

// cookies makes and checks DNS server cookies (RFC 7873) in the
// interoperable form of RFC 9018: version 1, three reserved bytes, a
// timestamp, and SipHash-2-4 over the client cookie, those eight bytes and
// the client address. Servers of one anycast set that share the secret
// accept each other's cookies.
type cookies struct {
	k0, k1 uint64
}

// newCookies uses secret (16 bytes) or, if nil, a random one.
func newCookies(secret []byte) *cookies {
	if len(secret) != 16 {
		secret = make([]byte, 16)
		rand.Read(secret)
	}
	return &cookies{k0: binary.LittleEndian.Uint64(secret[:8]), k1: binary.LittleEndian.Uint64(secret[8:])}
}

// Cookie lifetimes (RFC 9018 4.3): a cookie older than an hour, or from
// more than five minutes ahead, is not valid; one older than half an hour
// is replaced in the response.
const (
	cookieMaxAge    = time.Hour
	cookieMaxFuture = 5 * time.Minute
	cookieRenew     = 30 * time.Minute
)

// server writes into out the server cookie made at ts for the client
// cookie client (8 bytes) and the client's address.
func (c *cookies) server(out *[16]byte, client []byte, ip netip.Addr, ts uint32) {
	*out = [16]byte{0: 1} // version 1; bytes 1-3 reserved, zero
	binary.BigEndian.PutUint32(out[4:8], ts)
	var buf [8 + 8 + 16]byte
	in := append(append(buf[:0], client...), out[:8]...)
	if ip = ip.Unmap(); ip.Is4() {
		a := ip.As4()
		in = append(in, a[:]...)
	} else {
		a := ip.As16()
		in = append(in, a[:]...)
	}
	binary.LittleEndian.PutUint64(out[8:], siphash.Hash(c.k0, c.k1, in))
}

// cookieStatus is what a query's COOKIE option amounted to.
type cookieStatus uint8

const (
	cookieNone      cookieStatus = iota // no option
	cookieMalformed                     // FORMERR (RFC 7873 5.2.2)
	cookieClient                        // a client cookie only, or a server cookie not ours or stale
	cookieValid                         // a server cookie we made, for this client, in date
)

// cookieLen reports whether a COOKIE option of n bytes is well formed: a
// client cookie of 8, or one with a server cookie of 8 to 32 (RFC 7873 4).
func cookieLen(n int) bool { return n == 8 || n >= 16 && n <= 40 }

// cookieReplyLen is the length of the COOKIE option we answer: the client
// cookie and our 16-byte server cookie.
const cookieReplyLen = 8 + 16

// reply writes into out the COOKIE option's data for the response to raw,
// a well-formed COOKIE option of a query from ip (cookieLen): the client
// cookie and a server cookie, the client's own while valid and fresh, else
// a new one; and returns what raw's cookie amounted to.
func (c *cookies) reply(out *[cookieReplyLen]byte, raw []byte, ip netip.Addr, now time.Time) cookieStatus {
	client, srv := raw[:8], raw[8:]
	copy(out[:8], client)
	status := cookieClient
	ts := uint32(now.Unix())
	if len(srv) == 16 && srv[0] == 1 {
		made := binary.BigEndian.Uint32(srv[4:8])
		age := time.Duration(int64(ts)-int64(made)) * time.Second
		if age <= cookieMaxAge && age >= -cookieMaxFuture {
			var want [16]byte
			c.server(&want, client, ip, made)
			if subtle.ConstantTimeCompare(srv, want[:]) == 1 {
				status = cookieValid
				if age < cookieRenew {
					copy(out[8:], srv) // still fresh: the client keeps it
					return status
				}
			}
		}
	}
	c.server((*[16]byte)(out[8:]), client, ip, ts)
	return status
}
