package replay

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/nats-io/nats.go"

	"github.com/contactrelay/contactrelay/contact"
)

// ErrNothingToReplay reports a failure that carries no command object: a
// malformed command, whose raw body is no JSON object to re-publish.
var ErrNothingToReplay = errors.New("the failure carries no command object to replay (malformed)")

// MsgIDPrefix starts the Nats-Msg-Id of every replayed command.
const MsgIDPrefix = "replay:"

// Body returns the command of f, to re-publish: the failed event's command
// object with its commandId set to the failure's commandId, however that
// was first derived (the commandId field, the Nats-Msg-Id header or the
// stream sequence). Other fields, unknown ones included, are kept as they
// are.
func Body(f *Failure) ([]byte, error) {
	obj, err := commandObject(f)
	if err != nil {
		return nil, err
	}
	id, err := json.Marshal(f.CommandID())
	if err != nil {
		return nil, fmt.Errorf("encode commandId: %w", err)
	}
	obj["commandId"] = id
	body, err := json.Marshal(obj)
	if err != nil {
		return nil, fmt.Errorf("encode command of %s: %w", f.CommandID(), err)
	}
	return body, nil
}

// commandObject decodes the command f carries, as an object of raw fields.
func commandObject(f *Failure) (map[string]json.RawMessage, error) {
	raw := bytes.TrimSpace(f.Data.Command)
	if len(raw) == 0 || raw[0] != '{' {
		return nil, ErrNothingToReplay
	}
	var obj map[string]json.RawMessage
	if err := json.Unmarshal(raw, &obj); err != nil {
		return nil, ErrNothingToReplay
	}
	if obj == nil {
		obj = map[string]json.RawMessage{}
	}
	return obj, nil
}

// Message returns the contact.create message that replays f with body:
// Contact-Replay-Of names the failed event, the generation the consumer
// gives the replay, and Nats-Msg-Id is "replay:" and the failed event's id.
func Message(f *Failure, body []byte) *nats.Msg {
	msg := nats.NewMsg(contact.SubjectCreate)
	msg.Data = body
	msg.Header.Set(contact.HeaderReplayOf, f.Event.ID)
	msg.Header.Set(contact.HeaderMsgID, MsgIDPrefix+f.Event.ID)
	return msg
}
