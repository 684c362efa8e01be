// Package events is the wire on the service's side: it builds the
// CloudEvents envelope of each outcome (NewEvent, with the deterministic id
// of contact.EventID), bounded so that any contact.failed event fits
// (MaxEventSize), and says an invalid command's broken rules in one message
// (InvalidMessage). The wire types it carries are package contact's; the
// rules a command must meet are package rules'. It does no I/O.
package events

import (
	"encoding/json"
	"fmt"
	"time"

	"github.com/contactrelay/contactrelay/contact"
)

// DefaultSource is the CloudEvents source of the events the service emits.
const DefaultSource = "contactrelay"

// NewEvent wraps data in a CloudEvents envelope whose id is contact.EventID of the
// command, generation and type. An empty source means DefaultSource. A
// Failed (or *Failed) is bounded first, so that the event encodes to at most
// MaxEventSize bytes; for that, NewEvent refuses a commandID longer than
// MaxCommandIDBytes and a source longer than MaxSourceBytes, with an error.
func NewEvent(source, eventType, commandID, generation string, at time.Time, data any) (contact.Event, error) {
	if source == "" {
		source = DefaultSource
	}
	switch {
	case len(commandID) > MaxCommandIDBytes:
		return contact.Event{}, fmt.Errorf("event for a commandId of %d bytes: more than %d", len(commandID), MaxCommandIDBytes)
	case len(source) > MaxSourceBytes:
		return contact.Event{}, fmt.Errorf("event source of %d bytes: more than %d", len(source), MaxSourceBytes)
	}
	if y := at.UTC().Year(); y < 0 || y > 9999 {
		// What time.Time's MarshalJSON refuses, found without encoding.
		return contact.Event{}, fmt.Errorf("event time: year %d outside of range [0,9999]", y)
	}
	if f, ok := data.(*contact.Failed); ok && f != nil {
		data = *f
	}
	if f, ok := data.(contact.Failed); ok {
		if len(f.CommandID) > MaxCommandIDBytes {
			return contact.Event{}, fmt.Errorf("failed event for a commandId of %d bytes: more than %d", len(f.CommandID), MaxCommandIDBytes)
		}
		data = bounded(f)
	}
	var (
		body []byte
		err  error
	)
	if c, ok := data.(contact.Created); ok {
		body, err = c.AppendJSON(make([]byte, 0, 384)) // the hot path, without reflection
	} else {
		body, err = json.Marshal(data)
	}
	if err != nil {
		return contact.Event{}, err
	}
	return contact.Event{
		SpecVersion:     "1.0",
		ID:              contact.EventID(commandID, generation, eventType),
		Source:          source,
		Type:            eventType,
		Subject:         commandID,
		Time:            at.UTC(),
		DataContentType: "application/json",
		Data:            body,
	}, nil
}
