package handlers

import (
	"context"
	"testing"
	"time"

	"github.com/sony/gobreaker/v2"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/contactrelay/contactrelay/contact"
	"github.com/contactrelay/contactrelay/internal/clients/provider"
	"github.com/contactrelay/contactrelay/rules"
)

func command(fields string) []byte {
	return []byte(`{"commandId":"crm-001",` + fields + `}`)
}

const jane = `"name":"Jane","email":"jane@example.com","mobile":"9876543210","tagId":"t"`

// TestClaimAfterALongGuardWait holds the provider's only slot while a
// command waits for it, for longer than a hold: the claim it then makes
// must still hold off a duplicate.
func TestClaimAfterALongGuardWait(t *testing.T) {
	store := newMemStore()
	clock := newFakeClock()
	fillerCalling, fillerRelease := make(chan struct{}), make(chan struct{})
	cmdCalling, cmdRelease := make(chan struct{}), make(chan struct{})
	p := &fakeProvider{create: func(n int) (provider.Contact, error) {
		if n == 1 {
			close(fillerCalling)
			<-fillerRelease
			return provider.Contact{ID: "filler"}, nil
		}
		close(cmdCalling)
		<-cmdRelease
		return provider.Contact{ID: "ct-1"}, nil
	}}
	h := newTestHandler(t, p, store, func(c *Config) {
		c.Now = clock.Now
		c.Protection = map[string]Protection{"fake": {MaxConcurrency: 1, BreakerFailures: 1000}}
	})
	filler := Message{Body: []byte(`{"commandId":"filler",` + jane + `}`), Delivery: 1}
	go h.Decide(context.Background(), filler)
	<-fillerCalling

	done := make(chan Decision)
	go func() { done <- h.Decide(context.Background(), msg(1)) }()
	clock.Advance(time.Minute) // the command waits a minute for the slot
	close(fillerRelease)
	<-cmdCalling
	dup := msg(2) // a redelivery reads the record before the guard
	dup.Sequence = 2
	out := h.Decide(context.Background(), dup)
	assert.Equal(t, Retry, out.Action, "a duplicate waits for the call in flight")
	close(cmdRelease)
	<-done
	assert.EqualValues(t, 2, p.creates.Load(), "the filler and the command, once each")
	assert.Zero(t, p.lookups.Load())
}

func TestRetryAfterBeyondTheBudgetFreesTheWorker(t *testing.T) {
	p := &fakeProvider{create: func(int) (provider.Contact, error) {
		return provider.Contact{}, &provider.Error{Class: provider.Transient, HTTPStatus: 503, RetryAfter: 300 * time.Second}
	}}
	h := newTestHandler(t, p, newMemStore(), func(c *Config) { c.RetryMaxElapsed = time.Second })
	start := time.Now()
	out := h.Decide(context.Background(), msg(1))
	require.Equal(t, Retry, out.Action)
	assert.Equal(t, 300*time.Second, out.Delay, "the command waits outside, as long as the provider asked")
	assert.Less(t, time.Since(start), 5*time.Second, "and the worker is free at once")
	assert.EqualValues(t, 1, p.creates.Load())
}

func TestHalfOpenCircuitSaysSo(t *testing.T) {
	trial, release := make(chan struct{}), make(chan struct{})
	p := &fakeProvider{create: func(n int) (provider.Contact, error) {
		if n == 1 {
			return provider.Contact{}, transient("ISE")
		}
		close(trial)
		<-release
		return provider.Contact{ID: "ct"}, nil
	}}
	h := newTestHandler(t, p, newMemStore(), func(c *Config) {
		c.Protection = map[string]Protection{"fake": {BreakerFailures: 1, BreakerOpenFor: 200 * time.Millisecond}}
	})
	out := h.Decide(context.Background(), msg(1)) // opens the circuit
	require.Equal(t, Retry, out.Action)
	require.Eventually(t, func() bool { return h.guards["fake"].breaker.State() == gobreaker.StateHalfOpen },
		5*time.Second, 5*time.Millisecond)
	go h.Decide(context.Background(), msg(2)) // the trial call
	<-trial
	other := Message{Body: []byte(`{"commandId":"c-2",` + jane + `}`), Delivery: 1}
	out = h.Decide(context.Background(), other)
	close(release)
	require.Equal(t, Retry, out.Action)
	assert.Contains(t, out.Err.Error(), "half-open", "it says a trial call is testing the provider")
	assert.NotContains(t, out.Err.Error(), "open until", "no time already past")
	assert.Equal(t, h.hold(), out.Delay, "and comes back once the trial call has had its time")
}

func TestAnAmbiguousLastCallIsLookedUpBeforeExhausted(t *testing.T) {
	p := &fakeProvider{
		create: func(int) (provider.Contact, error) { return provider.Contact{}, ambiguous() },
		lookup: func() (provider.Contact, bool, error) { return provider.Contact{ID: "ct-late"}, true, nil },
	}
	h := newTestHandler(t, p, newMemStore(), func(c *Config) { c.MaxDeliver = 1; c.RetryMaxElapsed = time.Nanosecond })
	out := h.Decide(context.Background(), msg(1))
	require.Equal(t, Ack, out.Action)
	assert.Equal(t, contact.SubjectCreated, out.Event.Type, "the contact the last call stored is found, not reported exhausted")
	assert.Equal(t, "ct-late", decodeData[contact.Created](t, out.Event).ContactID)
	assert.EqualValues(t, 1, p.creates.Load())
}

func TestDerivedIDForm(t *testing.T) {
	for id, want := range map[string]bool{
		"CONTACT_COMMANDS:42": true, "a-b_9:0": true,
		"crm-001": false, "replay:6f1b2c1e-4c43": false, ":42": false, "X:": false, "X:4a": false, "a.b:1": false, "x:1:2": false,
	} {
		assert.Equal(t, want, rules.DerivedID(id), id)
	}
}
