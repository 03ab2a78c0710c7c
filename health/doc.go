// Package health owns probe state: it runs the probes (http, https, tcp,
// dns, static) on a jittered schedule with bounded concurrency, turns their
// results into up/down with rise/fall, persists them, and publishes a
// dense, immutable Table (a slice of states indexed by probe number) that
// routing reads without locks. Operator overrides are not health: they are
// package opstate's, and health imports no routing package.
package health
