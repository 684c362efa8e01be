package contact

import (
	"bytes"
	"encoding/json"
	"fmt"
	"sort"
	"strings"
	"unicode/utf8"
)

// MaxCommandSize is the largest command body the service accepts, in
// bytes (64 KiB): a longer body is malformed.
const MaxCommandSize = 64 << 10

// Command is one contact.create command: the JSON object a publisher sends
// on SubjectCreate. Unknown members are ignored; a known member of the
// wrong JSON type makes the command invalid (see DecodeCommand). The rules
// each field must meet are the public rules package's; the text rules
// printable and visible are described there.
type Command struct {
	// CommandID (commandId) is the idempotency key: a string of 1 to 128
	// printable characters naming one request. Optional: when absent, the
	// service takes the message's Nats-Msg-Id header, and when that is
	// absent too, "<stream>:<stream sequence>". Present but empty is
	// invalid.
	CommandID string `json:"commandId,omitempty" validate:"omitempty,min=1,max=128,printable"`
	// Provider (provider) is the payment provider to create the contact
	// at: "instantpay" or "pik". Optional: absent or empty, the service's
	// DEFAULT_PROVIDER. A name no build knows fails as unroutable. The
	// service matches it ignoring case and surrounding white space
	// (rules.NormalizeProvider).
	Provider string `json:"provider,omitempty"`
	// Name (name) is the contact's name, mandatory: 1 to 200 characters
	// once surrounding white space is trimmed (the trimmed value is what
	// is sent), printable, with at least one visible character.
	Name string `json:"name" validate:"required,max=200,printable,visible"`
	// Email (email) is the contact's email address, mandatory: a valid
	// address of at most 254 characters.
	Email string `json:"email" validate:"required,email,max=254"`
	// Mobile (mobile) is the contact's mobile number, mandatory: a JSON
	// string of 10 to 15 digits with an optional leading "+", once the
	// service has removed spaces, "-" and "." (rules.NormalizeMobile).
	Mobile string `json:"mobile" validate:"required,mobile"`
	// TagID (tagId) is mandatory: 1 to 128 printable characters; for
	// InstantPay a 24-character hexadecimal id, sent as
	// tagDetails[].tagId.
	TagID string `json:"tagId" validate:"required,max=128,printable"`
	// CompanyName (companyName) is optional: up to 200 characters, and
	// when not empty printable with a visible character.
	CompanyName string `json:"companyName,omitempty" validate:"omitempty,max=200,printable,visible"`
	// PIK (pik) holds PIK-only fields, kept as raw JSON so that they are
	// sent to PIK exactly as they came: contactCode, contactType,
	// businessType, firstName, lastName, nickname, countryCode,
	// nationality (strings), paymentContactAddress and
	// paymentContactAccount (objects), and any other field, passed on
	// unchecked. Ignored for InstantPay.
	PIK map[string]json.RawMessage `json:"pik,omitempty"`
	// Metadata (metadata) is optional correlation data, string to string:
	// at most 32 entries, keys of 1 to 128 printable characters, values of
	// up to 1,024 characters. It is echoed on every event of the command.
	Metadata map[string]string `json:"metadata,omitempty" validate:"max=32,dive,keys,max=128,printable,endkeys,max=1024"`
}

// MobileDigits returns the digits of the command's mobile number, without
// the leading plus sign.
func (c Command) MobileDigits() string { return strings.TrimPrefix(c.Mobile, "+") }

// DecodeError says why a command body could not be turned into a Command.
// Reason is ReasonMalformed when the body is not a JSON object of
// acceptable size (MaxCommandSize) and nesting (MaxNestingDepth), or
// ReasonInvalid when a known field has the wrong JSON type; Errors then
// lists every such field (rule "type"), sorted by field.
type DecodeError struct {
	Reason  Reason
	Message string
	Errors  []FieldError
}

func (e *DecodeError) Error() string {
	if len(e.Errors) == 0 {
		return e.Message
	}
	msgs := make([]string, len(e.Errors))
	for i, fe := range e.Errors {
		msgs[i] = fe.Message
	}
	return e.Message + ": " + strings.Join(msgs, "; ")
}

// fieldNames are the command's known JSON fields, commandId first.
var fieldNames = [...]string{"commandId", "provider", "name", "email", "mobile", "tagId", "companyName", "pik", "metadata"}

// commandField returns where the known JSON field name decodes to, or nil
// for a field the command does not know.
func commandField(c *Command, name string) any {
	switch name {
	case "commandId":
		return &c.CommandID
	case "provider":
		return &c.Provider
	case "name":
		return &c.Name
	case "email":
		return &c.Email
	case "mobile":
		return &c.Mobile
	case "tagId":
		return &c.TagID
	case "companyName":
		return &c.CompanyName
	case "pik":
		return &c.PIK
	case "metadata":
		return &c.Metadata
	}
	return nil
}

// typeNames gives the JSON type each known field must have, for messages.
var typeNames = map[string]string{
	"pik":      "an object",
	"metadata": "an object of strings",
}

// DecodeCommand decodes a command body. Unknown fields are ignored; a known
// field of the wrong JSON type is reported, together with every other such
// field, as a ReasonInvalid DecodeError. The name is trimmed of surrounding
// white space. DecodeCommand does not apply the field rules: see
// the rules package. With a ReasonInvalid error, the returned Command holds
// the fields that did decode.
func DecodeCommand(body []byte) (Command, error) {
	var cmd Command
	switch {
	case len(body) == 0:
		return cmd, &DecodeError{Reason: ReasonMalformed, Message: "the command body is empty"}
	case len(body) > MaxCommandSize:
		return cmd, &DecodeError{Reason: ReasonMalformed, Message: fmt.Sprintf("the command body is %d bytes, more than the limit of %d", len(body), MaxCommandSize)}
	case !utf8.Valid(body):
		return cmd, &DecodeError{Reason: ReasonMalformed, Message: "the command body is not UTF-8 text"}
	}
	trimmed := bytes.TrimSpace(body)
	if len(trimmed) == 0 || trimmed[0] != '{' {
		return cmd, &DecodeError{Reason: ReasonMalformed, Message: "the command body is not a JSON object"}
	}
	if nestingDepth(trimmed, MaxNestingDepth) > MaxNestingDepth {
		return cmd, &DecodeError{Reason: ReasonMalformed, Message: fmt.Sprintf("the command body nests objects and arrays more than %d levels deep", MaxNestingDepth)}
	}
	if !json.Valid(trimmed) {
		var v any
		err := json.Unmarshal(trimmed, &v) // for its message
		return cmd, &DecodeError{Reason: ReasonMalformed, Message: "the command body is not valid JSON: " + fmt.Sprint(err)}
	}
	// The last of repeated keys counts, as with encoding/json.
	var fields [len(fieldNames)]json.RawMessage
	eachMember(trimmed, func(key, v []byte) {
		for i, name := range fieldNames {
			if string(key) == name {
				fields[i] = v
				break
			}
		}
	})
	var errs []FieldError
	for i, v := range fields {
		name := fieldNames[i]
		if v == nil || string(v) == "null" {
			continue
		}
		if err := unmarshalField(v, commandField(&cmd, name)); err != nil {
			want := typeNames[name]
			if want == "" {
				want = "a string"
			}
			errs = append(errs, FieldError{Field: name, Rule: "type", Message: name + " must be " + want})
		}
	}
	if v := fields[0]; string(v) == `""` { // fieldNames[0] is commandId
		// Present but empty: say so, rather than fall back silently.
		errs = append(errs, FieldError{Field: "commandId", Rule: "min", Message: "commandId must not be empty"})
	}
	cmd.Name = strings.TrimSpace(cmd.Name)
	if len(errs) > 0 {
		sortFieldErrors(errs)
		return cmd, &DecodeError{Reason: ReasonInvalid, Message: "the command has fields of the wrong type or value", Errors: errs}
	}
	return cmd, nil
}

// unmarshalField decodes one field's value, taking the common case of a
// string without escapes without the decoder's reflection.
func unmarshalField(v json.RawMessage, dst any) error {
	if p, ok := dst.(*string); ok && len(v) >= 2 && v[0] == '"' && v[len(v)-1] == '"' &&
		bytes.IndexByte(v[1:len(v)-1], '\\') < 0 && utf8.Valid(v) {
		*p = string(v[1 : len(v)-1])
		return nil
	}
	if p, ok := dst.(*map[string]string); ok && *p == nil {
		if m, ok := plainStrings(v); ok {
			*p = m
			return nil
		}
	}
	return json.Unmarshal(v, dst)
}

// plainStrings decodes v, a valid JSON value, when it is an object whose
// values are all strings without escapes (a command's metadata, as a
// rule), as encoding/json would; it reports false for anything else, which
// is left to encoding/json.
func plainStrings(v []byte) (map[string]string, bool) {
	if len(v) == 0 || v[0] != '{' || bytes.IndexByte(v, '\\') >= 0 {
		return nil, false // not an object, or escapes in a key or value
	}
	m := make(map[string]string)
	plain := true
	eachMember(v, func(key, val []byte) {
		if !plain {
			return
		}
		if len(val) < 2 || val[0] != '"' {
			plain = false
			return
		}
		m[string(key)] = string(val[1 : len(val)-1])
	})
	return m, plain
}

// sortFieldErrors sorts errs by field, keeping the order of one field's.
func sortFieldErrors(errs []FieldError) {
	sort.SliceStable(errs, func(i, j int) bool { return errs[i].Field < errs[j].Field })
}
