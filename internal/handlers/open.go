package handlers

import (
	"github.com/contactrelay/contactrelay/contact"
	"github.com/contactrelay/contactrelay/record"
)

// FailureChange is what a Decision changes in the store of open failures,
// the newest failure of each commandId whose newest outcome is a
// contact.failed. The runner makes the change after the record write and
// before the event is published, and checks it against the record read
// back (see record.NewestOutcome), so that a change that lost a race to a newer
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

// failureChange returns what the outcome of generation gen, recorded in
// r under key, changes in the open failures: nothing when a newer outcome
// of the command is recorded (its own decision made the change), the
// failure opened, or, for a contact.created, the command's earlier
// failures resolved. A command that never failed has none to resolve: the
// hot path pays nothing for the store.
func failureChange(r *record.Record, gen, key string, reason contact.Reason) *FailureChange {
	if name, _ := r.Newest(); name != gen {
		return nil
	}
	if reason != "" {
		return &FailureChange{Open: true, RecordKey: key}
	}
	if gen == "" && !r.HasFailure() {
		return nil
	}
	return &FailureChange{RecordKey: key}
}
