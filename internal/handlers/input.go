package handlers

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/contactrelay/contactrelay/internal/events"
)

// input is a received command as the handler reads it: valid and routed,
// or the failure it earns, with the fingerprint of its content.
type input struct {
	cmd      events.Command // CommandID resolved; Provider resolved when routed
	provider Provider       // nil unless routed
	// bad is the failure a malformed, invalid or unroutable command earns.
	bad *conclusion
	// elsewhere marks a valid command whose provider (asked) this build
	// knows but this instance has not enabled, or that names none where
	// no default is set.
	elsewhere bool
	asked     string
	// fingerprint digests the command's content (see fingerprint).
	fingerprint string
}

// maxGenerationBytes bounds a Contact-Replay-Of header: an event id is 36
// characters; anything much longer is not one.
const maxGenerationBytes = 128

// badGeneration says why a Contact-Replay-Of value cannot name a
// generation, or "" when it can.
func badGeneration(g string) string {
	switch {
	case len(g) > maxGenerationBytes:
		return fmt.Sprintf("the %s header is %d bytes, more than the limit of %d for a failed event's id", events.HeaderReplayOf, len(g), maxGenerationBytes)
	case !utf8.ValidString(g):
		return "the " + events.HeaderReplayOf + " header is not UTF-8 text"
	}
	for _, r := range g {
		if r < 0x20 || r == 0x7f || unicode.Is(unicode.Cf, r) || !unicode.IsPrint(r) {
			return fmt.Sprintf("the %s header holds a control or format character (U+%04X)", events.HeaderReplayOf, r)
		}
	}
	return ""
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
	_, err := events.CommandIDFromHeader(id)
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

// read decodes, validates and routes a delivery's command. A delivery
// whose Contact-Replay-Of header cannot name a generation is malformed,
// in a generation named by the header's digest (m.Generation is changed).
func (h *Handler) read(m *Message) input {
	if why := badGeneration(m.Generation); why != "" {
		m.Generation = rawFingerprint("generation", []byte(m.Generation))
		return input{
			cmd:         events.Command{CommandID: m.fallbackID()},
			fingerprint: rawFingerprint("malformed", m.Body),
			bad:         &conclusion{reason: events.ReasonMalformed, message: why},
		}
	}
	cmd, err := events.DecodeCommand(m.Body)
	var derr *events.DecodeError
	if errors.As(err, &derr) && derr.Reason == events.ReasonMalformed {
		return input{
			cmd:         events.Command{CommandID: m.fallbackID()},
			fingerprint: rawFingerprint("malformed", m.Body),
			bad:         &conclusion{reason: events.ReasonMalformed, message: derr.Message},
		}
	}
	fieldErrs := h.cfg.Validator.Validate(cmd)
	in := input{}
	if derr != nil {
		fieldErrs = append(derr.Errors, fieldErrs...)
		var compact bytes.Buffer
		if json.Compact(&compact, m.Body) != nil {
			compact.Reset()
			compact.Write(m.Body)
		}
		in.fingerprint = rawFingerprint("invalid", compact.Bytes())
	} else {
		in.fingerprint = fingerprint(cmd)
	}
	if cmd.CommandID != "" && m.Generation == "" && DerivedID(cmd.CommandID) {
		fieldErrs = append(fieldErrs, events.FieldError{Field: "commandId", Rule: "reserved",
			Message: "commandId must not have the form <stream>:<sequence>, which names commands sent without an id"})
	}
	idValid := !slices.ContainsFunc(fieldErrs, func(fe events.FieldError) bool { return fe.Field == "commandId" })
	if cmd.CommandID == "" || !idValid {
		// The header names the command; one that cannot is malformed.
		if _, err := events.CommandIDFromHeader(m.MsgID); errors.As(err, &derr) {
			return input{
				cmd:         events.Command{CommandID: m.fallbackID()},
				fingerprint: rawFingerprint("malformed", m.Body),
				bad:         &conclusion{reason: events.ReasonMalformed, message: derr.Message},
			}
		}
		cmd.CommandID = m.fallbackID()
	}

	name := cmd.Provider
	if name == "" {
		name = h.cfg.DefaultProvider
	}
	p := h.cfg.Providers[name]
	if p != nil {
		fieldErrs = append(fieldErrs, p.Validate(cmd)...)
	}
	switch {
	case len(fieldErrs) > 0:
		chosen := "" // the event names a provider only if one was chosen
		if p != nil {
			chosen = name
		}
		in.bad = &conclusion{reason: events.ReasonInvalid, provider: chosen, message: events.InvalidMessage(fieldErrs), errors: fieldErrs}
	case p != nil:
		cmd.Provider, in.provider = name, p
	case name == "" || slices.Contains(h.cfg.KnownProviders, name):
		in.elsewhere, in.asked = true, name
	default:
		in.bad = &conclusion{reason: events.ReasonUnroutable, message: UnknownProviderMessage(name, h.cfg.KnownProviders)}
	}
	in.cmd = cmd
	return in
}

// UnknownProviderMessage says that a command names a provider no build
// knows: the message of the service's contact.failed (unroutable), and the
// client's local check says it in the same words.
func UnknownProviderMessage(name string, known []string) string {
	return fmt.Sprintf("provider %q is unknown; known providers: %s", name, strings.Join(known, ", "))
}

// ContentFingerprint returns the fingerprint the handler keeps of a
// command body's content (see fingerprint): two bodies with one
// fingerprint ask for the same contact, whatever their member order, white
// space, commandId or metadata. A body that does not decode has a
// fingerprint of its bytes.
func ContentFingerprint(body []byte) string {
	cmd, err := events.DecodeCommand(body)
	var derr *events.DecodeError
	switch {
	case errors.As(err, &derr) && derr.Reason == events.ReasonMalformed:
		return rawFingerprint("malformed", body)
	case derr != nil:
		var compact bytes.Buffer
		if json.Compact(&compact, body) != nil {
			return rawFingerprint("invalid", body)
		}
		return rawFingerprint("invalid", compact.Bytes())
	}
	return fingerprint(cmd)
}

// fingerprint digests the content of a decoded command: the fields that
// decide what is created (provider as the command names it, name, email,
// mobile, tagId, companyName and the pik object, its members in any order
// and white space) and not commandId or metadata, which only correlate.
// Two commands with one fingerprint ask for the same contact.
func fingerprint(cmd events.Command) string {
	h := sha256.New()
	for _, f := range [...]string{cmd.Provider, cmd.Name, cmd.Email, cmd.Mobile, cmd.TagID, cmd.CompanyName} {
		writeField(h, []byte(f))
	}
	if len(cmd.PIK) > 0 {
		keys := make([]string, 0, len(cmd.PIK))
		for k := range cmd.PIK {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		for _, k := range keys {
			writeField(h, []byte(k))
			writeField(h, canonicalJSON(cmd.PIK[k]))
		}
	}
	return "v1:" + hex.EncodeToString(h.Sum(nil)[:16])
}

// rawFingerprint digests a body that did not decode into a command.
func rawFingerprint(kind string, body []byte) string {
	h := sha256.New()
	writeField(h, []byte(kind))
	writeField(h, body)
	return "v1:" + hex.EncodeToString(h.Sum(nil)[:16])
}

func writeField(h interface{ Write([]byte) (int, error) }, b []byte) {
	var n [8]byte
	binary.BigEndian.PutUint64(n[:], uint64(len(b)))
	_, _ = h.Write(n[:])
	_, _ = h.Write(b)
}

// canonicalJSON returns v with its objects' members sorted and no white
// space (v as it is when it does not decode).
func canonicalJSON(v json.RawMessage) []byte {
	dec := json.NewDecoder(bytes.NewReader(v))
	dec.UseNumber()
	var x any
	if dec.Decode(&x) != nil {
		return v
	}
	out, err := json.Marshal(x)
	if err != nil {
		return v
	}
	return out
}
