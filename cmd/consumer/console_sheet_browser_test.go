package main

import (
	"encoding/csv"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestConsoleRepairFromASpreadsheetInABrowser follows the spreadsheet
// round trip in a real headless Chromium: the failures page's Download CSV
// link gives the open failures unmasked; the file, edited, is uploaded,
// each row shown with its diff, nothing sent until confirmed; confirmed,
// the repaired failure leaves the open set as its contact is created, the
// unchanged one stays; both actions are on the activity page.
func TestConsoleRepairFromASpreadsheetInABrowser(t *testing.T) {
	ctx, e, base, alerts := consoleUnderTest(t)
	e.publish(t, `{"commandId":"sheet-1","name":"Asha Patel","email":"asha@exmaple","mobile":"+919876543201","tagId":"65a1b2c3d4e5f6a7b8c9d0e1","metadata":{"CRM Id":"CRM-1"}}`)
	e.publish(t, `{"commandId":"sheet-2","name":"Chen Sharma","email":"chen@exmaple","mobile":"+919876543202","tagId":"65a1b2c3d4e5f6a7b8c9d0e1"}`)
	signIn(t, ctx, base+"/failures", "ops", "correct horse battery")
	awaitText(t, ctx, base+"/failures", "#matched", "2 of 2", 30*time.Second)

	// Download: the link's file, fetched as the browser would.
	body, err := chromedp.Run(ctx, chromedp.Evaluate[string](
		`fetch(document.getElementById('download-csv').href).then(r => r.text())`, chromedp.EvalAwaitPromise))
	require.NoError(t, err)
	recs, err := csv.NewReader(strings.NewReader(body)).ReadAll()
	require.NoError(t, err)
	require.Len(t, recs, 3, "a header and the two failures")
	assert.Equal(t, "failureId", recs[0][0])
	for _, rec := range recs[1:] {
		if rec[1] == "sheet-1" {
			assert.Equal(t, "asha@exmaple", rec[7], "unmasked")
			assert.Equal(t, "'+919876543201", rec[8], "a leading + guarded")
			rec[7] = "asha@example.com"
		}
	}
	path := filepath.Join(t.TempDir(), "failures-edited.csv")
	f, err := os.Create(path)
	require.NoError(t, err)
	require.NoError(t, csv.NewWriter(f).WriteAll(recs))
	require.NoError(t, f.Close())

	// Upload, see the diff, confirm.
	clickAndLoad(t, ctx, "#repair-file")
	require.NoError(t, chromedp.Do(ctx, chromedp.SetUploadFiles(chromedp.ID("repair-upload"), []string{path})))
	clickAndLoad(t, ctx, "#upload-repair")
	assert.Contains(t, text(t, ctx, "#repair-rows"), "email: asha@exmaple → asha@example.com", "the row's diff")
	assert.Contains(t, text(t, ctx, "#repair-summary"), "1 repair to send · 0 refused · 1 unchanged · 0 no longer open")
	assert.Contains(t, text(t, ctx, "#confirm-form"), "Send 1 repair")
	clickAndLoad(t, ctx, "#confirm-repair")
	assert.Contains(t, text(t, ctx, "#repair-summary"), "1 repair sent")
	awaitText(t, ctx, base+"/failures", "#matched", "1 of 1", 30*time.Second)
	var emails []string
	for _, c := range e.ipay.Contacts() {
		emails = append(emails, c.Email)
	}
	assert.Equal(t, []string{"asha@example.com"}, emails, "the repaired contact, created once")

	require.NoError(t, chromedp.Do(ctx, chromedp.Navigate(base+"/activity"), chromedp.WaitVisible(chromedp.ID("activity"))))
	activity := text(t, ctx, "#activity")
	assert.Contains(t, activity, "download", "the download is an action of its own")
	assert.Contains(t, activity, "repair-file")
	assert.Zero(t, alerts.Load())
}
