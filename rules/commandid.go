package rules

import (
	"fmt"
	"strings"
	"unicode/utf8"

	"github.com/contactrelay/contactrelay/contact"
)

// MaxCommandIDBytes bounds a commandId in bytes, wherever it comes from:
// the command's own field (at most 128 characters), a Nats-Msg-Id header
// (see CommandIDFromHeader) or <stream>:<sequence>.
const MaxCommandIDBytes = 1024

// CommandIDFromHeader returns the value of a Nats-Msg-Id header as a
// commandId, or a *contact.DecodeError with contact.ReasonMalformed when
// it cannot be one: longer than MaxCommandIDBytes, not UTF-8, or holding a
// character the printable rule refuses. An empty value gives "" and no
// error: the header is absent, and the commandId is <stream>:<sequence>. A
// command whose id would come from a bad header is malformed, and its
// contact.failed event carries <stream>:<sequence> as its commandId.
func CommandIDFromHeader(v string) (string, error) {
	switch {
	case len(v) > MaxCommandIDBytes:
		return "", &contact.DecodeError{Reason: contact.ReasonMalformed, Message: fmt.Sprintf("the %s header is %d bytes, more than the limit of %d for a commandId", contact.HeaderMsgID, len(v), MaxCommandIDBytes)}
	case !utf8.ValidString(v):
		return "", &contact.DecodeError{Reason: contact.ReasonMalformed, Message: "the " + contact.HeaderMsgID + " header is not UTF-8 text"}
	}
	if r, bad := unprintable(v); bad {
		return "", &contact.DecodeError{Reason: contact.ReasonMalformed, Message: fmt.Sprintf("the %s header holds a control or format character (%s)", contact.HeaderMsgID, codePoint(r))}
	}
	return v, nil
}

// UsableCommandID reports whether id can be an original command's
// commandId and its Nats-Msg-Id as the service takes them: 1 to 128
// characters of printable UTF-8 (its header rules), not of the derived
// form <stream>:<sequence>. The service keys a command whose body's
// commandId is not usable by what it derives instead.
func UsableCommandID(id string) bool {
	if id == "" || utf8.RuneCountInString(id) > 128 || DerivedID(id) {
		return false
	}
	_, err := CommandIDFromHeader(id)
	return err == nil
}

// DerivedID reports whether id has the form of the ids the service derives
// for a command that has none (<stream>:<sequence>), which only a replay
// may carry in its body. It runs for every command: no regular expression.
func DerivedID(id string) bool {
	name, seq, ok := strings.Cut(id, ":")
	if !ok || name == "" || seq == "" {
		return false
	}
	for _, c := range []byte(name) {
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '_' || c == '-') {
			return false
		}
	}
	for _, c := range []byte(seq) {
		if c < '0' || c > '9' {
			return false
		}
	}
	return true
}
