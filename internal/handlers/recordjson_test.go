package handlers

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/contactrelay/contactrelay/internal/events"
)

func TestRecordAppendJSONMatchesEncodingJSON(t *testing.T) {
	at := time.Date(2026, 11, 21, 10, 0, 0, 123, time.UTC)
	records := map[string]Record{
		"claim": {CommandID: "c-1", Unsettled: true, InFlightUntil: at, Generations: map[string]*Generation{"": {Attempts: 1}}},
		"created": {CommandID: `odd "id" <&>`, Contact: &StoredContact{Provider: "instantpay", ID: "ct", CreatedAt: at,
			Upstream: map[string]any{"contactId": "ct", "userId": json.Number("12345678901234567890"), "reconciled": true, "n": 1.5}},
			Generations: map[string]*Generation{"": {Attempts: 2, Outcome: json.RawMessage(`{"a":1}`), Provider: "instantpay"},
				"gen-2": {Attempts: 0, Reason: events.ReasonExhausted, OutcomeLine: 2}}},
		"failed":      {CommandID: "c-3", LastFailure: &events.Upstream{HTTPStatus: 503, Code: "ISE", Message: "try \n later", RequestID: "r"}},
		"bare":        {CommandID: "c-4", LastFailure: &events.Upstream{}},
		"no upstream": {CommandID: "c-5", Contact: &StoredContact{Provider: "pik", ID: "x"}},
	}
	for name, rec := range records {
		t.Run(name, func(t *testing.T) {
			want, err := json.Marshal(rec)
			require.NoError(t, err)
			got, err := rec.appendJSON(nil)
			require.NoError(t, err)
			assert.JSONEq(t, string(want), string(got), "the hand-written encoding says what encoding/json says")
			assert.Equal(t, string(want), string(got), "byte for byte")
		})
	}
	_, err := Record{CommandID: "x", Contact: &StoredContact{Upstream: map[string]any{"n": json.Number("not a number")}}}.appendJSON(nil)
	assert.Error(t, err, "an invalid number is refused, as json.Marshal refuses it")
}

func TestStoredRecordFormat(t *testing.T) {
	at := time.Date(2026, 11, 21, 10, 0, 0, 0, time.UTC)
	rec := Record{CommandID: "c-1", Contact: &StoredContact{Provider: "instantpay", ID: "ct", CreatedAt: at},
		Generations: map[string]*Generation{
			"":      {Attempts: 2, Outcome: json.RawMessage(`{"id":"e1"}`), Provider: "instantpay"},
			"gen-b": {Attempts: 1},
			"gen-a": {Attempts: 1, Outcome: json.RawMessage(`{"id":"e2"}`), Reason: events.ReasonExhausted},
		}}
	store := newMemStore()
	_, err := records{store: store}.save(context.Background(), rec, 0)
	require.NoError(t, err)
	got, _, err := store.Get(context.Background(), RecordKey("c-1"))
	require.NoError(t, err)

	// The format records have had since they were first written: the
	// record's JSON with each outcome replaced by its line number (in the
	// order of the generations' names), then the outcomes, a line each.
	want := `{"commandId":"c-1","contact":{"provider":"instantpay","id":"ct","createdAt":"2026-11-21T10:00:00Z"},` +
		`"generations":{"":{"attempts":2,"provider":"instantpay","outcomeLine":1},"gen-a":{"attempts":1,"reason":"exhausted","outcomeLine":2},"gen-b":{"attempts":1}}}` +
		"\n" + `{"id":"e1"}` + "\n" + `{"id":"e2"}`
	assert.Equal(t, want, string(got))

	back := store.record(t, "c-1")
	assert.Equal(t, rec.Generations[""].Outcome, back.Generations[""].Outcome)
	assert.Equal(t, rec.Generations["gen-a"].Outcome, back.Generations["gen-a"].Outcome)
	assert.Nil(t, back.Generations["gen-b"].Outcome)
	assert.Zero(t, rec.Generations[""].OutcomeLine, "saving leaves the record it was given as it was")
}
