package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestImportACRMExport is the test: a CSV as a CRM exports it
// (a byte-order mark, CRLF line ends, columns the import does not know, a
// status column named like a result column, mobiles written with spaces,
// a provider written Pik, quoted commas, UTF-8 names, a formula cell),
// imported with --wait --results: the mobiles' and Pik's rows are created,
// and the results hold every input column and no cell a spreadsheet would
// execute.
func TestImportACRMExport(t *testing.T) {
	t.Parallel()
	e := newTestEnv(t)
	e.quietLogs = true
	e.start(t)
	header := "\ufeffCRM Id,Full Name,email,Mobile No,tagId,provider,companyName,Owner,status,Notes"
	rows := []string{
		"CRM-10395,Chen Sharma,chen@example.com,+91 98765 10011," + tagID + ",Pik,\"Sharma, Chen & Co\",Asha,Lead,\"=HYPERLINK(\"\"http://evil.example\"\",\"\"click\"\")\"",
		"CRM-10396,Zoë Müller-Øre,zoe@example.com,+91-98765-10012," + tagID + ",,Acme,Ravi,Customer,-2+3",
		"CRM-10397,José Ñúñez,jose@example.com,98765.10013," + tagID + ", PIK ,,Asha,Lead,@SUM(A1)",
		"CRM-10398,Ravi Kumar,ravi@exmaple,+91 98765 10014," + tagID + ",instantpay,Acme,Asha,Lead,+1",
	}
	path := filepath.Join(t.TempDir(), "crm-export.csv")
	require.NoError(t, os.WriteFile(path, []byte(header+"\r\n"+strings.Join(rows, "\r\n")+"\r\n"), 0o600))
	results := filepath.Join(t.TempDir(), "results.csv")

	stdout, stderr, err := e.cli(t, "import", "--batch", "crm-2026-12", "--provider", "instantpay",
		"--map", "Full Name=name", "--map", "Mobile No=mobile", "--wait", "--results", results, path)
	assert.Equal(t, 1, exitCode(err), "one row is invalid")
	assert.Contains(t, stdout, "4 rows: 3 created, 0 failed, 1 invalid, 0 pending")
	assert.Contains(t, stderr, `kept as metadata under their names: "CRM Id", "Owner", "status", "Notes"`, "said once which columns were kept")
	assert.Equal(t, 1, strings.Count(stderr, "kept as metadata"))

	raw, err := os.ReadFile(results)
	require.NoError(t, err)
	recs := readResults(t, results)
	require.Len(t, recs, 5)
	assert.Equal(t, []string{"line", "CRM Id", "Full Name", "email", "Mobile No", "tagId", "row.provider", "companyName", "Owner", "row.status", "Notes",
		"commandId", "status", "provider", "contactId", "reason", "message", "fields"}, recs[0], "every input column, those named like a result column as row.<name>")
	col := resultColumn(t, recs[0])
	for _, rec := range recs {
		for _, cell := range rec {
			if cell != "" {
				assert.NotContains(t, "=+-@\t\r", cell[:1], "no cell a spreadsheet would execute: %q", cell)
			}
		}
	}
	assert.Equal(t, `'=HYPERLINK("http://evil.example","click")`, recs[1][col("Notes")], "the formula is written inert")
	assert.Equal(t, "'+91 98765 10011", recs[1][col("Mobile No")], "the cell as it was, guarded")
	assert.Equal(t, "Sharma, Chen & Co", recs[1][col("companyName")], "quoted commas")
	assert.Equal(t, "Zoë Müller-Øre", recs[2][col("Full Name")], "UTF-8 names")
	assert.Equal(t, "Lead", recs[1][col("row.status")])
	assert.NotContains(t, string(raw), "\ufeff", "the byte-order mark is not part of a column's name")

	byCRM := map[string][]string{}
	for _, rec := range recs[1:] {
		byCRM[rec[col("CRM Id")]] = rec
	}
	for id, provider := range map[string]string{"CRM-10395": "pik", "CRM-10396": "instantpay", "CRM-10397": "pik"} {
		assert.Equal(t, "created", byCRM[id][col("status")], "%s: %v", id, byCRM[id])
		assert.Equal(t, provider, byCRM[id][col("provider")], id)
	}
	bad := byCRM["CRM-10398"]
	assert.Equal(t, []string{"invalid", "invalid", "email"}, []string{bad[col("status")], bad[col("reason")], bad[col("fields")]})

	var phones []string
	for _, c := range e.pik.Contacts() {
		phones = append(phones, c.Name+" "+c.Mobile)
	}
	assert.ElementsMatch(t, []string{"Chen Sharma +919876510011", "José Ñúñez 9876510013"}, phones, "Pik's rows created at PIK, their mobiles normalised")
	ipay := e.ipay.Contacts()
	require.Len(t, ipay, 1)
	assert.Equal(t, "+919876510012", ipay[0].Mobile, "--provider for the row naming none")
}
