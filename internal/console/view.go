package console

import (
	"github.com/contactrelay/contactrelay/contact"
	"github.com/contactrelay/contactrelay/internal/openfailures"
)

// query is what a listing, a preview or an action selects: the view's
// selection (openfailures.Query), with the times as typed.
type query struct {
	openfailures.Query
	// SinceText and UntilText are as typed; Since and Until as read.
	SinceText, UntilText string
}

func (q query) empty() bool {
	return len(q.Reasons) == 0 && len(q.Providers) == 0 && q.Since.IsZero() && q.Until.IsZero() &&
		q.Text == "" && q.CommandID == "" && q.Group == nil && len(q.Seqs) == 0
}

// reasons lists the contract's reasons, for the filter form.
var reasons = []contact.Reason{contact.ReasonExhausted, contact.ReasonInvalid, contact.ReasonRejected, contact.ReasonAmbiguous,
	contact.ReasonUnroutable, contact.ReasonConflict, contact.ReasonMalformed}
