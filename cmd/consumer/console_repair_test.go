package main

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"regexp"
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/contactrelay/contactrelay/internal/provision"
)

// TestTwoRepairsOfOneFailure has two console sessions repair one failure
// with different emails, a second apart: the first is sent, the second is
// refused, saying when the first was stored; the command line refuses a
// third with exit 1. A failure replayed twice unchanged is already sent
// the second time, and a console replay job counts what it sent apart from
// what was already sent and what was refused.
func TestTwoRepairsOfOneFailure(t *testing.T) {
	e := newTestEnv(t)
	e.quietLogs = true
	svc := e.start(t)
	for _, id := range []string{"race-1", "twice-1", "job-1", "job-2"} {
		e.publish(t, invalidCommand(id))
	}
	failed := failedIDs(e.awaitEvents(t, 4, 20*time.Second))
	// The service stops: what is sent stays in the command stream, as it
	// does while the service is busy or down.
	svc.stop()
	commands, err := e.js.Stream(context.Background(), provision.CommandStream)
	require.NoError(t, err)

	base := startTestConsole(t, e, "ops", "correct horse battery")
	a, csrfA := consoleSession(t, base, "ops", "correct horse battery")
	b, csrfB := consoleSession(t, base, "ops", "correct horse battery")
	awaitConsole(t, a, base+"/failures", "job-2")
	for _, c := range []*http.Client{a, b} {
		resp, _ := consoleGet(t, c, base+"/failure/repair?id=race-1")
		require.Equal(t, http.StatusOK, resp.StatusCode, "both sessions have the repair form")
	}

	repair := func(c *http.Client, csrf, email, mobile string) (*http.Response, string) {
		return consolePost(t, c, base+"/failure/repair", url.Values{"csrf": {csrf}, "id": {"race-1"},
			"provider": {""}, "name": {"Ravi Kumar"}, "tagId": {tagID}, "companyName": {""}, "email": {email}, "mobile": {mobile}})
	}
	resp, page := repair(a, csrfA, "first@example.com", "+919800000001")
	require.Equal(t, http.StatusOK, resp.StatusCode)
	m := regexp.MustCompile(`Repaired and sent as a new generation \(CONTACT_COMMANDS seq (\d+)\)`).FindStringSubmatch(page)
	require.NotNil(t, m, "the first repair is sent")
	seq, err := strconv.ParseUint(m[1], 10, 64)
	require.NoError(t, err)
	stored, err := commands.GetMsg(context.Background(), seq)
	require.NoError(t, err)
	assert.Contains(t, string(stored.Data), "first@example.com")
	first := fmt.Sprintf("CONTACT_COMMANDS seq %d, stored %s", seq, stored.Time.UTC().Format(time.RFC3339))
	lastSeq := func() uint64 {
		info, err := commands.Info(context.Background())
		require.NoError(t, err)
		return info.State.LastSeq
	}
	before := lastSeq()

	t.Run("the second session's repair is refused", func(t *testing.T) {
		resp, page := repair(b, csrfB, "second@example.com", "+919800000002")
		assert.Equal(t, http.StatusConflict, resp.StatusCode, "the repair did not happen")
		assert.NotContains(t, page, "Repaired and sent")
		assert.Contains(t, page, `id="refused">Not sent: this failure was repaired before with other content (`+first+`)`,
			"it says when the first was sent")
		assert.Equal(t, before, lastSeq(), "nothing more was stored")
	})
	t.Run("the same repair again was already sent", func(t *testing.T) {
		resp, page := repair(a, csrfA, "first@example.com", "+919800000001")
		assert.Equal(t, http.StatusOK, resp.StatusCode)
		assert.Contains(t, page, "Already sent: this failure was sent before, this very command ("+first+"); nothing was sent again.")
		assert.NotContains(t, page, "Repaired and sent")
	})
	t.Run("the activity log tells them apart", func(t *testing.T) {
		_, page := consoleGet(t, a, base+"/activity")
		assert.Regexp(t, `class="ok">sent as a new generation \(CONTACT_COMMANDS seq `+m[1]+`\)`, page)
		assert.Contains(t, page, `class="error">refused, nothing sent: the failure was repaired before with other content (`+first+`)`)
		assert.Contains(t, page, `class="ok">already sent: the failure was sent before, this very command (`+first+`)`)
	})
	t.Run("the command line refuses a third with exit 1", func(t *testing.T) {
		_, stderr, err := e.cli(t, "replay", "--command-id", "race-1", "--set", "email=third@example.com", "--set", "mobile=+919800000003")
		assert.Equal(t, 1, exitCode(err), "the repair did not happen")
		assert.Contains(t, stderr, "repair of race-1 refused, nothing was sent: failure "+failed["race-1"]+" was repaired before with other content ("+first+")")
		out, stderr, err := e.cli(t, "replay", "--command-id", "race-1", "--all")
		assert.Equal(t, 1, exitCode(err), "a replay unchanged did not happen either: the repair holds the generation")
		assert.Contains(t, stderr, "not replayed race-1")
		assert.Contains(t, out, "1 selected: 0 replayed, 1 refused, 0 skipped, 0 failed to publish")
		assert.Equal(t, before, lastSeq(), "nothing more was stored")
	})
	t.Run("a failure replayed twice unchanged is already sent the second time", func(t *testing.T) {
		out, _, err := e.cli(t, "replay", "--command-id", "twice-1", "--all")
		require.NoError(t, err)
		assert.Contains(t, out, "1 selected: 1 replayed, 0 skipped, 0 failed to publish")
		out, _, err = e.cli(t, "replay", "--command-id", "twice-1", "--all")
		require.NoError(t, err, "nothing failed: the replay asked for is in the stream")
		assert.Contains(t, out, "already sent twice-1 (failure "+failed["twice-1"]+", invalid): it was sent before, this very command (CONTACT_COMMANDS seq")
		assert.Contains(t, out, "1 selected: 0 replayed, 1 already sent, 0 skipped, 0 failed to publish")
	})
	t.Run("a console replay counts what was sent before apart", func(t *testing.T) {
		_, _, err := e.cli(t, "replay", "--command-id", "job-1", "--all")
		require.NoError(t, err)
		resp, _ := consolePost(t, b, base+"/replay", url.Values{"csrf": {csrfB}, "reason": {"invalid"}, "all": {"1"}, "rate": {"1000"}})
		require.Equal(t, http.StatusSeeOther, resp.StatusCode)
		job := resp.Header.Get("Location")
		awaitConsole(t, b, base+job, `data-over="true"`)
		_, page := consoleGet(t, b, base+job)
		assert.Contains(t, page, `<span id="job-replayed">1</span> sent`, "job-2 only")
		assert.Contains(t, page, `<span id="job-already">2</span> already sent before`, "twice-1 and job-1")
		assert.Contains(t, page, `<span id="job-refused">1</span> refused`, "race-1, repaired")
		assert.Contains(t, page, "race-1: not sent: it was repaired before with other content ("+first+")")
		_, page = consoleGet(t, b, base+"/activity")
		assert.Contains(t, page, "1 replayed, 2 already sent, 1 refused, 0 skipped, 0 failed to publish")
	})
}
