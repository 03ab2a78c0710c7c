// Package dnssec signs geodns's zones: keys and their storage, RRset
// signatures with a cache bounded in bytes, compact denial of existence
// (RFC 9824), DS records, and key rollovers that need no operator.
//
// # Keys
//
// A zone is signed by one combined signing key (CSK, flags 257) by
// default, or by a KSK (257, signs the DNSKEY, CDS and CDNSKEY RRsets)
// and a ZSK (256, signs everything else) when Policy.Split is set.
// Algorithms: ECDSAP256SHA256 (13, the default) and ED25519 (15).
// Keys live in one JSON file per zone, mode 0600, in the key directory
// (the state directory's "dnssec" folder, or a directory shared by the
// nodes of a set): private keys in BIND's private-key format, with each
// key's role, state and the times of its events. Nodes that share the
// directory share the keys; etcd does not carry keys.
//
// # Signatures
//
// Every signature of one signing window shares its inception and
// expiration: the inception is backdated by Policy.Backdate (default 1 h)
// so that validators whose clocks run behind accept it, the expiration is
// Policy.Validity (default 14 days) after the window opened. Once less
// than Policy.Refresh (default 7 days) is left, Manager.Run opens a new
// window: it re-signs every RRset the cache holds under the new window in
// the background, then publishes it, and the generation number moves so
// that answer caches built on the old signatures are rebuilt. A key event
// (a key starting or stopping to sign, published or removed) opens a new
// window the same way.
//
// Signatures are made once per RRset content (owner, type, class, TTL,
// data) and window and kept in a cache bounded in bytes (CLOCK
// eviction): the answers of service names, one per site, are signed when
// first needed and then come from the cache; the resolver keeps the packed
// responses, signatures included, so the fast path makes none. Online
// signing (a cache miss per query) remains for what cannot be known
// ahead: names synthesized from wildcards and the denial of names that
// do not exist.
//
// # Denial of existence
//
// Compact denial (RFC 9824, "black lies"): a name that does not exist is
// answered NOERROR with one NSEC record owned by the name, whose next name
// is its immediate successor (\000.name) and whose type bitmap holds
// RRSIG, NSEC and NXNAME (128), so validators can restore NXDOMAIN; a
// query with the Compact Answers OK flag (CO) gets rcode NXDOMAIN. A name
// without the type asked (NODATA) gets the same NSEC with the types the
// name has. A delegation without DS is proven insecure by an NSEC at the
// cut listing NS, RRSIG and NSEC.
//
// # Transfers
//
// Manager.Export signs a zone for stock secondaries as a signer of master
// files would: the DNSKEY RRset, an NSEC chain over the names, an RRSIG
// over every authoritative RRset. Its signatures are deterministic and its
// window set by the clock alone, so nodes sharing keys transfer the same
// bytes (export.go).
//
// # Rollovers
//
// Timings follow RFC 7583 from the TTLs and Policy.Propagation (Dprp):
//
//   - CSK and KSK, double signature: the new key is published and signs
//     at once (next to the old one). After the DNSKEY TTL plus Dprp its
//     CDS and CDNSKEY are published (RFC 7344, RFC 8078). The parent's
//     nameservers are asked for the zone's DS until they serve the new
//     key's DS; after the parent's DS TTL plus Dprp the old key stops
//     signing and leaves the DNSKEY RRset, and the CDS/CDNSKEY RRsets go.
//   - ZSK, pre-publication: the new key is published; after the DNSKEY TTL
//     plus Dprp it signs instead of the old one; after the zone's largest
//     TTL plus Dprp the old key is removed.
//
// A key is rolled when its lifetime ends (Policy.CSKLifetime,
// KSKLifetime, ZSKLifetime) or on demand (Manager.Rollover).
package dnssec
