package importer

import (
	"bufio"
	"bytes"
	"context"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/contactrelay/contactrelay/client"
	"github.com/contactrelay/contactrelay/contact"
	"github.com/contactrelay/contactrelay/internal/audit"
	"github.com/contactrelay/contactrelay/internal/config"
	"github.com/contactrelay/contactrelay/internal/failstore"
	"github.com/contactrelay/contactrelay/internal/natsconn"
	"github.com/contactrelay/contactrelay/internal/replay"
	"github.com/contactrelay/contactrelay/internal/sheet"
	"github.com/contactrelay/contactrelay/rules"
)

// RepairOptions are the settings of 'consumer import --repair FILE'.
type RepairOptions struct {
	// File is the failures CSV ('consumer failures --csv', the console's
	// download), edited; - for stdin. Encoding as for Options.
	File, Encoding string
	// DryRun prints each row's diff and sends nothing.
	DryRun bool
	// Wait waits for each repair's outcome, at most Timeout after the
	// last; Results, with Wait, is the CSV file each row's outcome is
	// written to.
	Wait    bool
	Timeout time.Duration
	Results string
}

// The statuses of a repair row besides the import's (created, failed,
// invalid, pending).
const (
	statusUnchanged = "unchanged" // nothing edited, and a replay would only fail again
	statusNotOpen   = "not-open"  // the failure is no longer its command's open failure
)

// repairRow is one row of a repair file and what became of it.
type repairRow struct {
	line      int
	cells     []string // unguarded
	commandID string
	failureID string
	status    string
	// provider, contactId, reason, message, fields: as in the results.
	out [5]string
	// diffs are the row's changes: "email: a@exmaple.com → a@example.com".
	diffs []string
}

// RepairRun is 'consumer import --repair FILE': each row of a failures CSV
// whose failure (by failureId) is still its command's open failure
// becomes a repair of it, with the fields the row changed (the new
// generation 'replay --set' makes, validated first); a row of a failure no
// longer open is reported and not sent; a row changing nothing is
// replayed as it is when its failure is retryable, and reported unchanged
// otherwise. It returns the exit status as Run does (1 when a row failed
// or was refused, 2 when one has no outcome within the timeout or the
// file cannot be used).
func RepairRun(ctx context.Context, o RepairOptions, cfg config.Config, stdin io.Reader, stdout, stderr io.Writer) error {
	in := stdin
	if o.File != "-" {
		f, err := os.Open(o.File)
		if err != nil {
			return &exitError{code: 2, err: err}
		}
		defer f.Close()
		in = f
	}
	enc := o.Encoding
	if enc == "" {
		enc = DefaultEncoding
	}
	header, rows, err := readRepairFile(decodeInput(in, enc))
	if err != nil {
		return &exitError{code: 2, err: fmt.Errorf("%s: %w", o.File, err)}
	}
	var results *os.File
	if o.Results != "" {
		if results, err = os.Create(o.Results); err != nil {
			return &exitError{code: 2, err: fmt.Errorf("--results: %w", err)}
		}
		defer results.Close()
	}
	nc, js, err := natsconn.ConnectJetStream(cfg, "contactrelay-import-repair")
	if err != nil {
		return err
	}
	defer nc.Close()
	c := client.New(js, client.Config{DefaultProvider: cfg.DefaultProvider})
	if err := c.CheckStreams(ctx); err != nil {
		return &exitError{code: 2, err: err}
	}
	var w *client.Watch
	if o.Wait && !o.DryRun {
		if w, err = c.Watch(ctx, time.Time{}); err != nil {
			return &exitError{code: 2, err: err}
		}
		defer w.Stop()
	}
	if !o.DryRun {
		// The audit trail says who repaired what before anything is sent.
		e := audit.Entry{Action: audit.ActionRepairImport, Detail: "file " + o.File, Count: len(rows)}
		if len(rows) <= 20 {
			for _, r := range rows {
				e.CommandIDs = append(e.CommandIDs, r.commandID)
			}
		}
		if _, err := audit.WriteFromCommandLine(ctx, js, e); err != nil {
			return err
		}
	}
	v := rules.NewValidator()
	expect := map[string]*repairRow{} // event id → row awaiting it
	for i := range rows {
		r := &rows[i]
		ids, err := repairOne(ctx, js, r, header, v, o.DryRun, stdout)
		if err != nil {
			if errors.Is(err, failstore.ErrNoStore) {
				return &exitError{code: 2, err: err}
			}
			return err
		}
		for _, id := range ids {
			expect[id] = r
		}
	}
	if w != nil && len(expect) > 0 {
		awaitRepairs(ctx, w, expect, o.Timeout)
	}
	if results != nil {
		if err := writeRepairResults(results, header, rows); err != nil {
			return err
		}
	}
	return repairSummary(stdout, o, rows)
}

// RepairSheetRow is one row of a repair file as RepairFile decided or
// sent it: what the console shows.
type RepairSheetRow struct {
	Line                 int
	CommandID, FailureID string
	// Status is "pending" (to be sent, or sent: its outcome comes later),
	// "invalid" (the repair breaks a rule: not sent), "unchanged" or
	// "not-open" (not sent); Message says why, Diffs what changes.
	Status  string
	Diffs   []string
	Message string
}

// RepairFile reads a failures CSV from in (at most a few thousand rows:
// it is read whole) and repairs its rows as RepairRun does, without
// waiting for the outcomes; with dryRun it decides each row and sends
// nothing. The console's upload-repair-confirm runs it twice.
func RepairFile(ctx context.Context, js jetstream.JetStream, in io.Reader, dryRun bool) ([]RepairSheetRow, error) {
	header, rows, err := readRepairFile(in)
	if err != nil {
		return nil, err
	}
	v := rules.NewValidator()
	out := make([]RepairSheetRow, len(rows))
	for i := range rows {
		r := &rows[i]
		if _, err := repairOne(ctx, js, r, header, v, dryRun, io.Discard); err != nil {
			return nil, err
		}
		out[i] = RepairSheetRow{Line: r.line, CommandID: r.commandID, FailureID: r.failureID, Status: r.status, Diffs: r.diffs, Message: r.out[3]}
	}
	return out, nil
}

// readRepairFile reads a failures CSV whole (a repair file is what people
// edit: thousands of rows, not millions), every cell unguarded.
func readRepairFile(in io.Reader) ([]string, []repairRow, error) {
	br := bufio.NewReader(in)
	if b, _ := br.Peek(len(bom)); bytes.Equal(b, bom) {
		_, _ = br.Discard(len(bom))
	}
	// A record (or the header) past maxRecordBytes ends the read, as in
	// an import: a quote never closed would otherwise read to the end.
	budget := &recordBudget{r: br}
	budget.reset()
	r := csv.NewReader(budget)
	header, err := r.Read()
	if err != nil {
		return nil, nil, fmt.Errorf("the header row: %w", err)
	}
	for i := range header {
		header[i] = strings.TrimSpace(sheet.Unguard(header[i]))
	}
	for _, need := range []string{"failureId", "commandId"} {
		if !slices.Contains(header, need) {
			return nil, nil, fmt.Errorf("line 1: the header has no column %q: a repair reads the file 'consumer failures --csv' (or the console's Download CSV) writes", need)
		}
	}
	var rows []repairRow
	for {
		budget.reset()
		rec, err := r.Read()
		if errors.Is(err, io.EOF) {
			return header, rows, nil
		}
		if err != nil {
			return nil, nil, err
		}
		line, _ := r.FieldPos(0)
		row := repairRow{line: line, cells: make([]string, len(rec))}
		for i, cell := range rec {
			row.cells[i] = sheet.Unguard(cell)
			switch header[i] {
			case "failureId":
				row.failureID = strings.TrimSpace(row.cells[i])
			case "commandId":
				row.commandID = row.cells[i]
			}
		}
		rows = append(rows, row)
	}
}

// repairOne decides and, unless dryRun, sends one row's repair; it
// returns the ids of the events that will answer it.
func repairOne(ctx context.Context, js jetstream.JetStream, r *repairRow, header []string, v *rules.Validator, dryRun bool, stdout io.Writer) ([]string, error) {
	say := func(format string, a ...any) {
		if dryRun {
			fmt.Fprintf(stdout, "line %d (%s): %s\n", r.line, r.commandID, fmt.Sprintf(format, a...))
		}
	}
	f, now, err := openFailure(ctx, js, r.commandID, r.failureID)
	if err != nil {
		return nil, err
	}
	if f == nil {
		r.status, r.out[3] = statusNotOpen, "the failure "+r.failureID+" is no longer the command's open failure (replayed, repaired, discarded or failed anew since the export)"
		if now != "" {
			r.out[3] += "; its open failure now is " + now + ": export again to repair it"
		}
		say("not open, not sent: %s", r.out[3])
		return nil, nil
	}
	var sets []replay.Set
	var diffs []string
	for i, col := range header {
		was, ok := replay.CSVCell(f, col)
		if !ok || i >= len(r.cells) || r.cells[i] == was {
			continue
		}
		if col == replay.CSVPik {
			r.status, r.out[2], r.out[3], r.out[4] = "invalid", "invalid", "the pik column cannot be changed from a spreadsheet: use consumer replay --command-id "+r.commandID+" --set pik.<field>=…", "pik"
			say("refused: %s", r.out[3])
			return nil, nil
		}
		path := []string{col}
		if key, isMeta := strings.CutPrefix(col, "metadata."); isMeta {
			path = []string{"metadata", key}
		}
		sets = append(sets, replay.Set{Path: path, Value: r.cells[i]})
		diffs = append(diffs, fmt.Sprintf("%s: %s → %s", col, was, r.cells[i]))
	}
	r.diffs = diffs
	if len(sets) == 0 && !f.Data.Retryable {
		r.status, r.out[2], r.out[3] = statusUnchanged, string(f.Data.Reason), "nothing was changed, and the failure ("+string(f.Data.Reason)+") would only fail again if replayed unchanged: not sent"
		say("unchanged, not sent (%s)", f.Data.Reason)
		return nil, nil
	}
	if len(sets) > 0 {
		if _, err := replay.Repair(f, sets, v); err != nil {
			var rerr *replay.RepairError
			if !errors.As(err, &rerr) {
				return nil, err
			}
			r.status, r.out[2], r.out[3], r.out[4] = "invalid", "invalid", oneLine(rerr.Error()), sheet.Fields(rerr.Errors)
			say("refused: %s", r.out[3])
			return nil, nil
		}
	}
	if dryRun {
		if len(diffs) == 0 {
			say("replayed unchanged (%s is retryable)", f.Data.Reason)
		} else {
			say("%s", strings.Join(diffs, "; "))
		}
		r.status = "pending"
		return nil, nil
	}
	var item replay.Item
	_, err = replay.Replay(ctx, js, []*replay.Failure{f}, replay.Options{Repair: sets, Validator: v, OnItem: func(it replay.Item) { item = it }})
	switch {
	case err != nil:
		return nil, err
	case item.Err != nil:
		r.status, r.out[3] = "pending", "not sent: "+item.Err.Error()
		return nil, nil
	case item.Refused:
		r.status, r.out[3] = statusNotOpen, "another replay or repair of this failure "+item.Earlier.What()+": its outcome stands"
		return nil, nil
	}
	r.status = "pending"
	return []string{contact.EventID(r.commandID, f.Event.ID, contact.SubjectCreated), contact.EventID(r.commandID, f.Event.ID, contact.SubjectFailed)}, nil
}

// openFailure returns the open failure of commandID whose event id is
// failureID, or nil and the id of the command's open failure now ("" when
// it has none).
func openFailure(ctx context.Context, js jetstream.JetStream, commandID, failureID string) (*replay.Failure, string, error) {
	if commandID == "" || failureID == "" {
		return nil, "", nil
	}
	snap, err := failstore.Load(ctx, js, failstore.Select{CommandID: commandID})
	if err != nil {
		return nil, "", err
	}
	now := ""
	for _, s := range snap.Failures {
		if s.CommandID != commandID {
			continue
		}
		if s.EventID != failureID {
			now = s.EventID
			continue
		}
		got, err := failstore.Get(ctx, js, []failstore.Summary{s})
		if err != nil || len(got) == 0 {
			return nil, "", err
		}
		return replay.FromOpen(got)[0], "", nil
	}
	return nil, now, nil
}

// awaitRepairs reads outcomes into the rows awaiting them until none is
// left, or timeout passes without one.
func awaitRepairs(ctx context.Context, w *client.Watch, expect map[string]*repairRow, timeout time.Duration) {
	for len(expect) > 0 {
		wctx, cancel := context.WithTimeout(ctx, timeout)
		ev, _, err := w.Next(wctx)
		cancel()
		if err != nil {
			return
		}
		r := expect[ev.ID]
		if r == nil {
			continue
		}
		for id, other := range expect {
			if other == r {
				delete(expect, id)
			}
		}
		state, fields, ok := outcomeFields(ev)
		if !ok {
			continue
		}
		r.status = "failed"
		if state == rowCreated {
			r.status = "created"
		}
		copy(r.out[:], fields)
	}
}

// writeRepairResults writes the results as the import does: line, the
// row's own columns, the outcome.
func writeRepairResults(w io.Writer, header []string, rows []repairRow) error {
	cw := sheet.NewWriter(w)
	if err := cw.Write(resultColumns(header)); err != nil {
		return err
	}
	for _, r := range rows {
		rec := []string{strconv.Itoa(r.line)}
		own := make([]string, len(header))
		copy(own, r.cells)
		rec = append(append(rec, own...), r.commandID, r.status)
		if err := cw.Write(append(rec, r.out[:]...)); err != nil {
			return err
		}
	}
	cw.Flush()
	return cw.Error()
}

// repairSummary prints the counts and returns the exit status.
func repairSummary(stdout io.Writer, o RepairOptions, rows []repairRow) error {
	n := map[string]int{}
	for _, r := range rows {
		n[r.status]++
	}
	if o.DryRun {
		fmt.Fprintf(stdout, "dry run of %s: %d rows: %d would be sent, %d refused, %d unchanged, %d not open; nothing was sent\n",
			o.File, len(rows), n["pending"], n["invalid"], n[statusUnchanged], n[statusNotOpen])
		return nil
	}
	fmt.Fprintf(stdout, "repaired from %s: %d rows: %d created, %d failed, %d refused, %d unchanged, %d not open, %d pending\n",
		o.File, len(rows), n["created"], n["failed"], n["invalid"], n[statusUnchanged], n[statusNotOpen], n["pending"])
	switch {
	case n["failed"] > 0 || n["invalid"] > 0:
		return &exitError{code: 1, err: errQuiet}
	case o.Wait && n["pending"] > 0:
		return &exitError{code: 2, err: errQuiet}
	}
	return nil
}
