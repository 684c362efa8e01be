// Package fakeclock is the clock tests hand to code that takes a
// func() time.Time: it stands still until the test moves it, so that a
// test of expiry, backoff or probing reads times it chose instead of
// sleeping for them. Timing logic that waits on timers is better tested
// with testing/synctest.
package fakeclock

import (
	"sync"
	"time"
)

// Clock is a time that moves only when Advance is called. It is safe for
// concurrent use; its zero value reads the zero time.
type Clock struct {
	mu  sync.Mutex
	now time.Time
}

// New returns a Clock that reads start.
func New(start time.Time) *Clock { return &Clock{now: start} }

// Now returns the clock's time. It is the method value tests pass as a
// Now or now function: clock.Now.
func (c *Clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

// Advance moves the clock on by d (back, when d is negative).
func (c *Clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}
