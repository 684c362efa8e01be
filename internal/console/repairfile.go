package console

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"

	"github.com/contactrelay/contactrelay/internal/audit"
	"github.com/contactrelay/contactrelay/internal/failstore"
	"github.com/contactrelay/contactrelay/internal/importer"
)

// repairFileData is the repair-from-a-spreadsheet page: the upload form,
// then each row's plan (Done false: nothing sent yet, and the file kept
// in the confirmation form), then what was sent (Done true).
type repairFileData struct {
	Rows  []importer.RepairSheetRow
	CSV   string
	Done  bool
	Error string
	// Counts of the rows: Send are to be sent (or were).
	Send, Refused, Unchanged, NotOpen int
}

// repairFilePage shows the upload form.
func (srv *Server) repairFilePage(w http.ResponseWriter, r *http.Request) {
	srv.render(w, r, http.StatusOK, "repairfile", "Repair from a spreadsheet", "failures", repairFileData{})
}

// repairFile takes an edited failures CSV (the Download CSV file): an
// upload is decided row by row and shown with each row's diff, nothing
// sent (importer.RepairFile, dry run); the confirmation, carrying the same
// file, sends the repairs of the failures still open, logged as an action
// with who and how many.
func (srv *Server) repairFile(w http.ResponseWriter, r *http.Request) {
	data := repairFileData{Done: r.PostFormValue("confirm") == "1"}
	if data.Done {
		data.CSV = r.PostFormValue("csv")
	} else {
		file, _, err := r.FormFile("file")
		if err != nil {
			data.Error = "choose the edited CSV file to upload"
			srv.render(w, r, http.StatusBadRequest, "repairfile", "Repair from a spreadsheet", "failures", data)
			return
		}
		b, err := io.ReadAll(file)
		file.Close()
		if err != nil {
			srv.fail(w, r, http.StatusBadRequest, "the upload cannot be read: "+err.Error())
			return
		}
		data.CSV = string(b)
	}
	// Each row is decided first, sending nothing; a confirmation then
	// writes its audit entry (what will be sent) and only then sends.
	rows, err := importer.RepairFile(r.Context(), srv.cfg.JS, strings.NewReader(data.CSV), true)
	var seq uint64
	if err == nil && data.Done {
		var ok bool
		if seq, ok = srv.audit(w, r, repairFileEntry(rows)); !ok {
			return
		}
		rows, err = importer.RepairFile(r.Context(), srv.cfg.JS, strings.NewReader(data.CSV), false)
	}
	switch {
	case errors.Is(err, failstore.ErrNoStore):
		srv.fail(w, r, http.StatusServiceUnavailable, err.Error())
		return
	case err != nil:
		data.Error = "the file is not a failures CSV the console can read: " + err.Error()
		srv.render(w, r, http.StatusBadRequest, "repairfile", "Repair from a spreadsheet", "failures", data)
		return
	}
	data.Rows = rows
	for _, row := range rows {
		switch row.Status {
		case "pending":
			data.Send++
		case "invalid":
			data.Refused++
		case "unchanged":
			data.Unchanged++
		default:
			data.NotOpen++
		}
	}
	if data.Done {
		srv.Reload()
		srv.record(r, seq, "repair-file", fmt.Sprintf("%d rows of an uploaded failures CSV", len(rows)), data.Send,
			fmt.Sprintf("%d repairs sent, %d refused, %d unchanged, %d no longer open", data.Send, data.Refused, data.Unchanged, data.NotOpen), true)
	}
	srv.render(w, r, http.StatusOK, "repairfile", "Repair from a spreadsheet", "failures", data)
}

// repairFileEntry is the audit entry of sending a spreadsheet's repairs:
// the commandIds of the rows to send (at most 20) and the names of the
// fields they change.
func repairFileEntry(rows []importer.RepairSheetRow) audit.Entry {
	e := audit.Entry{Action: audit.ActionRepairImport, Detail: "uploaded failures CSV"}
	var ids []string
	fields := map[string]bool{}
	for _, row := range rows {
		if row.Status != "pending" {
			continue
		}
		e.Count++
		ids = append(ids, row.CommandID)
		for _, d := range row.Diffs {
			if name, _, ok := strings.Cut(d, ":"); ok && !fields[name] {
				fields[name] = true
				e.Fields = append(e.Fields, name)
			}
		}
	}
	if len(ids) <= 20 {
		e.CommandIDs = ids
	}
	slices.Sort(e.Fields)
	return e
}
