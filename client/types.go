package client

import (
	"github.com/contactrelay/contactrelay/internal/events"
	"github.com/contactrelay/contactrelay/internal/provision"
)

// The wire types. Each is an alias of the type the service itself decodes
// and encodes (in its internal events package): one definition, so the
// library cannot drift from the service. Their fields and JSON names are
// those of docs/CONTRACT.md.
type (
	// Command is one contact.create command: CommandID (JSON commandId,
	// the idempotency key), Provider, Name, Email, Mobile, TagID,
	// CompanyName, PIK (PIK's own fields, raw JSON) and Metadata.
	Command = events.Command
	// Event is a CloudEvents 1.0 envelope: ID (deterministic, see
	// EventID), Type (contact.created or contact.failed), Subject (the
	// commandId), Time and Data (a Created or a Failed, encoded).
	Event = events.Event
	// Created is the data of a contact.created event: CommandID,
	// Provider, ContactID, Upstream (the provider's identifiers),
	// Attempts, ReplayOf and Metadata.
	Created = events.Created
	// Failed is the data of a contact.failed event: CommandID, Provider,
	// Reason, Retryable, Message, Errors (the broken rules of an invalid
	// command), Upstream (the provider's last answer), Attempts,
	// ReplayOf, Metadata and the Command as it was sent.
	Failed = events.Failed
	// FieldError is one broken rule: Field (a JSON path), Rule and a
	// Message a person can act on.
	FieldError = events.FieldError
	// Reason says why a command failed.
	Reason = events.Reason
	// Upstream is a provider's last answer to a failed create call.
	Upstream = events.Upstream
)

// The reasons of contact.failed events (docs/CONTRACT.md). Only
// ReasonExhausted is retryable.
const (
	ReasonMalformed  = events.ReasonMalformed
	ReasonInvalid    = events.ReasonInvalid
	ReasonUnroutable = events.ReasonUnroutable
	ReasonRejected   = events.ReasonRejected
	ReasonExhausted  = events.ReasonExhausted
	ReasonConflict   = events.ReasonConflict
	ReasonAmbiguous  = events.ReasonAmbiguous
)

// The subjects and headers of the contract.
const (
	SubjectCreate  = events.SubjectCreate
	SubjectCreated = events.SubjectCreated
	SubjectFailed  = events.SubjectFailed

	HeaderMsgID    = events.HeaderMsgID
	HeaderReplayOf = events.HeaderReplayOf
)

// The JetStream streams the service sets up: commands are published into
// CommandStream, events read from EventStream.
const (
	CommandStream = provision.CommandStream
	EventStream   = provision.EventStream
)

// MaxCommandSize is the largest command body the service accepts, in bytes.
const MaxCommandSize = events.MaxCommandSize

// EventID returns the id of the event of type eventType (SubjectCreated or
// SubjectFailed) that answers commandID in a generation: "" for the
// original command, the replayed failure's event id for a replay. The
// service gives its events these ids, so the same inputs always name the
// same event.
func EventID(commandID, generation, eventType string) string {
	return events.EventID(commandID, generation, eventType)
}
