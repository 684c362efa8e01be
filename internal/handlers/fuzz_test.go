package handlers

import (
	"context"
	"encoding/json"
	"strings"
	"testing"

	"github.com/contactrelay/contactrelay/contact"
	"github.com/contactrelay/contactrelay/rules"
)

// FuzzDecide checks that no command body panics the handler or leaves it
// without an answer: the first delivery of every body is decided with an
// event, contact.failed (and Term) for bad input, and any failed event
// carries the command or its raw bytes. Each body is decided on a record
// store of its own, as the first command of its commandId.
func FuzzDecide(f *testing.F) {
	for _, s := range []string{
		"", "null", "[]", "{}", "hello", "\xff\xfe", `{"name":"x"`,
		`{"commandId":"c","name":"Jane","email":"jane@example.com","mobile":"9876543210","tagId":"t"}`,
		`{"commandId":"","provider":"acme","name":" ","email":"@","mobile":"+","tagId":7}`,
		`{"provider":"fake","pik":{"a":{"b":[1,2,{}]}},"metadata":{"k":"v"},"name":"J","email":"j@x.io","mobile":"1234567890","tagId":"t"}`,
	} {
		f.Add([]byte(s), "hdr-id")
	}
	// The poison the service has met, as seeds: they run with every go test.
	noID := `{"name":"Jane","email":"jane@example.com","mobile":"9876543210","tagId":"t"}`
	// named is a command named name, under its own commandId: one id for
	// two contents would be a conflict before the name is looked at.
	named := func(id, name string) string {
		return `{"commandId":"` + id + `","name":"` + name + `","email":"jane@example.com","mobile":"9876543210","tagId":"t"}`
	}
	deep := func(n int) string { return strings.Repeat(`{"a":`, n) + "1" + strings.Repeat("}", n) }
	// padded is a valid command of exactly size bytes, an unknown field
	// making up the length.
	padded := func(size int) string {
		head := `{"commandId":"c-big","name":"Jane","email":"jane@example.com","mobile":"9876543210","tagId":"t","pad":"`
		return head + strings.Repeat("x", size-len(head)-2) + `"}`
	}
	for _, seed := range []struct{ body, msgID string }{
		{noID, strings.Repeat("x", 5000)}, // a header too long to name the command
		{noID, strings.Repeat("é", 300)},  // 600 bytes: named by digest in the record
		{noID, "id\x00nul"},               // a control character in the header
		{noID, "id\u202eevil"},            // a format character in the header
		{noID, "id\xff"},                  // a header that is not UTF-8
		{deep(10000), "hdr-id"},           // nesting beyond any decoder's patience
		{`{"provider":"fake","pik":` + deep(10000) + `,"name":"J"}`, ""},
		{padded(64 << 10), ""},                   // the largest body accepted
		{padded(64<<10 + 1), "hdr-id"},           // one byte too many
		{named("c-name-1", "Jane\xffDoe"), ""},   // invalid UTF-8 inside a string
		{"\xff" + noID[1:], ""},                  // invalid UTF-8 outside one
		{named("c-name-2", `Jane\u0000Doe`), ""}, // an escaped NUL
		{named("c-name-3", `Jane\u202eeoD`), ""}, // a right-to-left override, escaped
		{named("c-name-4", "Jane\u202eeoD"), ""}, // and raw
		{named("c-name-5", "\u200b\u200b"), ""},  // only zero-width spaces
		{named("c-name-6", "Jane\x01Doe"), ""},   // a raw control character: not JSON
		{named("c-name-7", "Jane\tDoe"), ""},     // a raw tab: not JSON either
		{`{"commandId":"c-type","name":["J"],"email":1,"mobile":9876543210,"tagId":{},"pik":"x","metadata":{"k":1}}`, ""},
		{`"text"`, "hdr-id"}, {`42`, ""}, {`true`, ""}, {" \n\t ", ""},
	} {
		f.Add([]byte(seed.body), seed.msgID)
	}
	validator := rules.NewValidator()
	f.Fuzz(func(t *testing.T, body []byte, msgID string) {
		h := newTestHandler(t, &fakeProvider{}, newMemStore(), func(c *Config) { c.Validator = validator })
		out := h.Decide(context.Background(), Message{Body: body, MsgID: msgID, Stream: "CONTACT_COMMANDS", Sequence: 1, Delivery: 1})
		if out.Event == nil {
			t.Fatalf("no event for %q: %+v", body, out)
		}
		if out.Event.Type == contact.SubjectCreated {
			return
		}
		if out.Action != Term {
			t.Fatalf("bad input not terminated: %+v", out)
		}
		var d contact.Failed
		if err := json.Unmarshal(out.Event.Data, &d); err != nil {
			t.Fatalf("failed event data: %v", err)
		}
		if len(d.Command) == 0 && len(d.CommandRaw) == 0 && len(body) > 0 {
			t.Fatalf("the failed event lost the command %q", body)
		}
	})
}
