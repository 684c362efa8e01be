package main

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/contactrelay/contactrelay/contact"
	"github.com/contactrelay/contactrelay/internal/console"
	"github.com/contactrelay/contactrelay/record"
)

// A failure's page shows each failed call's answer, the last 10, from the
// command's record.
func TestFailurePageShowsTheLastTenAnswers(t *testing.T) {
	e := newTestEnv(t)
	e.vars["MAX_DELIVER"] = "6"
	e.vars["CIRCUIT_FAILURES"] = "1000"
	e.ipay.SetDown(true)
	e.start(t)
	e.publish(t, command("down-1"))
	evs := e.awaitEvents(t, 1, 15*time.Second)
	require.Equal(t, contact.SubjectFailed, evs[0].Type)
	d := data[contact.Failed](t, evs[0])
	require.Greater(t, d.Attempts, 10, "more failed calls than are kept")

	ctx := context.Background()
	rd, err := record.OpenReader(ctx, e.js)
	require.NoError(t, err)
	val, _, err := rd.Get(ctx, record.Key("down-1"))
	require.NoError(t, err)
	rec, err := record.Decode(val)
	require.NoError(t, err)
	require.Len(t, rec.Answers, record.MaxAnswers, "the last 10 answers are kept")
	for i, a := range rec.Answers {
		assert.Equal(t, "transient", a.Class)
		assert.Equal(t, 503, a.Upstream.HTTPStatus)
		if i > 0 {
			assert.False(t, a.At.Before(rec.Answers[i-1].At), "oldest first")
		}
	}

	srv, err := console.New(console.Config{JS: e.js, NoAuth: true, Addr: "127.0.0.1:8081"})
	require.NoError(t, err)
	web := httptest.NewServer(srv.Handler())
	t.Cleanup(web.Close)
	resp, err := http.Get(web.URL + "/failure?id=down-1")
	require.NoError(t, err)
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	page := string(body)
	require.Contains(t, page, `<table id="answers">`)
	i := strings.Index(page, `<table id="answers">`)
	rows := strings.Count(page[i:i+strings.Index(page[i:], "</table>")], "<tr>") - 1 // the header's row
	assert.Equal(t, record.MaxAnswers, rows, "one row per kept answer")
	assert.Contains(t, page[i:], "<td>transient</td><td>503</td>")
}
