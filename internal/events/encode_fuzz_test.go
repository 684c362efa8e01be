package events

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/contactrelay/contactrelay/contact"
)

// FuzzAppendJSONMatchesEncodingJSON holds the hand-written encoders
// (Event.AppendJSON, Created.AppendJSON, AppendObject, appendString) to
// encoding/json: for arbitrary strings (invalid UTF-8, U+2028/9, <>&),
// numbers, times and maps they write json.Marshal's bytes, and they fail
// where it fails.
func FuzzAppendJSONMatchesEncodingJSON(f *testing.F) {
	f.Add("c-1", "instantpay", "<&>\u2028\u2029\xff\x00é", "123456789012345678901", int64(1795000000), int64(5), 19800)
	f.Add("", "", "", "{}", int64(-62135596800), int64(0), 0)
	f.Add("a", "b", `"x"`, `"x"`, int64(253402300800), int64(999999999), -3600)
	f.Add("a", "b", "c", "-0.5e+10", int64(0), int64(0), 86399)
	f.Add("a", "b", "c", "01", int64(0), int64(0), 0)
	f.Fuzz(func(t *testing.T, id, provider, text, number string, sec, nsec int64, offset int) {
		at := time.Unix(sec, nsec).In(time.FixedZone("z", offset))
		c := contact.Created{CommandID: id, Provider: provider, ContactID: text, Attempts: len(text) - 3, ReplayOf: text,
			Upstream: map[string]any{text: number, id: json.Number(number), provider: true, "n": nil},
			Metadata: map[string]string{text: id, provider: text}}
		want, werr := json.Marshal(c)
		got, gerr := c.AppendJSON(nil)
		if (werr == nil) != (gerr == nil) {
			t.Fatalf("Created %+v: json.Marshal error %v, AppendJSON error %v", c, werr, gerr)
		}
		if werr == nil && string(got) != string(want) {
			t.Fatalf("Created %+v:\n got %s\nwant %s", c, got, want)
		}
		ev, err := NewEvent(provider[:min(len(provider), MaxSourceBytes)], contact.SubjectCreated, id[:min(len(id), MaxCommandIDBytes)], text, at, contact.Created{CommandID: id})
		if err != nil {
			if _, merr := json.Marshal(at.UTC()); merr == nil {
				t.Fatalf("NewEvent refused %v: %v", at, err)
			}
			return
		}
		want, err = json.Marshal(ev)
		if err != nil {
			t.Fatalf("json.Marshal refused an event NewEvent built: %v", err)
		}
		if got := ev.AppendJSON(nil); string(got) != string(want) {
			t.Fatalf("Event:\n got %s\nwant %s", got, want)
		}
	})
}
