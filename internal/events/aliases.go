package events

import (
	"github.com/contactrelay/contactrelay/contact"
	"github.com/contactrelay/contactrelay/rules"
)

// The wire types, defined in package contact. These names are temporary:
// they keep code written against this package compiling while the house
// moves to the public names, and go once it has.

// Deprecated: temporary alias during the move; use contact.Command.
type Command = contact.Command

// Deprecated: temporary alias during the move; use contact.DecodeError.
type DecodeError = contact.DecodeError

// Deprecated: temporary alias during the move; use contact.Event.
type Event = contact.Event

// Deprecated: temporary alias during the move; use contact.Created.
type Created = contact.Created

// Deprecated: temporary alias during the move; use contact.Failed.
type Failed = contact.Failed

// Deprecated: temporary alias during the move; use contact.Upstream.
type Upstream = contact.Upstream

// Deprecated: temporary alias during the move; use contact.FieldError.
type FieldError = contact.FieldError

// Deprecated: temporary alias during the move; use contact.Reason.
type Reason = contact.Reason

// Deprecated: temporary alias during the move; use the contact.Reason
// constants.
const (
	ReasonMalformed  = contact.ReasonMalformed
	ReasonInvalid    = contact.ReasonInvalid
	ReasonUnroutable = contact.ReasonUnroutable
	ReasonRejected   = contact.ReasonRejected
	ReasonExhausted  = contact.ReasonExhausted
	ReasonConflict   = contact.ReasonConflict
	ReasonAmbiguous  = contact.ReasonAmbiguous
)

// Deprecated: temporary alias during the move; use contact.SubjectCreate,
// contact.SubjectCreated, contact.SubjectFailed, contact.HeaderMsgID and
// contact.HeaderReplayOf.
const (
	SubjectCreate  = contact.SubjectCreate
	SubjectCreated = contact.SubjectCreated
	SubjectFailed  = contact.SubjectFailed
	HeaderMsgID    = contact.HeaderMsgID
	HeaderReplayOf = contact.HeaderReplayOf
)

// Deprecated: temporary alias during the move; use contact.MaxCommandSize.
const MaxCommandSize = contact.MaxCommandSize

// Deprecated: temporary alias during the move; use contact.MaxNestingDepth.
const MaxNestingDepth = contact.MaxNestingDepth

// Deprecated: temporary alias during the move; use contact.DecodeCommand.
func DecodeCommand(body []byte) (Command, error) { return contact.DecodeCommand(body) }

// Deprecated: temporary alias during the move; use contact.EventID.
func EventID(commandID, generation, eventType string) string {
	return contact.EventID(commandID, generation, eventType)
}

// Deprecated: temporary alias during the move; use contact.AppendString.
func AppendString(b []byte, s string) []byte { return contact.AppendString(b, s) }

// Deprecated: temporary alias during the move; use contact.AppendObject.
func AppendObject(b []byte, m map[string]any) ([]byte, error) { return contact.AppendObject(b, m) }

// Deprecated: temporary alias during the move; use rules.Validator.
type Validator = rules.Validator

// Deprecated: temporary alias during the move; use rules.NewValidator.
func NewValidator() *Validator { return rules.NewValidator() }

// Deprecated: temporary alias during the move; use rules.CommandIDFromHeader.
func CommandIDFromHeader(v string) (string, error) { return rules.CommandIDFromHeader(v) }
