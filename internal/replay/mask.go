package replay

import (
	"bytes"
	"encoding/json"
	"fmt"
	"slices"
	"unicode/utf8"

	"github.com/contactrelay/contactrelay/contact"
	"github.com/contactrelay/contactrelay/internal/redact"
)

// MaskFailed returns a copy of a failure's data with its personal data
// masked, wherever it is: the command's email and mobile (MaskCommand),
// its raw body, and every email address and phone number in the text the
// service or a provider wrote, which may echo them: the message, the
// provider's message and the broken rules' messages (redact.String, which
// masks an address or a number as redact.Email and redact.Mobile mask the
// command's own fields). It is the one mask the failure tooling applies
// before showing a failure, on the command line and in the console;
// only an explicit unmask and an export show d as it is.
func MaskFailed(d contact.Failed) contact.Failed {
	d.Message = redact.String(d.Message)
	if d.Upstream != nil {
		u := *d.Upstream
		u.Message = redact.String(u.Message)
		d.Upstream = &u
	}
	if len(d.Errors) > 0 {
		d.Errors = slices.Clone(d.Errors)
		for i := range d.Errors {
			d.Errors[i].Message = redact.String(d.Errors[i].Message)
		}
	}
	if len(d.Command) > 0 {
		d.Command = MaskCommand(d.Command)
	}
	if len(d.CommandRaw) > 0 {
		d.CommandRaw = maskText(d.CommandRaw)
	}
	return d
}

// MaskCommand returns a copy of a command object with its personal data
// masked: email and mobile with redact.Email and redact.Mobile, and any
// email address or phone number in the pik fields with redact.String. A
// body that is not a JSON object becomes a JSON string of its text, masked
// with redact.String. The result is always valid JSON.
func MaskCommand(raw json.RawMessage) json.RawMessage {
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	var obj map[string]any
	if err := dec.Decode(&obj); err != nil || obj == nil {
		return maskedString(raw)
	}
	for field, mask := range map[string]func(string) string{"email": redact.Email, "mobile": redact.Mobile} {
		switch v := obj[field].(type) {
		case nil:
		case string:
			obj[field] = mask(v)
		default: // a wrong JSON type, a number say: still personal
			obj[field] = mask(fmt.Sprint(v))
		}
	}
	if pik, ok := obj["pik"]; ok {
		obj["pik"] = maskStrings(pik)
	}
	out, err := encodeJSON(obj, "")
	if err != nil {
		return maskedString(raw)
	}
	return out
}

// maskedString returns raw's text, masked, as a JSON string.
func maskedString(raw []byte) json.RawMessage {
	out, _ := json.Marshal(string(maskText(raw))) // a string always encodes
	return out
}

// maskStrings masks personal data in every string within v.
func maskStrings(v any) any {
	switch v := v.(type) {
	case string:
		return redact.String(v)
	case map[string]any:
		for k, e := range v {
			v[k] = maskStrings(e)
		}
	case []any:
		for i, e := range v {
			v[i] = maskStrings(e)
		}
	}
	return v
}

// maskText masks personal data in raw bytes shown as text; bytes that are
// not UTF-8 text are not shown at all.
func maskText(raw []byte) []byte {
	if !utf8.Valid(raw) {
		return []byte(fmt.Sprintf("(%d bytes, not UTF-8 text)", len(raw)))
	}
	return []byte(redact.String(string(raw)))
}

// encodeJSON encodes v without escaping <, > and &, indented by indent
// (compact when empty), with no trailing newline.
func encodeJSON(v any, indent string) ([]byte, error) {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if indent != "" {
		enc.SetIndent("", indent)
	}
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return bytes.TrimRight(b.Bytes(), "\n"), nil
}
