// Package client is contactrelay's publisher library: what an upstream Go
// service imports to send contact.create commands and learn their outcome.
//
// It holds the wire contract as typed values (Command, Event, Created,
// Failed, FieldError, Reason): they are aliases of the types of package
// contact, which the service itself decodes and encodes, so the two cannot
// drift; their fields are documented there. On top of them a Client
//
//   - validates a command with the service's own rules, defined once in
//     package rules (Validate, ValidateJSON), so that bad input can be
//     refused before it is sent;
//   - publishes a command (Publish, PublishMessage) with Nats-Msg-Id set to
//     its commandId and the caller's trace context in the headers;
//   - publishes a command and waits for its answer (PublishAndWait,
//     PublishMessageAndWait): however many calls wait, a Client reads the
//     events through one shared watch, one copy of each event, which runs
//     while any call waits, and finds an outcome decided before a call
//     began, or missed while the connection was down, in the service's
//     record (read, never written, with package record) or the event
//     stream;
//   - reads the event stream from a point in time (Watch), for callers that
//     wait for many commands at once, such as 'consumer import'.
//
// # The stages of a command
//
// A command is published (stored in CONTACT_COMMANDS), then received,
// decided, recorded and settled by the service, which publishes exactly
// one terminal event per generation: contact.created or contact.failed.
// The original command is one generation, each replay (Message.ReplayOf)
// another. Event ids are deterministic (EventID), which is how a wait
// tells this generation's outcome from any other event of its commandId.
//
// # Errors
//
// Errors a caller can act on are sentinels or typed: ErrNoStreams (the
// service never ran setup against this NATS), ErrTimeout (no outcome
// before the context's deadline; the command is stored), ErrUnconfirmed
// (the publish was not confirmed: it may or may not be stored, and
// publishing it again with the same commandId is safe), ErrOtherContent (the commandId is taken
// by a command with other content), *InvalidError (the command breaks the
// service's rules; nothing was sent) and *FailedError (the outcome is a
// contact.failed event; its Reason, Errors and Message say why).
//
// # Compatibility
//
// The package follows semantic versioning with the module. Within a major
// version it will not remove or rename an exported name, change a
// function's signature, or change the meaning of a field of the wire
// types; new fields, reasons, options and functions may be added (switch
// on Reason with a default case). The wire contract itself is
// docs/CONTRACT.md; the events may gain fields, which old decoders ignore.
//
// The package imports no code of the service: its dependencies are the
// standard library, the public packages contact, rules and record, nats.go,
// uuid, the validator and OpenTelemetry's API (a test holds it to that).
//
// A Client is safe for concurrent use. It does not own the NATS
// connection: the caller closes it.
package client
