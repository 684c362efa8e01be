// Package contact holds contactrelay's wire contract as Go types: the
// contact.create command (Command), the contact.created and contact.failed
// events (Event, Created, Failed) with their reasons (Reason), broken rules
// (FieldError) and provider answers (Upstream); the subjects, headers and
// streams they travel on; how a command body is read (DecodeCommand); and
// the deterministic id of each event (EventID). docs/CONTRACT.md is the
// contract in prose; every field here says its meaning in its words.
//
// Both sides import it: the service decodes commands and encodes events
// with these types, and the public client package publishes and reads them.
// The package depends on the standard library alone and does no I/O.
//
// # Compatibility
//
// The package follows semantic versioning with the module. Within a major
// version no exported name is removed or renamed, no signature changes, and
// no field of the wire types changes its meaning or its JSON name; fields,
// reasons and functions may be added (switch on Reason with a default
// case). Encoded events may gain members, which older decoders ignore.
package contact
