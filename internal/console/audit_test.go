package console

import (
	"context"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/contactrelay/contactrelay/internal/audit"
)

// Each action writes its audit entry before it is done, with who and from
// where; the activity page of any console on the stream lists them,
// filtered and paged; an action whose entry cannot be written is not done.
func TestActionsAreAuditedBeforeTheyAreDone(t *testing.T) {
	users := usersFile(t, "", "ana", "ana's password")
	f := newFixture(t, Config{UsersFile: users, Operators: []string{"ana"}})
	ctx := context.Background()
	seed(t, f.js, 3, exhausted)
	f.srv.follow.Load(ctx)
	f.srv.cfg.Audit = &audit.Writer{JS: f.js}

	c := f.client(t)
	token := f.signIn(t, c, "ana", "ana's password")

	// No audit stream yet: the discard is refused, and nothing discarded.
	resp, body := post(t, c, f.web.URL+"/discard", url.Values{"command": {"cmd-000001"}, "csrf": {token}})
	assert.Equal(t, http.StatusServiceUnavailable, resp.StatusCode, body)
	assert.Contains(t, body, "Nothing was done")
	f.srv.follow.Load(ctx)
	_, page := get(t, c, f.web.URL+"/failure?id=cmd-000001")
	assert.Contains(t, page, `id="discard-one"`, "the failure is still open")

	_, err := f.js.CreateStream(ctx, audit.StreamConfig(1, 0))
	require.NoError(t, err)
	resp, body = post(t, c, f.web.URL+"/failure/unmask", url.Values{"id": {"cmd-000001"}, "csrf": {token}})
	require.Equal(t, http.StatusOK, resp.StatusCode, body)
	resp, body = post(t, c, f.web.URL+"/discard", url.Values{"command": {"cmd-000001"}, "csrf": {token}})
	require.Equal(t, http.StatusOK, resp.StatusCode, body)
	f.srv.follow.Load(ctx) // as Run would, after an action
	resp, body = post(t, c, f.web.URL+"/discard", url.Values{"reason": {"exhausted"}, "csrf": {token}})
	require.Equal(t, http.StatusSeeOther, resp.StatusCode, "a discard by filter is a job: %s", body)

	p, err := audit.List(ctx, f.js, audit.Query{})
	require.NoError(t, err)
	require.Len(t, p.Entries, 3, "one entry per action done")
	for i, want := range []string{audit.ActionDiscard, audit.ActionDiscard, audit.ActionUnmask} {
		e := p.Entries[i]
		assert.Equal(t, want, e.Action, "entry %d, newest first", i)
		assert.Equal(t, "ana", e.User)
		assert.Equal(t, "127.0.0.1", e.From)
		assert.Equal(t, "console", e.Source)
	}
	assert.Equal(t, []string{"cmd-000001"}, p.Entries[2].CommandIDs)
	assert.Equal(t, 2, p.Entries[0].Count, "the bulk discard's count")
	assert.Contains(t, p.Entries[0].Filter, "exhausted", "and its filter")

	// A second console on the same stream shows the same activity; this
	// one shows the results it knows.
	replica := f.another(t, Config{UsersFile: users, Audit: &audit.Writer{JS: f.js}})
	rc := f.client(t)
	_, login := get(t, rc, replica.URL+"/login")
	resp, _ = post(t, rc, replica.URL+"/login", url.Values{"user": {"ana"}, "password": {"ana's password"}, "csrf": {csrfOf(t, login)}})
	require.Equal(t, http.StatusSeeOther, resp.StatusCode)
	for _, base := range []struct {
		c   *http.Client
		url string
	}{{c, f.web.URL}, {rc, replica.URL}} {
		_, page := get(t, base.c, base.url+"/activity")
		assert.Equal(t, 3, strings.Count(page, "<td>ana</td>"), "%s lists the three entries", base.url)
		_, page = get(t, base.c, base.url+"/activity?action=unmask")
		assert.Equal(t, 1, strings.Count(page, "<td>ana</td>"), "filtered by action")
		assert.Contains(t, page, "commandId cmd-000001")
		_, page = get(t, base.c, base.url+"/activity?commandId=cmd-000001")
		assert.Equal(t, 2, strings.Count(page, "<td>ana</td>"), "filtered by commandId: the unmask and its discard")
		_, page = get(t, base.c, base.url+"/activity?user=vic")
		assert.Contains(t, page, "Nothing yet", "filtered by user")
	}
	_, page = get(t, c, f.web.URL+"/activity")
	assert.Contains(t, page, "2 of 2 discarded", "the console that did it shows the result")
}

func TestActivityPages(t *testing.T) {
	f := newFixture(t, Config{User: "ops", Password: "correct horse"})
	ctx := context.Background()
	_, err := f.js.CreateStream(ctx, audit.StreamConfig(1, 0))
	require.NoError(t, err)
	f.srv.cfg.Audit = &audit.Writer{JS: f.js}
	w := &audit.Writer{JS: f.js}
	for range activityPageSize + 5 {
		_, err := w.Write(ctx, audit.Entry{User: "ops", Action: audit.ActionUnmask, CommandIDs: []string{"x"}, Count: 1})
		require.NoError(t, err)
	}
	c := f.client(t)
	f.signIn(t, c, "ops", "correct horse")
	_, page := get(t, c, f.web.URL+"/activity")
	assert.Equal(t, activityPageSize, strings.Count(page, "<td>ops</td>"))
	require.Contains(t, page, `href="/activity?before=6"`, "a link to the older entries")
	_, page = get(t, c, f.web.URL+"/activity?before=6")
	assert.Equal(t, 5, strings.Count(page, "<td>ops</td>"))
	assert.NotContains(t, page, `id="older"`)
}

// A failure's page lists the actions on its command, by whom.
func TestFailurePageShowsItsActions(t *testing.T) {
	f := newFixture(t, Config{User: "ops", Password: "correct horse"})
	ctx := context.Background()
	seed(t, f.js, 2, exhausted)
	f.srv.follow.Load(ctx)
	_, err := f.js.CreateStream(ctx, audit.StreamConfig(1, 0))
	require.NoError(t, err)
	f.srv.cfg.Audit = &audit.Writer{JS: f.js}
	c := f.client(t)
	token := f.signIn(t, c, "ops", "correct horse")
	_, page := get(t, c, f.web.URL+"/failure?id=cmd-000001")
	assert.Contains(t, page, `id="history-none"`)
	resp, body := post(t, c, f.web.URL+"/failure/unmask", url.Values{"id": {"cmd-000001"}, "csrf": {token}})
	require.Equal(t, http.StatusOK, resp.StatusCode, body)
	_, err = audit.WriteFromCommandLine(ctx, f.js, audit.Entry{Action: audit.ActionRepair, CommandIDs: []string{"cmd-000001"}, Fields: []string{"email"}})
	require.NoError(t, err)
	_, page = get(t, c, f.web.URL+"/failure?id=cmd-000001")
	require.Contains(t, page, `id="history"`)
	history := page[strings.Index(page, `id="history"`):]
	assert.Regexp(t, `(?s)repair</td><td>commandId cmd-000001; fields email.*<td>ops</td><td>127.0.0.1</td><td>unmask`, history, "each action, newest first, by whom and from where")
	_, page = get(t, c, f.web.URL+"/failure?id=cmd-000000")
	assert.Contains(t, page, `id="history-none"`, "another command's page lists none of them")
}
