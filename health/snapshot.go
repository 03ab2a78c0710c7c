package health

import (
	"time"

	"github.com/geodns/geodns/zones"
)

// State is one probe's state in a Table.
type State struct {
	// Up is the probe's state after rise/fall; a probe is up until it
	// fails (or its persisted state says down).
	Up bool
	// Back is when it last went from down to up: a return, which routing
	// ramps. Zero: never (as far as this process and the state file know).
	Back time.Time
}

// Table is the state of every probe at one moment, dense: States is
// indexed by probe number, which the manager assigns each distinct probe
// (by zones.Probe.Key) when it learns a zone set. It is immutable and
// safe for concurrent use (States must not be modified); a reader loads
// one and reads a whole decision (or a whole round of plans) from it.
type Table struct {
	States    []State
	nums      map[*zones.Probe]int32
	byKey     map[string]int32 // the same numbers by probe key, for probes of a set not learnt yet
	numbering uint64           // changes with nums
	gen       uint64
	last      time.Time // the latest Back
	ready     bool
}

// Num returns the number of an endpoint's probe (its index in States),
// or -1 for nil or a probe the manager does not run. A probe of a newer
// zone set than the manager has learnt (queries see a reloaded set a
// moment before health does) is found by its key: it is the same probe.
// Numbers hold for every table with the same Numbering: a reader resolves
// them once per set.
func (t *Table) Num(p *zones.Probe) int32 {
	if t == nil || p == nil {
		return -1
	}
	if n, ok := t.nums[p]; ok {
		return n
	}
	if n, ok := t.byKey[p.Key]; ok {
		return n
	}
	return -1
}

// Numbering names the numbers the table's States follow: it changes when
// the manager learns a new zone set, and only then.
func (t *Table) Numbering() uint64 {
	if t == nil {
		return 0
	}
	return t.numbering
}

// Probe returns the state of p; up when the table has no such probe
// (no probe, or one the manager has not learnt yet).
func (t *Table) Probe(p *zones.Probe) State {
	if n := t.Num(p); n >= 0 && int(n) < len(t.States) {
		return t.States[n]
	}
	return State{Up: true}
}

// Version grows with every table the manager publishes.
func (t *Table) Version() uint64 {
	if t == nil {
		return 0
	}
	return t.gen
}

// LastReturn is the latest Back of any probe.
func (t *Table) LastReturn() time.Time {
	if t == nil {
		return time.Time{}
	}
	return t.last
}

// Ready reports whether every probe has had its first result (once true,
// it stays true).
func (t *Table) Ready() bool { return t != nil && t.ready }

func latest(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}
