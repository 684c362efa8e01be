package handlers

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/contactrelay/contactrelay/contact"
	"github.com/contactrelay/contactrelay/record"
)

func TestStoredRecordFormat(t *testing.T) {
	at := time.Date(2026, 11, 21, 10, 0, 0, 0, time.UTC)
	rec := record.Record{CommandID: "c-1", Contact: &record.StoredContact{Provider: "instantpay", ID: "ct", CreatedAt: at},
		Generations: map[string]*record.Generation{
			"":      {Attempts: 2, Outcome: json.RawMessage(`{"id":"e1"}`), Provider: "instantpay", Order: 1},
			"gen-b": {Attempts: 1, Order: 3},
			"gen-a": {Attempts: 1, Outcome: json.RawMessage(`{"id":"e2"}`), Reason: contact.ReasonExhausted, Order: 2},
		}, Order: 3}
	store := newMemStore()
	_, err := records{store: store}.save(context.Background(), rec, 0)
	require.NoError(t, err)
	got, _, err := store.Get(context.Background(), record.Key("c-1"))
	require.NoError(t, err)

	// Version 2, documented in docs/RECORDS.md: one JSON document.
	want := `{"v":2,"commandId":"c-1","contact":{"provider":"instantpay","id":"ct","createdAt":"2026-11-21T10:00:00Z"},` +
		`"generations":{"":{"attempts":2,"outcome":{"id":"e1"},"provider":"instantpay","order":1},` +
		`"gen-a":{"attempts":1,"outcome":{"id":"e2"},"reason":"exhausted","order":2},"gen-b":{"attempts":1,"order":3}},"order":3}`
	assert.Equal(t, want, string(got))
	back := store.record(t, "c-1")
	assert.Equal(t, rec.Generations[""].Outcome, back.Generations[""].Outcome)
	assert.Equal(t, rec.Generations["gen-a"].Outcome, back.Generations["gen-a"].Outcome)
	assert.Nil(t, back.Generations["gen-b"].Outcome)

	// Version 1, as records were written before: the record's JSON with
	// each outcome replaced by its line number, then the outcomes, a line
	// each. It is still read.
	v1 := `{"commandId":"c-1","contact":{"provider":"instantpay","id":"ct","createdAt":"2026-11-21T10:00:00Z"},` +
		`"unsettled":true,"inFlightUntil":"2026-11-21T10:00:12Z",` +
		`"generations":{"":{"attempts":2,"provider":"instantpay","outcomeLine":1},"gen-a":{"attempts":1,"reason":"exhausted","outcomeLine":2},"gen-b":{"attempts":1}}}` +
		"\n" + `{"id":"e1"}` + "\n" + `{"id":"e2"}`
	old, err := record.Decode([]byte(v1))
	require.NoError(t, err)
	assert.JSONEq(t, `{"id":"e1"}`, string(old.Generations[""].Outcome))
	assert.JSONEq(t, `{"id":"e2"}`, string(old.Generations["gen-a"].Outcome))
	assert.True(t, old.InFlight, "a version 1 hold is a claim, timed from when it is seen")
	assert.Zero(t, old.Generations[""].OutcomeLine)

	_, err = record.Decode([]byte(`{"v":3,"commandId":"c-1"}`))
	assert.ErrorIs(t, err, record.ErrVersion, "a newer version is refused, never rewritten")
}
