package replay

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/contactrelay/contactrelay/contact"
	"github.com/contactrelay/contactrelay/internal/failstore"
)

// lookup is failstore.Lookup; a test replaces it.
var lookup = failstore.Lookup

// How a text search was answered.
const (
	// ByIndex: exact values, from the exact-value index.
	ByIndex = "index"
	// ByScan: a substring search reading the open failures back from the
	// newest.
	ByScan = "scan"
)

// Found is a text search's selection and how it was answered.
type Found struct {
	*Selection
	// By is ByIndex or ByScan; Why says why a scan answered (no exact
	// match, the index not built, --contains), Took how long it took.
	By, Why string
	Took    time.Duration
}

// Note is the line that says how the search was answered.
func (f *Found) Note() string {
	if f.By == ByIndex {
		return fmt.Sprintf("answered by the exact-value index (%s) in %s", failstore.IndexStream, f.Took.Round(time.Millisecond))
	}
	return fmt.Sprintf("answered by a substring search of the open failures in %s (%s)", f.Took.Round(time.Millisecond), f.Why)
}

// Find finds the open failures flt selects that hold text: first as an
// exact value through the exact-value index (failstore.Lookup: a name,
// email, mobile, companyName or indexed metadata value, or the
// commandId, ignoring case and spacing), in milliseconds; when the index
// has none, or is not built yet, or with contains, by a substring search
// that also reads messages and commandIds (Search, telling progress).
// A missing store is failstore.ErrNoStore.
func Find(ctx context.Context, js jetstream.JetStream, flt Filter, text string, contains bool, progress func(read, held uint64)) (*Found, error) {
	start := time.Now()
	why := "--contains"
	if !contains {
		found, err := lookup(ctx, js, text, flt.Select(), flt.Limit)
		switch {
		case errors.Is(err, failstore.ErrNoIndex):
			why = "the exact-value index is not built yet: run 'consumer setup'"
		case err != nil && ctx.Err() != nil:
			return nil, err
		case err != nil:
			// A user the server does not let read the index, a stream
			// being restored: the scan still answers, slowly.
			why = "the exact-value index could not be read: " + err.Error()
		case len(found.Failures) == 0:
			why = "no open failure holds it as an exact value"
		default:
			sel := &Selection{Open: true, Read: found.Hits, Matched: len(found.Failures), More: found.More, ByReason: map[contact.Reason]int{}}
			for _, f := range found.Failures {
				sel.ByReason[f.Reason]++
			}
			whole, err := failstore.Get(ctx, js, found.Failures)
			if err != nil {
				return nil, err
			}
			sel.Failures = FromOpen(whole)
			return &Found{Selection: sel, By: ByIndex, Took: time.Since(start)}, nil
		}
	}
	sel, err := Search(ctx, js, flt, text, progress)
	if err != nil {
		return nil, err
	}
	return &Found{Selection: sel, By: ByScan, Why: why, Took: time.Since(start)}, nil
}
