package client

import "github.com/contactrelay/contactrelay/contact"

// The wire types. Each is an alias of the type package contact defines,
// which the service itself decodes and encodes: one definition, so the
// library cannot drift from the service. Their fields, JSON names and
// meanings are documented there (go doc github.com/contactrelay/contactrelay/contact)
// and in docs/CONTRACT.md.
type (
	// Command is one contact.create command: CommandID (JSON commandId,
	// the idempotency key), Provider, Name, Email, Mobile, TagID,
	// CompanyName, PIK (PIK's own fields, raw JSON) and Metadata.
	Command = contact.Command
	// Event is a CloudEvents 1.0 envelope: ID (deterministic, see
	// EventID), Type (contact.created or contact.failed), Subject (the
	// commandId), Time and Data (a Created or a Failed, encoded).
	Event = contact.Event
	// Created is the data of a contact.created event: CommandID,
	// Provider, ContactID, Upstream (the provider's identifiers),
	// Attempts, ReplayOf and Metadata.
	Created = contact.Created
	// Failed is the data of a contact.failed event: CommandID, Provider,
	// Reason, Retryable, Message, Errors (the broken rules of an invalid
	// command), Upstream (the provider's last answer), Attempts,
	// ReplayOf, Metadata and the Command as it was sent.
	Failed = contact.Failed
	// FieldError is one broken rule: Field (a JSON path), Rule and a
	// Message a person can act on.
	FieldError = contact.FieldError
	// Reason says why a command failed.
	Reason = contact.Reason
	// Upstream is a provider's last answer to a failed create call.
	Upstream = contact.Upstream
)

// The reasons of contact.failed events (docs/CONTRACT.md). Only
// ReasonExhausted is retryable.
const (
	ReasonMalformed  = contact.ReasonMalformed
	ReasonInvalid    = contact.ReasonInvalid
	ReasonUnroutable = contact.ReasonUnroutable
	ReasonRejected   = contact.ReasonRejected
	ReasonExhausted  = contact.ReasonExhausted
	ReasonConflict   = contact.ReasonConflict
	ReasonAmbiguous  = contact.ReasonAmbiguous
)

// The subjects and headers of the contract.
const (
	SubjectCreate  = contact.SubjectCreate
	SubjectCreated = contact.SubjectCreated
	SubjectFailed  = contact.SubjectFailed

	HeaderMsgID    = contact.HeaderMsgID
	HeaderReplayOf = contact.HeaderReplayOf
)

// The JetStream streams the service sets up: commands are published into
// CommandStream, events read from EventStream.
const (
	CommandStream = contact.CommandStream
	EventStream   = contact.EventStream
)

// MaxCommandSize is the largest command body the service accepts, in bytes.
const MaxCommandSize = contact.MaxCommandSize

// EventID returns the id of the event of type eventType (SubjectCreated or
// SubjectFailed) that answers commandID in a generation: "" for the
// original command, the replayed failure's event id for a replay. The
// service gives its events these ids, so the same inputs always name the
// same event.
func EventID(commandID, generation, eventType string) string {
	return contact.EventID(commandID, generation, eventType)
}
