package handlers

import (
	"context"
	"sync/atomic"
	"time"
)

// deadlineGrains is how many slices a timeout is cut into: operations
// begun within one slice share a deadline (see deadlines).
const deadlineGrains = 64

// deadlines hands out the contexts that bound the handler's record reads
// and writes and its provider calls: each keeps the values of the
// delivery's context (its span) but not its cancellation, so that a write
// or call under way when shutdown begins finishes, and ends at a deadline
// at most timeout away and more than timeout less timeout/64 away.
//
// One timer serves every operation begun within the same 1/64 of the
// timeout: the deadline is rounded down to a multiple of that grain, and
// its context is shared. A context.WithTimeout over a
// context.WithoutCancel per operation cost about five allocations (the
// detached parent, the timer context, its timer and closure, its done
// channel); this costs one. A shared context is never cancelled but by its
// deadline, which also releases its timer. Safe for concurrent use.
type deadlines struct {
	timeout time.Duration
	grain   int64 // nanoseconds; 0 when the timeout is too short to share
	cur     atomic.Pointer[sharedDeadline]
}

// sharedDeadline is one deadline's context, shared by the operations begun
// within one grain.
type sharedDeadline struct {
	at     int64 // Unix nanoseconds, a multiple of the grain
	ctx    context.Context
	cancel context.CancelFunc // called by nobody: the deadline ends it
}

func newDeadlines(timeout time.Duration) *deadlines {
	return &deadlines{timeout: timeout, grain: int64(timeout / deadlineGrains)}
}

// context returns a context with ctx's values, none of its cancellation,
// and a deadline at most the timeout from now. The CancelFunc releases
// what the context alone holds; it must be called, as context.WithTimeout's.
func (d *deadlines) context(ctx context.Context) (context.Context, context.CancelFunc) {
	if d.grain <= 0 {
		return context.WithTimeout(context.WithoutCancel(ctx), d.timeout)
	}
	at := time.Now().Add(d.timeout).UnixNano()
	at -= at % d.grain
	s := d.cur.Load()
	if s == nil || s.at != at {
		s = d.share(s, at)
	}
	return &detached{Context: s.ctx, values: ctx}, noCancel
}

// share makes the shared context of deadline at, and keeps it for the
// operations that follow unless a later one is kept meanwhile.
func (d *deadlines) share(old *sharedDeadline, at int64) *sharedDeadline {
	ctx, cancel := context.WithDeadline(context.Background(), time.Unix(0, at))
	s := &sharedDeadline{at: at, ctx: ctx, cancel: cancel}
	for old == nil || old.at < at {
		if d.cur.CompareAndSwap(old, s) {
			break
		}
		old = d.cur.Load()
	}
	return s
}

func noCancel() {}

// detached is a context with the values of a delivery's context and the
// deadline, done channel and error of a shared deadline's context.
// Contexts derived from it (net/http's, per request) are registered with
// the shared one, whose cancellation they see; the delivery's
// cancellation does not reach them.
type detached struct {
	context.Context // the shared deadline's
	values          context.Context
}

// Value returns the shared context's value for key (only the context
// package's own key has one: it ties derived contexts to the shared
// deadline, and answers context.Cause), else the delivery's.
func (c *detached) Value(key any) any {
	if v := c.Context.Value(key); v != nil {
		return v
	}
	return c.values.Value(key)
}
