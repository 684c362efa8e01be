package events

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

// nested returns a command whose pik member holds objects nested so that
// the body is depth levels deep.
func nested(depth int) []byte {
	inner := strings.Repeat(`{"a":`, depth-2) + `1` + strings.Repeat(`}`, depth-2)
	return []byte(`{"name":"Jane","email":"jane@example.com","mobile":"9876543210","tagId":"t","pik":{"x":` + inner + `}}`)
}

func TestDecodeCommandNestingDepth(t *testing.T) {
	tests := []struct {
		name      string
		body      []byte
		malformed bool
	}{
		{"at the limit", nested(contact.MaxNestingDepth), false},
		{"one level more", nested(contact.MaxNestingDepth + 1), true},
		{"ten thousand levels", []byte(strings.Repeat(`{"a":`, 10000) + `1` + strings.Repeat(`}`, 10000)), true},
		{"arrays count too", []byte(`{"x":` + strings.Repeat(`[`, contact.MaxNestingDepth) + strings.Repeat(`]`, contact.MaxNestingDepth) + `}`), true},
		{"brackets inside strings do not count", []byte(`{"name":"` + strings.Repeat(`{[`, 100) + `","tagId":"t"}`), false},
		{"an escaped quote does not end a string", []byte(`{"name":"\"` + strings.Repeat(`{`, 100) + `\\"}`), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := contact.DecodeCommand(tt.body)
			var derr *contact.DecodeError
			if !tt.malformed {
				if err != nil {
					require.ErrorAs(t, err, &derr)
					assert.NotEqual(t, contact.ReasonMalformed, derr.Reason, "a body within the nesting limit is not malformed: %v", err)
				}
				return
			}
			require.ErrorAs(t, err, &derr, "a body nested too deep is refused")
			assert.Equal(t, contact.ReasonMalformed, derr.Reason)
			assert.Contains(t, derr.Message, "levels deep", "the message says what is wrong")
		})
	}
}

// assertRoundTrip checks that an accepted body, carried as the command of
// a contact.failed event, encodes and decodes back to the same JSON.
func assertRoundTrip(t testing.TB, body []byte) {
	t.Helper()
	ev, err := NewEvent("", contact.SubjectFailed, "c-1", "", time.Unix(0, 0), contact.Failed{CommandID: "c-1", Reason: contact.ReasonInvalid, Message: "m", Command: body})
	require.NoError(t, err, "an accepted command can be carried in an event")
	var back contact.Event
	require.NoError(t, json.Unmarshal(ev.AppendJSON(nil), &back), "the event reads back")
	var f contact.Failed
	require.NoError(t, json.Unmarshal(back.Data, &f), "the event's data reads back")
	var compact, want, got bytes.Buffer
	require.NoError(t, json.Compact(&compact, body))
	json.HTMLEscape(&want, compact.Bytes()) // as encoding/json writes a json.RawMessage
	require.NoError(t, json.Compact(&got, f.Command))
	assert.Equal(t, want.String(), got.String(), "the command comes back as it went in")
}

func TestAcceptedCommandsRoundTrip(t *testing.T) {
	for name, body := range map[string][]byte{
		"deepest accepted":                nested(contact.MaxNestingDepth),
		"ten thousand levels if accepted": []byte(`{"pik":` + strings.Repeat(`{"a":`, 9999) + `1` + strings.Repeat(`}`, 9999) + `}`),
		"typical":                         []byte(validBody),
	} {
		t.Run(name, func(t *testing.T) {
			if _, err := contact.DecodeCommand(body); err != nil {
				var derr *contact.DecodeError
				require.ErrorAs(t, err, &derr)
				if derr.Reason == contact.ReasonMalformed {
					return // refused: nothing to carry
				}
			}
			assertRoundTrip(t, body)
		})
	}
}
