// Package zones owns zone data: it decodes <zone>.yaml files and RFC 1035
// master files, validates them in one pass that reports every problem with
// its file:line:col, compiles them into immutable snapshots that answer
// lookups without locks, and watches a directory to swap snapshots in
// atomically when files change.
package zones
