// Package xfr lets stock secondaries (NSD, Knot, BIND) carry geodns zones:
// AXFR (RFC 5936) and IXFR (RFC 1995) out over TCP, NOTIFY (RFC 1996) on
// every change of the exported serial, TSIG (RFC 8945) on both, and a
// catalog zone (RFC 9432) listing every zone served.
//
// What a secondary gets is the zone's exported view (export.go): every
// static record as is, and each service name as one fixed answer chosen by
// the service's export: setting from the zone file alone. Health, rules,
// sites and checks never reach it, so the exported serial moves only when
// the file's exported content does, never when a backend flaps.
//
// The query path only loads the published views (an atomic pointer); a
// Run(ctx) loop builds them when the zone set changes, keeps the serials
// and the IXFR journal in the state directory, and sends NOTIFY.
package xfr
