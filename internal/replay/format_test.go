package replay

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/contactrelay/contactrelay/contact"
)

// sampleFailures are an open exhausted failure and an invalid one
// superseded by a contact.created.
func sampleFailures() []*Failure {
	at := time.Date(2026, 11, 22, 10, 0, 0, 0, time.UTC)
	ex := failureOf("crm-1", contact.ReasonExhausted, `{"commandId":"crm-1","name":"Jane","email":"jane@example.com","mobile":"+919876543210","tagId":"t"}`)
	ex.Event.Time, ex.Seq, ex.Stream = at.Add(time.Minute), 2, "CONTACT_FAILURES"
	ex.Data.Provider, ex.Data.Attempts = "instantpay", 6
	ex.Data.Message = "outlasted 3 deliveries:\n the provider said\tjane@example.com is " + strings.Repeat("very ", 20) + "busy"
	ex.Data.Upstream = &contact.Upstream{HTTPStatus: 503, Code: "ISE", Message: "down for jane@example.com", RequestID: "r-1"}
	inv := failureOf("crm 2", contact.ReasonInvalid, `{"commandId":"crm 2","name":"Ravi","email":"ravi@","mobile":"12","tagId":"t"}`)
	inv.Event.Time, inv.Seq = at, 1
	inv.Data.Message = "the command breaks 1 rule: email must be a valid email address"
	inv.Data.Errors = []contact.FieldError{{Field: "email", Rule: "email", Message: "email must be a valid email address"}}
	inv.CreatedAfter = &Outcome{Type: contact.SubjectCreated, ID: "c-id", Time: at.Add(time.Hour), Seq: 3}
	return []*Failure{ex, inv}
}

func TestWriteTable(t *testing.T) {
	var b bytes.Buffer
	require.NoError(t, WriteTable(&b, sampleFailures(), false))
	lines := strings.Split(strings.TrimSpace(b.String()), "\n")
	require.Len(t, lines, 3, "a header and one line each")
	assert.Regexp(t, `^TIME +COMMAND ID +PROVIDER +REASON +RETRYABLE +SUPERSEDED +MESSAGE$`, lines[0])
	assert.Regexp(t, `^2026-11-22T10:01:00Z +crm-1 +instantpay +exhausted +yes +no +outlasted 3 deliveries: the provider said j\*\*\*@example\.com is v`, lines[1],
		"the message on one line, masked")
	assert.True(t, strings.HasSuffix(lines[1], "…"), "a long message is shortened")
	assert.Regexp(t, `^2026-11-22T10:00:00Z +crm 2 +- +invalid +no +by created +the command`, lines[2])
	assert.Equal(t, strings.Index(lines[0], "MESSAGE"), strings.Index(lines[1], "outlasted"), "columns are aligned")

	b.Reset()
	require.NoError(t, WriteTable(&b, sampleFailures(), true))
	assert.Contains(t, b.String(), "jane@example.com", "--unmask shows it")
}

func TestWriteDetail(t *testing.T) {
	fs := sampleFailures()
	var b bytes.Buffer
	require.NoError(t, WriteDetail(&b, fs, false))
	out := b.String()
	for _, want := range []string{
		"contact.failed " + fs[0].Event.ID,
		"2026-11-22T10:01:00Z (CONTACT_FAILURES sequence 2)",
		"exhausted (retryable)",
		"attempts    6 (create calls in this generation)",
		"HTTP 503, code ISE: down for j***@example.com (requestId r-1)",
		"no: this is the command's newest outcome",
		"consumer replay --command-id crm-1",
		`"email": "j***@example.com"`,
		`"mobile": "***10"`,
		"older failures of crm-1 (1):",
	} {
		assert.Contains(t, out, want)
	}
	assert.NotContains(t, out, "jane@example.com")
	assert.NotContains(t, out, "9876543210")

	b.Reset()
	require.NoError(t, WriteDetail(&b, fs[1:], true))
	out = b.String()
	assert.Contains(t, out, "errors      email (email): email must be a valid email address")
	assert.Contains(t, out, "by contact.created c-id at 2026-11-22T11:00:00Z: the contact exists")
	assert.Contains(t, out, `"email": "ravi@"`, "--unmask shows the command as it was")

	inv := fs[1]
	inv.CreatedAfter = nil
	assert.Equal(t, "consumer replay --command-id 'crm 2' --set email=VALUE", nextStep(inv), "a repair is suggested, quoted for the shell")
}

func TestWriteJSON(t *testing.T) {
	var b bytes.Buffer
	require.NoError(t, WriteJSON(&b, sampleFailures(), false))
	lines := strings.Split(strings.TrimSpace(b.String()), "\n")
	require.Len(t, lines, 2)
	var got map[string]any
	require.NoError(t, json.Unmarshal([]byte(lines[0]), &got))
	assert.Equal(t, "crm-1", got["commandId"])
	assert.Equal(t, "exhausted", got["reason"])
	assert.Equal(t, false, got["superseded"])
	assert.Equal(t, "CONTACT_FAILURES", got["stream"], "where seq counts")
	assert.EqualValues(t, 2, got["seq"])
	assert.Equal(t, "j***@example.com", got["command"].(map[string]any)["email"])
	assert.NotContains(t, b.String(), "jane@example.com")
	require.NoError(t, json.Unmarshal([]byte(lines[1]), &got))
	assert.Equal(t, true, got["superseded"])
	assert.Equal(t, "c-id", got["createdAfter"].(map[string]any)["id"])
}

func TestMatchLine(t *testing.T) {
	sel := &Selection{Matched: 37, ByReason: map[contact.Reason]int{contact.ReasonInvalid: 5, contact.ReasonExhausted: 30, contact.ReasonRejected: 2},
		SupersededByCreated: 4, SupersededByFailure: 1, Failures: make([]*Failure, 20)}
	assert.Equal(t, "37 failures match: exhausted 30, invalid 5, rejected 2; 5 superseded (by a later contact.created 4, by a later failure 1); the 20 newest shown (--limit)", MatchLine(sel))
	sel = &Selection{Matched: 1, ByReason: map[contact.Reason]int{contact.ReasonInvalid: 1}, Failures: make([]*Failure, 1)}
	assert.Equal(t, "1 failure matches: invalid 1", MatchLine(sel))
}
