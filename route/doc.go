// Package route owns the routing decision: which endpoints a service answers
// a client with. It applies the service's rules, ranks sites by distance
// from the client's location, skips what the health table (package
// health) and the operator state (package opstate) put down, shapes
// traffic (dials, return ramps and spillover by spare capacity, decided by
// a stable hash of the client network), applies the all-down policy, and
// says how wide a client network the decision holds for (the ECS scope).
package route
