package events

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/contactrelay/contactrelay/contact"
	"github.com/contactrelay/contactrelay/rules"
)

// failedFrom builds the contact.failed data the service could build from
// hostile input: body as the command (or raw, when malformed), text
// repeated into every string that comes from input, n errors and n
// metadata entries.
func failedFrom(body []byte, text string, n int, malformed bool) contact.Failed {
	f := contact.Failed{
		CommandID: "c", Provider: text, Reason: contact.ReasonInvalid, Message: text,
		Upstream: &contact.Upstream{HTTPStatus: 503, Code: text, Message: text, RequestID: text},
		ReplayOf: text,
	}
	if malformed {
		f.Reason, f.CommandRaw = contact.ReasonMalformed, body
	} else {
		f.Command = body
	}
	f.Metadata = map[string]string{}
	entry := text[:min(len(text), 2048)] // past every per-entry budget
	for i := range n {
		f.Errors = append(f.Errors, contact.FieldError{Field: fmt.Sprintf("metadata[%s%d]", entry, i), Rule: entry, Message: entry})
		f.Metadata[fmt.Sprintf("%s%d", entry, i)] = entry
	}
	f.Message = InvalidMessage(f.Errors)
	return f
}

// assertFits checks that the failed event of f, for the given commandId,
// encodes within MaxEventSize, as json.Marshal does, and reads back.
func assertFits(t testing.TB, source, commandID string, f contact.Failed) []byte {
	t.Helper()
	f.CommandID = commandID
	ev, err := NewEvent(source, contact.SubjectFailed, commandID, f.ReplayOf, time.Date(2026, 11, 21, 10, 0, 0, 0, time.UTC), f)
	require.NoError(t, err, "a failed event is always built")
	got := ev.AppendJSON(nil)
	require.LessOrEqual(t, len(got), MaxEventSize, "the failed event fits its bound")
	want, err := json.Marshal(ev)
	require.NoError(t, err)
	require.Equal(t, string(want), string(got), "the encoding is encoding/json's")
	var back struct {
		Data contact.Failed `json:"data"`
	}
	require.NoError(t, json.Unmarshal(got, &back), "the event reads back")
	return got
}

func TestFailedEventWorstCase(t *testing.T) {
	// Every string made of the characters that grow most when encoded.
	worst := strings.Repeat("<\x01", 1<<19)
	id := strings.Repeat("<", MaxCommandIDBytes)
	source := strings.Repeat("&", MaxSourceBytes)
	big := []byte(`{"a":"` + strings.Repeat("<", contact.MaxCommandSize-8) + `"}`)
	for name, f := range map[string]contact.Failed{
		"malformed, 1 MiB":       failedFrom([]byte(worst), worst, 10000, true),
		"malformed, 16 MiB":      failedFrom(bytes.Repeat([]byte{0xff}, 16<<20), worst, 300, true),
		"invalid, escaped":       failedFrom(big, worst, 10000, false),
		"invalid, fits just":     failedFrom([]byte(`{"a":"`+strings.Repeat("x", contact.MaxCommandSize-8)+`"}`), worst, 10000, false),
		"invalid, no metadata":   failedFrom([]byte(`{}`), worst, 0, false),
		"invalid, 300 short ids": failedFrom([]byte(`{}`), "\u2028", 300, false),
	} {
		t.Run(name, func(t *testing.T) {
			got := assertFits(t, source, id, f)
			t.Logf("%d bytes", len(got))
		})
	}
}

func TestFailedEventBounds(t *testing.T) {
	t.Run("a long malformed body is cut and says so", func(t *testing.T) {
		body := bytes.Repeat([]byte("x"), 900<<10)
		var d struct{ Data contact.Failed }
		require.NoError(t, json.Unmarshal(assertFits(t, "", "s:1", contact.Failed{Reason: contact.ReasonMalformed, Message: "m", CommandRaw: body}), &d))
		assert.Equal(t, body[:contact.MaxCommandSize], d.Data.CommandRaw, "commandRaw holds the first MaxCommandSize bytes")
		assert.True(t, d.Data.CommandTruncated, "commandTruncated says it was cut")
		assert.Equal(t, len(body), d.Data.CommandSize, "commandSize is the body's size")
	})
	t.Run("a short malformed body is whole", func(t *testing.T) {
		var d struct{ Data contact.Failed }
		require.NoError(t, json.Unmarshal(assertFits(t, "", "s:1", contact.Failed{Reason: contact.ReasonMalformed, Message: "m", CommandRaw: []byte("hello")}), &d))
		assert.False(t, d.Data.CommandTruncated)
		assert.Zero(t, d.Data.CommandSize)
	})
	t.Run("errors are capped and counted", func(t *testing.T) {
		f := failedFrom([]byte(`{}`), "k", 3000, false)
		var d struct{ Data contact.Failed }
		require.NoError(t, json.Unmarshal(assertFits(t, "", "c", f), &d))
		assert.Len(t, d.Data.Errors, MaxErrors)
		assert.Equal(t, 3000-MaxErrors, d.Data.ErrorsOmitted)
		assert.Len(t, d.Data.Metadata, MaxMetadataEntries)
		assert.Equal(t, 3000-MaxMetadataEntries, d.Data.MetadataOmitted)
	})
	t.Run("metadata that breaks the rules is left out", func(t *testing.T) {
		f := contact.Failed{Reason: contact.ReasonInvalid, Message: "m", Command: []byte(`{}`), Metadata: map[string]string{
			"ok": "v", strings.Repeat("k", 129): "v", "v": strings.Repeat("v", 1025), "bidi\u202e": "v", "": "v",
		}}
		var d struct{ Data contact.Failed }
		require.NoError(t, json.Unmarshal(assertFits(t, "", "c", f), &d))
		assert.Equal(t, map[string]string{"ok": "v"}, d.Data.Metadata)
		assert.Equal(t, 4, d.Data.MetadataOmitted)
	})
	t.Run("a command that would encode too large goes raw", func(t *testing.T) {
		body := []byte(`{"a":"` + strings.Repeat("<", 30000) + `"}`)
		var d struct{ Data contact.Failed }
		require.NoError(t, json.Unmarshal(assertFits(t, "", "c", contact.Failed{Reason: contact.ReasonInvalid, Message: "m", Command: body}), &d))
		assert.Nil(t, d.Data.Command)
		assert.Equal(t, body, d.Data.CommandRaw, "the command is carried whole, as bytes")
	})
	t.Run("a command that is not an object goes raw", func(t *testing.T) {
		var d struct{ Data contact.Failed }
		require.NoError(t, json.Unmarshal(assertFits(t, "", "c", contact.Failed{Reason: contact.ReasonInvalid, Message: "m", Command: []byte(`{"a":`)}), &d))
		assert.Nil(t, d.Data.Command)
		assert.Equal(t, []byte(`{"a":`), d.Data.CommandRaw)
	})
	t.Run("long strings are clipped on a character boundary", func(t *testing.T) {
		f := contact.Failed{Reason: contact.ReasonRejected, Message: strings.Repeat("é", 5000), Upstream: &contact.Upstream{Message: strings.Repeat("é", 5000)}, Command: []byte(`{}`)}
		var d struct{ Data contact.Failed }
		require.NoError(t, json.Unmarshal(assertFits(t, "", "c", f), &d))
		assert.True(t, utf8.ValidString(d.Data.Message))
		assert.True(t, strings.HasSuffix(d.Data.Message, "é…"), "a clipped string ends in an ellipsis")
		assert.LessOrEqual(t, len(d.Data.Upstream.Message), maxUpstreamMessage)
	})
}

func TestNewEventRefusesUnboundedIDs(t *testing.T) {
	_, err := NewEvent("", contact.SubjectFailed, strings.Repeat("a", MaxCommandIDBytes+1), "", time.Now(), contact.Failed{})
	assert.Error(t, err, "a commandId longer than MaxCommandIDBytes is refused")
	_, err = NewEvent(strings.Repeat("s", MaxSourceBytes+1), contact.SubjectFailed, "c", "", time.Now(), contact.Failed{})
	assert.Error(t, err, "a source longer than MaxSourceBytes is refused")
	_, err = NewEvent("", contact.SubjectFailed, strings.Repeat("a", MaxCommandIDBytes), "", time.Now(), contact.Failed{})
	assert.NoError(t, err, "a commandId of MaxCommandIDBytes is fine")
}

func TestInvalidMessage(t *testing.T) {
	one := []contact.FieldError{{Field: "email", Rule: "email", Message: "email must be a valid email address"}}
	assert.Equal(t, "the command breaks 1 rule: email must be a valid email address", InvalidMessage(one))
	two := append(one, contact.FieldError{Field: "name", Rule: "required", Message: "name is required"})
	assert.Equal(t, "the command breaks 2 rules: email must be a valid email address; name is required", InvalidMessage(two))
	var many []contact.FieldError
	for i := range 5000 {
		many = append(many, contact.FieldError{Field: fmt.Sprint("metadata[k", i, "]"), Rule: "max", Message: strings.Repeat("<", 300)})
	}
	msg := InvalidMessage(many)
	assert.LessOrEqual(t, encodedLen(msg), maxMessageBytes, "the message is bounded")
	assert.True(t, strings.HasPrefix(msg, "the command breaks 5000 rules: "), msg)
	assert.Contains(t, msg, " more", "the messages left out are counted")
}

// FuzzFailedEventFits builds the contact.failed event of arbitrary input
// and checks that it encodes within MaxEventSize, as encoding/json does.
// The body is repeated rep times, so that small inputs reach past the
// limits; an id that CommandIDFromHeader refuses falls back to a
// <stream>:<sequence> id, as the service does.
func FuzzFailedEventFits(f *testing.F) {
	f.Add([]byte(`{"name":"x"}`), "c-1", "k", uint16(1), uint16(1), false)
	f.Add([]byte("<\x01\xff"), strings.Repeat("<", 2000), "\u2028&", uint16(60000), uint16(3000), true)
	f.Add([]byte(`{"a":"<<<<<<<<"}`), "id", "<>&", uint16(1), uint16(40), false)
	f.Add([]byte(`{"a":"`+strings.Repeat("<", 1000)+`"}`), "\u202e", strings.Repeat("x", 200), uint16(1), uint16(100), false)
	f.Fuzz(func(t *testing.T, body []byte, id, text string, rep, n uint16, malformed bool) {
		if len(body)*int(rep) > 4<<20 || len(text) > 4096 {
			return // keep each run quick; the seeds cover the large cases
		}
		body = bytes.Repeat(body, max(int(rep), 1))
		commandID, err := rules.CommandIDFromHeader(id)
		if err != nil || commandID == "" {
			commandID, malformed = "CONTACT_COMMANDS:18446744073709551615", true
		}
		fd := failedFrom(body, text, int(n%4096), malformed)
		assertFits(t, text[:min(len(text), MaxSourceBytes)], commandID, fd)
	})
}
