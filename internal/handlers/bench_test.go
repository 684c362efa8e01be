package handlers

import (
	"context"
	"fmt"
	"testing"

	"github.com/contactrelay/contactrelay/internal/clients/provider"
)

// BenchmarkDecideCreated measures the handler's own cost for a new command
// that is created at the first try: decode, validate, claim, create (a fake
// provider), and encode the outcome and its record write (which the runner
// makes). The store is in memory.
func BenchmarkDecideCreated(b *testing.B) {
	p := &fakeProvider{create: func(int) (provider.Contact, error) {
		return provider.Contact{ID: "65a1b2c3d4e5f6a7b8c9d0e1", Upstream: map[string]any{
			"contactId": "65a1b2c3d4e5f6a7b8c9d0e1", "userId": "u1", "ipayUuid": "IPAY123", "orderId": "O123",
			"environment": "LIVE", "timestamp": "2026-11-21 10:00:00",
		}}, nil
	}}
	h := newTestHandler(b, p, newMemStore(), nil)
	ctx := context.Background()
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		i++
		body := fmt.Appendf(nil, `{"commandId":"c-%d","provider":"fake","name":"Jane Doe","email":"jane%d@example.com","mobile":"+919876543210","tagId":"65a1b2c3d4e5f6a7b8c9d0e1","metadata":{"sentAt":"1234567890"}}`, i, i)
		out := h.Decide(ctx, Message{Body: body, Stream: "CONTACT_COMMANDS", Sequence: uint64(i), Delivery: 1})
		if out.Action != Ack {
			b.Fatalf("outcome %v: %v", out.Action, out.Err)
		}
	}
}
