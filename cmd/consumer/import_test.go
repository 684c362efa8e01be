package main

import (
	"bytes"
	"context"
	"encoding/csv"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/contactrelay/contactrelay/internal/importer"
)

// importCSV writes a CSV of n rows under header: row i is row(i).
func importCSV(t *testing.T, header string, n int, row func(i int) string) string {
	t.Helper()
	var b strings.Builder
	b.WriteString(header + "\n")
	for i := range n {
		b.WriteString(row(i) + "\n")
	}
	path := filepath.Join(t.TempDir(), "contacts.csv")
	require.NoError(t, os.WriteFile(path, []byte(b.String()), 0o600))
	return path
}

// readResults reads a results file into its rows, the header first.
func readResults(t *testing.T, path string) [][]string {
	t.Helper()
	f, err := os.Open(path)
	require.NoError(t, err)
	defer f.Close()
	recs, err := csv.NewReader(f).ReadAll()
	require.NoError(t, err)
	return recs
}

// resultColumn returns the index of a column of a results header.
func resultColumn(t *testing.T, header []string) func(name string) int {
	return func(name string) int {
		t.Helper()
		for i, h := range header {
			if h == name {
				return i
			}
		}
		require.Failf(t, "no such column", "%q in %q", name, header)
		return -1
	}
}

// TestImportTwoThousandRows is the test: 2,000 rows, 20 invalid,
// one valid row present twice: 1,980 created (the twins share one
// commandId and one contact), 20 invalid, 1,979 contacts at the provider;
// the same import again makes no provider call and writes the same
// results.
func TestImportTwoThousandRows(t *testing.T) {
	t.Parallel()
	e := newTestEnv(t)
	e.quietLogs = true
	e.vars["CONCURRENCY"] = "64"
	e.vars["LOG_LEVEL"] = "warn"
	// Not a test of retries: room for a loaded machine's slow answers.
	e.vars["PROVIDER_TIMEOUT"] = "10s"
	e.vars["MAX_DELIVER"] = "10"
	e.start(t)
	const twin, twinOf = 1234, 77 // row 1234 repeats row 77
	path := importCSV(t, "name,email,mobile,tagId,companyName,metadata.crmId", 2000, func(i int) string {
		switch {
		case i == twin:
			i = twinOf
		case i%100 == 50: // 20 invalid rows: a bad email, or a bad mobile too
			if i%200 == 50 {
				return fmt.Sprintf("Bad %d,bad%d@,+91987654%04d,%s,,crm-%d", i, i, i, tagID, i)
			}
			return fmt.Sprintf("Bad %d,bad%d@example.com,12,not-hex,,crm-%d", i, i, i)
		}
		return fmt.Sprintf("Person %d,person%d@example.com,+91987654%04d,%s,Company %d,crm-%d", i, i, i, tagID, i%7, i)
	})
	results := filepath.Join(t.TempDir(), "results.csv")
	args := []string{"import", "--batch", "onboarding-2026-11", "--wait", "--results", results, path}

	stdout, stderr, err := e.cli(t, args...)
	require.Error(t, err)
	assert.Equal(t, 1, exitCode(err), "exit 1: some rows are invalid")
	assert.Contains(t, stdout, "2000 rows: 1980 created, 0 failed, 20 invalid, 0 pending")
	assert.Contains(t, stderr, "line 52: invalid, not published: the command breaks 1 rule: email: email must be a valid email address")
	assert.Contains(t, stderr, "line 152: invalid, not published: the command breaks 2 rules: mobile: mobile must be 10 to 15 digits, with an optional leading +; tagId: tagId must be")
	assert.NotContains(t, stderr, "bad50@", "no contact data on stderr")

	recs := readResults(t, results)
	require.Len(t, recs, 2001, "a header and a line a row")
	assert.Equal(t, importer.ResultHeader("name", "email", "mobile", "tagId", "companyName", "metadata.crmId"), recs[0])
	col := resultColumn(t, recs[0])
	status := map[string]int{}
	contacts := map[string]bool{}
	for i, rec := range recs[1:] {
		assert.Equal(t, fmt.Sprint(i+2), rec[0], "rows in the file's order, by line")
		crm := i
		if i == twin {
			crm = twinOf
		}
		assert.Equal(t, fmt.Sprintf("crm-%d", crm), rec[col("metadata.crmId")], "the row's own columns")
		status[rec[col("status")]]++
		if rec[col("status")] == "created" {
			assert.Equal(t, "instantpay", rec[col("provider")])
			contacts[rec[col("contactId")]] = true
		} else {
			assert.Equal(t, "invalid", rec[col("reason")], "line %s", rec[0])
			assert.NotEmpty(t, rec[col("message")], "line %s says what is wrong", rec[0])
			want := "email"
			if i%200 == 150 {
				want = "mobile tagId"
			}
			assert.Equal(t, want, rec[col("fields")], "line %s names its broken fields", rec[0])
		}
	}
	assert.Equal(t, map[string]int{"created": 1980, "invalid": 20}, status)
	assert.Len(t, contacts, 1979, "the twins share one contact")
	a, b := recs[twinOf+1], recs[twin+1]
	assert.Equal(t, a[col("commandId")], b[col("commandId")], "the twins share one commandId")
	assert.Equal(t, a[col("contactId")], b[col("contactId")], "and one contact")
	assert.Equal(t, 1979, e.ipay.CreateCalls(), "one create call a command")
	assert.Len(t, e.ipay.Contacts(), 1979)

	first, err := os.ReadFile(results)
	require.NoError(t, err)
	stored := e.commandsStored(t)
	stdout, _, err = e.cli(t, args...)
	assert.Equal(t, 1, exitCode(err))
	assert.Contains(t, stdout, "2000 rows: 1980 created, 0 failed, 20 invalid, 0 pending; 1979 commands settled before, not sent again")
	again, err := os.ReadFile(results)
	require.NoError(t, err)
	assert.Equal(t, string(first), string(again), "the same results")
	assert.Equal(t, 1979, e.ipay.CreateCalls(), "running it again makes no provider call")
	assert.Equal(t, stored, e.commandsStored(t), "and sends nothing already settled")
}

func TestImportNDJSONFromStdin(t *testing.T) {
	t.Parallel()
	e := newTestEnv(t)
	e.quietLogs = true
	e.start(t)
	in := fmt.Sprintf(`{"commandId":"nd-1","name":"Jane Doe","email":"jane@example.com","mobile":"+919876543210","tagId":%q}

{"name":"Ravi Kumar","email":"ravi@example.com","mobile":"9876543210","tagId":"vip","provider":"pik","pik":{"firstName":"Ravi"}}
{"name":"Ravi Kumar","email":"ravi@","mobile":"9876543210","tagId":"vip","provider":"pik"}
`, tagID)
	results := filepath.Join(t.TempDir(), "results.csv")
	var out, errOut bytes.Buffer
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	err := run(ctx, []string{"import", "--format", "ndjson", "--batch", "b", "--wait", "--send-invalid", "--results", results, "-"}, e.getenv, strings.NewReader(in), &out, &errOut)
	t.Log(out.String(), errOut.String())
	assert.Equal(t, 1, exitCode(err), "a row failed")
	assert.Contains(t, errOut.String(), "line 4: invalid, published as it is (--send-invalid)")
	recs := readResults(t, results)
	require.Len(t, recs, 4)
	assert.Equal(t, importer.ResultHeader("commandId", "name", "email", "mobile", "tagId", "provider", "pik"), recs[0], "the lines' top-level fields, as first seen")
	col := resultColumn(t, recs[0])
	pick := func(rec []string, names ...string) []string {
		var out []string
		for _, n := range names {
			out = append(out, rec[col(n)])
		}
		return out
	}
	assert.Equal(t, []string{"1", "nd-1", "nd-1", "created", "instantpay"}, pick(recs[1], "line", "row.commandId", "commandId", "status", "provider"), "the commandId given is kept")
	assert.Equal(t, []string{"3", "created", "pik", "pik", `{"firstName":"Ravi"}`, "Ravi Kumar"}, pick(recs[2], "line", "status", "provider", "row.provider", "pik", "name"), "blank lines count as lines; a field that is not a string is its JSON")
	assert.Len(t, recs[2][col("commandId")], 36, "a derived commandId")
	assert.Empty(t, recs[2][col("row.commandId")], "the line had none")
	assert.Equal(t, []string{"4", "failed", "pik", "", "invalid", "email"}, pick(recs[3], "line", "status", "provider", "contactId", "reason", "fields"), "sent as it was, it failed as invalid")
}

func TestImportRefusals(t *testing.T) {
	t.Parallel()
	e := newTestEnv(t)
	_, _, err := e.cli(t, "setup")
	require.NoError(t, err)
	good := importCSV(t, "name,email,mobile,tagId", 1, func(int) string { return "Jane Doe,jane@example.com,+919876543210," + tagID })
	noEmail := importCSV(t, "name,mobile,tagId,colour", 1, func(int) string { return "Jane Doe,+919876543210," + tagID + ",red" })
	for _, tc := range []struct {
		name string
		args []string
		want []string
	}{
		{"a missing column, with its line", []string{"--batch", "b", noEmail}, []string{`line 1: the header has no column "email"`, `--map "Header=field"`}},
		{"a --map without a field", []string{"--batch", "b", "--map", "Phone", good}, []string{`give "Header=field", not "Phone"`}},
		{"a --map to no field", []string{"--batch", "b", "--map", "Phone=phone", good}, []string{`"phone" is not a field`}},
		{"an unknown --provider", []string{"--batch", "b", "--provider", "paypal", good}, []string{`provider "paypal" is unknown`}},
		{"--dry-run without --repair", []string{"--batch", "b", "--dry-run", good}, []string{"--dry-run is for --repair"}},
		{"--repair and a FILE", []string{"--repair", good, good}, []string{"--repair FILE is the file"}},
		{"--map for NDJSON", []string{"--batch", "b", "--format", "ndjson", "--map", "a=name", good}, []string{"--map and --ignore-unknown-columns are for CSV"}},
		{"no commandId and no --batch", []string{good}, []string{"has no commandId column: give --batch NAME"}},
		{"no file", []string{"--batch", "b"}, []string{"give the file to import"}},
		{"stdin without a format", []string{"--batch", "b", "-"}, []string{"give --format csv or --format ndjson"}},
		{"--results without --wait", []string{"--batch", "b", "--results", filepath.Join(t.TempDir(), "r.csv"), good}, []string{"give --wait too"}},
		{"a bad --in-flight", []string{"--batch", "b", "--in-flight", "0", good}, []string{"--in-flight must be 1 to 4096"}},
		{"an --encoding it does not know", []string{"--batch", "b", "--encoding", "cp1252", good}, []string{`--encoding must be utf-8 or latin1, not "cp1252"`}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, _, err := e.cli(t, append([]string{"import"}, tc.args...)...)
			require.Error(t, err)
			assert.Equal(t, 2, exitCode(err), "a usage error")
			for _, want := range tc.want {
				assert.Contains(t, err.Error(), want)
			}
			assert.Zero(t, e.commandsStored(t), "nothing was published")
		})
	}
	t.Run("the streams missing", func(t *testing.T) {
		bare := newTestEnv(t)
		_, _, err := bare.cli(t, "import", "--batch", "b", good)
		assert.Equal(t, 2, exitCode(err))
		assert.ErrorIs(t, err, errNoStreams)
	})
	t.Run("without --wait, published", func(t *testing.T) {
		stdout, _, err := e.cli(t, "import", "--batch", "b", good)
		require.NoError(t, err)
		assert.Contains(t, stdout, "1 rows: 1 published, 0 invalid")
		assert.EqualValues(t, 1, e.commandsStored(t))
	})
}

// countingReader counts the bytes read from it.
type countingReader struct {
	r io.Reader
	n int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}

// A CSV record that never ends (a quote never closed, then 64 MiB) ends
// the import (exit 2) after a bounded read, naming the last good line;
// the rows before it are published. encoding/csv alone would hold the whole record.
func TestImportCSVRecordWithoutEnd(t *testing.T) {
	t.Parallel()
	e := newTestEnv(t)
	e.quietLogs = true
	e.start(t)
	head := fmt.Sprintf("name,email,mobile,tagId\nJane Doe,jane@example.com,+919876543210,%s\n\"Ravi", tagID)
	in := &countingReader{r: io.MultiReader(strings.NewReader(head), io.LimitReader(neverEnding('a'), 64<<20))}
	results := filepath.Join(t.TempDir(), "results.csv")
	var out, errOut bytes.Buffer
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	err := run(ctx, []string{"import", "--format", "csv", "--batch", "b", "--wait", "--results", results, "-"}, e.getenv, in, &out, &errOut)
	t.Log(out.String(), errOut.String())
	assert.Equal(t, 2, exitCode(err))
	require.Error(t, err)
	assert.Contains(t, err.Error(), "after line 2: a record is longer than 262144 bytes")
	assert.Less(t, in.n, int64(1<<20), "it stopped reading within the bound")
	assert.Eventually(t, func() bool { return len(e.ipay.Contacts()) == 1 }, 10*time.Second, 10*time.Millisecond, "the row before it was published")
}

// neverEnding repeats one byte.
type neverEnding byte

func (b neverEnding) Read(p []byte) (int, error) {
	for i := range p {
		p[i] = byte(b)
	}
	return len(p), nil
}

// A byte-order mark before a quoted header (a spreadsheet's export with
// every field quoted), or at the start of an NDJSON line (a file saved by
// Notepad, or two such files put together), is not part of the row.
func TestImportByteOrderMark(t *testing.T) {
	t.Parallel()
	e := newTestEnv(t)
	_, _, err := e.cli(t, "setup")
	require.NoError(t, err)
	dir := t.TempDir()
	line := func(id string) string {
		return fmt.Sprintf(`{"commandId":%q,"name":"Jane Doe","email":"jane@example.com","mobile":"+919876543210","tagId":%q}`, id, tagID)
	}
	for _, tc := range []struct{ name, file, content, want string }{
		{"a quoted CSV header", "q.csv", "\ufeff\"name\",\"email\",\"mobile\",\"tagId\"\r\n\"Jane Doe\",\"jane@example.com\",\"+919876543210\",\"" + tagID + "\"\r\n", "1 rows: 1 published, 0 invalid"},
		{"an unquoted CSV header", "u.csv", "\ufeffname,email,mobile,tagId\nJane Doe,jane@example.com,+919876543210," + tagID + "\n", "1 rows: 1 published, 0 invalid"},
		{"NDJSON lines", "b.ndjson", "\ufeff" + line("bom-1") + "\n\ufeff" + line("bom-2") + "\n", "2 rows: 2 published, 0 invalid"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(dir, tc.file)
			require.NoError(t, os.WriteFile(path, []byte(tc.content), 0o600))
			stdout, stderr, err := e.cli(t, "import", "--batch", "bom", path)
			require.NoError(t, err, stderr)
			assert.Contains(t, stdout, tc.want)
		})
	}
}

// Rows sent as they are (--send-invalid) whose commandId the service
// cannot use are each a command of their own, followed by the
// <stream>:<sequence> the service answers under: two identical malformed
// lines are two outcomes, not one and a conflict, and none waits for the
// timeout.
func TestImportFollowsRowsTheServiceKeysByTheirSequence(t *testing.T) {
	t.Parallel()
	e := newTestEnv(t)
	e.quietLogs = true
	e.start(t)
	in := fmt.Sprintf(`not json
not json
{"commandId":"tab\there","name":"Jane Doe","email":"jane@example.com","mobile":"+919876543210","tagId":%q}
{"commandId":"CONTACT_COMMANDS:999","name":"Ravi Kumar","email":"ravi@example.com","mobile":"9876543210","tagId":%q}
`, tagID, tagID)
	results := filepath.Join(t.TempDir(), "results.csv")
	var out, errOut bytes.Buffer
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	err := run(ctx, []string{"import", "--format", "ndjson", "--batch", "b", "--wait", "--timeout", "50s", "--send-invalid", "--results", results, "-"},
		e.getenv, strings.NewReader(in), &out, &errOut)
	t.Log(out.String(), errOut.String())
	assert.Equal(t, 1, exitCode(err), "rows failed")
	recs := readResults(t, results)
	require.Len(t, recs, 5)
	seen := map[string]bool{}
	col := resultColumn(t, recs[0])
	for _, r := range recs[1:] {
		line, id, status, reason := r[0], r[col("commandId")], r[col("status")], r[col("reason")]
		assert.Equal(t, "failed", status, "line %s: %v", line, r)
		assert.Regexp(t, `^CONTACT_COMMANDS:\d+$`, id, "line %s is followed by the id the service answered under", line)
		assert.NotContains(t, []string{"conflict", ""}, reason, "line %s", line)
		assert.False(t, seen[id], "each row its own command")
		seen[id] = true
	}
}

// A provider no build knows is worded once: the import's local check says
// what the service answers when the row is sent anyway.
func TestImportUnknownProviderWordedAsTheServiceWordsIt(t *testing.T) {
	t.Parallel()
	e := newTestEnv(t)
	e.quietLogs = true
	e.start(t)
	path := importCSV(t, "name,email,mobile,tagId,provider", 1, func(int) string {
		return "Jane Doe,jane@example.com,+919876543210," + tagID + ",stripe"
	})
	const want = `provider "stripe" is unknown; known providers: instantpay, pik`
	message := func(extra ...string) (reason, message string) {
		t.Helper()
		results := filepath.Join(t.TempDir(), "results.csv")
		_, _, err := e.cli(t, append(append([]string{"import", "--batch", "b", "--wait", "--results", results}, extra...), path)...)
		assert.Equal(t, 1, exitCode(err))
		recs := readResults(t, results)
		require.Len(t, recs, 2)
		col := resultColumn(t, recs[0])
		return recs[1][col("reason")], recs[1][col("message")]
	}
	reason, local := message()
	assert.Equal(t, "unroutable", reason, "checked locally")
	assert.Equal(t, want, local, "the local check's words")
	reason, service := message("--send-invalid")
	assert.Equal(t, "unroutable", reason, "answered by the service")
	assert.Equal(t, want, service, "the service's words")
}

// The row: a Latin-1 file imported as UTF-8 was created as
// "Lat\uFFFD Caf\uFFFD". Its row is invalid, saying where its bytes are
// not UTF-8, and the others are created; with --encoding latin1 it is
// created as written.
func TestImportLatin1(t *testing.T) {
	t.Parallel()
	e := newTestEnv(t)
	e.quietLogs = true
	e.start(t)
	rows := []string{
		"Jane Doe,jane@example.com,+919876543210," + tagID + ",Acme",
		"Lat\xe9 Caf\xe9,late@example.com,+919876543211," + tagID + ",\"Caf\xe9, Ltd\"",
		"Ravi Kumar,ravi@example.com,+919876543212," + tagID + ",Acme",
	}
	path := importCSV(t, "name,email,mobile,tagId,companyName", len(rows), func(i int) string { return rows[i] })
	results := filepath.Join(t.TempDir(), "results.csv")
	args := []string{"import", "--batch", "b", "--wait", "--results", results, path}

	stdout, stderr, err := e.cli(t, args...)
	assert.Equal(t, 1, exitCode(err), "a row is invalid")
	assert.Contains(t, stdout, "3 rows: 2 created, 0 failed, 1 invalid, 0 pending")
	// Line 3 (the header is line 1): "Lat" then 0xE9; the companyName's
	// is 4 bytes into its quoted field, which starts at byte 67.
	const want = "not UTF-8 text: name has the byte 0xE9 at line 3, byte column 4; companyName has the byte 0xE9 at line 3, byte column 71; if the file is Latin-1 (ISO-8859-1), import it with --encoding latin1"
	assert.Contains(t, stderr, "line 3: invalid, not published: "+want)
	recs := readResults(t, results)
	require.Len(t, recs, 4)
	col := resultColumn(t, recs[0])
	assert.Equal(t, []string{"3", "", "invalid", "", "", "invalid", want, ""}, append(recs[2][:1:1], recs[2][col("commandId"):]...), "the row is invalid in the results")
	assert.Equal(t, "Lat\xe9 Caf\xe9", recs[2][col("name")], "its cells as they were")
	assert.Equal(t, "created", recs[1][col("status")])
	assert.Equal(t, "created", recs[3][col("status")])
	var names []string
	for _, c := range e.ipay.Contacts() {
		names = append(names, c.Name)
	}
	assert.ElementsMatch(t, []string{"Jane Doe", "Ravi Kumar"}, names, "nothing created with U+FFFD")

	stdout, _, err = e.cli(t, append([]string{"import", "--encoding", "latin1"}, args[1:]...)...)
	require.NoError(t, err, "every row created")
	assert.Contains(t, stdout, "3 rows: 3 created, 0 failed, 0 invalid, 0 pending; 2 commands settled before, not sent again")
	names = names[:0]
	for _, c := range e.ipay.Contacts() {
		names = append(names, c.Name)
	}
	assert.ElementsMatch(t, []string{"Jane Doe", "Laté Café", "Ravi Kumar"}, names, "created as the file wrote it, in Latin-1")
}

// An NDJSON line that is not UTF-8 is invalid with where its bytes are;
// sent as it is (--send-invalid), the service refuses it as malformed
// rather than reading U+FFFD in place of the bytes.
func TestImportNDJSONNotUTF8SentAsItIs(t *testing.T) {
	t.Parallel()
	e := newTestEnv(t)
	e.quietLogs = true
	e.start(t)
	in := fmt.Sprintf("{\"commandId\":\"nd-latin1\",\"name\":\"Lat\xe9 Caf\xe9\",\"email\":\"late@example.com\",\"mobile\":\"+919876543210\",\"tagId\":%q}\n", tagID)
	results := filepath.Join(t.TempDir(), "results.csv")
	var out, errOut bytes.Buffer
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	err := run(ctx, []string{"import", "--format", "ndjson", "--wait", "--send-invalid", "--results", results, "-"}, e.getenv, strings.NewReader(in), &out, &errOut)
	t.Log(out.String(), errOut.String())
	assert.Equal(t, 1, exitCode(err), "the row failed")
	assert.Contains(t, errOut.String(), "line 1: invalid, published as it is (--send-invalid): not UTF-8 text: name has the byte 0xE9 at line 1, byte column 37;")
	recs := readResults(t, results)
	require.Len(t, recs, 2)
	assert.Equal(t, []string{"1", "nd-latin1", "failed", "", "", "malformed", "the command body is not UTF-8 text", ""}, recs[1], "the service refused it whole")
	assert.Empty(t, e.ipay.Contacts(), "nothing created")
}
