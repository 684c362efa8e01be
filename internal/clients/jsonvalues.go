package clients

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"
	"unicode/utf8"
)

// Text is a JSON scalar read as text, for reply fields whose type providers
// do not keep to: a string as it is, a number or boolean as written, and
// null as "".
type Text string

// UnmarshalJSON implements json.Unmarshaler. Objects and arrays are an
// error.
func (t *Text) UnmarshalJSON(b []byte) error {
	v, err := TextOf(b)
	*t = v
	return err
}

// TextOf reads one valid JSON value as Text, as UnmarshalJSON does.
func TextOf(b []byte) (Text, error) {
	b = bytes.TrimSpace(b)
	switch {
	case len(b) == 0 || string(b) == "null":
		return "", nil
	case b[0] == '{' || b[0] == '[':
		return "", fmt.Errorf("want a JSON scalar, got %s", kindOf(b))
	case b[0] != '"':
		return Text(b), nil // a number or a boolean, as written
	case bytes.IndexByte(b[1:len(b)-1], '\\') < 0:
		return Text(b[1 : len(b)-1]), nil // a string without escapes
	}
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return "", err
	}
	return Text(s), nil
}

// String returns the text.
func (t Text) String() string { return string(t) }

// Scalar decodes raw when it is a JSON scalar worth reporting: a non-empty
// string (as a string), a number (as a json.Number, so that big ids keep
// every digit) or a boolean. It reports false for null, "", objects, arrays
// and anything unparseable.
func Scalar(raw json.RawMessage) (any, bool) {
	v, ok, err := scalar(raw)
	if err != nil || !ok {
		return nil, false
	}
	if s, isString := v.(string); isString && s == "" {
		return nil, false
	}
	return v, true
}

// scalar decodes a JSON scalar; ok is false for null and for no value.
// Numbers come as json.Number, so that big ids keep every digit.
func scalar(raw []byte) (v any, ok bool, err error) {
	raw = bytes.TrimSpace(raw)
	switch {
	case len(raw) == 0 || string(raw) == "null":
		return nil, false, nil
	case raw[0] == '{' || raw[0] == '[':
		return nil, false, fmt.Errorf("want a JSON scalar, got %s", kindOf(raw))
	case string(raw) == "true":
		return true, true, nil
	case string(raw) == "false":
		return false, true, nil
	case raw[0] == '"':
		if len(raw) >= 2 && raw[len(raw)-1] == '"' && bytes.IndexByte(raw[1:len(raw)-1], '\\') < 0 &&
			json.Valid(raw) && utf8.Valid(raw) {
			return string(raw[1 : len(raw)-1]), true, nil // no escapes: the text as it is
		}
		var s string
		if err := json.Unmarshal(raw, &s); err != nil {
			return nil, false, err
		}
		return s, true, nil
	}
	n := json.Number(raw)
	if _, err := n.Float64(); err != nil || !json.Valid(raw) {
		return nil, false, fmt.Errorf("want a JSON scalar, got %q", raw)
	}
	return n, true, nil
}

func kindOf(raw []byte) string {
	if raw[0] == '{' {
		return "an object"
	}
	return "an array"
}

// Items returns the elements of a JSON list that a provider sends either
// as an array or as an object holding the array under one of keys (the
// first key present wins). null, a missing value, and an object whose key
// holds null give no items. Any other shape is an error.
func Items(data json.RawMessage, keys ...string) ([]json.RawMessage, error) {
	data = bytes.TrimSpace(data)
	if len(data) == 0 || string(data) == "null" {
		return nil, nil
	}
	switch data[0] {
	case '[':
		var items []json.RawMessage
		if err := json.Unmarshal(data, &items); err != nil {
			return nil, fmt.Errorf("decode list: %w", err)
		}
		return items, nil
	case '{':
		var obj map[string]json.RawMessage
		if err := json.Unmarshal(data, &obj); err != nil {
			return nil, fmt.Errorf("decode list holder: %w", err)
		}
		for _, k := range keys {
			if v, ok := obj[k]; ok {
				v = bytes.TrimSpace(v)
				if len(v) == 0 || v[0] != '[' && string(v) != "null" {
					return nil, fmt.Errorf("data.%s is not an array", k)
				}
				return Items(v)
			}
		}
		return nil, fmt.Errorf("data is an object without any of %s", strings.Join(keys, ", "))
	}
	return nil, fmt.Errorf("data is neither an array nor an object")
}
