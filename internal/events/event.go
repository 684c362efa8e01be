package events

import (
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"time"

	"github.com/google/uuid"
)

// Reason says why a command failed, in contact.failed events.
type Reason string

// The reasons of the contract. Only ReasonExhausted is retryable.
const (
	ReasonMalformed  Reason = "malformed"
	ReasonInvalid    Reason = "invalid"
	ReasonUnroutable Reason = "unroutable"
	ReasonRejected   Reason = "rejected"
	ReasonExhausted  Reason = "exhausted"
	// ReasonConflict answers an original command whose commandId was first
	// used for a command with other content: nothing was sent to a
	// provider, and the first command's outcome stands.
	ReasonConflict Reason = "conflict"
	// ReasonAmbiguous says the contact may exist: a create call's answer
	// was lost and a lookup could not prove the contact absent (it could
	// not see the provider's whole list). Creating again could duplicate
	// it, so a person must check the provider.
	ReasonAmbiguous Reason = "ambiguous"
)

// Retryable reports whether a replay of the unchanged command can succeed.
func (r Reason) Retryable() bool { return r == ReasonExhausted }

// DefaultSource is the CloudEvents source of the events the service emits.
const DefaultSource = "contactrelay"

// Event is a CloudEvents 1.0 structured-mode JSON document. Data holds a
// Created or a Failed, encoded.
type Event struct {
	SpecVersion     string          `json:"specversion"`
	ID              string          `json:"id"`
	Source          string          `json:"source"`
	Type            string          `json:"type"`
	Subject         string          `json:"subject"`
	Time            time.Time       `json:"time"`
	DataContentType string          `json:"datacontenttype"`
	Data            json.RawMessage `json:"data"`
}

// Created is the data of a contact.created event.
type Created struct {
	CommandID string            `json:"commandId"`
	Provider  string            `json:"provider"`
	ContactID string            `json:"contactId"`
	Upstream  map[string]any    `json:"upstream"`
	Attempts  int               `json:"attempts"`
	ReplayOf  string            `json:"replayOf,omitempty"`
	Metadata  map[string]string `json:"metadata,omitempty"`
}

// Failed is the data of a contact.failed event. Message explains the failure
// in one sentence; Errors lists the broken rules of an invalid command;
// Upstream carries the provider's last answer for rejected and exhausted
// commands; Command is the original command object, or CommandRaw the raw
// body (base64 in JSON) when it was malformed.
//
// NewEvent bounds what it encodes (see MaxEventSize): at most MaxErrors
// errors, with ErrorsOmitted counting the rest; the metadata entries that
// keep the contract's rules, at most MaxMetadataEntries, with
// MetadataOmitted counting the rest; a CommandRaw of at most MaxCommandSize
// bytes, with CommandTruncated set and CommandSize the body's full size
// when it was longer; a Command that is not a JSON object within
// MaxCommandSize and MaxNestingDepth, or would encode too large, carried
// as CommandRaw instead; and long strings clipped, ending in "…".
type Failed struct {
	CommandID        string            `json:"commandId"`
	Provider         string            `json:"provider,omitempty"`
	Reason           Reason            `json:"reason"`
	Retryable        bool              `json:"retryable"`
	Message          string            `json:"message"`
	Errors           []FieldError      `json:"errors,omitempty"`
	ErrorsOmitted    int               `json:"errorsOmitted,omitempty"`
	Upstream         *Upstream         `json:"upstream,omitempty"`
	Attempts         int               `json:"attempts"`
	ReplayOf         string            `json:"replayOf,omitempty"`
	Metadata         map[string]string `json:"metadata,omitempty"`
	MetadataOmitted  int               `json:"metadataOmitted,omitempty"`
	Command          json.RawMessage   `json:"command,omitempty"`
	CommandRaw       []byte            `json:"commandRaw,omitempty"`
	CommandTruncated bool              `json:"commandTruncated,omitempty"`
	CommandSize      int               `json:"commandSize,omitempty"`
}

// Upstream is a provider's last answer to a failed create call. Code is the
// provider's status code, or "timeout" or "connection" where no answer came.
type Upstream struct {
	HTTPStatus int    `json:"httpStatus,omitempty"`
	Code       string `json:"code,omitempty"`
	Message    string `json:"message,omitempty"`
	RequestID  string `json:"requestId,omitempty"`
}

// idNamespace is the UUIDv5 namespace of event ids.
var idNamespace = uuid.MustParse("6f1b2c1e-4c43-5b0a-9a57-3f0f7f1c2a10")

// EventID returns the deterministic id of the event of the given type for a
// command in a generation: the same inputs always give the same id, and any
// change of one of them gives another. generation is empty for an original
// command and the Contact-Replay-Of value for a replay.
func EventID(commandID, generation, eventType string) string {
	name := eventType + "\x00" + generation + "\x00" + commandID
	return uuid.NewSHA1(idNamespace, []byte(name)).String()
}

// NewEvent wraps data in a CloudEvents envelope whose id is EventID of the
// command, generation and type. An empty source means DefaultSource. A
// Failed (or *Failed) is bounded first, so that the event encodes to at most
// MaxEventSize bytes; for that, NewEvent refuses a commandID longer than
// MaxCommandIDBytes and a source longer than MaxSourceBytes, with an error.
func NewEvent(source, eventType, commandID, generation string, at time.Time, data any) (Event, error) {
	if source == "" {
		source = DefaultSource
	}
	switch {
	case len(commandID) > MaxCommandIDBytes:
		return Event{}, fmt.Errorf("event for a commandId of %d bytes: more than %d", len(commandID), MaxCommandIDBytes)
	case len(source) > MaxSourceBytes:
		return Event{}, fmt.Errorf("event source of %d bytes: more than %d", len(source), MaxSourceBytes)
	}
	if _, err := at.UTC().MarshalJSON(); err != nil {
		return Event{}, fmt.Errorf("event time: %w", err) // a year outside 0-9999
	}
	if f, ok := data.(*Failed); ok && f != nil {
		data = *f
	}
	if f, ok := data.(Failed); ok {
		if len(f.CommandID) > MaxCommandIDBytes {
			return Event{}, fmt.Errorf("failed event for a commandId of %d bytes: more than %d", len(f.CommandID), MaxCommandIDBytes)
		}
		data = f.bounded()
	}
	var (
		body []byte
		err  error
	)
	if c, ok := data.(Created); ok {
		body, err = c.AppendJSON(make([]byte, 0, 384)) // the hot path, without reflection
	} else {
		body, err = json.Marshal(data)
	}
	if err != nil {
		return Event{}, err
	}
	return Event{
		SpecVersion:     "1.0",
		ID:              EventID(commandID, generation, eventType),
		Source:          source,
		Type:            eventType,
		Subject:         commandID,
		Time:            at.UTC(),
		DataContentType: "application/json",
		Data:            body,
	}, nil
}

// AppendJSON appends the event's JSON encoding to b: the same bytes as
// json.Marshal(e), without reflection and without validating Data again,
// which must be valid compact JSON (as NewEvent makes it).
func (e Event) AppendJSON(b []byte) []byte {
	b = append(b, `{"specversion":`...)
	b = appendString(b, e.SpecVersion)
	b = append(b, `,"id":`...)
	b = appendString(b, e.ID)
	b = append(b, `,"source":`...)
	b = appendString(b, e.Source)
	b = append(b, `,"type":`...)
	b = appendString(b, e.Type)
	b = append(b, `,"subject":`...)
	b = appendString(b, e.Subject)
	b = append(b, `,"time":"`...)
	b = e.Time.AppendFormat(b, time.RFC3339Nano)
	b = append(b, `","datacontenttype":`...)
	b = appendString(b, e.DataContentType)
	b = append(b, `,"data":`...)
	if len(e.Data) == 0 {
		b = append(b, "null"...)
	} else {
		b = append(b, e.Data...)
	}
	return append(b, '}')
}

// AppendString appends s as a JSON string, escaped as encoding/json does.
func AppendString(b []byte, s string) []byte { return appendString(b, s) }

// appendString appends s as a JSON string, escaped as encoding/json does.
func appendString(b []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c == '"' || c == '\\' || c == '<' || c == '>' || c == '&' || c >= 0x80 {
			q, _ := json.Marshal(s) // the rare string that needs escaping
			return append(b, q...)
		}
	}
	b = append(b, '"')
	b = append(b, s...)
	return append(b, '"')
}

// AppendObject appends m with its keys sorted, as json.Marshal does;
// values other than strings and json.Numbers go through json.Marshal. A
// json.Number that is not a JSON number is an error, as with json.Marshal.
func AppendObject(b []byte, m map[string]any) ([]byte, error) {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	b = append(b, '{')
	for i, k := range keys {
		if i > 0 {
			b = append(b, ',')
		}
		b = appendString(b, k)
		b = append(b, ':')
		switch v := m[k].(type) {
		case string:
			b = appendString(b, v)
		case json.Number:
			if v == "" {
				v = "0" // as json.Marshal writes it
			}
			if !isNumber(string(v)) {
				return nil, fmt.Errorf("json: invalid number literal %q", string(v))
			}
			b = append(b, v...)
		default:
			enc, err := json.Marshal(v)
			if err != nil {
				return nil, err
			}
			b = append(b, enc...)
		}
	}
	return append(b, '}'), nil
}

// AppendJSON appends the data's JSON encoding: the bytes json.Marshal
// writes, without reflection.
func (c Created) AppendJSON(b []byte) ([]byte, error) {
	b = append(b, `{"commandId":`...)
	b = appendString(b, c.CommandID)
	b = append(b, `,"provider":`...)
	b = appendString(b, c.Provider)
	b = append(b, `,"contactId":`...)
	b = appendString(b, c.ContactID)
	b = append(b, `,"upstream":`...)
	if c.Upstream == nil {
		b = append(b, "null"...)
	} else {
		var err error
		if b, err = AppendObject(b, c.Upstream); err != nil {
			return nil, err
		}
	}
	b = append(b, `,"attempts":`...)
	b = strconv.AppendInt(b, int64(c.Attempts), 10)
	if c.ReplayOf != "" {
		b = append(b, `,"replayOf":`...)
		b = appendString(b, c.ReplayOf)
	}
	if len(c.Metadata) > 0 {
		b = append(b, `,"metadata":{`...)
		keys := make([]string, 0, len(c.Metadata))
		for k := range c.Metadata {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		for i, k := range keys {
			if i > 0 {
				b = append(b, ',')
			}
			b = appendString(b, k)
			b = append(b, ':')
			b = appendString(b, c.Metadata[k])
		}
		b = append(b, '}')
	}
	return append(b, '}'), nil
}

// isNumber reports whether s is a JSON number, as json.Marshal checks a
// json.Number: -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?
func isNumber(s string) bool {
	i := 0
	digits := func() bool {
		start := i
		for i < len(s) && '0' <= s[i] && s[i] <= '9' {
			i++
		}
		return i > start
	}
	if i < len(s) && s[i] == '-' {
		i++
	}
	switch {
	case i < len(s) && s[i] == '0':
		i++
	case !digits():
		return false
	}
	if i < len(s) && s[i] == '.' {
		i++
		if !digits() {
			return false
		}
	}
	if i < len(s) && (s[i] == 'e' || s[i] == 'E') {
		i++
		if i < len(s) && (s[i] == '+' || s[i] == '-') {
			i++
		}
		if !digits() {
			return false
		}
	}
	return i == len(s)
}
