package replay

import (
	"strings"

	"github.com/contactrelay/contactrelay/internal/audit"
)

// AuditEntry is the audit entry of a replay of sel, or of a repair when
// sets are given ('consumer replay'): the commandIds of at most 20
// failures, the fields a repair changes (names only), the filter as its
// flags, and the count.
func AuditEntry(flt Filter, sel *Selection, sets []Set) audit.Entry {
	e := audit.Entry{Action: audit.ActionReplay, Filter: flt.Flags(), Count: len(sel.Failures)}
	if len(sets) > 0 {
		e.Action = audit.ActionRepair
		for _, s := range sets {
			e.Fields = append(e.Fields, strings.Join(s.Path, "."))
		}
	}
	if len(sel.Failures) <= 20 {
		for _, f := range sel.Failures {
			e.CommandIDs = append(e.CommandIDs, f.CommandID())
		}
	}
	return e
}

// CSVAuditEntry is the audit entry of writing sel's failures as CSV,
// unmasked ('consumer failures --csv'): the filter, the count, and the
// commandIds of at most 20.
func CSVAuditEntry(flt Filter, sel *Selection) audit.Entry {
	e := audit.Entry{Action: audit.ActionCSVDownload, Filter: flt.Flags(), Count: len(sel.Failures)}
	if len(sel.Failures) <= 20 {
		for _, f := range sel.Failures {
			e.CommandIDs = append(e.CommandIDs, f.CommandID())
		}
	}
	return e
}
