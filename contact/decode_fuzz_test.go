package contact

import (
	"bytes"
	"encoding/json"
	"reflect"
	"strings"
	"testing"
	"unicode/utf8"
)

// decodeViaMap is DecodeCommand as it was first written, on a map of the
// members: the reference FuzzDecodeMatchesReference holds the one-pass
// decoder to.
func decodeViaMap(body []byte) (Command, []FieldError) {
	var cmd Command
	var raw map[string]json.RawMessage
	if json.Unmarshal(bytes.TrimSpace(body), &raw) != nil {
		return cmd, nil
	}
	var errs []FieldError
	for name, v := range raw {
		dst := commandField(&cmd, name)
		if dst == nil || string(v) == "null" {
			continue
		}
		if err := json.Unmarshal(v, dst); err != nil {
			errs = append(errs, FieldError{Field: name, Rule: "type"})
		}
	}
	if v, ok := raw["commandId"]; ok && string(v) == `""` {
		errs = append(errs, FieldError{Field: "commandId", Rule: "min"})
	}
	cmd.Name = strings.TrimSpace(cmd.Name)
	sortFieldErrors(errs)
	return cmd, errs
}

func FuzzDecodeMatchesReference(f *testing.F) {
	for _, s := range []string{
		`{}`, `{"name":"a","name":"b"}`, `{"name":1,"name":"b"}`, `{"na\u006de":"x","email":"e"}`,
		`{"pik":{"a":"}\"{"},"metadata":{"k":"v"},"mobile":"123"}`, ` { "tagId" : [1,{"x":"]"}] , "provider":null } `,
		`{"commandId":"","email":"a\"b@c.d","companyName":"\u00e9"}`, `{"Name":"x","NAME":"y"}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		if len(body) > MaxCommandSize || !utf8.Valid(body) {
			return
		}
		trimmed := bytes.TrimSpace(body)
		if len(trimmed) == 0 || trimmed[0] != '{' || !json.Valid(trimmed) {
			return
		}
		got, err := DecodeCommand(body)
		var gotErrs []FieldError
		if derr, ok := err.(*DecodeError); ok {
			for _, fe := range derr.Errors {
				gotErrs = append(gotErrs, FieldError{Field: fe.Field, Rule: fe.Rule})
			}
		}
		want, wantErrs := decodeViaMap(body)
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("decoded %q\n got %+v\nwant %+v", body, got, want)
		}
		if !reflect.DeepEqual(gotErrs, wantErrs) {
			t.Fatalf("errors of %q\n got %+v\nwant %+v", body, gotErrs, wantErrs)
		}
	})
}
