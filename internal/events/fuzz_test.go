package events

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/contactrelay/contactrelay/contact"
	"github.com/contactrelay/contactrelay/rules"
)

// FuzzDecodeCommand checks that no body panics decoding or validation, that
// what decodes is consistent (a body that decodes without error is a JSON
// object within the size limit), and that every body accepted as JSON
// travels in an event and reads back unchanged.
func FuzzDecodeCommand(f *testing.F) {
	seeds := []string{
		"", " ", "null", "[]", "{}", `"x"`, "hello", "\xff\xfe\x00",
		`{"name":"x"`, `{"name":"x"} {}`,
		`{"commandId":"","name":"Jane","email":"jane@example.com","mobile":"9876543210","tagId":"t"}`,
		`{"name":7,"email":[],"mobile":{},"tagId":null,"pik":"x","metadata":{"a":1}}`,
		`{"name":"Jane","email":"jane@example.com","mobile":"+919876543210","tagId":"65a1b2c3d4e5f6a7b8c9d0e1","pik":{"paymentContactAddress":{"city":"Pune"}},"metadata":{"k":"v"}}`,
		`{"name":"` + strings.Repeat("é", 300) + `","email":"a@b","mobile":"+","tagId":""}`,
		`{"metadata":{"` + strings.Repeat(`a":"b","`, 40) + `z":"y"}}`,
	}
	for _, s := range seeds {
		f.Add([]byte(s))
	}
	v := rules.NewValidator()
	f.Fuzz(func(t *testing.T, body []byte) {
		cmd, err := contact.DecodeCommand(body)
		_ = v.Validate(cmd)
		if err != nil {
			derr, ok := err.(*contact.DecodeError)
			if !ok {
				t.Fatalf("DecodeCommand returned %T, want *DecodeError", err)
			}
			if derr.Reason != contact.ReasonMalformed {
				assertRoundTrip(t, body) // accepted as JSON: it travels in events
			}
			return
		}
		assertRoundTrip(t, body)
		if len(body) > contact.MaxCommandSize {
			t.Fatalf("a body of %d bytes decoded", len(body))
		}
		var obj map[string]json.RawMessage
		if json.Unmarshal(body, &obj) != nil {
			t.Fatalf("a body that is not a JSON object decoded: %q", body)
		}
	})
}
