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

// SettledOutcome returns, from a stored record, the fingerprint of the
// content its commandId was first used for and the newest generation's
// recorded outcome (the event as stored: a failure without its command),
// or ok false when no generation has one.
func SettledOutcome(value []byte) (fingerprint string, event []byte, ok bool) {
	rec, err := decodeRecord(value)
	if err != nil {
		return "", nil, false
	}
	if _, g := rec.newestOutcome(); g != nil {
		return rec.Fingerprint, g.Outcome, true
	}
	return rec.Fingerprint, nil, false
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
