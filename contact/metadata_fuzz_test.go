package contact

import (
	"encoding/json"
	"reflect"
	"testing"
	"unicode/utf8"
)

// FuzzPlainStrings holds the metadata shortcut equal to encoding/json
// wherever it takes a value (go test -run '^$' -fuzz FuzzPlainStrings
// ./contact).
func FuzzPlainStrings(f *testing.F) {
	for _, s := range []string{
		`{}`, `{"sentAt":"1234567890"}`, `{"a":"b","a":"c"}`, `{ "k" : "v" , "x":"" }`,
		`{"a":1}`, `{"a":null}`, `{"a":"\u00e9"}`, `{"\n":"x"}`, `{"a":{"b":"c"}}`, `[]`, `"x"`,
		`{"é":"ü","":""}`, `{"a":"b",}`, `{"a":["b"]}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, v []byte) {
		if !json.Valid(v) || !utf8.Valid(v) {
			return // DecodeCommand hands it only members of valid UTF-8 JSON
		}
		got, ok := plainStrings(v)
		if !ok {
			return
		}
		var want map[string]string
		if err := json.Unmarshal(v, &want); err != nil {
			t.Fatalf("plainStrings took %q, which encoding/json refuses: %v", v, err)
		}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("plainStrings(%q) = %v, encoding/json %v", v, got, want)
		}
	})
}
