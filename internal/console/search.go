package console

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/contactrelay/contactrelay/internal/failstore"
	"github.com/contactrelay/contactrelay/internal/openfailures"
)

// searchBudget bounds the substring search a text filter runs when no
// open failure holds the text as an exact value.
const searchBudget = 3 * time.Second

// searchLimit is the most failures that substring search finds.
const searchLimit = 500

// findText makes the text filter find what 'consumer failures --text'
// finds: besides the message and commandId (matched in the view), the
// open failures whose name, email, mobile, companyName or a metadata value
// is the text as an exact value (failstore.Lookup, the exact-value index:
// milliseconds); when none is and no message or commandId holds it
// either, those whose fields contain it (a substring search of whole
// entries, newest first, at most searchLimit found within searchBudget). It records them in q (Hits) and returns a sentence that
// says how the text was looked up.
func (srv *Server) findText(ctx context.Context, q *query) string {
	if q.Text == "" || len(q.Seqs) > 0 {
		return ""
	}
	start := time.Now()
	found, err := failstore.Lookup(ctx, srv.cfg.JS, q.Text, failstore.Select{}, 0)
	switch {
	case err == nil && len(found.Failures) > 0:
		q.Hits = map[uint64]bool{}
		for _, f := range found.Failures {
			q.Hits[f.Seq] = true
		}
		return fmt.Sprintf("Found as an exact value by the index in %d ms, and in messages and commandIds.", time.Since(start).Milliseconds())
	case err != nil && !errors.Is(err, failstore.ErrNoIndex):
		return "The exact-value index could not be read (" + err.Error() + "): messages and commandIds only."
	}
	if v := srv.current(); v != nil && matches(v, q) {
		// The text is in messages or commandIds: no scan for it as well.
		return "No open failure holds it as an exact value: found in messages and commandIds."
	}
	sctx, cancel := context.WithTimeout(ctx, searchBudget)
	defer cancel()
	page, err := failstore.Search(sctx, srv.cfg.JS, failstore.Select{}, q.Text, searchLimit, 0, nil)
	if err != nil {
		return fmt.Sprintf("No open failure holds it as an exact value; the search of names, emails, mobiles and metadata stopped after %s: "+
			"messages and commandIds only (consumer failures --text … --contains searches them all).", searchBudget)
	}
	q.Hits = map[uint64]bool{}
	for _, f := range page.Failures {
		q.Hits[f.Seq] = true
	}
	more := ""
	if page.Next != 0 {
		more = fmt.Sprintf(" (the %d newest)", searchLimit)
	}
	return fmt.Sprintf("No open failure holds it as an exact value: searched names, emails, mobiles, metadata and messages for it%s in %d ms.", more, time.Since(start).Milliseconds())
}

// matches reports whether the view holds a failure q selects by its
// message or commandId alone.
func matches(v *openfailures.View, q *query) bool {
	if _, _, ready := v.State(); !ready {
		return false
	}
	_, n := v.Page(&q.Query, nil, 0, 0)
	return n > 0
}
