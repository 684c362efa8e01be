package handlers

import (
	"context"
	"encoding/json"
	"testing"

	"github.com/contactrelay/contactrelay/internal/events"
)

// FuzzHandle checks that no command body panics the handler or leaves it
// without an answer: every body ends in an event, contact.failed (and Term)
// for bad input, and any failed event carries the command or its raw bytes.
func FuzzHandle(f *testing.F) {
	for _, s := range []string{
		"", "null", "[]", "{}", "hello", "\xff\xfe", `{"name":"x"`,
		`{"commandId":"c","name":"Jane","email":"jane@example.com","mobile":"9876543210","tagId":"t"}`,
		`{"commandId":"","provider":"acme","name":" ","email":"@","mobile":"+","tagId":7}`,
		`{"provider":"fake","pik":{"a":{"b":[1,2,{}]}},"metadata":{"k":"v"},"name":"J","email":"j@x.io","mobile":"1234567890","tagId":"t"}`,
	} {
		f.Add([]byte(s), "hdr-id")
	}
	h := newTestHandler(f, &fakeProvider{}, newMemStore(), nil)
	f.Fuzz(func(t *testing.T, body []byte, msgID string) {
		out := h.Handle(context.Background(), Message{Body: body, MsgID: msgID, Stream: "CONTACT_COMMANDS", Sequence: 1, Delivery: 1})
		if out.Event == nil {
			t.Fatalf("no event for %q: %+v", body, out)
		}
		if out.Event.Type == events.SubjectCreated {
			return
		}
		if out.Action != Term {
			t.Fatalf("bad input not terminated: %+v", out)
		}
		var d events.Failed
		if err := json.Unmarshal(out.Event.Data, &d); err != nil {
			t.Fatalf("failed event data: %v", err)
		}
		if len(d.Command) == 0 && len(d.CommandRaw) == 0 && len(body) > 0 {
			t.Fatalf("the failed event lost the command %q", body)
		}
	})
}
