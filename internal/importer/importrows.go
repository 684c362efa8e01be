package importer

import (
	"bufio"
	"bytes"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"unicode/utf8"

	"github.com/google/uuid"

	"github.com/contactrelay/contactrelay/contact"
	"github.com/contactrelay/contactrelay/rules"
)

// importRow is one row of an import file, read: its line, its command's
// body and commandId, or why it cannot be sent.
type importRow struct {
	line      int
	body      []byte
	commandID string
	// content digests the body without its commandId: two rows with one
	// content ask for the same contact.
	content [16]byte
	// broken, when set, says why the row is not a command the service
	// will accept (it is then reported and, unless --send-invalid, not
	// published); unreadable rows (a broken CSV record) cannot be sent.
	broken     string
	unreadable bool
	// cells are the row's own values, for the results: a CSV row's cells
	// in the header's order, or an NDJSON line's top-level fields as
	// name, value pairs (a string's value as it is, any other compact
	// JSON).
	cells []string
}

// rowReader reads an import file a row at a time, never more.
type rowReader interface {
	// next returns the next row, or io.EOF.
	next() (importRow, error)
}

// csvColumns are the columns a CSV import knows, besides metadata.*.
var (
	csvRequired = []string{"name", "email", "mobile", "tagId"}
	csvOptional = []string{"companyName", "provider", "commandId"}
)

// maxRecordBytes bounds one line of NDJSON and one record of CSV (its
// header included): four times the largest command the service accepts.
const maxRecordBytes = 4 * contact.MaxCommandSize

// recordBudget stops a CSV read that runs past maxRecordBytes without a
// record ending: encoding/csv holds a whole record in memory, and a file
// with a gigabyte between two line ends (or inside one quoted field)
// would otherwise be read into it. reset starts each record's budget; the
// CSV reader's own read-ahead (4 KiB) comes on top.
type recordBudget struct {
	r    io.Reader
	left int
}

// errRecordTooLarge is a CSV record (or header) beyond maxRecordBytes.
var errRecordTooLarge = fmt.Errorf("a record is longer than %d bytes: no row can be that long (is the file CSV, and are its quotes closed?)", maxRecordBytes)

func (b *recordBudget) Read(p []byte) (int, error) {
	if b.left <= 0 {
		return 0, errRecordTooLarge
	}
	if len(p) > b.left {
		p = p[:b.left]
	}
	n, err := b.r.Read(p)
	b.left -= n
	return n, err
}

func (b *recordBudget) reset() { b.left = maxRecordBytes }

// columnOptions say how a CSV's columns become a command's fields: the
// flags --map, --ignore-unknown-columns and --provider.
type columnOptions struct {
	maps          map[string]string // header → field (a csv column or metadata.<key>)
	ignoreUnknown bool
	provider      string // for rows that name none
}

// maxMetadataKeys is how many metadata entries a command may hold.
const maxMetadataKeys = 32

// MapField reports whether field is what --map may map a header to: one of
// the columns a CSV import knows, or metadata.<key>.
func MapField(field string) bool {
	return contains(csvRequired, field) || contains(csvOptional, field) ||
		(strings.HasPrefix(field, "metadata.") && len(field) > len("metadata."))
}

// csvRows reads CSV rows under a header row.
type csvRows struct {
	budget *recordBudget
	text   *utf8Watch // where the bytes are not UTF-8
	last   int        // the last record's line
	r      *csv.Reader
	names  []string          // the header's column names
	col    map[string]int    // column name → index
	meta   map[string]int    // metadata key → index
	header int               // the header's line
	batch  string            // derives commandIds
	hasID  bool              // the header has a commandId column
	fields map[string]string // reused
	// provider is given to rows that name none (--provider).
	provider string
	// kept are the unknown columns kept as metadata, dropped those left
	// out (--ignore-unknown-columns, or without a name), for the note.
	kept, dropped []string
}

// newCSVRows reads the header and checks its columns: a usage error
// (exit 2) names what is missing or unknown, with the header's line.
func newCSVRows(in io.Reader, batch string, co columnOptions) (*csvRows, error) {
	br := bufio.NewReader(in)
	if b, _ := br.Peek(len(bom)); bytes.Equal(b, bom) {
		// Before the header, which may be quoted: encoding/csv would read
		// the mark as part of a field, and its quote as a bare one.
		_, _ = br.Discard(len(bom))
	}
	text := newUTF8Watch(br)
	budget := &recordBudget{r: text}
	budget.reset()
	r := csv.NewReader(budget)
	r.ReuseRecord = true
	header, err := r.Read()
	if err != nil {
		if errors.Is(err, io.EOF) {
			return nil, errors.New("the file is empty: it needs a header row with " + strings.Join(csvRequired, ","))
		}
		return nil, fmt.Errorf("the header row: %w", err)
	}
	line, _ := r.FieldPos(0)
	c := &csvRows{budget: budget, text: text, last: line, r: r, col: map[string]int{}, meta: map[string]int{}, header: line, batch: batch, fields: map[string]string{}, provider: co.provider}
	mapped := map[string]bool{}
	for i, name := range header {
		name = strings.TrimSpace(strings.TrimPrefix(name, "\ufeff")) // a spreadsheet's byte-order mark
		c.names = append(c.names, name)
		field := name
		if to, ok := co.maps[name]; ok {
			field, mapped[name] = to, true
		}
		switch {
		case strings.HasPrefix(field, "metadata.") && len(field) > len("metadata."):
			key := strings.TrimPrefix(field, "metadata.")
			if _, dup := c.meta[key]; dup {
				return nil, fmt.Errorf("line %d: the header has two columns for metadata key %q (%q)", line, key, name)
			}
			c.meta[key] = i
		case contains(csvRequired, field) || contains(csvOptional, field):
			if _, dup := c.col[field]; dup {
				return nil, fmt.Errorf("line %d: the header has the column %q twice", line, field)
			}
			c.col[field] = i
		case name == "" || co.ignoreUnknown:
			c.dropped = append(c.dropped, fmt.Sprintf("%q", name))
		default:
			// What a CRM exports besides the contact: kept, for correlation.
			if _, dup := c.meta[name]; dup {
				return nil, fmt.Errorf("line %d: the header has two columns for metadata key %q (%q and metadata.%s)", line, name, name, name)
			}
			c.meta[name] = i
			c.kept = append(c.kept, fmt.Sprintf("%q", name))
		}
	}
	var unmatched []string
	for from := range co.maps {
		if !mapped[from] {
			unmatched = append(unmatched, fmt.Sprintf("%q", from))
		}
	}
	slices.Sort(unmatched)
	if len(unmatched) > 0 {
		return nil, fmt.Errorf("line %d: --map names %s, which the header does not have (columns: %s)", line, strings.Join(unmatched, ", "), strings.Join(c.names, ","))
	}
	if len(c.meta) > maxMetadataKeys {
		return nil, fmt.Errorf("line %d: the header has %d columns for metadata, more than a command's metadata may hold (%d): the columns the import does not know are %s; "+
			"give --ignore-unknown-columns to leave them out, or --map \"Header=field\" to map one to a field", line, len(c.meta), maxMetadataKeys, strings.Join(c.kept, ", "))
	}
	var missing []string
	for _, name := range csvRequired {
		if _, ok := c.col[name]; !ok {
			missing = append(missing, fmt.Sprintf("%q", name))
		}
	}
	if len(missing) > 0 {
		return nil, fmt.Errorf("line %d: the header has no column %s (columns: %s, optional %s and metadata.<key>; --map \"Header=field\" maps a column of another name)",
			line, strings.Join(missing, ", "), strings.Join(csvRequired, ","), strings.Join(csvOptional, ","))
	}
	_, c.hasID = c.col["commandId"]
	return c, nil
}

// noteColumns says once, on w, which columns the import does not know
// and what it does with them.
func (c *csvRows) noteColumns(w io.Writer) {
	if len(c.kept) > 0 {
		fmt.Fprintf(w, "import: columns the import does not know, kept as metadata under their names: %s (--ignore-unknown-columns leaves them out; --map \"Header=field\" maps one to a field)\n", strings.Join(c.kept, ", "))
	}
	if len(c.dropped) > 0 {
		fmt.Fprintf(w, "import: columns left out: %s\n", strings.Join(c.dropped, ", "))
	}
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

func (c *csvRows) next() (importRow, error) {
	c.budget.reset()
	rec, err := c.r.Read()
	if errors.Is(err, io.EOF) {
		return importRow{}, io.EOF
	}
	if errors.Is(err, errRecordTooLarge) {
		return importRow{}, fmt.Errorf("after line %d: %w", c.last, err)
	}
	var row importRow
	if err != nil {
		var perr *csv.ParseError
		if !errors.As(err, &perr) {
			return importRow{}, err
		}
		row.line = perr.StartLine
		row.cells = rec
		if errors.Is(err, csv.ErrFieldCount) {
			row.broken = fmt.Sprintf("the row has %d fields, the header %d", len(rec), c.r.FieldsPerRecord)
		} else {
			row.broken = "the row is not readable CSV: " + perr.Err.Error()
		}
		row.unreadable = true
		return row, nil
	}
	row.line, _ = c.r.FieldPos(0)
	row.cells = rec
	c.last = row.line
	c.text.forget(row.line, 1) // those of rows not read whole
	if where := c.notUTF8(rec); where != nil {
		// Not sent even with --send-invalid: its command, JSON, would
		// carry U+FFFD in place of the bytes.
		row.broken, row.unreadable = where.String(), true
		if i, ok := c.col["commandId"]; ok && utf8.ValidString(rec[i]) {
			row.commandID = rec[i]
		}
		return row, nil
	}
	cmd := contact.Command{
		Name:   rec[c.col["name"]],
		Email:  rec[c.col["email"]],
		Mobile: rec[c.col["mobile"]],
		TagID:  rec[c.col["tagId"]],
	}
	if i, ok := c.col["companyName"]; ok {
		cmd.CompanyName = rec[i]
	}
	if i, ok := c.col["provider"]; ok {
		cmd.Provider = rec[i]
	}
	if strings.TrimSpace(cmd.Provider) == "" {
		cmd.Provider = c.provider
	}
	for key, i := range c.meta {
		if rec[i] != "" {
			if cmd.Metadata == nil {
				cmd.Metadata = map[string]string{}
			}
			cmd.Metadata[key] = rec[i]
		}
	}
	cmd, _ = rules.Normalize(cmd)     // a row in another form of the same content gets the same commandId
	content, err := json.Marshal(cmd) // without commandId: map keys sorted
	if err != nil {
		return importRow{}, err
	}
	row.content = contentKey(content)
	if i, ok := c.col["commandId"]; ok {
		cmd.CommandID = rec[i]
	}
	if cmd.CommandID == "" {
		if c.batch == "" {
			return row, errNeedBatch
		}
		cmd.CommandID = deriveCommandID(c.batch, content)
	}
	row.commandID = cmd.CommandID
	if row.body, err = json.Marshal(cmd); err != nil {
		return importRow{}, err
	}
	return row, nil
}

// notUTF8 returns where the fields of rec that are not UTF-8 have their
// first bad byte, or nil when all are UTF-8.
func (c *csvRows) notUTF8(rec []string) notUTF8 {
	var where notUTF8
	for i, v := range rec {
		if utf8.ValidString(v) {
			continue
		}
		line, col := c.r.FieldPos(i)
		b, ok := c.text.firstFrom(line, col)
		if !ok { // not expected: the watch saw every byte the reader did
			b = badByte{line: line, col: col, b: v[strings.IndexRune(v, utf8.RuneError)]}
		}
		where.add(c.names[i], b)
	}
	return where
}

// errNeedBatch: a row without a commandId, and no --batch to derive one.
var errNeedBatch = errors.New("has no commandId: give --batch NAME to derive one from the row's content, so that running the import again creates nothing twice")

// bom is UTF-8's byte-order mark, which an editor or a spreadsheet may
// write at the start of a file: it is not part of the first row.
var bom = []byte("\ufeff")

// ndjsonRows reads one command object a line, a byte-order mark before it
// left out; blank lines are skipped.
type ndjsonRows struct {
	s        *bufio.Scanner
	line     int
	batch    string
	provider string // for rows that name none (--provider)
}

func newNDJSONRows(in io.Reader, batch, provider string) *ndjsonRows {
	s := bufio.NewScanner(in)
	// A line longer than maxRecordBytes ends the import with its number.
	s.Buffer(make([]byte, 0, 64<<10), maxRecordBytes)
	return &ndjsonRows{s: s, batch: batch, provider: provider}
}

func (n *ndjsonRows) next() (importRow, error) {
	for n.s.Scan() {
		n.line++
		body := bytes.TrimSpace(bytes.TrimPrefix(n.s.Bytes(), bom))
		if len(body) == 0 {
			continue
		}
		row := importRow{line: n.line}
		var obj map[string]json.RawMessage
		if !utf8.Valid(body) {
			// Sent as it is (with --send-invalid), the service refuses it
			// as malformed, whatever its fields.
			raw := n.s.Bytes()
			start := cap(raw) - cap(body) // body is a part of raw
			row.broken = ndjsonNotUTF8(n.line, raw, body, start).String()
			row.body = append([]byte(nil), body...)
			row.content = contentKey(body)
			if json.Unmarshal(body, &obj) == nil {
				if id, ok := jsonString(obj["commandId"]); ok && !strings.ContainsRune(id, utf8.RuneError) {
					row.commandID = id
				}
			}
			return row, nil
		}
		err := json.Unmarshal(body, &obj)
		row.cells = topLevelCells(body)
		if err != nil || obj == nil {
			// Sent as it is (with --send-invalid) it is malformed.
			row.body = append([]byte(nil), body...)
			row.content = contentKey(body)
			row.commandID, _ = jsonString(obj["commandId"])
			return row, nil
		}
		id, isString := jsonString(obj["commandId"])
		if raw, given := obj["commandId"]; given && !isString && string(raw) != "null" {
			// Not a string: the rules report it; nothing is derived.
			row.body = append([]byte(nil), body...)
			row.content = contentKey(body)
			return row, nil
		}
		given := false
		if name, ok := jsonString(obj["provider"]); ok && strings.TrimSpace(name) != "" {
			given = true
		}
		withProvider := n.provider != "" && !given
		if withProvider {
			obj["provider"], _ = json.Marshal(n.provider)
		}
		delete(obj, "commandId")
		content, err := json.Marshal(obj) // keys sorted, values compacted
		if err != nil {
			return importRow{}, err
		}
		row.content = contentKey(content)
		rewrite := withProvider
		if id == "" {
			if n.batch == "" {
				return row, errNeedBatch
			}
			id, rewrite = deriveCommandID(n.batch, content), true
		}
		if rewrite {
			obj["commandId"], _ = json.Marshal(id)
			if body, err = json.Marshal(obj); err != nil {
				return importRow{}, err
			}
		}
		row.commandID = id
		row.body = append([]byte(nil), body...)
		return row, nil
	}
	if err := n.s.Err(); err != nil {
		if errors.Is(err, bufio.ErrTooLong) {
			return importRow{}, fmt.Errorf("line %d is longer than %d bytes", n.line+1, maxRecordBytes)
		}
		return importRow{}, err
	}
	return importRow{}, io.EOF
}

// topLevelCells returns an NDJSON line's top-level fields as name, value
// pairs in the line's order (the last of repeated names counts): a
// string's value as it is, any other value as compact JSON. A line that is
// not a JSON object has none.
func topLevelCells(body []byte) []string {
	dec := json.NewDecoder(bytes.NewReader(body))
	if tok, err := dec.Token(); err != nil || tok != json.Delim('{') {
		return nil
	}
	var cells []string
	at := map[string]int{}
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return cells
		}
		name, _ := tok.(string)
		var raw json.RawMessage
		if dec.Decode(&raw) != nil {
			return cells
		}
		value, ok := jsonString(raw)
		if !ok {
			var compact bytes.Buffer
			if json.Compact(&compact, raw) == nil {
				value = compact.String()
			} else {
				value = string(raw)
			}
		}
		if i, seen := at[name]; seen {
			cells[i+1] = value
			continue
		}
		at[name] = len(cells)
		cells = append(cells, name, value)
	}
	return cells
}

func jsonString(raw json.RawMessage) (string, bool) {
	var s string
	if raw == nil || json.Unmarshal(raw, &s) != nil {
		return "", false
	}
	return s, true
}

// importNamespace is the UUIDv5 namespace of derived commandIds.
var importNamespace = uuid.MustParse("a3c5e0d2-7f4b-5e6a-9c1d-2b8f4e6a0c13")

// deriveCommandID returns the commandId of a row without one: a function
// of the batch's name and the row's content alone, so that the same row in
// the same batch always gets the same one.
func deriveCommandID(batch string, content []byte) string {
	name := make([]byte, 0, len(batch)+1+len(content))
	name = append(append(append(name, batch...), 0), content...)
	return uuid.NewSHA1(importNamespace, name).String()
}
