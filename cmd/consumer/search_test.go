package main

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/contactrelay/contactrelay/internal/failstore"
)

// 'failures --text' finds a customer's failure by who they are, not only
// by its message or commandId.
func TestFailuresTextFindsACustomer(t *testing.T) {
	t.Parallel()
	e := newTestEnv(t)
	e.start(t)
	for _, id := range ids("bad", 3) {
		e.publish(t, invalidCommand(id))
	}
	e.publish(t, fmt.Sprintf(`{"commandId":"crm-row-9","name":"Chen Sharma","email":"chen@","mobile":"+91 98765 1","tagId":%q,"metadata":{"crmId":"CRM-10395"}}`, tagID))
	e.publish(t, `{"commandId":"crm-row-10","name":"Asha Verma","email":"Asha.Verma@Example.com","mobile":"+91 98765 10011","tagId":"not-a-tag","metadata":{"owner":"Priya Nair"}}`)
	e.awaitEvents(t, 5, 20*time.Second)

	for _, text := range []string{"chen sharma", "CRM-10395", "crm-row-9"} {
		out, errOut, err := e.cli(t, "failures", "--text", text)
		require.NoError(t, err, text)
		assert.Contains(t, out, "crm-row-9", text)
		assert.NotContains(t, out, "bad-1", text)
		assert.Contains(t, out, "1 open failure matches: invalid 1", text)
		assert.Contains(t, errOut, "answered by the exact-value index (CONTACT_FAILURE_INDEX)", "%s: an exact value", text)
	}
	// By email, by a mobile typed with spaces, by a name in metadata:
	// exact values, from the index.
	for _, text := range []string{"asha.verma@example.com", "+91 98765 10011", "priya nair"} {
		out, errOut, err := e.cli(t, "failures", "--text", text)
		require.NoError(t, err, text)
		assert.Contains(t, out, "crm-row-10", text)
		assert.Contains(t, out, "1 open failure matches: invalid 1", text)
		assert.Contains(t, errOut, "answered by the exact-value index", text)
	}
	// A part of a value is no exact value: the substring search answers.
	out, errOut, err := e.cli(t, "failures", "--text", "crm-row")
	require.NoError(t, err)
	assert.Contains(t, out, "2 open failures match: invalid 2")
	assert.Contains(t, errOut, "answered by a substring search of the open failures")
	assert.Contains(t, errOut, "no open failure holds it as an exact value")
	// --contains asks the substring search at once.
	out, errOut, err = e.cli(t, "failures", "--text", "priya nair", "--contains")
	require.NoError(t, err)
	assert.Contains(t, out, "crm-row-10")
	assert.Contains(t, errOut, "(--contains)")
	_, _, err = e.cli(t, "failures", "--contains")
	assert.Equal(t, 2, exitCode(err), "--contains needs --text")
	out, _, err = e.cli(t, "failures", "--text", "ravi kumar", "--limit", "2")
	require.NoError(t, err)
	assert.Contains(t, out, "2 open failures match: invalid 2; the search stopped at --limit: older ones may match too")

	out, _, err = e.cli(t, "failures", "--text", "nobody")
	require.NoError(t, err)
	assert.Contains(t, out, "no open failures match")

	_, _, err = e.cli(t, "failures", "--text", "x", "--history")
	assert.Equal(t, 2, exitCode(err))
}

// A store older than the exact-value index (an upgrade) is indexed once by
// 'consumer setup'; until then 'failures --text' says so and scans.
func TestSetupIndexesAnOlderStore(t *testing.T) {
	t.Parallel()
	e := newTestEnv(t)
	svc := e.start(t)
	for i := range 3 {
		e.publish(t, fmt.Sprintf(`{"commandId":"old-%d","name":"Old %d","email":"old%d@example.com","mobile":"+9198765000%02d","tagId":"not-a-tag"}`, i, i, i, i))
	}
	e.awaitEvents(t, 3, 20*time.Second)
	svc.stop()
	// The streams as a release before the index left them.
	require.NoError(t, e.js.DeleteStream(context.Background(), failstore.IndexStream))

	out, errOut, err := e.cli(t, "failures", "--text", "OLD1@example.com")
	require.NoError(t, err)
	assert.Contains(t, out, "old-1")
	assert.Contains(t, errOut, "the exact-value index is not built yet: run 'consumer setup'")

	out, _, err = e.cli(t, "setup")
	require.NoError(t, err)
	assert.Contains(t, out, "indexed the open failures in CONTACT_FAILURE_INDEX: 3 failures, 12 index entries", "name, email, mobile and the manifest of each")
	assert.Contains(t, out, "streams CONTACT_COMMANDS, CONTACT_EVENTS, CONTACT_FAILURES, CONTACT_FAILURE_INDEX and CONTACT_AUDIT")
	out, errOut, err = e.cli(t, "failures", "--text", "OLD1@example.com")
	require.NoError(t, err)
	assert.Contains(t, out, "1 open failure matches: invalid 1")
	assert.Contains(t, errOut, "answered by the exact-value index")

	out, _, err = e.cli(t, "setup")
	require.NoError(t, err)
	assert.NotContains(t, out, "indexed the open failures", "once only")
}
