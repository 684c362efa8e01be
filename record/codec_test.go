package record

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/contactrelay/contactrelay/contact"
)

func TestRecordAppendJSONMatchesEncodingJSON(t *testing.T) {
	at := time.Date(2026, 11, 21, 10, 0, 0, 123, time.UTC)
	records := map[string]Record{
		"claim":    {Version: 2, CommandID: "c-1", Fingerprint: "v1:ab", FirstUsed: at, Unsettled: true, InFlight: true, HoldMillis: 12000, Generations: map[string]*Generation{"": {Attempts: 1, Order: 1}}, Order: 1},
		"v1 claim": {CommandID: "c-1", Unsettled: true, InFlightUntil: at},
		"created": {CommandID: `odd "id" <&>`, Contact: &StoredContact{Provider: "instantpay", ID: "ct", CreatedAt: at,
			Upstream: map[string]any{"contactId": "ct", "userId": json.Number("12345678901234567890"), "reconciled": true, "n": 1.5}},
			Generations: map[string]*Generation{"": {Attempts: 2, Outcome: json.RawMessage(`{"a":1}`), Provider: "instantpay"},
				"gen-2": {Attempts: 0, Reason: contact.ReasonExhausted, OutcomeLine: 2, Fingerprint: "v1:cd", Sequence: 42}}},
		"failed": {CommandID: "c-3", LastFailure: &contact.Upstream{HTTPStatus: 503, Code: "ISE", Message: "try \n later", RequestID: "r"}},
		"bare":   {CommandID: "c-4", LastFailure: &contact.Upstream{}},
		"answers": {CommandID: "c-6", LastFailure: &contact.Upstream{Code: "timeout"}, Answers: []Answer{
			{At: at, Class: "transient", Upstream: contact.Upstream{HTTPStatus: 503, Code: "ISE", Message: "try <later>", RequestID: "r1"}},
			{At: at.Add(time.Second), Class: "ambiguous", Upstream: contact.Upstream{Code: "timeout"}},
			{At: at.Add(2 * time.Second), Class: "transient"},
		}},
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
