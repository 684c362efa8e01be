//go:build !race

package handlers

import (
	"context"
	"fmt"
	"testing"

	"github.com/contactrelay/contactrelay/internal/clients/provider"
)

// maxDecideAllocs is what deciding a new command created at the first try
// may allocate (BenchmarkDecideCreated's case): 111 before the first
// attempt was made outside the retry machinery, 105 before identifiers
// within bounds were kept without encoding each one, 96 before the
// fingerprint and the key were built in place, 81 before the span names
// were made once and the event time checked without encoding it, 75
// before metadata of plain strings was decoded without encoding/json, 72
// before a valid command was validated without the validator's walk and
// a record encoded without a slice of its generations' names, 56 before
// the record writes and the call were bounded by shared deadlines, 48
// before the outcome changed the claim's generations in place and the
// record key was digested once per delivery, 44 before reading a command
// declared errors.As's target only for a command that did not decode, 43
// before a call's span was left unstarted with the no-op tracer.
const maxDecideAllocs = 42

// TestDecideCreatedAllocations holds the handler's hot path to its
// allocations, so that a change that adds some per command is seen.
func TestDecideCreatedAllocations(t *testing.T) {
	p := &fakeProvider{create: func(int) (provider.Contact, error) {
		return provider.Contact{ID: "65a1b2c3d4e5f6a7b8c9d0e1", Upstream: map[string]any{
			"contactId": "65a1b2c3d4e5f6a7b8c9d0e1", "userId": "u1", "ipayUuid": "IPAY123", "orderId": "O123",
			"environment": "LIVE", "timestamp": "2026-11-21 10:00:00",
		}}, nil
	}}
	h := newTestHandler(t, p, newMemStore(), nil)
	ctx := context.Background()
	bodies := make([][]byte, 201)
	for i := range bodies {
		bodies[i] = fmt.Appendf(nil, `{"commandId":"c-%d","provider":"fake","name":"Jane Doe","email":"jane%d@example.com","mobile":"+919876543210","tagId":"65a1b2c3d4e5f6a7b8c9d0e1","metadata":{"sentAt":"1234567890"}}`, i, i)
	}
	i := 0
	allocs := testing.AllocsPerRun(200, func() {
		out := h.Decide(ctx, Message{Body: bodies[i], Stream: "CONTACT_COMMANDS", Sequence: uint64(i + 1), Delivery: 1})
		i++
		if out.Action != Ack {
			t.Fatalf("outcome %v: %v", out.Action, out.Err)
		}
	})
	if allocs > maxDecideAllocs {
		t.Errorf("deciding a created command took %v allocations, want at most %d", allocs, maxDecideAllocs)
	}
}

// TestDeadlinesAllocations: a bounded context costs one allocation (the
// context itself), not the five of a timer of its own.
func TestDeadlinesAllocations(t *testing.T) {
	d := newDeadlines(DefaultStoreTimeout)
	parent := context.Background()
	allocs := testing.AllocsPerRun(200, func() {
		ctx, cancel := d.context(parent)
		_ = ctx.Done()
		cancel()
	})
	if allocs > 1 {
		t.Errorf("a bounded context took %v allocations, want at most 1", allocs)
	}
}
