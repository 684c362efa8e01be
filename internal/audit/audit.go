// Package audit is the audit trail of the actions that change or reveal
// something: replay, repair, discard, unmask, a CSV download, an import
// and a repair-import, from the console or the command line. Each is an
// Entry in the stream CONTACT_AUDIT, on the subject
// contactrelay.audit.<action>, written before the action takes effect: an
// action whose entry cannot be written does not happen. Entries hold
// commandIds and the names of the fields changed, never their values.
//
// One writer call per action (Writer.Write); List reads them back, newest
// first, filtered and paged. Both are safe for concurrent use.
package audit

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// Stream, SubjectPrefix and Subjects name the audit's stream and
// subjects; DefaultMaxAge is how long entries are kept unless
// AUDIT_MAX_AGE says otherwise (400 days).
const (
	Stream        = "CONTACT_AUDIT"
	SubjectPrefix = "contactrelay.audit."
	Subjects      = SubjectPrefix + ">"
	DefaultMaxAge = 9600 * time.Hour
)

// The actions audited.
const (
	ActionReplay       = "replay"
	ActionRepair       = "repair"
	ActionDiscard      = "discard"
	ActionUnmask       = "unmask"
	ActionCancelReplay = "cancel-replay"
	ActionCSVDownload  = "csv-download"
	ActionImport       = "import"
	ActionRepairImport = "repair-import"
	ActionPause        = "pause"
	ActionResume       = "resume"
)

// Actions lists every action, for checking a filter.
var Actions = []string{ActionReplay, ActionRepair, ActionDiscard, ActionUnmask, ActionCancelReplay, ActionCSVDownload, ActionImport, ActionRepairImport, ActionPause, ActionResume}

// PauseEntry is the audit entry of pausing or resuming a provider (action
// ActionPause or ActionResume): the provider, and a pause's reason.
func PauseEntry(action, provider, reason string) Entry {
	d := provider
	if reason != "" {
		d += ": " + reason
	}
	return Entry{Action: action, Count: 1, Detail: d}
}

// maxCommandIDs bounds the commandIds an entry lists: a bulk action says
// its filter, count and range instead.
const maxCommandIDs = 20

// Entry is one audited action.
type Entry struct {
	// Seq is the entry's sequence in the stream (set by List; Write
	// returns it).
	Seq uint64 `json:"seq,omitempty"`
	// Time is when the action was asked for.
	Time time.Time `json:"time"`
	// User is who asked; From where from (the client's address in the
	// console, "cli@<host>" on the command line); Source is "console" or
	// "cli".
	User   string `json:"user"`
	From   string `json:"from"`
	Source string `json:"source"`
	// Action is one of Actions.
	Action string `json:"action"`
	// CommandIDs are the commands of an action on a few (at most 20);
	// Fields the names of the fields a repair changes.
	CommandIDs []string `json:"commandIds,omitempty"`
	Fields     []string `json:"fields,omitempty"`
	// Filter, Count and Range describe a bulk action: the selection as
	// asked, how many it held, and the range it covered (such as the
	// stream sequences or times).
	Filter string `json:"filter,omitempty"`
	Count  int    `json:"count"`
	Range  string `json:"range,omitempty"`
	// Detail is a short note (a replay's pace, an import's file name).
	Detail string `json:"detail,omitempty"`
}

// Subject is the entry's subject.
func (e Entry) Subject() string { return SubjectPrefix + e.Action }

// StreamConfig is the audit stream's configuration: entries kept for
// maxAge (0: DefaultMaxAge).
func StreamConfig(replicas int, maxAge time.Duration) jetstream.StreamConfig {
	if maxAge <= 0 {
		maxAge = DefaultMaxAge
	}
	return jetstream.StreamConfig{
		Name:        Stream,
		Description: "contactrelay audit trail: who replayed, repaired, discarded, unmasked, downloaded or imported what",
		Subjects:    []string{Subjects},
		Storage:     jetstream.FileStorage,
		Retention:   jetstream.LimitsPolicy,
		MaxAge:      maxAge,
		Replicas:    max(replicas, 1),
	}
}

// ErrNotWritten is an action's entry that could not be written: the action
// must not happen.
var ErrNotWritten = errors.New("the audit entry could not be written, so the action was not done")

// Writer appends entries. Its zero value is not usable: set JS.
type Writer struct {
	JS jetstream.JetStream
	// Now is the clock. Default time.Now.
	Now func() time.Time
}

// Write appends e (Time set if zero) and returns its sequence once the
// stream has stored it. An error wraps ErrNotWritten.
func (w *Writer) Write(ctx context.Context, e Entry) (uint64, error) {
	if !slices.Contains(Actions, e.Action) {
		return 0, fmt.Errorf("%w: unknown action %q", ErrNotWritten, e.Action)
	}
	if e.Time.IsZero() {
		now := time.Now
		if w.Now != nil {
			now = w.Now
		}
		e.Time = now().UTC()
	}
	if len(e.CommandIDs) > maxCommandIDs {
		e.CommandIDs = e.CommandIDs[:maxCommandIDs]
	}
	e.Seq = 0
	body, err := json.Marshal(e)
	if err != nil {
		return 0, fmt.Errorf("%w: %w", ErrNotWritten, err)
	}
	ack, err := w.JS.Publish(ctx, e.Subject(), body)
	if err != nil {
		return 0, fmt.Errorf("%w: %s: %w", ErrNotWritten, Stream, err)
	}
	return ack.Sequence, nil
}

// Query selects entries: each set field must match.
type Query struct {
	User      string
	Action    string
	CommandID string
	// Since leaves out entries before it.
	Since time.Time
	// Before reads entries before this sequence (a page's Next); zero:
	// from the newest.
	Before uint64
	// Limit is the most entries returned; zero: no limit.
	Limit int
	// MaxScan is the most entries read to find them; zero: no bound.
	// A page that stopped there has Next set and Partial true.
	MaxScan int
}

func (q Query) matches(e Entry) bool {
	return (q.User == "" || e.User == q.User) && (q.Action == "" || e.Action == q.Action) &&
		(q.CommandID == "" || slices.Contains(e.CommandIDs, q.CommandID))
}

// Page is a page of entries, newest first; Next is the Before of the
// next page (zero: no more).
type Page struct {
	Entries []Entry
	Next    uint64
	// Partial says the page stopped at Query.MaxScan entries read.
	Partial bool
}

// List reads the entries q selects, newest first, walking the stream
// back from q.Before until q.Limit entries match or it reaches q.Since or
// the stream's first entry. Its cost is the entries walked: one read each.
func List(ctx context.Context, js jetstream.JetStream, q Query) (Page, error) {
	s, err := js.Stream(ctx, Stream)
	if err != nil {
		return Page{}, fmt.Errorf("audit stream %s: %w", Stream, err)
	}
	info := s.CachedInfo()
	first, seq := info.State.FirstSeq, info.State.LastSeq
	if q.Before > 0 && q.Before-1 < seq {
		seq = q.Before - 1
	}
	var p Page
	for scanned := 0; seq >= first && seq > 0; seq-- {
		if q.MaxScan > 0 && scanned == q.MaxScan {
			p.Next, p.Partial = seq+1, true
			break
		}
		scanned++
		m, err := s.GetMsg(ctx, seq)
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			continue
		}
		if err != nil {
			return p, fmt.Errorf("read audit entry %d: %w", seq, err)
		}
		if q.Action != "" && m.Subject != SubjectPrefix+q.Action {
			continue
		}
		var e Entry
		if json.Unmarshal(m.Data, &e) != nil {
			continue
		}
		e.Seq = seq
		if !q.Since.IsZero() && e.Time.Before(q.Since) {
			break
		}
		if !q.matches(e) {
			continue
		}
		if q.Limit > 0 && len(p.Entries) == q.Limit {
			p.Next = seq + 1
			break
		}
		p.Entries = append(p.Entries, e)
	}
	return p, nil
}

// What says in a few words what an entry covered.
func (e Entry) What() string {
	var parts []string
	ids := "commandId " + strings.Join(e.CommandIDs, ", ")
	if len(e.CommandIDs) > 0 {
		parts = append(parts, ids)
	}
	if len(e.Fields) > 0 {
		parts = append(parts, "fields "+strings.Join(e.Fields, ", "))
	}
	if e.Filter != "" && e.Filter != ids {
		parts = append(parts, e.Filter)
	}
	if e.Range != "" {
		parts = append(parts, e.Range)
	}
	return strings.Join(parts, "; ")
}
