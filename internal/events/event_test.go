package events

import (
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/contactrelay/contactrelay/contact"
)

var update = flag.Bool("update", false, "rewrite the golden files under testdata")

func TestEventIDIsDeterministic(t *testing.T) {
	id := contact.EventID("c-1", "", contact.SubjectCreated)
	assert.Equal(t, id, contact.EventID("c-1", "", contact.SubjectCreated), "same inputs, same id")
	others := []string{
		contact.EventID("c-2", "", contact.SubjectCreated),
		contact.EventID("c-1", "gen-1", contact.SubjectCreated),
		contact.EventID("c-1", "", contact.SubjectFailed),
		contact.EventID("c-1\x00", "", contact.SubjectCreated),
	}
	for _, o := range others {
		assert.NotEqual(t, id, o, "a change of any input changes the id")
	}
	assert.Len(t, id, 36, "ids are UUIDs")
}

func TestEventsGolden(t *testing.T) {
	at := time.Date(2026, 11, 21, 10, 0, 0, 0, time.UTC)
	tests := []struct {
		name string
		typ  string
		gen  string
		data any
	}{
		{"created", contact.SubjectCreated, "", contact.Created{
			CommandID: "c-1", Provider: "instantpay", ContactID: "65a1b2c3d4e5f6a7b8c9d0e1",
			Upstream: map[string]any{"contactId": "65a1b2c3d4e5f6a7b8c9d0e1", "userId": "u1", "ipayUuid": "u-1", "orderId": "o-1", "environment": "LIVE", "timestamp": "2026-11-21 15:30:00"},
			Attempts: 1, Metadata: map[string]string{"source": "crm"},
		}},
		{"failed_invalid", contact.SubjectFailed, "", contact.Failed{
			CommandID: "c-2", Provider: "instantpay", Reason: contact.ReasonInvalid, Message: "the command breaks 1 rule: email must be a valid email address",
			Errors:  []contact.FieldError{{Field: "email", Rule: "email", Message: "email must be a valid email address"}},
			Command: json.RawMessage(`{"commandId":"c-2","name":"Jane","email":"jane@","mobile":"9876543210","tagId":"65a1b2c3d4e5f6a7b8c9d0e1"}`),
		}},
		{"failed_exhausted_replay", contact.SubjectFailed, "7168773c-9ddf-58dd-b9ad-45791ab996da", contact.Failed{
			CommandID: "c-3", Provider: "pik", Reason: contact.ReasonExhausted, Retryable: true, Message: "transient failures outlasted 10 deliveries",
			Upstream: &contact.Upstream{HTTPStatus: 503, Code: "503", Message: "service unavailable", RequestID: "r-1"},
			Attempts: 12, ReplayOf: "7168773c-9ddf-58dd-b9ad-45791ab996da",
			Command: json.RawMessage(`{"commandId":"c-3","provider":"pik","name":"Ravi","email":"ravi@example.com","mobile":"9876543210","tagId":"vip"}`),
		}},
		{"failed_malformed", contact.SubjectFailed, "", contact.Failed{
			CommandID: "CONTACT_COMMANDS:7", Reason: contact.ReasonMalformed, Message: "the command body is not a JSON object", CommandRaw: []byte("hello"),
		}},
		{"failed_malformed_truncated", contact.SubjectFailed, "", contact.Failed{
			CommandID: "CONTACT_COMMANDS:8", Reason: contact.ReasonMalformed, Message: "the command body is 65537 bytes, more than the limit of 65536",
			CommandRaw: []byte(strings.Repeat("x", contact.MaxCommandSize+1)),
		}},
		{"failed_invalid_bounded", contact.SubjectFailed, "", manyErrors()},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var commandID string
			switch d := tt.data.(type) {
			case contact.Created:
				commandID = d.CommandID
			case contact.Failed:
				commandID = d.CommandID
			}
			ev, err := NewEvent("", tt.typ, commandID, tt.gen, at, tt.data)
			require.NoError(t, err)
			got, err := json.MarshalIndent(ev, "", "  ")
			require.NoError(t, err)
			path := filepath.Join("testdata", tt.name+".json")
			if *update {
				require.NoError(t, os.WriteFile(path, append(got, '\n'), 0o644))
			}
			want, err := os.ReadFile(path)
			require.NoError(t, err, "golden file missing: run go test ./internal/events -update")
			assert.JSONEq(t, string(want), string(got))
			assert.Equal(t, contact.EventID(commandID, tt.gen, tt.typ), ev.ID)
			assert.Equal(t, commandID, ev.Subject, "the subject is the commandId")
			assert.Equal(t, DefaultSource, ev.Source)
		})
	}
}

func TestReasonRetryable(t *testing.T) {
	for _, r := range []contact.Reason{contact.ReasonMalformed, contact.ReasonInvalid, contact.ReasonUnroutable, contact.ReasonRejected} {
		assert.False(t, r.Retryable(), r)
	}
	assert.True(t, contact.ReasonExhausted.Retryable())
}

func TestAppendJSONMatchesEncodingJSON(t *testing.T) {
	at := time.Date(2026, 11, 21, 10, 0, 0, 123456789, time.FixedZone("IST", 5*3600+1800))
	for _, id := range []string{"c-1", "CONTACT_COMMANDS:7", `odd "id" <&> \ é` + "\n\t\x01"} {
		ev, err := NewEvent("src<x>", contact.SubjectCreated, id, "gen", at, contact.Created{CommandID: id, Upstream: map[string]any{"a": 1}})
		require.NoError(t, err)
		want, err := json.Marshal(ev)
		require.NoError(t, err)
		assert.Equal(t, string(want), string(ev.AppendJSON(nil)), "the hand-written encoding is encoding/json's, for %q", id)
	}
	assert.Equal(t, `{"specversion":"","id":"","source":"","type":"","subject":"","time":"0001-01-01T00:00:00Z","datacontenttype":"","data":null}`,
		string(contact.Event{}.AppendJSON(nil)))
	want, _ := json.Marshal(contact.Event{})
	assert.Equal(t, string(want), string(contact.Event{}.AppendJSON(nil)))
}

func TestCreatedAppendJSONMatchesEncodingJSON(t *testing.T) {
	for name, c := range map[string]contact.Created{
		"full": {CommandID: `c "1" <x>`, Provider: "instantpay", ContactID: "ct", Attempts: 3, ReplayOf: "r",
			Upstream: map[string]any{"contactId": "ct", "userId": json.Number("123456789012345678901"), "reconciled": true, "f": 1.25, "nested": map[string]any{"a": []any{1, "b"}}},
			Metadata: map[string]string{"z": "1", "a": "é\n"}},
		"bare":         {CommandID: "c"},
		"empty maps":   {CommandID: "c", Upstream: map[string]any{}, Metadata: map[string]string{}},
		"nil upstream": {CommandID: "c", Metadata: map[string]string{"k": "v"}},
	} {
		t.Run(name, func(t *testing.T) {
			want, err := json.Marshal(c)
			require.NoError(t, err)
			got, err := c.AppendJSON(nil)
			require.NoError(t, err)
			assert.Equal(t, string(want), string(got), "the hand-written encoding is encoding/json's")
		})
	}
}

// manyErrors is an invalid command with more metadata entries and errors
// than a contact.failed event carries.
func manyErrors() contact.Failed {
	f := contact.Failed{CommandID: "c-4", Reason: contact.ReasonInvalid, Metadata: map[string]string{}, Command: json.RawMessage(`{"commandId":"c-4"}`)}
	for i := range MaxErrors + 2 {
		f.Errors = append(f.Errors, contact.FieldError{Field: fmt.Sprintf("metadata[k%02d]", i), Rule: "printable", Message: fmt.Sprintf("metadata[k%02d] must not contain control or format characters (it contains U+202E)", i)})
		f.Metadata[fmt.Sprintf("k%02d", i)] = "v"
	}
	f.Message = InvalidMessage(f.Errors)
	return f
}

// TestNewEventRefusesWhatTimeCannotEncode: an event's time is refused
// exactly where time.Time's JSON encoding is (a year outside 0-9999),
// though it is no longer encoded to find out.
func TestNewEventRefusesWhatTimeCannotEncode(t *testing.T) {
	for _, year := range []int{-1, 0, 1, 2026, 9999, 10000} {
		at := time.Date(year, 12, 31, 23, 59, 59, 0, time.FixedZone("east", 3600))
		_, err := NewEvent("", "contact.created", "c-1", "", at, contact.Created{CommandID: "c-1"})
		_, jerr := at.UTC().MarshalJSON()
		assert.Equal(t, jerr != nil, err != nil, "year %d: NewEvent's error %v, MarshalJSON's %v", year, err, jerr)
	}
}
