package events

import (
	"github.com/contactrelay/contactrelay/contact"
	"github.com/contactrelay/contactrelay/rules"

	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"unicode/utf8"
)

// The bounds of a contact.failed event. Whatever the command body (of any
// size: a server may be configured for payloads larger than 1 MiB), its
// metadata, the field errors found and the provider's answer, NewEvent
// builds a contact.failed event whose encoding (Event.AppendJSON, equal to
// json.Marshal) is at most MaxEventSize bytes: every part that grows with
// its input is clipped to a budget of encoded bytes, and the budgets add up
// to less than MaxEventSize (see TestFailedEventWorstCase and
// FuzzFailedEventFits). MaxEventSize is a quarter of NATS's default max
// payload, leaving room for headers and for a record that keeps the encoded
// event (base64 in JSON: 4/3 of it).
const (
	// MaxEventSize bounds the encoding of a contact.failed event, in bytes.
	MaxEventSize = 256 << 10
	// MaxCommandIDBytes bounds a commandId in bytes: the rule of
	// rules.MaxCommandIDBytes, wherever the id comes from. NewEvent
	// refuses a longer one.
	MaxCommandIDBytes = rules.MaxCommandIDBytes
	// MaxSourceBytes bounds the CloudEvents source. NewEvent refuses a
	// longer one.
	MaxSourceBytes = 256
	// MaxErrors is the most field errors a contact.failed event lists;
	// ErrorsOmitted counts the rest.
	MaxErrors = 50
	// MaxMetadataEntries is the most metadata entries an event echoes,
	// the contract's limit on a command.
	MaxMetadataEntries = 32

	maxMessageBytes    = 2048     // Failed.Message, encoded
	maxProviderBytes   = 64       // Failed.Provider, encoded
	maxReasonBytes     = 32       // Failed.Reason, encoded
	maxReplayOfBytes   = 256      // Failed.ReplayOf, encoded
	maxFieldBytes      = 256      // FieldError.Field, encoded
	maxRuleBytes       = 64       // FieldError.Rule, encoded
	maxFieldMsgBytes   = 512      // FieldError.Message, encoded
	maxUpstreamBytes   = 256      // Upstream.Code and RequestID, encoded
	maxUpstreamMessage = 1024     // Upstream.Message, encoded
	maxMetadataBytes   = 32 << 10 // the metadata object, encoded
	maxCommandBytes    = 128 << 10
	// A command whose encoding (compacted, with <, >, & and U+2028/9
	// escaped as encoding/json does) would exceed maxCommandBytes is
	// carried as commandRaw instead: base64 of at most MaxCommandSize
	// bytes, 87,384 bytes.
)

// InvalidMessage returns the message of a contact.failed event with reason
// invalid: how many rules the command breaks and what they say, in at most
// 2 KiB (the messages that do not fit are counted, not listed).
func InvalidMessage(errs []contact.FieldError) string {
	if len(errs) == 1 {
		return clipEncoded("the command breaks 1 rule: "+errs[0].Message, maxMessageBytes)
	}
	var b strings.Builder
	fmt.Fprintf(&b, "the command breaks %d rules: ", len(errs))
	const room = maxMessageBytes - 64 // for "; and N more"
	for i, fe := range errs {
		msg := clipEncoded(fe.Message, maxFieldMsgBytes)
		if encodedLen(b.String())+encodedLen(msg)+2 > room {
			fmt.Fprintf(&b, "; and %d more", len(errs)-i)
			break
		}
		if i > 0 {
			b.WriteString("; ")
		}
		b.WriteString(msg)
	}
	return b.String()
}

// bounded returns f with every part that grows with input clipped to its
// budget. It does not check CommandID: NewEvent refuses one longer than
// MaxCommandIDBytes.
func bounded(f contact.Failed) contact.Failed {
	f.Provider = clipEncoded(f.Provider, maxProviderBytes)
	f.Reason = contact.Reason(clipEncoded(string(f.Reason), maxReasonBytes))
	f.Message = clipEncoded(f.Message, maxMessageBytes)
	f.ReplayOf = clipEncoded(f.ReplayOf, maxReplayOfBytes)
	if len(f.Errors) > MaxErrors {
		f.ErrorsOmitted += len(f.Errors) - MaxErrors
		f.Errors = f.Errors[:MaxErrors]
	}
	if len(f.Errors) > 0 {
		errs := make([]contact.FieldError, len(f.Errors))
		for i, fe := range f.Errors {
			errs[i] = contact.FieldError{
				Field:   clipEncoded(fe.Field, maxFieldBytes),
				Rule:    clipEncoded(fe.Rule, maxRuleBytes),
				Message: clipEncoded(fe.Message, maxFieldMsgBytes),
			}
		}
		f.Errors = errs
	}
	if f.Upstream != nil {
		f.Upstream = &contact.Upstream{
			HTTPStatus: f.Upstream.HTTPStatus,
			Code:       clipEncoded(f.Upstream.Code, maxUpstreamBytes),
			Message:    clipEncoded(f.Upstream.Message, maxUpstreamMessage),
			RequestID:  clipEncoded(f.Upstream.RequestID, maxUpstreamBytes),
		}
	}
	f.Metadata, f.MetadataOmitted = boundedMetadata(f.Metadata, f.MetadataOmitted)
	if len(f.Command) > 0 && !commandFits(f.Command) {
		if len(f.CommandRaw) == 0 {
			f.CommandRaw = f.Command
		}
		f.Command = nil
	}
	if len(f.CommandRaw) > contact.MaxCommandSize {
		f.CommandSize = len(f.CommandRaw)
		f.CommandTruncated = true
		f.CommandRaw = f.CommandRaw[:contact.MaxCommandSize]
	}
	return f
}

// boundedMetadata returns the entries of m that keep the contract's rules
// for metadata (a printable key of 1 to 128 characters, a value of up to
// 1024), in key order, at most MaxMetadataEntries of them and within the
// metadata budget, and how many entries were left out in all (omitted
// counts those left out before).
func boundedMetadata(m map[string]string, omitted int) (map[string]string, int) {
	if len(m) == 0 {
		return m, omitted
	}
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	out := make(map[string]string, min(len(m), MaxMetadataEntries))
	size := 2 // {}
	for _, k := range keys {
		v := m[k]
		n := encodedLen(k) + encodedLen(v) + 2 // : and ,
		if !rules.Printable(k) || k == "" || utf8.RuneCountInString(k) > 128 || utf8.RuneCountInString(v) > 1024 ||
			len(out) == MaxMetadataEntries || size+n > maxMetadataBytes {
			omitted++
			continue
		}
		out[k] = v
		size += n
	}
	return out, omitted
}

// commandFits reports whether raw can be carried as the command object of
// an event: a JSON object within MaxCommandSize and MaxNestingDepth whose
// encoding inside the event stays within its budget.
func commandFits(raw []byte) bool {
	if len(raw) > contact.MaxCommandSize || len(raw) == 0 || !utf8.Valid(raw) {
		return false
	}
	i := 0
	for i < len(raw) && (raw[i] == ' ' || raw[i] == '\t' || raw[i] == '\n' || raw[i] == '\r') {
		i++
	}
	if i == len(raw) || raw[i] != '{' || nestingDepth(raw, contact.MaxNestingDepth) > contact.MaxNestingDepth || !json.Valid(raw) {
		return false
	}
	size := len(raw)
	for j := 0; j < len(raw); j++ {
		switch raw[j] {
		case '<', '>', '&':
			size += 5 // \u003c
		case 0xE2: // U+2028 and U+2029 are E2 80 A8/A9, written \u2028
			size += 3
		}
	}
	return size <= maxCommandBytes
}

// encodedLen returns an upper bound of the length of s as encoding/json
// writes it, quotes included.
func encodedLen(s string) int {
	n := 2
	for i := 0; i < len(s); {
		r, size := utf8.DecodeRuneInString(s[i:])
		n += runeEncodedLen(r, size)
		i += size
	}
	return n
}

// runeEncodedLen returns an upper bound of the length of the rune r,
// size bytes of UTF-8, as encoding/json writes it inside a string.
func runeEncodedLen(r rune, size int) int {
	switch {
	case r == utf8.RuneError && size == 1:
		return 6 // \ufffd
	case r < 0x20, r == '<', r == '>', r == '&', r == '\u2028', r == '\u2029':
		return 6 // \u00XX, \u2028
	case r == '"', r == '\\':
		return 2
	}
	return size
}

// clipEncoded returns s, or its longest prefix that ends on a character
// boundary and, with an ellipsis added, is at most max bytes encoded.
func clipEncoded(s string, max int) string {
	if encodedLen(s) <= max {
		return s
	}
	const ellipsis = "…" // 3 bytes
	n, end := 2+len(ellipsis), 0
	for i := 0; i < len(s); {
		r, size := utf8.DecodeRuneInString(s[i:])
		if n += runeEncodedLen(r, size); n > max {
			break
		}
		i += size
		end = i
	}
	return s[:end] + ellipsis
}
