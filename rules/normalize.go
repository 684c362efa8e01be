package rules

import (
	"bytes"
	"encoding/json"
	"strings"
	"unicode"

	"github.com/contactrelay/contactrelay/contact"
)

// The normalisation of a command: forms whose meaning is certain are
// written one way before the rules are applied, so that they are neither
// refused nor taken for other content.
//
//   - mobile: white space (any Unicode space separator, the no-break space
//     included), hyphens "-" and dots "." are removed, when what is left
//     keeps the mobile rule ("+91 98765 10011" is "+919876510011").
//     Parentheses are not touched ("+44 (0)20 …" would become another
//     number); a mobile that would still break the rule is left as it
//     came, so that its failure shows what was sent.
//   - provider: a name that is one of Providers once surrounding white
//     space is trimmed and case ignored is written as that name ("Pik",
//     " PIK " are "pik"). Any other value is left as it came.
//
// Nothing else is changed. A command already normalised is returned as it
// is, so its content fingerprint (record.Fingerprint) is the one it always
// had.

// NormalizeMobile returns the mobile number s normalised, or s.
func NormalizeMobile(s string) string {
	if isMobile(s) {
		return s
	}
	n := strings.Map(func(r rune) rune {
		if r == '-' || r == '.' || unicode.Is(unicode.Zs, r) || r == '\t' {
			return -1
		}
		return r
	}, s)
	if isMobile(n) {
		return n
	}
	return s
}

// NormalizeProvider returns the provider name s normalised, or s.
func NormalizeProvider(s string) string {
	t := strings.TrimSpace(s)
	for _, p := range providers {
		if strings.EqualFold(t, p.name) {
			return p.name
		}
	}
	return s
}

// Normalize returns cmd normalised (its mobile and provider), and whether
// anything changed.
func Normalize(cmd contact.Command) (contact.Command, bool) {
	mobile, provider := NormalizeMobile(cmd.Mobile), NormalizeProvider(cmd.Provider)
	changed := mobile != cmd.Mobile || provider != cmd.Provider
	cmd.Mobile, cmd.Provider = mobile, provider
	return cmd, changed
}

// NormalizeBody returns a command body with its mobile and provider
// members normalised, and whether it changed; a body that does not decode
// as a command, or that needs no change, is returned as it is. A changed
// body keeps every other member, its members sorted by name (the last of
// repeated names counts, as with DecodeCommand).
func NormalizeBody(body []byte) ([]byte, bool) {
	cmd, err := contact.DecodeCommand(body)
	if err != nil {
		return body, false
	}
	norm, changed := Normalize(cmd)
	if !changed {
		return body, false
	}
	var members map[string]json.RawMessage
	if json.Unmarshal(bytes.TrimSpace(body), &members) != nil {
		return body, false
	}
	if norm.Mobile != cmd.Mobile {
		members["mobile"], _ = json.Marshal(norm.Mobile)
	}
	if norm.Provider != cmd.Provider {
		members["provider"], _ = json.Marshal(norm.Provider)
	}
	out, err := json.Marshal(members)
	if err != nil {
		return body, false
	}
	return out, true
}
