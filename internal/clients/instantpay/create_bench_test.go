package instantpay_test

import (
	"context"
	"testing"

	"github.com/contactrelay/contactrelay/internal/sandbox"
)

// BenchmarkCreate measures one create call against a stand-in on the
// loopback (the stand-in's own work included): the request, the exchange
// and the reply's reading.
func BenchmarkCreate(b *testing.B) {
	c := newClient(b, newStandIn(b, sandbox.Reply(200, successReply)).URL)
	ctx := context.Background()
	cmd := testCommand()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := c.Create(ctx, cmd); err != nil {
			b.Fatal(err)
		}
	}
}
