package contact

import (
	"encoding/json"
	"testing"
	"unicode/utf8"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestEachMember(t *testing.T) {
	tests := []struct {
		name string
		obj  string
		want [][2]string
	}{
		{"empty", `{}`, nil},
		{"white space", " \n{ \"a\" :\t1 ,\r\n \"b\": \"x\" } ", [][2]string{{"a", "1"}, {"b", `"x"`}}},
		{"every kind of value", `{"s":"a\"}","n":-1.5e3,"t":true,"f":false,"z":null,"o":{"x":[1,{"y":"]"}]},"a":[]}`,
			[][2]string{{"s", `"a\"}"`}, {"n", "-1.5e3"}, {"t", "true"}, {"f", "false"}, {"z", "null"}, {"o", `{"x":[1,{"y":"]"}]}`}, {"a", "[]"}}},
		{"escaped key", `{"na\u006de":"j","\"q\"":1}`, [][2]string{{"name", `"j"`}, {`"q"`, "1"}}},
		{"repeated keys in order", `{"k":1,"k":2}`, [][2]string{{"k", "1"}, {"k", "2"}}},
		{"not an object", `[1,2]`, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			require.True(t, json.Valid([]byte(tt.obj)), "the test's input is valid JSON")
			var got [][2]string
			eachMember([]byte(tt.obj), func(k, v []byte) { got = append(got, [2]string{string(k), string(v)}) })
			assert.Equal(t, tt.want, got)
		})
	}
}

func FuzzEachMember(f *testing.F) {
	f.Add([]byte(`{"a":{"b":[1,"}"]},"c":"\\\""}`))
	f.Fuzz(func(t *testing.T, obj []byte) {
		if !json.Valid(obj) || !utf8.Valid(obj) {
			return // keys are taken as they are; encoding/json replaces bad UTF-8
		}
		var want map[string]json.RawMessage
		if json.Unmarshal(obj, &want) != nil {
			return // not an object
		}
		got := map[string]json.RawMessage{}
		eachMember(obj, func(k, v []byte) { got[string(k)] = v })
		require.Len(t, got, len(want), "%q", obj)
		for k, w := range want {
			var a, b any
			require.NoError(t, json.Unmarshal(w, &a))
			require.NoError(t, json.Unmarshal(got[k], &b), "member %q of %q", k, obj)
			assert.Equal(t, a, b, "member %q of %q", k, obj)
		}
	})
}
