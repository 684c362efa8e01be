package main

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/contactrelay/contactrelay/internal/audit"
)

// The command line's replay, repair and discard write their audit entries
// before they act, with the user and host; 'consumer audit' lists them as
// a table or JSON, filtered by user, action, commandId and time.
func TestAuditCommandListsTheCommandLinesActions(t *testing.T) {
	e := newTestEnv(t)
	e.start(t)
	e.publish(t, invalidCommand("aud-1"))
	e.publish(t, invalidCommand("aud-2"))
	e.publish(t, invalidCommand("aud-3"))
	e.awaitEvents(t, 3, 10*time.Second)

	_, _, err := e.cli(t, "replay", "--command-id", "aud-1", "--set", "mobile=+919812345678", "--set", "email=ravi@example.com")
	require.NoError(t, err)
	_, _, err = e.cli(t, "replay", "--command-id", "aud-2", "--all", "--dry-run")
	require.NoError(t, err, "a dry run changes nothing, and is not audited")
	require.Eventually(t, func() bool {
		out, _, err := e.cli(t, "failures", "--command-id", "aud-2")
		return err == nil && strings.Contains(out, "aud-2")
	}, 10*time.Second, 50*time.Millisecond)
	_, _, err = e.cli(t, "failures", "discard", "--command-id", "aud-2")
	require.NoError(t, err)

	out, _, err := e.cli(t, "audit", "--json")
	require.NoError(t, err)
	var entries []audit.Entry
	for line := range strings.SplitSeq(strings.TrimSpace(out), "\n") {
		var en audit.Entry
		require.NoError(t, json.Unmarshal([]byte(line), &en), line)
		entries = append(entries, en)
	}
	require.Len(t, entries, 2, "one entry per action, oldest first: %s", out)
	who, from := audit.CommandLine()
	assert.Equal(t, audit.ActionRepair, entries[0].Action)
	assert.Equal(t, []string{"aud-1"}, entries[0].CommandIDs)
	assert.Equal(t, []string{"mobile", "email"}, entries[0].Fields, "the fields' names")
	assert.NotContains(t, out, "ravi@example.com", "never their values")
	assert.Equal(t, audit.ActionDiscard, entries[1].Action)
	assert.Equal(t, []string{"aud-2"}, entries[1].CommandIDs)
	for _, en := range entries {
		assert.Equal(t, who, en.User)
		assert.Equal(t, from, en.From)
		assert.Equal(t, "cli", en.Source)
	}

	out, _, err = e.cli(t, "audit", "--action", "discard", "--command-id", "aud-2", "--user", who, "--since", "1h")
	require.NoError(t, err)
	assert.Contains(t, out, "TIME")
	assert.Contains(t, out, "discard")
	assert.NotContains(t, out, "repair")
	out, _, err = e.cli(t, "audit", "--user", "nobody")
	require.NoError(t, err)
	assert.Contains(t, out, "no audit entry matches")
	_, _, err = e.cli(t, "audit", "--action", "delete")
	assert.Equal(t, 2, exitCode(err), "an unknown action is a usage error")

	// Without the audit stream, an action is not done.
	require.NoError(t, e.js.DeleteStream(context.Background(), audit.Stream))
	_, _, err = e.cli(t, "failures", "discard", "--command-id", "aud-3")
	require.ErrorIs(t, err, audit.ErrNotWritten)
	stored := e.commandsStored(t)
	_, _, err = e.cli(t, "replay", "--command-id", "aud-3", "--all")
	require.ErrorIs(t, err, audit.ErrNotWritten)
	assert.Equal(t, stored, e.commandsStored(t), "nothing replayed")
	out, _, err = e.cli(t, "failures", "--command-id", "aud-3")
	require.NoError(t, err)
	assert.Contains(t, out, "aud-3", "nothing discarded")
}
