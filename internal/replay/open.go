package replay

import (
	"context"
	"math"

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
// what is open, whatever the event history holds; with a limit and at
// most a reason and a provider to select by (failstore.Select.Paged) it
// is what the page costs: the page is read back from the newest entry
// (failstore.LoadPage) and the counts come from the server
// (failstore.Count), whatever the store holds. It returns
// failstore.ErrNoStore when the store does not exist.
func Open(ctx context.Context, js jetstream.JetStream, flt Filter) (*Selection, error) {
	q := flt.Select()
	if flt.Limit > 0 && q.Paged() {
		return openPage(ctx, js, q, flt.Limit)
	}
	snap, err := failstore.Load(ctx, js, q)
	if err != nil {
		return nil, err
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
		return nil, err
	}
	sel.Failures = FromOpen(whole)
	return sel, nil
}

// openPage reads the newest page of what q selects, and counts it all
// from the server.
func openPage(ctx context.Context, js jetstream.JetStream, q failstore.Select, limit int) (*Selection, error) {
	counts, err := failstore.Count(ctx, js, q)
	if err != nil {
		return nil, err
	}
	page, err := failstore.LoadPage(ctx, js, q, limit, 0)
	if err != nil {
		return nil, err
	}
	sel := &Selection{Open: true, Read: page.Read, ByReason: counts}
	for _, n := range counts {
		sel.Matched += n
	}
	whole, err := failstore.Get(ctx, js, page.Failures)
	if err != nil {
		return nil, err
	}
	sel.Failures = FromOpen(whole)
	// A failure stored between counting and reading is shown, and
	// counted.
	sel.Matched = max(sel.Matched, len(sel.Failures))
	return sel, nil
}

// Search finds the open failures flt selects whose message or commandId,
// or whose command's name, email, mobile, companyName or a metadata
// value, contains text, ignoring case (failstore.Search): the newest
// first, at most flt.Limit of them (0: all, held in memory), reading back
// from the newest entry until it has them, and telling progress (when
// set) the entries read out of those held. sel.More tells that it stopped
// at the limit, so that more may match.
func Search(ctx context.Context, js jetstream.JetStream, flt Filter, text string, progress func(read, held uint64)) (*Selection, error) {
	limit := flt.Limit
	if limit <= 0 {
		limit = math.MaxInt32
	}
	page, err := failstore.Search(ctx, js, flt.Select(), text, limit, 0, progress)
	if err != nil {
		return nil, err
	}
	sel := &Selection{Open: true, Read: page.Read, Matched: len(page.Failures), More: page.Next != 0, ByReason: map[contact.Reason]int{}}
	for _, f := range page.Failures {
		sel.ByReason[f.Reason]++
	}
	whole, err := failstore.Get(ctx, js, page.Failures)
	if err != nil {
		return nil, err
	}
	sel.Failures = FromOpen(whole)
	return sel, nil
}
