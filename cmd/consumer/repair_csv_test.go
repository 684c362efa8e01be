package main

import (
	"encoding/csv"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestRepairBySpreadsheet is the test: five open failures exported
// to CSV, three edited, one left as it was, one edited but discarded
// meanwhile; import --repair creates three, reports one unchanged and one
// no longer open, creates no contact twice, and a re-run creates nothing.
func TestRepairBySpreadsheet(t *testing.T) {
	t.Parallel()
	e := newTestEnv(t)
	e.start(t)
	for _, body := range []string{
		`{"commandId":"rep-1","name":"Asha Patel","email":"asha@","mobile":"+919876510021","tagId":"` + tagID + `","metadata":{"CRM Id":"CRM-1"}}`,
		`{"commandId":"rep-2","name":"Chen Sharma","email":"chen@example.com","mobile":"12","tagId":"` + tagID + `","metadata":{"CRM Id":"CRM-2"}}`,
		`{"commandId":"rep-3","name":"Ravi Kumar","email":"ravi@example.com","mobile":"9876510023","tagId":"vip","metadata":{"CRM Id":"CRM-3"}}`,
		`{"commandId":"rep-4","name":"Zoë Müller","email":"zoe@","mobile":"9876510024","tagId":"` + tagID + `"}`,
		`{"commandId":"rep-5","name":"José Ñúñez","email":"jose@","mobile":"9876510025","tagId":"` + tagID + `"}`,
	} {
		e.publish(t, body)
	}
	e.awaitEvents(t, 5, 10*time.Second)

	exported, _, err := e.cli(t, "failures", "--csv")
	require.NoError(t, err)
	recs, err := csv.NewReader(strings.NewReader(exported)).ReadAll()
	require.NoError(t, err)
	require.Len(t, recs, 6)
	col := resultColumn(t, recs[0])
	edits := map[string]map[string]string{
		"rep-1": {"email": "asha@example.com"},
		"rep-2": {"mobile": "+91 98765 10022", "metadata.CRM Id": "CRM-2b"},
		"rep-3": {"provider": "Pik"},
		"rep-5": {"email": "jose@example.com"},
	}
	for _, rec := range recs[1:] {
		for name, value := range edits[rec[col("commandId")]] {
			rec[col(name)] = value
		}
	}
	dir := t.TempDir()
	edited := filepath.Join(dir, "edited.csv")
	f, err := os.Create(edited)
	require.NoError(t, err)
	require.NoError(t, csv.NewWriter(f).WriteAll(recs))
	require.NoError(t, f.Close())

	_, _, err = e.cli(t, "failures", "discard", "--command-id", "rep-5")
	require.NoError(t, err, "rep-5's failure is discarded meanwhile")

	stored := e.commandsStored(t)
	stdout, _, err := e.cli(t, "import", "--repair", edited, "--dry-run")
	require.NoError(t, err)
	assert.Contains(t, stdout, "(rep-1): email: asha@ → asha@example.com\n", "only the edited field: the guarded '+91… mobile reads back as it was")
	assert.Contains(t, stdout, "(rep-2): mobile: 12 → +91 98765 10022; metadata.CRM Id: CRM-2 → CRM-2b")
	assert.Contains(t, stdout, "(rep-3): provider:  → Pik")
	assert.Contains(t, stdout, "(rep-4): unchanged, not sent (invalid)")
	assert.Contains(t, stdout, "(rep-5): not open, not sent")
	assert.Contains(t, stdout, "5 rows: 3 would be sent, 0 refused, 1 unchanged, 1 not open; nothing was sent")
	assert.Equal(t, stored, e.commandsStored(t), "a dry run sends nothing")

	results := filepath.Join(dir, "results.csv")
	stdout, _, err = e.cli(t, "import", "--repair", edited, "--wait", "--results", results)
	require.NoError(t, err, stdout)
	assert.Contains(t, stdout, "5 rows: 3 created, 0 failed, 0 refused, 1 unchanged, 1 not open, 0 pending")
	res := readResults(t, results)
	require.Len(t, res, 6)
	rc := resultColumn(t, res[0])
	status := map[string]string{}
	for _, rec := range res[1:] {
		status[rec[rc("commandId")]] = rec[rc("status")]
		assert.NotEmpty(t, rec[rc("failureId")], "the row's own columns")
		assert.Equal(t, rec[rc("commandId")], rec[rc("row.commandId")], "those named like a result column as row.<name>")
	}
	assert.Equal(t, map[string]string{"rep-1": "created", "rep-2": "created", "rep-3": "created", "rep-4": "unchanged", "rep-5": "not-open"}, status)

	var ipay []string
	for _, c := range e.ipay.Contacts() {
		ipay = append(ipay, c.Email+" "+c.Mobile)
	}
	assert.ElementsMatch(t, []string{"asha@example.com +919876510021", "chen@example.com +919876510022"}, ipay, "the changed fields, the mobile normalised")
	require.Len(t, e.pik.Contacts(), 1, "rep-3 went to PIK")
	assert.Equal(t, "ravi@example.com", e.pik.Contacts()[0].Email)
	creates := e.ipay.CreateCalls() + e.pik.CreateCalls()
	assert.Equal(t, 3, creates, "one create a repaired failure")

	stdout, _, err = e.cli(t, "import", "--repair", edited, "--wait")
	require.NoError(t, err)
	assert.Contains(t, stdout, "5 rows: 0 created, 0 failed, 0 refused, 1 unchanged, 4 not open, 0 pending", "a re-run sends nothing")
	assert.Equal(t, creates, e.ipay.CreateCalls()+e.pik.CreateCalls(), "and creates nothing")
}

// An exhausted failure's row left as it was is replayed as it is (the
// provider may be back), and an edited one is repaired: both created.
func TestRepairBySpreadsheetReplaysRetryableRowsUnchanged(t *testing.T) {
	t.Parallel()
	e := newTestEnv(t)
	e.vars["MAX_DELIVER"] = "1"
	e.vars["CIRCUIT_FAILURES"] = "1000"
	e.ipay.SetDown(true)
	e.start(t)
	e.publish(t, command("ex-1"))
	e.publish(t, command("ex-2"))
	e.awaitEvents(t, 2, 20*time.Second)
	exported, _, err := e.cli(t, "failures", "--csv")
	require.NoError(t, err)
	recs, err := csv.NewReader(strings.NewReader(exported)).ReadAll()
	require.NoError(t, err)
	require.Len(t, recs, 3)
	col := resultColumn(t, recs[0])
	for _, rec := range recs[1:] {
		require.Equal(t, "exhausted", rec[col("reason")])
		if rec[col("commandId")] == "ex-2" {
			rec[col("companyName")] = "Acme, Ltd"
		}
	}
	edited := filepath.Join(t.TempDir(), "edited.csv")
	f, err := os.Create(edited)
	require.NoError(t, err)
	require.NoError(t, csv.NewWriter(f).WriteAll(recs))
	require.NoError(t, f.Close())
	e.ipay.SetDown(false)

	stdout, _, err := e.cli(t, "import", "--repair", edited, "--dry-run")
	require.NoError(t, err)
	assert.Contains(t, stdout, "(ex-1): replayed unchanged (exhausted is retryable)")
	assert.Contains(t, stdout, "(ex-2): companyName:  → Acme, Ltd")
	stdout, _, err = e.cli(t, "import", "--repair", edited, "--wait")
	require.NoError(t, err, stdout)
	assert.Contains(t, stdout, "2 rows: 2 created, 0 failed, 0 refused, 0 unchanged, 0 not open, 0 pending")
	require.Len(t, e.ipay.Contacts(), 2)
}
