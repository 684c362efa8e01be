package replay

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/contactrelay/contactrelay/contact"
	"github.com/contactrelay/contactrelay/internal/failstore"
	"github.com/contactrelay/contactrelay/internal/provision"
)

// ErrNoStream reports that the event stream does not exist.
var ErrNoStream = errors.New("the stream " + provision.EventStream + " does not exist")

// clockSkew widens the start of a scan: the stream's clock stamps an event
// when it is stored, a little after the service stamped its time, and
// instances' clocks may differ. Filtering is on the event's own time.
const clockSkew = time.Minute

// Failure is one contact.failed event read from the event stream.
type Failure struct {
	Event contact.Event
	Data  contact.Failed
	// Seq is the failure's sequence in Stream: the event stream's for a
	// failure read from the history, the open-failure store's for an open
	// one.
	Seq    uint64
	Stream string
	// CreatedAfter is the first contact.created of the same commandId
	// stored after this failure, if any: the contact exists, and a replay
	// would only repeat contact.created.
	CreatedAfter *Outcome
	// FailedAfter is the first other contact.failed of the same commandId
	// stored after this failure, if any: a newer failure of the command.
	FailedAfter *Outcome
}

// CommandID returns the commandId the failure is about.
func (f *Failure) CommandID() string {
	if f.Event.Subject != "" {
		return f.Event.Subject
	}
	return f.Data.CommandID
}

// Superseded returns the outcome that supersedes the failure, a later
// contact.created before a later failure, or nil when the failure is its
// command's newest outcome.
func (f *Failure) Superseded() *Outcome {
	if f.CreatedAfter != nil {
		return f.CreatedAfter
	}
	return f.FailedAfter
}

// Outcome names a terminal event that came after a failure.
type Outcome struct {
	Type string    `json:"type"`
	ID   string    `json:"id"`
	Time time.Time `json:"time"`
	Seq  uint64    `json:"seq"`
}

// Selection is what a scan found.
type Selection struct {
	// Failures are the matching failures, newest first, at most the
	// filter's limit.
	Failures []*Failure
	// Matched counts every matching failure, the limit aside; ByReason
	// splits them by reason, and SupersededByCreated and
	// SupersededByFailure count those superseded (a failure superseded by
	// both counts as superseded by the contact.created).
	Matched             int
	ByReason            map[contact.Reason]int
	SupersededByCreated int
	SupersededByFailure int
	// Read counts the events read; Unreadable those that were not
	// CloudEvents JSON of the contract, and were passed over.
	Read       int
	Unreadable int
	// Open is set for a selection of open failures (Open), where nothing
	// is superseded and Read counts the entries read.
	Open bool
	// More is set for a search (Search) that stopped at the limit: more
	// open failures may match than Matched counts.
	More bool
}

// Scan reads the event stream from flt.Since (the start when zero) up to
// its last sequence when the scan begins, and returns the failures that
// match flt. Events after flt.Until are read too: they may supersede a
// matching failure. A failure stored again under the same id (a command
// re-published after the duplicate window) counts once, at its first
// sequence. Scan returns ErrNoStream when the event stream does not exist.
func Scan(ctx context.Context, js jetstream.JetStream, flt Filter) (*Selection, error) {
	s, err := js.Stream(ctx, provision.EventStream)
	if errors.Is(err, jetstream.ErrStreamNotFound) {
		return nil, ErrNoStream
	}
	if err != nil {
		return nil, fmt.Errorf("look up stream %s: %w", provision.EventStream, err)
	}
	sc := newScanner(flt)
	if state := s.CachedInfo().State; state.Msgs > 0 {
		if err := sc.read(ctx, s, state.LastSeq); err != nil {
			return nil, err
		}
	}
	return sc.selection(), nil
}

// scanner follows the events of a scan in stream order.
type scanner struct {
	flt       Filter
	sel       Selection
	matched   []*Failure
	byCommand map[string][]*Failure // matching failures, by commandId
	seen      map[string]bool       // ids of the failed events read
}

func newScanner(flt Filter) *scanner {
	return &scanner{
		flt:       flt,
		sel:       Selection{ByReason: map[contact.Reason]int{}},
		byCommand: map[string][]*Failure{},
		seen:      map[string]bool{},
	}
}

// read feeds the scanner the stream's events up to sequence last.
func (sc *scanner) read(ctx context.Context, s jetstream.Stream, last uint64) error {
	cfg := jetstream.OrderedConsumerConfig{
		FilterSubjects: []string{contact.SubjectCreated, contact.SubjectFailed},
		DeliverPolicy:  jetstream.DeliverAllPolicy,
	}
	if !sc.flt.Since.IsZero() {
		start := sc.flt.Since.Add(-clockSkew)
		cfg.DeliverPolicy, cfg.OptStartTime = jetstream.DeliverByStartTimePolicy, &start
	}
	return failstore.ReadUpTo(ctx, s, cfg, last, func(msg jetstream.Msg, seq uint64) {
		sc.add(seq, msg.Subject(), msg.Data())
	})
}

// add takes one event, in stream order.
func (sc *scanner) add(seq uint64, subject string, body []byte) {
	sc.sel.Read++
	var ev contact.Event
	if err := json.Unmarshal(body, &ev); err != nil {
		sc.sel.Unreadable++
		return
	}
	commandID := ev.Subject
	switch subject {
	case contact.SubjectCreated:
		later := &Outcome{Type: subject, ID: ev.ID, Time: ev.Time, Seq: seq}
		for _, f := range sc.byCommand[commandID] {
			if f.CreatedAfter == nil {
				f.CreatedAfter = later
			}
		}
	case contact.SubjectFailed:
		if sc.seen[ev.ID] {
			return // the same failure stored again
		}
		sc.seen[ev.ID] = true
		f := &Failure{Event: ev, Seq: seq, Stream: provision.EventStream}
		if err := json.Unmarshal(ev.Data, &f.Data); err != nil {
			sc.sel.Unreadable++
			return
		}
		if commandID == "" {
			commandID = f.Data.CommandID
		}
		later := &Outcome{Type: subject, ID: ev.ID, Time: ev.Time, Seq: seq}
		for _, earlier := range sc.byCommand[commandID] {
			if earlier.FailedAfter == nil {
				earlier.FailedAfter = later
			}
		}
		if sc.flt.Match(f) {
			sc.matched = append(sc.matched, f)
			sc.byCommand[commandID] = append(sc.byCommand[commandID], f)
		}
	}
}

// selection returns what the scan found, newest first.
func (sc *scanner) selection() *Selection {
	sel := sc.sel
	slices.Reverse(sc.matched)
	sel.Matched = len(sc.matched)
	for _, f := range sc.matched {
		sel.ByReason[f.Data.Reason]++
		switch {
		case f.CreatedAfter != nil:
			sel.SupersededByCreated++
		case f.FailedAfter != nil:
			sel.SupersededByFailure++
		}
	}
	sel.Failures = sc.matched
	if sc.flt.Limit > 0 && len(sel.Failures) > sc.flt.Limit {
		sel.Failures = sel.Failures[:sc.flt.Limit]
	}
	return &sel
}
