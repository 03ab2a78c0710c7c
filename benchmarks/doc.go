// Package benchmarks measures geodns: Go benchmarks of the answer path here,
// and (later) the dnsperf harness that runs whole servers side by side.
package benchmarks
