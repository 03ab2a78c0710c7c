// Package zones owns zone data: it decodes <zone>.yaml files and RFC 1035
// master files, validates them in one pass that reports every problem with
// its file:line:col, compiles them into immutable snapshots that answer
// lookups without locks, and watches a directory to swap snapshots in
// atomically when files change.
//
// A lookup (Zone.LookupAs) is pure: it returns the zone's own RRsets
// (shared, never to be mutated) and a Result; the resolver's one writer
// assembles the response from them and caches it packed. A Zone is one
// version: nothing in it changes after Compile, so whatever is derived
// from its RRsets — packed bytes, and the RRSIGs a DNSSEC signer makes
// (resolver.Signer is handed each RRset with its *Zone) — holds for as
// long as that *Zone is served and may be kept beside it, keyed by the
// zone and the RRset's owner and type (and, for a service name, the
// routing decision, zones.Decision).
package zones
