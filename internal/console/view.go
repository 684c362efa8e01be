package console

import (
	"regexp"
	"strings"
	"time"

	"github.com/contactrelay/contactrelay/contact"
)

// query is what a listing, a preview or an action selects: a filter, a
// group within it, or failures picked one by one (Seqs).
type query struct {
	Reasons   []string
	Providers []string
	// SinceText and UntilText are as typed; Since and Until as read.
	SinceText, UntilText string
	Since, Until         time.Time
	Text                 string
	CommandID            string
	// Group, when set, narrows the filter to one group.
	Group *groupKey
	// Seqs, when not empty, selects these failures, the filter aside.
	Seqs []uint64
	// UpTo, when not zero, leaves out failures stored after the preview
	// that showed what an action would do: an action does what it showed.
	UpTo uint64
	// hits are the failures whose command holds Text (findText), which
	// the text filter takes besides its matches in the view.
	hits map[uint64]bool
}

type groupKey struct {
	Reason, Provider, Message string
}

func (q query) empty() bool {
	return len(q.Reasons) == 0 && len(q.Providers) == 0 && q.Since.IsZero() && q.Until.IsZero() &&
		q.Text == "" && q.CommandID == "" && q.Group == nil && len(q.Seqs) == 0
}

// Parts of a message that differ between failures of one cause.
var (
	timestampRE = regexp.MustCompile(`\d{4}-\d\d-\d\d[T ]\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:?\d\d)?`)
	uuidRE      = regexp.MustCompile(`(?i)\b[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\b`)
	idRE        = regexp.MustCompile(`[A-Za-z0-9_]{12,}`)
	longNumRE   = regexp.MustCompile(`\d{5,}`)
)

// groupMessage returns a message with its times, ids and long numbers
// replaced by "…", so that failures of one cause share one group: the
// message of a circuit held open "until 12:04:05Z" names a time each.
func groupMessage(m string) string {
	if !strings.ContainsAny(m, "0123456789") {
		return m
	}
	m = timestampRE.ReplaceAllString(m, "…")
	m = uuidRE.ReplaceAllString(m, "…")
	m = idRE.ReplaceAllStringFunc(m, func(s string) string {
		digits := 0
		for _, c := range s {
			if c >= '0' && c <= '9' {
				digits++
			}
		}
		if digits < 4 {
			return s // a long word
		}
		return "…"
	})
	return longNumRE.ReplaceAllString(m, "…")
}

// reasons lists the contract's reasons, for the filter form.
var reasons = []contact.Reason{contact.ReasonExhausted, contact.ReasonInvalid, contact.ReasonRejected, contact.ReasonAmbiguous,
	contact.ReasonUnroutable, contact.ReasonConflict, contact.ReasonMalformed}
