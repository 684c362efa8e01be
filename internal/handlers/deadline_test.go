package handlers

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

type deadlineKey struct{}

// TestDeadlinesDetachAndBound holds the contexts that bound a record write
// or a provider call to what context.WithTimeout over
// context.WithoutCancel gave: the delivery's values, none of its
// cancellation, a deadline no later than the timeout, DeadlineExceeded
// once it passes, seen by contexts derived from them too.
func TestDeadlinesDetachAndBound(t *testing.T) {
	const timeout = 320 * time.Millisecond // a grain of 5ms
	d := newDeadlines(timeout)
	parent, cancelParent := context.WithCancel(context.WithValue(context.Background(), deadlineKey{}, "span"))
	before := time.Now()
	ctx, cancel := d.context(parent)
	defer cancel()

	assert.Equal(t, "span", ctx.Value(deadlineKey{}), "the delivery's values are kept")
	dl, ok := ctx.Deadline()
	require.True(t, ok, "the context has a deadline")
	assert.False(t, dl.After(time.Now().Add(timeout)), "the deadline %v is at most the timeout away", dl)
	assert.True(t, dl.After(before.Add(timeout-timeout/deadlineGrains-time.Millisecond)), "the deadline %v is less than a grain early", dl)

	derived, cancelDerived := context.WithCancel(ctx)
	defer cancelDerived()
	assert.Equal(t, "span", derived.Value(deadlineKey{}), "a derived context keeps the values")

	cancelParent()
	assert.NoError(t, ctx.Err(), "the delivery's cancellation does not reach the bound context")
	assert.NoError(t, derived.Err(), "nor a context derived from it")

	select {
	case <-derived.Done():
	case <-time.After(10 * time.Second):
		t.Fatal("a context derived from the bound one did not end at the deadline")
	}
	<-ctx.Done()
	assert.ErrorIs(t, ctx.Err(), context.DeadlineExceeded)
	assert.ErrorIs(t, derived.Err(), context.DeadlineExceeded)
	assert.True(t, errors.Is(context.Cause(ctx), context.DeadlineExceeded), "its cause is the deadline, not the delivery's")
	assert.False(t, time.Now().Before(dl), "it ended no earlier than its deadline")
}

// TestDeadlinesShareATimer: operations begun within one grain share one
// timer (one done channel); a derived context that is cancelled leaves the
// shared one alone.
func TestDeadlinesShareATimer(t *testing.T) {
	d := newDeadlines(64 * time.Second) // a grain of one second
	done := map[<-chan struct{}]bool{}
	for range 3 {
		ctx, cancel := d.context(context.Background())
		done[ctx.Done()] = true
		derived, cancelDerived := context.WithCancel(ctx)
		cancelDerived()
		assert.Error(t, derived.Err(), "the derived context is cancelled")
		assert.NoError(t, ctx.Err(), "cancelling a derived context leaves the shared deadline alone")
		cancel()
		assert.NoError(t, ctx.Err(), "the cancel func of a shared deadline ends nothing others hold")
	}
	assert.LessOrEqual(t, len(done), 2, "three operations begun at once share a timer (two at a grain's edge)")
}

// TestDeadlinesTooShortToShare: a timeout too short to cut into grains
// gets a context of its own, as before.
func TestDeadlinesTooShortToShare(t *testing.T) {
	d := newDeadlines(deadlineGrains - 1) // nanoseconds
	ctx, cancel := d.context(context.Background())
	defer cancel()
	<-ctx.Done()
	assert.ErrorIs(t, ctx.Err(), context.DeadlineExceeded)
}
