package console

import (
	"fmt"
	"net/http"
	"strings"

	"github.com/contactrelay/contactrelay/internal/audit"
	"github.com/contactrelay/contactrelay/internal/failstore"
	"github.com/contactrelay/contactrelay/internal/replay"
)

// downloadCSV writes the open failures the failures page's filter selects
// as the failures CSV (replay.WriteCSV: the command's fields unmasked,
// spreadsheet-safe), which 'consumer import --repair' reads back. It is an
// action of its own: personal data leaves the console, so it is logged
// with who downloaded how many (srv.record, the one call site).
func (srv *Server) downloadCSV(w http.ResponseWriter, r *http.Request) {
	q, errs := parseQuery(r.URL.Query(), srv.cfg.Now())
	q.Seqs = nil
	if len(errs) > 0 {
		srv.fail(w, r, http.StatusBadRequest, strings.Join(errs, "; "))
		return
	}
	v := srv.current()
	if _, _, ready := viewState(v); !ready {
		srv.fail(w, r, http.StatusServiceUnavailable, "the open failures have not been read yet")
		return
	}
	srv.findText(r.Context(), &q)
	open, err := failstore.Get(r.Context(), srv.cfg.JS, v.Selected(&q.Query, srv.textSeqs(r.Context(), &q)))
	if err != nil {
		srv.fail(w, r, http.StatusBadGateway, "read the open failures: "+err.Error())
		return
	}
	what := q.describe()
	var ids []string // a bulk download's filter and count say what
	if len(open) <= 20 {
		for _, f := range open {
			ids = append(ids, f.CommandID)
		}
	}
	seq, ok := srv.audit(w, r, audit.Entry{Action: audit.ActionCSVDownload, CommandIDs: ids, Filter: what, Count: len(open)})
	if !ok {
		return
	}
	srv.record(r, seq, "download", what, len(open), fmt.Sprintf("%d open failures downloaded as CSV, unmasked", len(open)), true)
	w.Header().Set("Content-Type", "text/csv; charset=utf-8")
	w.Header().Set("Content-Disposition", `attachment; filename="open-failures.csv"`)
	w.Header().Set("Cache-Control", "no-store")
	if err := replay.WriteCSV(w, replay.FromOpen(open)); err != nil {
		srv.cfg.Log.Warn("failures CSV download cut short", "error", err)
	}
}
