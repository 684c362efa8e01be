package main

import (
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
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
	e.awaitEvents(t, 4, 20*time.Second)

	for _, text := range []string{"chen sharma", "CRM-10395", "crm-row"} {
		out, _, err := e.cli(t, "failures", "--text", text)
		require.NoError(t, err, text)
		assert.Contains(t, out, "crm-row-9", text)
		assert.NotContains(t, out, "bad-1", text)
		assert.Contains(t, out, "1 open failure matches: invalid 1", text)
	}
	out, _, err := e.cli(t, "failures", "--text", "ravi kumar", "--limit", "2")
	require.NoError(t, err)
	assert.Contains(t, out, "2 open failures match: invalid 2; the search stopped at --limit: older ones may match too")

	out, _, err = e.cli(t, "failures", "--text", "nobody")
	require.NoError(t, err)
	assert.Contains(t, out, "no open failures match")

	_, _, err = e.cli(t, "failures", "--text", "x", "--history")
	assert.Equal(t, 2, exitCode(err))
}
