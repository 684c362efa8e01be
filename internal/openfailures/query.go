package openfailures

import (
	"regexp"
	"strings"
	"time"
)

// Query is what a View selects: a filter, a group within it, or failures
// picked one by one (Seqs). Its zero value selects every open failure.
type Query struct {
	Reasons   []string
	Providers []string
	// Since and Until bound the failures' times; zero: no bound.
	Since, Until time.Time
	// Text selects the failures whose message or commandId holds it,
	// ignoring case, and those in Hits.
	Text      string
	CommandID string
	// Group, when set, narrows the filter to one group.
	Group *GroupKey
	// Seqs, when not empty, selects these failures, the filter aside.
	Seqs []uint64
	// UpTo, when not zero, leaves out failures stored after the preview
	// that showed what an action would do: an action does what it showed.
	UpTo uint64
	// Hits are the failures whose command holds Text (found by a search
	// of whole entries), which the text filter takes besides its matches
	// in the view.
	Hits map[uint64]bool
}

// GroupKey names one group of View.Groups: a reason, a provider and a
// group message (failstore.Group's).
type GroupKey struct {
	Reason, Provider, Message string
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
