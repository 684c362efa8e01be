package handlers

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"unicode"
	"unicode/utf8"

	"github.com/contactrelay/contactrelay/contact"
	"github.com/contactrelay/contactrelay/internal/events"
	"github.com/contactrelay/contactrelay/record"
	"github.com/contactrelay/contactrelay/rules"
)

// input is a received command as the handler reads it: valid and routed,
// or the failure it earns, with the fingerprint of its content.
type input struct {
	cmd      contact.Command // CommandID resolved; Provider resolved when routed
	provider Provider        // nil unless routed
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
		return fmt.Sprintf("the %s header is %d bytes, more than the limit of %d for a failed event's id", contact.HeaderReplayOf, len(g), maxGenerationBytes)
	case !utf8.ValidString(g):
		return "the " + contact.HeaderReplayOf + " header is not UTF-8 text"
	}
	for _, r := range g {
		if r < 0x20 || r == 0x7f || unicode.Is(unicode.Cf, r) || !unicode.IsPrint(r) {
			return fmt.Sprintf("the %s header holds a control or format character (U+%04X)", contact.HeaderReplayOf, r)
		}
	}
	return ""
}

// read decodes, normalises, validates and routes a delivery's command
// (m.Body is changed to the normalised body when normalising changes it). A delivery
// whose Contact-Replay-Of header cannot name a generation is malformed,
// in a generation named by the header's digest (m.Generation is changed).
func (h *Handler) read(m *Message) input {
	if why := badGeneration(m.Generation); why != "" {
		m.Generation = record.RawFingerprint("generation", []byte(m.Generation))
		return input{
			cmd:         contact.Command{CommandID: m.fallbackID()},
			fingerprint: record.RawFingerprint("malformed", m.Body),
			bad:         &conclusion{reason: contact.ReasonMalformed, message: why},
		}
	}
	cmd, err := contact.DecodeCommand(m.Body)
	derr := decodeError(err)
	if derr != nil && derr.Reason == contact.ReasonMalformed {
		return input{
			cmd:         contact.Command{CommandID: m.fallbackID()},
			fingerprint: record.RawFingerprint("malformed", m.Body),
			bad:         &conclusion{reason: contact.ReasonMalformed, message: derr.Message},
		}
	}
	if derr == nil {
		// Forms whose meaning is certain are written one way (rules.Normalize):
		// the failed event's command carries the normalised command.
		var changed bool
		if cmd, changed = rules.Normalize(cmd); changed {
			m.Body, _ = rules.NormalizeBody(m.Body)
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
		in.fingerprint = record.RawFingerprint("invalid", compact.Bytes())
	} else {
		in.fingerprint = record.Fingerprint(cmd)
	}
	if cmd.CommandID != "" && m.Generation == "" && rules.DerivedID(cmd.CommandID) {
		fieldErrs = append(fieldErrs, contact.FieldError{Field: "commandId", Rule: "reserved",
			Message: "commandId must not have the form <stream>:<sequence>, which names commands sent without an id"})
	}
	idValid := !slices.ContainsFunc(fieldErrs, func(fe contact.FieldError) bool { return fe.Field == "commandId" })
	if cmd.CommandID == "" || !idValid {
		// The header names the command; one that cannot is malformed.
		if _, err := rules.CommandIDFromHeader(m.MsgID); decodeError(err) != nil {
			return input{
				cmd:         contact.Command{CommandID: m.fallbackID()},
				fingerprint: record.RawFingerprint("malformed", m.Body),
				bad:         &conclusion{reason: contact.ReasonMalformed, message: decodeError(err).Message},
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
		in.bad = &conclusion{reason: contact.ReasonInvalid, provider: chosen, message: events.InvalidMessage(fieldErrs), errors: fieldErrs}
	case p != nil:
		cmd.Provider, in.provider = name, p
	case name == "" || slices.Contains(h.cfg.KnownProviders, name):
		in.elsewhere, in.asked = true, name
	default:
		in.bad = &conclusion{reason: contact.ReasonUnroutable, message: rules.UnknownProviderMessage(name, h.cfg.KnownProviders)}
	}
	in.cmd = cmd
	return in
}

// decodeError returns err as a *contact.DecodeError, or nil. The target
// errors.As needs is declared only when there is an error: its address
// taken, it is allocated where it is declared, and read declared it for
// every command.
func decodeError(err error) *contact.DecodeError {
	if err == nil {
		return nil
	}
	var derr *contact.DecodeError
	if errors.As(err, &derr) {
		return derr
	}
	return nil
}
