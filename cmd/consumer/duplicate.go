package main

import (
	"context"
	"fmt"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/contactrelay/contactrelay/internal/handlers"
)

// droppedConflict checks a publish that the stream took for a duplicate
// (the same Nats-Msg-Id within its duplicate window). When the command
// stored under that id has other content, the stream dropped this one
// before the service could answer it with a conflict: say so, rather than
// let the first command's outcome pass for this one's.
func droppedConflict(ctx context.Context, js jetstream.JetStream, ack *jetstream.PubAck, id string, body []byte) error {
	if ack == nil || !ack.Duplicate {
		return nil
	}
	s, err := js.Stream(ctx, ack.Stream)
	if err != nil {
		return nil // cannot tell: the wait shows the stored command's outcome
	}
	stored, err := s.GetMsg(ctx, ack.Sequence)
	if err != nil {
		return nil
	}
	if handlers.ContentFingerprint(stored.Data) == handlers.ContentFingerprint(body) {
		return nil
	}
	return fmt.Errorf("not stored: %s seq %d already holds a command with commandId %s and other content, sent within the stream's duplicate window; "+
		"the stream dropped this one before the service saw it (after the window the service answers it with reason conflict). "+
		"Use a new commandId for a new contact", ack.Stream, ack.Sequence, id)
}
