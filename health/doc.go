// Package health owns endpoint state: it runs the probes (http, https, tcp,
// dns, static) on a jittered schedule with bounded concurrency, turns their
// results into up/down with rise/fall, applies operator overrides, persists
// both, and publishes an immutable snapshot that the query path reads
// without locks.
package health
