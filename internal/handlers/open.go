package handlers

import "github.com/contactrelay/contactrelay/internal/events"

// FailureChange is what a Decision changes in the store of open failures,
// the newest failure of each commandId whose newest outcome is a
// contact.failed. The runner makes the change after the record write and
// before the event is published, and checks it against the record read
// back (see NewestOutcome), so that a change that lost a race to a newer
// outcome is undone, and a redelivery repairs a change a crash left
// undone.
type FailureChange struct {
	// Open is set when the decision's failed event becomes its command's
	// open failure; otherwise the command's open failure, if any, is
	// resolved by the decision's contact.created.
	Open bool
	// Conflict marks a conflict's failed event: it is open under its own
	// entry, beside the command's, since it is no outcome of the command's
	// (nothing is recorded), and only an operator resolves it.
	Conflict bool
	// RecordKey names the record that must still hold the decision's
	// outcome as the command's newest for the change to stand; empty when
	// the outcome is not recorded.
	RecordKey string
}

// NewestOutcome reads a stored record and returns the generation whose
// recorded outcome is the newest, and whether that outcome is a
// contact.created. ok is false when the record cannot be read or holds
// no outcome. The newest outcome's event id is events.EventID of the
// record's commandId, the generation and the outcome's type.
func NewestOutcome(value []byte) (commandID, generation string, created, ok bool) {
	rec, err := decodeRecord(value)
	if err != nil {
		return "", "", false, false
	}
	name, g := rec.newestOutcome()
	if g == nil {
		return rec.CommandID, "", false, false
	}
	return rec.CommandID, name, g.Reason == "", true
}

// NewestEvent returns, from a stored record, the generation whose recorded
// outcome is the newest and that outcome's event as stored (a failure
// without its command); ok is false when the record cannot be read or
// holds no outcome.
func NewestEvent(value []byte) (generation string, event []byte, ok bool) {
	rec, err := decodeRecord(value)
	if err != nil {
		return "", nil, false
	}
	name, g := rec.newestOutcome()
	if g == nil {
		return "", nil, false
	}
	return name, g.Outcome, true
}

// ResentOutcome returns, from a stored record, the outcome the service
// answers an original command (no Contact-Replay-Of) with when body is
// sent again: the command's newest recorded outcome (the event as stored:
// a failure without its command), when the original generation was
// decided and the content whose ContentFingerprint is fingerprint is that
// of one of the command's generations. ok is false when the record does not answer by
// itself: nothing decided yet, or content no generation had (the service
// answers that with a conflict). It is the rule the service applies
// (Record.resent), read without publishing.
func ResentOutcome(value []byte, fingerprint string) (event []byte, ok bool) {
	rec, err := decodeRecord(value)
	if err != nil {
		return nil, false
	}
	if _, g, ok := rec.resent("", fingerprint); ok {
		return g.Outcome, true
	}
	return nil, false
}

// resent is the rule for a command sent again once its generation gen is
// decided ("one outcome per generation"): when content fp is that of one
// of the command's generations, the answer is the command's newest
// recorded outcome, of whichever generation decided it (name), never a new
// event for gen. ok is false when gen is not decided, or when fp is
// content no generation had (a conflict).
func (r *Record) resent(gen, fp string) (name string, newest *Generation, ok bool) {
	if !r.decided(gen) || !r.hadContent(fp) {
		return "", nil, false
	}
	name, newest = r.newestOutcome()
	return name, newest, newest != nil
}

// decided reports whether generation gen has its outcome: recorded, or,
// for the original generation, given way to newer ones after it was
// decided (the record keeps the fingerprint of the original content, and
// no longer the generation).
func (r *Record) decided(gen string) bool {
	if g := r.Generations[gen]; g != nil {
		return g.Outcome != nil
	}
	if gen != "" || r.Fingerprint == "" {
		return false
	}
	_, newest := r.newestOutcome()
	return newest != nil
}

// hadContent reports whether fp is the content fingerprint of one of the
// command's generations the record knows: the original's, a replay's, or
// the content its contact was created for.
func (r *Record) hadContent(fp string) bool {
	if fp == "" {
		return false
	}
	if fp == r.Fingerprint || fp == r.ContactFingerprint {
		return true
	}
	for _, g := range r.Generations {
		if g.Fingerprint == fp {
			return true
		}
	}
	return false
}

// contentOf returns the content fingerprint of generation gen, or "" when
// the record does not know it.
func (r *Record) contentOf(gen string) string {
	if gen == "" {
		return r.Fingerprint
	}
	if g := r.Generations[gen]; g != nil {
		return g.Fingerprint
	}
	return ""
}

// newestOutcome returns the generation with the newest recorded outcome,
// or nil.
func (r *Record) newestOutcome() (string, *Generation) {
	var (
		name   string
		newest *Generation
	)
	for n, g := range r.Generations {
		if g.Outcome != nil && (newest == nil || g.Order > newest.Order) {
			name, newest = n, g
		}
	}
	return name, newest
}

// hasFailure reports whether any generation's recorded outcome is a
// failure: only then can the command have an open failure to resolve.
func (r *Record) hasFailure() bool {
	for _, g := range r.Generations {
		if g.Outcome != nil && g.Reason != "" {
			return true
		}
	}
	return false
}

// failureChange returns what the outcome of generation gen, recorded in
// r under key, changes in the open failures: nothing when a newer outcome
// of the command is recorded (its own decision made the change), the
// failure opened, or, for a contact.created, the command's earlier
// failures resolved. A command that never failed has none to resolve: the
// hot path pays nothing for the store.
func failureChange(r *Record, gen, key string, reason events.Reason) *FailureChange {
	if name, _ := r.newestOutcome(); name != gen {
		return nil
	}
	if reason != "" {
		return &FailureChange{Open: true, RecordKey: key}
	}
	if gen == "" && !r.hasFailure() {
		return nil
	}
	return &FailureChange{RecordKey: key}
}

// DecodeRecord reads a stored record, of either version, for tools that
// show a command's generations (the console).
func DecodeRecord(value []byte) (Record, error) { return decodeRecord(value) }
