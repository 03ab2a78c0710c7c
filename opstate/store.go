package opstate

// Store holds the operator state and publishes it. Implementations are
// safe for concurrent use; the States they return are immutable.
type Store interface {
	// Load returns the current state, never nil; it does not block (an
	// atomic load), so the router may call it whenever it plans.
	Load() *State
	// Apply makes c durable and then current, and returns the new state.
	// An error means the change is not made: ErrBadOverride or ErrBadDial
	// for an invalid change, ErrNotSaved (wrapped) when it could not be
	// made durable. Changes are applied one at a time, each to the last
	// one's result.
	Apply(c Change) (*State, error)
	// Watch registers f, called with each new state after it is current
	// (from Apply, or for a shared store a change made elsewhere). f must
	// only note the change; it must not block or call Apply.
	Watch(f func(*State))
	// Err returns why the last write failed, or nil when it succeeded (or
	// there is nothing to write to): the server is not ready meanwhile.
	Err() error
}
