// Package opstate owns operator state — drains, forced states and traffic
// dials — as one noun: an immutable State published through a Store, which
// makes every change durable before it is in effect (a state file now; a
// cluster store later). Routing reads the published State; it never asks
// health, and health never sees it.
package opstate
