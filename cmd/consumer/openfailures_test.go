package main

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/contactrelay/contactrelay/contact"
	"github.com/contactrelay/contactrelay/internal/failstore"
)

// openIDs returns the commandIds of the open failures.
func openIDs(t *testing.T, e *testEnv) []string {
	t.Helper()
	snap, err := failstore.Load(context.Background(), e.js, failstore.Select{})
	require.NoError(t, err)
	var ids []string
	for _, f := range snap.Failures {
		ids = append(ids, f.CommandID)
	}
	return ids
}

// TestUpgradeBuildsTheOpenSetFromHistory: a deployment whose failures are
// in the event history only (as before the store existed) gets its open
// set from 'consumer setup', once and idempotently: every failure that is
// its command's newest outcome, none that a replay superseded.
func TestUpgradeBuildsTheOpenSetFromHistory(t *testing.T) {
	t.Parallel()
	e := newTestEnv(t)
	e.vars["MAX_DELIVER"] = "1"
	e.vars["CIRCUIT_FAILURES"] = "1000"
	e.ipay.SetDown(true)
	svc := e.start(t)
	for _, id := range ids("up", 6) {
		e.publish(t, command(id))
	}
	e.publish(t, invalidCommand("up-invalid"))
	failed := failedIDs(e.awaitEvents(t, 7, 20*time.Second))
	require.Len(t, failed, 7)
	e.ipay.SetDown(false)
	_, _, err := e.cli(t, "replay", "--command-id", "up-0")
	require.NoError(t, err)
	_, _, err = e.cli(t, "replay", "--command-id", "up-1")
	require.NoError(t, err)
	e.awaitEvents(t, 9, 20*time.Second)
	svc.stop()
	want := []string{"up-2", "up-3", "up-4", "up-5", "up-invalid"}
	assert.ElementsMatch(t, want, openIDs(t, e), "the service kept the open set")

	// The store as an older version left it: none.
	ctx := context.Background()
	require.NoError(t, e.js.DeleteStream(ctx, failstore.Stream))
	out, _, err := e.cli(t, "setup")
	require.NoError(t, err)
	assert.Contains(t, out, "building the open failures from the event history (CONTACT_EVENTS)")
	assert.Contains(t, out, "open failures: 9 events read")
	assert.ElementsMatch(t, want, openIDs(t, e), "rebuilt: the newest failures, not the superseded ones")

	// Once only; forced again, the same set.
	out, _, err = e.cli(t, "setup")
	require.NoError(t, err)
	assert.NotContains(t, out, "building the open failures")
	out, _, err = e.cli(t, "setup", "--rebuild-failures")
	require.NoError(t, err)
	assert.Contains(t, out, "building the open failures")
	assert.ElementsMatch(t, want, openIDs(t, e), "idempotent")

	out, _, err = e.cli(t, "failures", "--reason", "exhausted")
	require.NoError(t, err)
	assert.Contains(t, out, "4 open failures match: exhausted 4")
}

// TestDiscard: discard removes open failures by commandId or filter,
// with a dry run first, refuses an unfiltered discard without --all, logs
// who and what, and leaves the failed events in the history.
func TestDiscard(t *testing.T) {
	t.Parallel()
	e := newTestEnv(t)
	e.start(t)
	for _, id := range ids("bad", 4) {
		e.publish(t, invalidCommand(id))
	}
	e.publish(t, `{"commandId":"bad-json",`)
	e.awaitEvents(t, 5, 20*time.Second)
	require.Len(t, openIDs(t, e), 5)

	_, stderr, err := e.cli(t, "failures", "discard", "--limit", "0")
	assert.Equal(t, 2, exitCode(err), "an unfiltered discard is refused")
	assert.Empty(t, stderr)
	assert.Contains(t, err.Error(), "--all")

	out, _, err := e.cli(t, "failures", "discard", "--reason", "invalid", "--dry-run")
	require.NoError(t, err)
	assert.Equal(t, "would discard 4 open failures (--reason=invalid); nothing was discarded\n", out)
	assert.Len(t, openIDs(t, e), 5, "a dry run discards nothing")

	out, stderr, err = e.cli(t, "failures", "discard", "--command-id", "bad-2")
	require.NoError(t, err)
	assert.Contains(t, out, "discarded 1 open failure (--command-id=bad-2)")
	assert.Contains(t, stderr, `msg="discarded open failures"`)
	assert.Contains(t, stderr, "user=")
	assert.Contains(t, stderr, `filter="--command-id=bad-2" selected=1 discarded=1`, "who, what and how many")
	assert.NotContains(t, openIDs(t, e), "bad-2")

	out, _, err = e.cli(t, "failures", "discard", "--all")
	require.NoError(t, err)
	assert.Contains(t, out, "discarded 4 open failures (--all)")
	assert.Empty(t, openIDs(t, e))
	out, _, err = e.cli(t, "failures")
	require.NoError(t, err)
	assert.Equal(t, "no open failures match\n", out)

	out, _, err = e.cli(t, "failures", "--history")
	require.NoError(t, err)
	assert.Contains(t, out, "5 failures match", "the failed events stay in the history")
	assert.True(t, strings.Contains(out, string(contact.ReasonMalformed)))
}
