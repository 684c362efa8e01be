package failstore

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/contactrelay/contactrelay/contact"
)

// Page is one page of the open failures a selection chooses, newest first
// by the store's sequence: entries are stored as their failures happen
// (and Rebuild stores them in the order of the event history), so that
// the order of the store is the order of time.
type Page struct {
	// Failures are the page's open failures, newest first.
	Failures []Summary
	// Next is the cursor of the page after this one (pass it as before),
	// 0 when the page read down to the oldest entry; a full page whose
	// read stopped short has one, which may turn out empty.
	Next uint64
	// Read counts the entries read for the page (their headers only).
	Read int
}

// firstWindow is how many sequences below the cursor a page reads first,
// per failure it asks for; each further read reaches four times as far.
const firstWindow = 2

// LoadPage reads a page of at most limit open failures that q selects,
// newest first, stored before sequence before (0: the newest). It reads
// back from there in narrow windows, with direct gets of the next entry
// (no consumer, whose making would count the whole stream): a run of
// removed entries costs a few gets (windows that grow fourfold, then a
// bisection to the newest entry below the run), each entry read one get,
// so that a page costs what the page and the entries above it cost, not
// what the store holds; a selective filter (one the server does not filter by)
// reads further back. A command stored twice (a writer between storing
// the newer and purging the older) is shown once, its newer entry.
func LoadPage(ctx context.Context, js jetstream.JetStream, q Select, limit int, before uint64) (*Page, error) {
	return loadPage(ctx, js, q, limit, before, nil, nil)
}

// loadPage is LoadPage, keeping only the entries keep (when set) keeps
// too, and telling progress (when set) the entries read out of those
// held after each window.
func loadPage(ctx context.Context, js jetstream.JetStream, q Select, limit int, before uint64, keep func(*Summary, []byte) bool, progress func(read, held uint64)) (*Page, error) {
	if limit <= 0 {
		return nil, errors.New("load page: the limit must be positive")
	}
	s, err := js.Stream(ctx, Stream)
	if errors.Is(err, jetstream.ErrStreamNotFound) {
		return nil, ErrNoStore
	}
	if err != nil {
		return nil, fmt.Errorf("look up stream %s: %w", Stream, err)
	}
	page := &Page{}
	state := s.CachedInfo().State
	if state.Msgs == 0 {
		return page, nil
	}
	top := state.LastSeq
	if before > 0 && before-1 < top {
		top = before - 1
	}
	first := max(state.FirstSeq, 1)
	seen := map[string]bool{}
	// One subject the server filters by; several (reasons × providers)
	// are matched here on the headers.
	filter := ""
	if subjects := q.filterSubjects(); len(subjects) == 1 && subjects[0] != Subjects {
		filter = subjects[0]
	}
	small := uint64(limit*firstWindow + 16)
	window := small
	var chunk []Summary
	for top >= first && len(page.Failures) < limit {
		start := first
		if top-first+1 > window {
			start = top - window + 1
		}
		m, err := nextDirect(ctx, js, Stream, start, filter)
		if err != nil {
			return nil, err
		}
		if m == nil || m.seq > top {
			// Nothing from start to top (removed entries): look further
			// down, four times as far.
			top, window = start-1, window*4
			continue
		}
		if top-m.seq+1 > small {
			// A wide window with entries in it: start again from its
			// newest entry, with a narrow one.
			if top, err = newestAtOrBelow(ctx, js, Stream, m.seq, top, filter); err != nil {
				return nil, err
			}
			window = small
			continue
		}
		chunk = chunk[:0]
		for m != nil && m.seq <= top {
			page.Read++
			sum := summarize(m.seq, m.subject, m.header)
			sum.Size = len(m.data)
			if q.selects(&sum) && (keep == nil || keep(&sum, m.data)) {
				chunk = append(chunk, sum)
			}
			if m, err = nextDirect(ctx, js, Stream, m.seq+1, filter); err != nil {
				return nil, err
			}
		}
		top, window = start-1, small
		if progress != nil {
			progress(uint64(page.Read), state.Msgs)
		}
		for i := len(chunk) - 1; i >= 0; i-- {
			sum := chunk[i]
			if !sum.Conflict {
				if seen[sum.CommandID] {
					continue
				}
				seen[sum.CommandID] = true
			}
			page.Failures = append(page.Failures, sum)
		}
	}
	if len(page.Failures) > limit {
		page.Failures = page.Failures[:limit]
	}
	if len(page.Failures) == limit && (top >= first || page.Failures[limit-1].Seq > first) {
		// Entries below the page are left unread: it has a next page,
		// which may be empty.
		page.Next = page.Failures[limit-1].Seq
	}
	return page, nil
}

// selects reports whether q selects s: the parts the server filters by
// too, for a read that filters by one subject at most.
func (q Select) selects(s *Summary) bool {
	if len(q.Reasons) > 0 && !slices.Contains(q.Reasons, s.Reason) {
		return false
	}
	if len(q.Providers) > 0 && !slices.Contains(q.Providers, s.Provider) {
		return false
	}
	return q.match(s)
}

// Paged reports whether LoadPage and Count answer for q at the cost of a
// page: the server selects it all, with one subject filter (no commandId,
// which Load answers at the cost of the command's entries, nor several
// reasons or providers, which a page would match here on the headers,
// reading back through what they do not select).
func (q Select) Paged() bool {
	return q.ServerCounted() && q.CommandID == "" && len(q.filterSubjects()) == 1
}

// ServerCounted reports whether the server alone selects what q selects
// (by reason, provider and commandId), so that Count can answer for it.
func (q Select) ServerCounted() bool {
	return q.Since.IsZero() && q.Until.IsZero() && q.Text == "" && q.Conflicts == nil
}

// reasonTokens are the reason tokens an entry's subject may hold.
var reasonTokens = []string{
	string(contact.ReasonMalformed), string(contact.ReasonInvalid), string(contact.ReasonUnroutable),
	string(contact.ReasonRejected), string(contact.ReasonExhausted), string(contact.ReasonConflict),
	string(contact.ReasonAmbiguous), "_",
}

// countInFlight bounds the counting requests Count has in flight.
const countInFlight = 4

// Count counts the open failures q selects by reason, from the server: for
// each reason, the pending count of a consumer that the server filters by
// that reason and q's subjects, so that no entry is read. q must be
// ServerCounted. A command a writer is between storing anew and purging
// its older entry counts twice for that moment.
func Count(ctx context.Context, js jetstream.JetStream, q Select) (map[contact.Reason]int, error) {
	if !q.ServerCounted() {
		return nil, errors.New("count open failures: the selection needs the entries read (--since, --until, a text)")
	}
	s, err := js.Stream(ctx, Stream)
	if errors.Is(err, jetstream.ErrStreamNotFound) {
		return nil, ErrNoStore
	}
	if err != nil {
		return nil, fmt.Errorf("look up stream %s: %w", Stream, err)
	}
	reasons := reasonTokens
	if len(q.Reasons) > 0 {
		reasons = nil
		for _, r := range q.Reasons {
			if t := ReasonToken(r); !slices.Contains(reasons, t) {
				reasons = append(reasons, t)
			}
		}
	}
	counts := make([]uint64, len(reasons))
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(countInFlight)
	for i, r := range reasons {
		g.Go(func() error {
			one := q
			one.Reasons = []contact.Reason{contact.Reason(r)}
			n, err := pending(gctx, s, one.filterSubjects())
			counts[i] = n
			return err
		})
	}
	if err := g.Wait(); err != nil {
		return nil, err
	}
	out := map[contact.Reason]int{}
	for i, r := range reasons {
		if counts[i] > 0 {
			out[contact.Reason(r)] = int(counts[i])
		}
	}
	return out, nil
}

// pending returns how many entries the server holds on the subjects: the
// pending count of a consumer made for the asking, removed again.
func pending(ctx context.Context, s jetstream.Stream, subjects []string) (uint64, error) {
	cons, err := s.CreateConsumer(ctx, jetstream.ConsumerConfig{
		FilterSubjects:    subjects,
		AckPolicy:         jetstream.AckNonePolicy,
		DeliverPolicy:     jetstream.DeliverAllPolicy,
		HeadersOnly:       true,
		MemoryStorage:     true,
		InactiveThreshold: 10 * time.Second,
	})
	if err != nil {
		return 0, fmt.Errorf("count open failures: %w", err)
	}
	info := cons.CachedInfo()
	dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Second)
	_ = s.DeleteConsumer(dctx, info.Name) // best effort: it goes when inactive anyway
	cancel()
	return info.NumPending, nil
}

// OtherProvider is the provider CountByBoth counts failures under whose
// provider is none of the known ones.
const OtherProvider = "~other"

// CountByBoth counts the open failures by reason and provider, from the
// server: per reason, its total and its count for each known provider
// and for none (provider ""); what is left of the total is counted under
// OtherProvider. It reads no entry: (2 + len(known)) pending counts per
// reason that has any.
func CountByBoth(ctx context.Context, js jetstream.JetStream, known []string) (map[[2]string]int, error) {
	byReason, err := Count(ctx, js, Select{})
	if err != nil {
		return nil, err
	}
	out := map[[2]string]int{}
	for r, total := range byReason {
		left := total
		for _, p := range append([]string{""}, known...) {
			c, err := Count(ctx, js, Select{Reasons: []contact.Reason{r}, Providers: []string{p}})
			if err != nil {
				return nil, err
			}
			n := c[r]
			if n > 0 {
				out[[2]string{string(r), p}] = n
				left -= n
			}
		}
		if left > 0 {
			out[[2]string{string(r), OtherProvider}] = left
		}
	}
	return out, nil
}
