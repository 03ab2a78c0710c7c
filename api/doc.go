// Package api owns the HTTP side of geodns: Prometheus metrics, liveness
// and readiness, the JSON status, operator overrides (drains) behind a
// bearer token, and explain, which the command line shares.
package api
