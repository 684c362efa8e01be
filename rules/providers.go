package rules

import (
	"bytes"
	"encoding/json"
	"fmt"
	"slices"
	"strings"

	"github.com/contactrelay/contactrelay/contact"
)

// The providers' names, in commands and events.
const (
	InstantPay = "instantpay"
	PIK        = "pik"
)

// providers are the providers this version knows, by name (sorted), with
// the rules each applies on top of the contract's. A new provider is one
// line here, beside its adapter under internal/clients/.
var providers = [...]struct {
	name  string
	check func(contact.Command) []contact.FieldError
}{
	{InstantPay, CheckInstantPay},
	{PIK, CheckPIK},
}

// Provider returns the rules of the provider named name, and whether this
// version knows it.
func Provider(name string) (check func(contact.Command) []contact.FieldError, known bool) {
	for _, p := range providers {
		if p.name == name {
			return p.check, true
		}
	}
	return nil, false
}

// Providers returns the names of the providers this version knows, sorted.
func Providers() []string {
	names := make([]string, len(providers))
	for i, p := range providers {
		names[i] = p.name
	}
	return names
}

// UnknownProviderMessage says that a command names a provider no build
// knows: the message of the service's contact.failed (unroutable), and the
// client's local check says it in the same words.
func UnknownProviderMessage(name string, known []string) string {
	return fmt.Sprintf("provider %q is unknown; known providers: %s", name, strings.Join(known, ", "))
}

// CheckInstantPay returns the rules the command breaks for InstantPay, or
// nil: the tagId must be a 24-character hexadecimal id. An empty tagId is
// left to the contract's rules, which report it as required.
func CheckInstantPay(cmd contact.Command) []contact.FieldError {
	if cmd.TagID == "" || isHex24(cmd.TagID) {
		return nil
	}
	return []contact.FieldError{{
		Field:   "tagId",
		Rule:    "hexadecimal24",
		Message: "tagId must be a 24-character hexadecimal id for InstantPay",
	}}
}

func isHex24(s string) bool {
	if len(s) != 24 {
		return false
	}
	for i := range len(s) {
		switch b := s[i]; {
		case '0' <= b && b <= '9', 'a' <= b && b <= 'f', 'A' <= b && b <= 'F':
		default:
			return false
		}
	}
	return true
}

// CheckPIK returns the rules the command's pik fields break, or nil:
// paymentContactAddress and paymentContactAccount must be JSON objects, the
// other known fields strings, and contactCode, when given, not empty. null
// is accepted anywhere; unknown fields are passed on unchecked.
func CheckPIK(cmd contact.Command) []contact.FieldError {
	var errs []contact.FieldError
	for _, name := range sortedKeys(cmd.PIK) {
		raw := bytes.TrimSpace(cmd.PIK[name])
		if len(raw) == 0 || string(raw) == "null" {
			continue
		}
		field := "pik." + name
		switch name {
		case "paymentContactAddress", "paymentContactAccount":
			if raw[0] != '{' {
				errs = append(errs, contact.FieldError{Field: field, Rule: "type", Message: field + " must be an object"})
			}
		case "contactCode", "contactType", "businessType", "firstName", "lastName",
			"nickname", "countryCode", "nationality":
			var s string
			if json.Unmarshal(raw, &s) != nil {
				errs = append(errs, contact.FieldError{Field: field, Rule: "type", Message: field + " must be a string"})
			} else if name == "contactCode" && strings.TrimSpace(s) == "" {
				errs = append(errs, contact.FieldError{Field: field, Rule: "required", Message: field + " must not be empty when given"})
			}
		}
	}
	return errs
}

func sortedKeys(m map[string]json.RawMessage) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}
