package main

import (
	"context"
	"fmt"
	"net/url"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestConsoleFindsACustomer: the console's text filter finds a customer's
// failure as 'consumer failures --text' does, in a real headless
// Chromium: by a name in metadata, by an email typed in another case, by
// a mobile typed with spaces (exact values, from the index), and by a part
// of a name (the substring search), besides the message and commandId.
func TestConsoleFindsACustomer(t *testing.T) {
	ctx, e, base, alerts := consoleUnderTest(t)
	signIn(t, ctx, base+"/failures", "ops", "correct horse battery")
	// Invalid commands (a tagId InstantPay refuses) fail at once.
	for i := range 3 {
		e.publish(t, fmt.Sprintf(`{"commandId":"row-%d","name":"Person %d","email":"p%d@example.com","mobile":"+9198765000%02d","tagId":"not-a-tag"}`, i, i, i, i))
	}
	e.publish(t, `{"commandId":"crm-row-7","name":"Chen Sharma","email":"Chen.Sharma@Example.com","mobile":"+91 98765 10011","tagId":"not-a-tag","metadata":{"owner":"Priya Nair","crmId":"CRM-10395"}}`)
	awaitText(t, ctx, base+"/failures", "#matched", "4 of 4", time.Minute)

	search := func(text string) (matched, rows, note string) {
		t.Helper()
		require.NoError(t, chromedp.Do(ctx, chromedp.Navigate(base+"/failures"), chromedp.WaitVisible(chromedp.ID("q"))))
		require.NoError(t, chromedp.Do(ctx, chromedp.SetValue(chromedp.ID("q"), text)))
		clickAndLoad(t, ctx, "#apply")
		return text2(t, ctx, "#matched"), text2(t, ctx, "main"), text2(t, ctx, "#text-note")
	}
	for _, typed := range []string{"priya nair", "chen.sharma@EXAMPLE.com", "+91 98765 10011", "crm-10395"} {
		matched, rows, note := search(typed)
		assert.Contains(t, matched, "1 of 4", "%q finds its failure", typed)
		assert.Contains(t, rows, "crm-row-7", typed)
		assert.Contains(t, note, "exact value by the index", typed)
	}
	matched, rows, note := search("sharma")
	assert.Contains(t, matched, "1 of 4", "a part of a name: the substring search")
	assert.Contains(t, rows, "crm-row-7")
	assert.Contains(t, note, "No open failure holds it as an exact value")
	matched, _, note = search("row-1")
	assert.Contains(t, matched, "1 of 4", "a commandId")
	assert.Contains(t, note, "exact value by the index", "a commandId is an exact value")
	matched, _, note = search("ow-2")
	assert.Contains(t, matched, "1 of 4", "a commandId's part, as before")
	assert.Contains(t, note, "found in messages and commandIds", "no scan when the view has matches")

	// The filter travels to the CSV download: the one failure found.
	resp, err := chromedpGet(ctx, base+"/failures.csv?"+url.Values{"q": {"Priya Nair"}}.Encode())
	require.NoError(t, err)
	assert.Contains(t, resp, "crm-row-7")
	assert.NotContains(t, resp, "row-1")
	assert.Zero(t, alerts.Load(), "no dialog opened")
}

// text2 reads sel's text, "" when the page has no such element.
func text2(t *testing.T, ctx context.Context, sel string) string {
	t.Helper()
	s, err := chromedp.Run(ctx, chromedp.Evaluate[string](fmt.Sprintf(`(document.querySelector(%q) || {innerText: ""}).innerText`, sel)))
	require.NoError(t, err)
	return s
}

// chromedpGet fetches url from the page, with its session, and returns the
// body.
func chromedpGet(ctx context.Context, url string) (string, error) {
	return chromedp.Run(ctx, chromedp.Evaluate[string](fmt.Sprintf(`fetch(%q).then(r => r.text())`, url), chromedp.EvalAwaitPromise))
}
