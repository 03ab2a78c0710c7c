// Package testclock is a clock that tests set and move forward, for
// signing windows, key rollovers and expirations in accelerated time.
package testclock

import (
	"sync"
	"time"
)

// Clock is a settable clock, safe for concurrent use.
type Clock struct {
	mu sync.Mutex
	t  time.Time
}

// New returns a clock that says t.
func New(t time.Time) *Clock { return &Clock{t: t} }

// Now returns the clock's time (a func() time.Time for Options.Now).
func (c *Clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

// Add moves the clock by d.
func (c *Clock) Add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}
