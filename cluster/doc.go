// Package cluster makes a set of geodns nodes (an NS set) act as one, on
// etcd: one session per node, the live node list, operator state shared
// through etcd (OperatorStore), one serial for one zone content
// (Serials), and what each node serves published so drift shows
// (Reports). It never sits on the query path: everything it learns is
// applied to the same immutable snapshots a single node builds.
//
// # Key layout
//
// Every key is under the configured prefix P (default /geodns):
//
//	P/nodes/<node>            {node, region, version, address, started}: the
//	                          node's registration, under its lease (gone
//	                          within one lease TTL of the node's death)
//	P/report/<node>           what the node serves: applied operator-state
//	                          revision, zones' serials and content hashes,
//	                          GeoIP database hashes; under its lease
//	P/gone/<node>             {report, state, since}: a node no longer live,
//	                          "lost" (its lease lapsed; recorded by the
//	                          first live node to see its report go) or
//	                          "left" (it stopped); under a lease of its own
//	                          of 24 h, never kept alive; deleted when the
//	                          node is back
//	P/generation              a random value, put by the first node to find
//	                          it missing: a different one after a node
//	                          reconnects means etcd's data was rebuilt
//	                          (Cluster.checkGeneration)
//	P/operator                the operator state (drains, forces, dials) as
//	                          the state file's JSON; changed only by a
//	                          transaction on its mod revision
//	P/serials/<zone>/last     the newest serial given to the zone
//	P/serials/<zone>/<hash>   the serial of one content (sha256 hex) of the
//	                          zone, set at the content's first appearance
//	P/dnssec/<zone>           the zone's DNSSEC keys (the key file's JSON),
//	                          sealed with AES-256-GCM under the set's
//	                          secret; written by a transaction on its mod
//	                          revision (KeyStore, keys.go)
//	P/votes/<node>/<id>       the node's health vote on one probe (id:
//	                          health.VoteID), "u|d <since ms> <back ms>";
//	                          under its lease (Votes, votes.go)
//
// # Seams
//
// A Cluster is built with New and runs its background work in Run(ctx):
// the lease and its keep-alives, re-registering on a new lease, and the
// node list. Other parts use:
//
//   - Client(): the etcd client, for their own reads, writes and watches;
//     Key(path) names a key under the prefix, Self() this node, TTL() and
//     Timeout() the lease TTL and the per-request bound;
//   - Lease(): the current lease (0 while there is none) and a channel
//     closed when it is lost; OnSession registers work to run (and re-run)
//     under each new lease, with a context that ends with the lease;
//   - Nodes() and NodesChanged(): the live nodes, and a channel closed at
//     the next change of that list;
//   - Mirror(ctx, prefix, f): a prefix kept in step by a watch, from its
//     last revision on reconnect, and by a full read (Update.Reset) after
//     a compaction; the building block of every view above;
//   - Connected() and Stale(): whether the node has the shared view now
//     (its lease's keep-alive answered within the TTL), and since when it
//     has not.
//
// OperatorStore (operator.go), Serials (serials.go), Reports (report.go)
// and KeyStore (keys.go) are built on these; cmd/geodns/cluster.go wires them.
//
// # Failures
//
// Without etcd a node keeps serving what it last saw (and, for operator
// state, what it persisted locally): no part ever falls back to "no
// drains" or "everything up" because etcd is gone. docs/cluster.md tells
// what happens in each failure.
package cluster
