package handlers

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/contactrelay/contactrelay/contact"
	"github.com/contactrelay/contactrelay/internal/clients/provider"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func msgFor(id string) Message {
	body := fmt.Sprintf(`{"commandId":%q,"name":"Jane","email":"jane@example.com","mobile":"9876543210","tagId":"t"}`, id)
	return Message{Body: []byte(body), Stream: "CONTACT_COMMANDS", Sequence: 1, Delivery: 1}
}

// TestCircuitBreakerOpensAndCloses runs in a synctest bubble: the circuit's
// open time passes on the bubble's clock, at once.
func TestCircuitBreakerOpensAndCloses(t *testing.T) {
	synctest.Test(t, testCircuitBreakerOpensAndCloses)
}

func testCircuitBreakerOpensAndCloses(t *testing.T) {
	var down atomic.Bool
	down.Store(true)
	p := &fakeProvider{create: func(int) (provider.Contact, error) {
		if down.Load() {
			return provider.Contact{}, transient("ISE")
		}
		return provider.Contact{ID: "ct"}, nil
	}}
	var changes []string
	var mu sync.Mutex
	h := newTestHandler(t, p, newMemStore(), func(c *Config) {
		c.MaxDeliver = 10
		c.RedeliveryDelay = time.Second
		c.Protection = map[string]Protection{"fake": {BreakerFailures: 3, BreakerOpenFor: 200 * time.Millisecond}}
		c.Hooks.CircuitChange = func(provider, from, to string) {
			mu.Lock()
			changes = append(changes, from+"→"+to)
			mu.Unlock()
		}
	})

	out := h.Decide(context.Background(), msgFor("a"))
	require.Equal(t, Retry, out.Action)
	assert.EqualValues(t, 3, p.creates.Load(), "three transient failures open the circuit")

	calls := p.creates.Load()
	out = h.Decide(context.Background(), msgFor("b"))
	assert.Equal(t, Retry, out.Action, "an open circuit sends the command back")
	assert.Equal(t, 20*time.Millisecond+time.Second, out.Delay, "after a delivery's full retry schedule")
	assert.Equal(t, calls, p.creates.Load(), "no call while the circuit is open")
	assert.Zero(t, out.Attempts, "and no attempt counted")

	down.Store(false)
	time.Sleep(250 * time.Millisecond) // past the open time, on the bubble's clock
	out = h.Decide(context.Background(), msgFor("c"))
	require.Equal(t, Ack, out.Action, "after the open time, a test call goes through")
	assert.Equal(t, contact.SubjectCreated, out.Event.Type)
	mu.Lock()
	assert.Equal(t, []string{"closed→open", "open→half-open", "half-open→closed"}, changes)
	mu.Unlock()
}

func TestCircuitIgnoresPermanentFailures(t *testing.T) {
	p := &fakeProvider{create: func(int) (provider.Contact, error) {
		return provider.Contact{}, &provider.Error{Class: provider.Permanent, Code: "RPI"}
	}}
	h := newTestHandler(t, p, newMemStore(), func(c *Config) {
		c.Protection = map[string]Protection{"fake": {BreakerFailures: 2}}
	})
	for i := range 5 {
		out := h.Decide(context.Background(), msgFor(fmt.Sprint(i)))
		require.Equal(t, Ack, out.Action)
		assert.Equal(t, contact.SubjectFailed, out.Event.Type)
	}
	assert.EqualValues(t, 5, p.creates.Load(), "refused contacts prove the provider up: the circuit stays closed")
}

func TestCircuitOpenOnLastDeliveryExhaustsWithTheLastAnswer(t *testing.T) {
	p := &fakeProvider{create: func(int) (provider.Contact, error) { return provider.Contact{}, transient("ISE") }}
	store := newMemStore()
	h := newTestHandler(t, p, store, func(c *Config) {
		c.Protection = map[string]Protection{"fake": {BreakerFailures: 2, BreakerOpenFor: time.Hour}}
	})
	m := msgFor("x")
	out := h.Decide(context.Background(), m) // opens the circuit
	require.Equal(t, Retry, out.Action)
	m.Delivery = 3 // the last
	out = h.Decide(context.Background(), m)
	require.Equal(t, Ack, out.Action)
	d := decodeData[contact.Failed](t, out.Event)
	assert.Equal(t, contact.ReasonExhausted, d.Reason)
	require.NotNil(t, d.Upstream, "the last answer, from an earlier delivery, is in the event")
	assert.Equal(t, "ISE", d.Upstream.Code)
}

// TestRateLimit runs in a synctest bubble: the limiter's waits pass on the
// bubble's clock, so the time they take is exact.
func TestRateLimit(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		p := &fakeProvider{}
		h := newTestHandler(t, p, newMemStore(), func(c *Config) {
			c.Protection = map[string]Protection{"fake": {RateLimit: 20}}
		})
		const n = 30 // a burst of 20, then 20 per second
		start := time.Now()
		var wg sync.WaitGroup
		for i := range n {
			wg.Go(func() {
				out := h.Decide(context.Background(), msgFor(fmt.Sprint(i)))
				assert.Equal(t, Ack, out.Action)
			})
		}
		wg.Wait()
		took := time.Since(start)
		assert.EqualValues(t, n, p.creates.Load())
		assert.Equal(t, 500*time.Millisecond, took, "10 calls past the burst at 20/s take 500ms")
	})
}

// TestConcurrencyCap holds every provider call until all the calls that can
// start have started: synctest.Wait returns once the others are blocked,
// waiting for a slot.
func TestConcurrencyCap(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var now, peak atomic.Int32
		release := make(chan struct{})
		p := &fakeProvider{create: func(int) (provider.Contact, error) {
			n := now.Add(1)
			defer now.Add(-1)
			for {
				p := peak.Load()
				if n <= p || peak.CompareAndSwap(p, n) {
					break
				}
			}
			<-release
			return provider.Contact{ID: "ct"}, nil
		}}
		h := newTestHandler(t, p, newMemStore(), func(c *Config) {
			c.Protection = map[string]Protection{"fake": {MaxConcurrency: 2}}
		})
		var wg sync.WaitGroup
		for i := range 10 {
			wg.Go(func() { h.Decide(context.Background(), msgFor(fmt.Sprint(i))) })
		}
		synctest.Wait()
		assert.Equal(t, int32(2), now.Load(), "MaxConcurrency calls at once, and the others wait")
		close(release)
		wg.Wait()
		assert.EqualValues(t, 10, p.creates.Load(), "every call was made in the end")
		assert.Equal(t, int32(2), peak.Load(), "never more than MaxConcurrency calls at once")
	})
}
