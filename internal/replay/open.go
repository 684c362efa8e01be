package replay

import (
	"context"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/contactrelay/contactrelay/contact"
	"github.com/contactrelay/contactrelay/internal/failstore"
)

// FromOpen returns open failures as failures to replay: each the newest
// failure of its command, superseded by nothing (the store holds no
// other).
func FromOpen(open []*failstore.Failure) []*Failure {
	out := make([]*Failure, len(open))
	for i, f := range open {
		out[i] = &Failure{Event: f.Event, Data: f.Data, Seq: f.Seq, Stream: failstore.Stream}
	}
	return out
}

// Select returns the store's selection for flt.
func (flt Filter) Select() failstore.Select {
	return failstore.Select{Reasons: flt.Reasons, Providers: flt.Providers, CommandID: flt.CommandID, Since: flt.Since, Until: flt.Until}
}

// Open reads the open failures flt selects from the store of open
// failures: the newest first, at most flt.Limit of them whole. Its cost is
// what is open, whatever the event history holds. It returns
// failstore.ErrNoStore when the store does not exist.
func Open(ctx context.Context, js jetstream.JetStream, flt Filter) (*Selection, []failstore.Summary, error) {
	snap, err := failstore.Load(ctx, js, flt.Select())
	if err != nil {
		return nil, nil, err
	}
	sel := &Selection{Open: true, Matched: len(snap.Failures), Read: snap.Read, ByReason: map[contact.Reason]int{}}
	for _, f := range snap.Failures {
		sel.ByReason[f.Reason]++
	}
	page := snap.Failures
	if flt.Limit > 0 && len(page) > flt.Limit {
		page = page[:flt.Limit]
	}
	whole, err := failstore.Get(ctx, js, page)
	if err != nil {
		return nil, nil, err
	}
	sel.Failures = FromOpen(whole)
	return sel, snap.Failures, nil
}
