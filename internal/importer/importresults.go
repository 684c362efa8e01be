package importer

import (
	"bufio"
	"crypto/sha256"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/contactrelay/contactrelay/client"
	"github.com/contactrelay/contactrelay/internal/sheet"
	"github.com/contactrelay/contactrelay/rules"
)

// The states of an import row.
const (
	rowRead      uint8 = iota // read and sent to be published
	rowPublished              // stored in the command stream, awaiting its outcome
	rowCreated
	rowFailed
	rowInvalid // refused before publishing
	rowUnsent  // its publish failed: no outcome will come
)

// rowState is all an import keeps of a row until the end, whatever the
// row's size: its line, where its commandId and its outcome are in the
// spool, the next row with the same command, and its state.
type rowState struct {
	idOff    int64
	outOff   int64 // -1: none yet
	cellsOff int64 // the row's own cells (importRow.cells)
	line     int32
	next     int32 // -1: none
	state    uint8
}

// idEntry is one commandId of the import: its first row, its content's
// digest, and whether its publish was acknowledged.
type idEntry struct {
	first   int32
	content [16]byte
	acked   bool
}

// earlyOutcome is an outcome read from the event stream before the row
// of its command: kept for a while, for a row published as a duplicate of
// a command whose outcome is older than the reading.
type earlyOutcome struct {
	outOff int64
	state  uint8
	at     time.Time
}

// importTracker follows an import's rows from read to outcome, in memory
// small per row: the rows' texts live in a spool file. Safe for
// concurrent use.
type importTracker struct {
	mu    sync.Mutex
	rows  []rowState
	ids   map[[16]byte]idEntry
	early map[[16]byte]earlyOutcome
	spool *spool

	// Counts of rows.
	read, invalid, published, created, failed, unsent int
	open                                              int // awaiting an outcome
	// known counts the commands settled before the import, not sent.
	known int

	// columns are the input's own columns, for the results: a CSV's
	// header, or the NDJSON lines' top-level field names as first seen
	// (at most maxNDJSONColumns; pairs is then set, and columnAt indexes
	// them).
	columns  []string
	columnAt map[string]int
	pairs    bool
}

// maxNDJSONColumns bounds the NDJSON field names the results file gets a
// column for: a field first seen after so many others is left out of it.
const maxNDJSONColumns = 256

// setColumns names the input's columns: a CSV's header (cells in that
// order), or none yet for NDJSON (cells in name, value pairs).
func (t *importTracker) setColumns(header []string, pairs bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.columns, t.pairs, t.columnAt = slices.Clone(header), pairs, map[string]int{}
}

func newImportTracker(sp *spool) *importTracker {
	return &importTracker{ids: map[[16]byte]idEntry{}, early: map[[16]byte]earlyOutcome{}, spool: sp}
}

// idKey digests a commandId, for the maps.
func idKey(commandID string) [16]byte {
	sum := sha256.Sum256([]byte(commandID))
	return [16]byte(sum[:16])
}

// contentKey digests a row's content.
func contentKey(content []byte) [16]byte {
	sum := sha256.Sum256(content)
	return [16]byte(sum[:16])
}

// add records a row read. It returns whether the row's command is to be
// published: not when the row is refused (reason and message say why),
// nor when an earlier row of the import has the same command, whose
// outcome the row shares.
func (t *importTracker) add(row importRow, reason, message, fields string) (publish bool, err error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	idx := int32(len(t.rows))
	if len(t.rows) >= 1<<31-1 {
		return false, errors.New("more rows than an import takes (2^31)")
	}
	idOff, err := t.spool.put(row.commandID)
	if err != nil {
		return false, err
	}
	cellsOff, err := t.spool.put(row.cells...)
	if err != nil {
		return false, err
	}
	if t.pairs {
		for i := 0; i+1 < len(row.cells); i += 2 {
			if _, ok := t.columnAt[row.cells[i]]; !ok && len(t.columns) < maxNDJSONColumns {
				t.columnAt[row.cells[i]] = len(t.columns)
				t.columns = append(t.columns, row.cells[i])
			}
		}
	}
	rs := rowState{idOff: idOff, outOff: -1, cellsOff: cellsOff, line: int32(min(row.line, 1<<31-1)), next: -1, state: rowRead}
	t.read++
	key := idKey(row.commandID)
	if !rules.UsableCommandID(row.commandID) {
		// Sent as it is (--send-invalid), the service keys it by what
		// it derives (<stream>:<sequence>): a command of its own, keyed
		// by its row until its publish is acknowledged (acked).
		key = idKey(fmt.Sprintf("\x00row %d", idx))
	}
	e, seen := t.ids[key]
	if reason == "" && seen && e.content != row.content {
		reason = "conflict"
		message = fmt.Sprintf("line %d has the same commandId with other content: not published (use another commandId)", t.rows[e.first].line)
	}
	if reason != "" {
		if rs.outOff, err = t.spool.put("", "", reason, message, fields); err != nil {
			return false, err
		}
		rs.state = rowInvalid
		t.invalid++
		t.rows = append(t.rows, rs)
		return false, nil
	}
	t.open++
	if seen {
		// A twin: it shares the first row's command and outcome.
		first := &t.rows[e.first]
		rs.next, first.next = first.next, idx
		rs.outOff = first.outOff
		switch first.state {
		case rowCreated, rowFailed, rowUnsent:
			rs.state = first.state
			t.count(rs.state, 1)
		}
		if e.acked {
			t.published++
			if rs.state == rowRead {
				rs.state = rowPublished
			}
		}
		t.rows = append(t.rows, rs)
		return false, nil
	}
	t.ids[key] = idEntry{first: idx, content: row.content}
	t.rows = append(t.rows, rs)
	if o, ok := t.early[key]; ok {
		delete(t.early, key)
		t.settle(idx, o.state, o.outOff)
	}
	return true, nil
}

// count moves n rows into state's count, out of the open ones.
func (t *importTracker) count(state uint8, n int) {
	switch state {
	case rowCreated:
		t.created += n
	case rowFailed:
		t.failed += n
	case rowUnsent:
		t.unsent += n
	default:
		return
	}
	t.open -= n
}

// chain calls f with each row of the command whose first row is first.
func (t *importTracker) chain(first int32, f func(*rowState)) {
	for i := first; i >= 0; i = t.rows[i].next {
		f(&t.rows[i])
	}
}

// settle gives the rows of first's command their outcome, once.
func (t *importTracker) settle(first int32, state uint8, outOff int64) {
	switch t.rows[first].state {
	case rowCreated, rowFailed, rowUnsent:
		return
	}
	n := 0
	t.chain(first, func(r *rowState) { r.state, r.outOff = state, outOff; n++ })
	t.count(state, n)
}

// acked records the stream's answer to the publish of row first's
// command, whose commandId was commandID as read and is ack's as the
// service takes it.
func (t *importTracker) acked(commandID string, first int32, ack client.Ack, err error) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	if err != nil {
		state, reason := uint8(rowUnsent), "unsent"
		if errors.Is(err, client.ErrOtherContent) {
			state, reason = rowFailed, string(client.ReasonConflict)
		}
		off, perr := t.spool.put("", "", reason, err.Error(), "")
		if perr != nil {
			return perr
		}
		t.settle(first, state, off)
		return nil
	}
	key := idKey(commandID)
	if !rules.UsableCommandID(commandID) {
		key = idKey(fmt.Sprintf("\x00row %d", first))
	}
	e := t.ids[key]
	e.acked = true
	t.ids[key] = e
	t.chain(first, func(r *rowState) {
		t.published++
		if r.state == rowRead {
			r.state = rowPublished
		}
	})
	if ack.CommandID == "" || ack.CommandID == commandID {
		return nil
	}
	// The service takes another commandId than the row's: follow the
	// command by it, and write it in the results.
	idOff, err := t.spool.put(ack.CommandID)
	if err != nil {
		return err
	}
	delete(t.ids, key)
	key = idKey(ack.CommandID)
	t.ids[key] = e
	t.chain(first, func(r *rowState) { r.idOff = idOff })
	if o, ok := t.early[key]; ok {
		delete(t.early, key)
		t.settle(first, o.state, o.outOff)
	}
	return nil
}

// observe takes an event read from the event stream: the outcome of one of
// the import's commands in its first generation (or the answer to its
// content's conflict), or one kept for a row not read yet.
func (t *importTracker) observe(ev client.Event) error {
	cid := ev.Subject
	if ev.ID != client.EventID(cid, "", client.SubjectCreated) && ev.ID != client.EventID(cid, "", client.SubjectFailed) {
		if ev.Type != client.SubjectFailed || !isConflict(ev) {
			return nil
		}
	}
	key := idKey(cid)
	t.mu.Lock()
	defer t.mu.Unlock()
	e, known := t.ids[key]
	if known {
		switch t.rows[e.first].state {
		case rowCreated, rowFailed:
			return nil // seen already: events may come more than once
		}
	} else if _, kept := t.early[key]; kept {
		return nil
	}
	state, fields, ok := outcomeFields(ev)
	if !ok {
		return nil
	}
	off, err := t.spool.put(fields...)
	if err != nil {
		return err
	}
	if !known {
		t.early[key] = earlyOutcome{outOff: off, state: state, at: ev.Time}
		return nil
	}
	t.settle(e.first, state, off)
	return nil
}

// outcomeFields returns the row state and the results' provider,
// contactId, reason, message and fields of a terminal event.
func outcomeFields(ev client.Event) (state uint8, fields []string, ok bool) {
	if ev.Type == client.SubjectCreated {
		var d client.Created
		if json.Unmarshal(ev.Data, &d) != nil {
			return 0, nil, false
		}
		return rowCreated, []string{d.Provider, d.ContactID, "", "", ""}, true
	}
	var d client.Failed
	if json.Unmarshal(ev.Data, &d) != nil {
		return 0, nil, false
	}
	return rowFailed, []string{d.Provider, "", string(d.Reason), d.Message, sheet.Fields(d.Errors)}, true
}

// settledBefore gives row first's command the outcome the service had
// recorded for it before the import sent it (client.Settled): it is not
// sent again.
func (t *importTracker) settledBefore(first int32, o client.Outcome) error {
	state, fields, ok := outcomeFields(o.Event)
	if !ok {
		return fmt.Errorf("the recorded outcome of %s cannot be read", o.Ack.CommandID)
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	off, err := t.spool.put(fields...)
	if err != nil {
		return err
	}
	t.known++
	t.settle(first, state, off)
	return nil
}

func isConflict(ev client.Event) bool {
	var d struct {
		Reason client.Reason `json:"reason"`
	}
	return json.Unmarshal(ev.Data, &d) == nil && d.Reason == client.ReasonConflict
}

// forget drops the outcomes kept for rows not read yet that are older than
// before: no command published from now on can be answered by them.
func (t *importTracker) forget(before time.Time) {
	t.mu.Lock()
	defer t.mu.Unlock()
	for k, o := range t.early {
		if o.at.Before(before) {
			delete(t.early, k)
		}
	}
}

// importCounts is a snapshot of an import's counts of rows.
type importCounts struct {
	read, invalid, published, created, failed, unsent, open int
	known                                                   int
}

func (t *importTracker) counts() importCounts {
	t.mu.Lock()
	defer t.mu.Unlock()
	return importCounts{t.read, t.invalid, t.published, t.created, t.failed, t.unsent, t.open, t.known}
}

// resultHeader is the results file's header, without the input's own
// columns, which come after line.
var resultHeader = []string{"line", "commandId", "status", "provider", "contactId", "reason", "message", "fields"}

// resultColumns returns the results' header for input columns cols: line,
// each input column (one named like a result column written
// row.<name>), then the outcome's columns.
func resultColumns(cols []string) []string {
	out := make([]string, 0, len(resultHeader)+len(cols))
	out = append(out, resultHeader[0])
	for _, c := range cols {
		if slices.Contains(resultHeader, c) {
			c = "row." + c
		}
		out = append(out, c)
	}
	return append(out, resultHeader[1:]...)
}

// writeResults writes one line a row, in the file's order: its line, its
// own cells, its outcome; every cell guarded against a spreadsheet
// running it (sheet.Writer).
func (t *importTracker) writeResults(w io.Writer, pendingMessage string) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	if err := t.spool.flush(); err != nil {
		return err
	}
	cw := sheet.NewWriter(w)
	header := resultColumns(t.columns)
	if err := cw.Write(header); err != nil {
		return err
	}
	rec := make([]string, len(header))
	own := rec[1 : 1+len(t.columns)]
	for _, r := range t.rows {
		id, err := t.spool.get(r.idOff)
		if err != nil {
			return err
		}
		cells, err := t.spool.get(r.cellsOff)
		if err != nil {
			return err
		}
		clear(own)
		if t.pairs {
			for i := 0; i+1 < len(cells); i += 2 {
				if at, ok := t.columnAt[cells[i]]; ok {
					own[at] = cells[i+1]
				}
			}
		} else {
			copy(own, cells)
		}
		out := []string{"", "", "", pendingMessage, ""}
		if r.outOff >= 0 {
			if out, err = t.spool.get(r.outOff); err != nil {
				return err
			}
		}
		status := "pending"
		switch r.state {
		case rowCreated:
			status = "created"
		case rowFailed:
			status = "failed"
		case rowInvalid:
			status = "invalid"
		}
		tail := rec[1+len(t.columns):]
		rec[0], tail[0], tail[1] = strconv.Itoa(int(r.line)), id[0], status
		clear(tail[2:])
		copy(tail[2:], out)
		if err := cw.Write(rec); err != nil {
			return err
		}
	}
	cw.Flush()
	return cw.Error()
}

// spool is a temporary file of records of strings, written once and read
// back by offset: what an import keeps of each row, out of memory.
type spool struct {
	f   *os.File
	w   *bufio.Writer
	off int64
	buf []byte
}

func newSpool() (*spool, error) {
	f, err := os.CreateTemp("", "consumer-import-*.spool")
	if err != nil {
		return nil, fmt.Errorf("spool file: %w", err)
	}
	_ = os.Remove(f.Name()) // gone with the process, whatever happens
	return &spool{f: f, w: bufio.NewWriterSize(f, 64<<10)}, nil
}

func (s *spool) close() { _ = s.f.Close() }

// put appends a record and returns its offset.
func (s *spool) put(fields ...string) (int64, error) {
	s.buf = s.buf[:0]
	for _, f := range fields {
		s.buf = binary.AppendUvarint(s.buf, uint64(len(f)))
		s.buf = append(s.buf, f...)
	}
	var head [binary.MaxVarintLen64]byte
	n := binary.PutUvarint(head[:], uint64(len(s.buf)))
	if _, err := s.w.Write(head[:n]); err != nil {
		return 0, err
	}
	if _, err := s.w.Write(s.buf); err != nil {
		return 0, err
	}
	off := s.off
	s.off += int64(n + len(s.buf))
	return off, nil
}

func (s *spool) flush() error { return s.w.Flush() }

// get reads the record at off; flush first.
func (s *spool) get(off int64) ([]string, error) {
	var head [binary.MaxVarintLen64]byte
	n, err := s.f.ReadAt(head[:], off)
	if n == 0 && err != nil {
		return nil, err
	}
	size, hn := binary.Uvarint(head[:n])
	if hn <= 0 {
		return nil, errors.New("spool: a broken record")
	}
	payload := make([]byte, size)
	if _, err := s.f.ReadAt(payload, off+int64(hn)); err != nil && !(errors.Is(err, io.EOF) && size == 0) {
		return nil, err
	}
	var out []string
	for len(payload) > 0 {
		l, ln := binary.Uvarint(payload)
		if ln <= 0 || uint64(len(payload)-ln) < l {
			return nil, errors.New("spool: a broken record")
		}
		out = append(out, string(payload[ln:ln+int(l)]))
		payload = payload[ln+int(l):]
	}
	return out, nil
}
