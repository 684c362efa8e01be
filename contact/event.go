package contact

import (
	"crypto/sha1"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"time"
)

// The subjects of the contract: commands are published on SubjectCreate,
// their outcomes on SubjectCreated and SubjectFailed (an event's Type is
// its subject).
const (
	SubjectCreate  = "contact.create"
	SubjectCreated = "contact.created"
	SubjectFailed  = "contact.failed"
)

// The headers of the contract.
const (
	// HeaderMsgID is JetStream's de-duplication header: a command's
	// commandId (or "replay:" and the replayed event's id, for a replay),
	// an event's id.
	HeaderMsgID = "Nats-Msg-Id"
	// HeaderReplayOf marks a replayed command with the id of the failed
	// event it replays; its value names the command's generation.
	HeaderReplayOf = "Contact-Replay-Of"
)

// The JetStream streams the service sets up: commands are published into
// CommandStream (subject SubjectCreate), events read from EventStream
// (subjects SubjectCreated and SubjectFailed).
const (
	CommandStream = "CONTACT_COMMANDS"
	EventStream   = "CONTACT_EVENTS"
)

// Reason says why a command failed, in contact.failed events.
type Reason string

// The reasons of the contract. Only ReasonExhausted is retryable.
const (
	// ReasonMalformed: the body is not a readable JSON object (empty, not
	// UTF-8, over MaxCommandSize, nested over MaxNestingDepth levels, not
	// valid JSON), or its commandId would come from an unusable
	// Nats-Msg-Id header. No provider was called.
	ReasonMalformed Reason = "malformed"
	// ReasonInvalid: a field broke a rule or has the wrong JSON type;
	// every one is in Failed.Errors. No provider was called.
	ReasonInvalid Reason = "invalid"
	// ReasonUnroutable: the provider named is unknown, or no instance
	// that took the command had it (or a DEFAULT_PROVIDER) enabled. No
	// provider was called.
	ReasonUnroutable Reason = "unroutable"
	// ReasonRejected: the provider refused the contact for good; its
	// answer is in Failed.Upstream.
	ReasonRejected Reason = "rejected"
	// ReasonExhausted: transient failures outlasted every retry of
	// MAX_DELIVER deliveries; the last answer is in Failed.Upstream. A
	// replay of the unchanged command can succeed once the provider is
	// back.
	ReasonExhausted Reason = "exhausted"
	// ReasonConflict answers a command whose generation is decided, or an
	// original command whose commandId was first used for a command with
	// other content, with content none of the command's generations had:
	// nothing was sent to a provider, and the outcomes stand.
	ReasonConflict Reason = "conflict"
	// ReasonAmbiguous says the contact may exist: a create call's answer
	// was lost and a lookup could not prove the contact absent (it could
	// not see the provider's whole list). Creating again could duplicate
	// it, so a person must check the provider.
	ReasonAmbiguous Reason = "ambiguous"
)

// Retryable reports whether a replay of the unchanged command can succeed.
func (r Reason) Retryable() bool { return r == ReasonExhausted }

// FieldError is one broken rule of a command, reported in contact.failed
// events with reason invalid.
type FieldError struct {
	// Field (field) is the JSON path of the field: "email",
	// "pik.firstName", "metadata[key]".
	Field string `json:"field"`
	// Rule (rule) names the rule broken: required, type, min, max, email,
	// mobile, printable, visible, hexadecimal24, reserved…
	Rule string `json:"rule"`
	// Message (message) says what is wrong in a sentence a person can act
	// on.
	Message string `json:"message"`
}

// Event is a CloudEvents 1.0 document in structured mode: the whole event
// is the JSON body of a message on SubjectCreated or SubjectFailed,
// published with the header Nats-Msg-Id equal to its ID.
type Event struct {
	// SpecVersion (specversion) is "1.0".
	SpecVersion string `json:"specversion"`
	// ID (id) is deterministic: EventID of the commandId, the generation
	// and the type. The same command in the same generation always gets
	// the same id, so subscribers deduplicate by it.
	ID string `json:"id"`
	// Source (source) is the service's EVENT_SOURCE, "contactrelay" by
	// default.
	Source string `json:"source"`
	// Type (type) is SubjectCreated or SubjectFailed, the subject the
	// event is published on.
	Type string `json:"type"`
	// Subject (subject) is the commandId, equal to the data's commandId.
	Subject string `json:"subject"`
	// Time (time) is when the outcome was decided, in UTC; a repeated
	// event repeats it.
	Time time.Time `json:"time"`
	// DataContentType (datacontenttype) is "application/json".
	DataContentType string `json:"datacontenttype"`
	// Data (data) is the event's data, encoded: a Created for
	// contact.created, a Failed for contact.failed.
	Data json.RawMessage `json:"data"`
}

// Created is the data of a contact.created event: the contact exists at
// the provider, created by this command, found by a lookup after an
// ambiguous create, or created earlier under the same commandId.
type Created struct {
	// CommandID (commandId) is the command's idempotency key.
	CommandID string `json:"commandId"`
	// Provider (provider) is "instantpay" or "pik".
	Provider string `json:"provider"`
	// ContactID (contactId) is the provider's id of the contact:
	// InstantPay's data._id, PIK's contactCode.
	ContactID string `json:"contactId"`
	// Upstream (upstream) holds every identifier the provider returned, as
	// JSON scalars: InstantPay contactId, userId, ipayUuid, orderId,
	// environment, timestamp; PIK contactCode and every id field of its
	// answer (id, *Id, *_id). "reconciled": true when the contact was
	// found by a lookup rather than created by the call that answered. At
	// most 64 identifiers of at most 1 KiB each; "droppedIdentifiers"
	// counts the rest. It may be empty when the outcome is repeated from a
	// contact recorded earlier.
	Upstream map[string]any `json:"upstream"`
	// Attempts (attempts) counts the create calls made for the command in
	// this generation, as far as the service knows (lookups and token
	// requests not counted); 0 when answered from the record.
	Attempts int `json:"attempts"`
	// ReplayOf (replayOf), for a replay, is the id of the contact.failed
	// event it replayed.
	ReplayOf string `json:"replayOf,omitempty"`
	// Metadata (metadata) is the command's metadata.
	Metadata map[string]string `json:"metadata,omitempty"`
}

// Failed is the data of a contact.failed event.
//
// The service bounds what it encodes, so that the event is at most 256 KiB:
// long strings end in "…", and ErrorsOmitted, MetadataOmitted,
// CommandTruncated and CommandSize say what was left out.
type Failed struct {
	// CommandID (commandId) is the command's idempotency key.
	CommandID string `json:"commandId"`
	// Provider (provider) is the provider chosen for the command; absent
	// where none was chosen: always for malformed and unroutable, and for
	// an invalid command whose provider is unknown or not enabled on the
	// instance that decided.
	Provider string `json:"provider,omitempty"`
	// Reason (reason) says why the command failed.
	Reason Reason `json:"reason"`
	// Retryable (retryable) is true exactly for ReasonExhausted: a replay
	// of the unchanged command can succeed once the provider is back.
	Retryable bool `json:"retryable"`
	// Message (message) is the failure in one sentence a person can act
	// on (at most 2 KiB).
	Message string `json:"message"`
	// Errors (errors) is only, and always, there for ReasonInvalid: one
	// entry per broken rule, sorted by field.
	Errors []FieldError `json:"errors,omitempty"`
	// ErrorsOmitted (errorsOmitted) counts the broken rules Errors does
	// not list, when there are more than 50.
	ErrorsOmitted int `json:"errorsOmitted,omitempty"`
	// Upstream (upstream) is the provider's last answer, for failures
	// that reached one (always for ReasonRejected).
	Upstream *Upstream `json:"upstream,omitempty"`
	// Attempts (attempts) counts the create calls made for the command in
	// this generation, as for Created; 0 for malformed, invalid,
	// unroutable and conflict.
	Attempts int `json:"attempts"`
	// ReplayOf (replayOf), for a replay, is the id of the contact.failed
	// event it replayed.
	ReplayOf string `json:"replayOf,omitempty"`
	// Metadata (metadata) is the command's metadata, as far as it keeps
	// the contract's rules.
	Metadata map[string]string `json:"metadata,omitempty"`
	// MetadataOmitted (metadataOmitted) counts the metadata entries not
	// echoed: beyond 32, breaking the metadata rules, or past 32 KiB
	// encoded.
	MetadataOmitted int `json:"metadataOmitted,omitempty"`
	// Command (command) is the original command object, so that it can be
	// repaired and replayed: for every reason but ReasonMalformed.
	Command json.RawMessage `json:"command,omitempty"`
	// CommandRaw (commandRaw) is the body's raw bytes (base64 in JSON):
	// for ReasonMalformed (absent when the body was empty), and for any
	// other reason in place of Command when the object would encode to
	// more than 128 KiB.
	CommandRaw []byte `json:"commandRaw,omitempty"`
	// CommandTruncated (commandTruncated) says CommandRaw holds only the
	// first MaxCommandSize bytes of the body.
	CommandTruncated bool `json:"commandTruncated,omitempty"`
	// CommandSize (commandSize), with CommandTruncated, is the body's full
	// size in bytes.
	CommandSize int `json:"commandSize,omitempty"`
}

// Upstream is a provider's last answer to a failed create call.
type Upstream struct {
	// HTTPStatus (httpStatus) is the answer's HTTP status; absent when no
	// answer came.
	HTTPStatus int `json:"httpStatus,omitempty"`
	// Code (code) is the provider's status code (InstantPay's statuscode,
	// PIK's code), or "timeout" or "connection" where no answer came.
	Code string `json:"code,omitempty"`
	// Message (message) is the provider's message.
	Message string `json:"message,omitempty"`
	// RequestID (requestId) is the provider's id of the request, when it
	// gave one.
	RequestID string `json:"requestId,omitempty"`
}

// idNamespace is the UUID version 5 namespace of event ids,
// 6f1b2c1e-4c43-5b0a-9a57-3f0f7f1c2a10.
var idNamespace = [16]byte{0x6f, 0x1b, 0x2c, 0x1e, 0x4c, 0x43, 0x5b, 0x0a, 0x9a, 0x57, 0x3f, 0x0f, 0x7f, 0x1c, 0x2a, 0x10}

// EventID returns the deterministic id of the event of type eventType
// (SubjectCreated or SubjectFailed) that answers commandID in a
// generation: "" for the original command, the replayed failure's event id
// (the Contact-Replay-Of value) for a replay. The same inputs always give
// the same id, and any change of one of them gives another. The id is the
// UUID version 5, in the namespace 6f1b2c1e-4c43-5b0a-9a57-3f0f7f1c2a10,
// of the type, the generation and the commandId joined by NUL bytes.
func EventID(commandID, generation, eventType string) string {
	var buf [256]byte
	name := append(buf[:0], idNamespace[:]...)
	name = append(name, eventType...)
	name = append(name, 0)
	name = append(name, generation...)
	name = append(name, 0)
	name = append(name, commandID...)
	sum := sha1.Sum(name)
	sum[6] = sum[6]&0x0f | 0x50 // version 5
	sum[8] = sum[8]&0x3f | 0x80 // RFC 4122 variant
	var id [36]byte
	hex.Encode(id[0:8], sum[0:4])
	id[8] = '-'
	hex.Encode(id[9:13], sum[4:6])
	id[13] = '-'
	hex.Encode(id[14:18], sum[6:8])
	id[18] = '-'
	hex.Encode(id[19:23], sum[8:10])
	id[23] = '-'
	hex.Encode(id[24:36], sum[10:16])
	return string(id[:])
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

// AppendString appends s as a JSON string, escaped as encoding/json
// escapes it: for encoders that write the wire types, or documents that
// hold them, byte for byte as json.Marshal does, without its reflection.
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
