package client

import (
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/contactrelay/contactrelay/contact"
	"github.com/contactrelay/contactrelay/rules"
)

// Providers returns the names of the providers this version of the
// library knows, sorted.
func Providers() []string { return rules.Providers() }

// InvalidError says why the service would answer a command with
// contact.failed before calling any provider: Reason is ReasonMalformed
// (not a JSON object the service can read), ReasonInvalid (Errors lists
// every broken rule, sorted by field) or ReasonUnroutable (the provider is
// unknown). Its Error text lists every rule, one a line.
type InvalidError struct {
	Reason  Reason
	Message string
	Errors  []FieldError
}

func (e *InvalidError) Error() string { return e.Message }

// Validate applies the service's rules to cmd as it would travel (encoded
// as JSON): the contract's field rules and the rules of the provider it
// names or, when it names none, of the Client's DefaultProvider. It returns
// nil or an *InvalidError.
func (c *Client) Validate(cmd Command) error {
	body, err := json.Marshal(cmd)
	if err != nil {
		return &InvalidError{Reason: ReasonMalformed, Message: "the command cannot be encoded: " + err.Error()}
	}
	return c.ValidateJSON(body)
}

// ValidateJSON is Validate for a command body: it is decoded and
// normalised as the service decodes and normalises it (rules.Normalize: a
// mobile written with spaces, dashes or dots, a provider in any case), then
// checked with the same rules.
func (c *Client) ValidateJSON(body []byte) error {
	return validateBody(c.val, body, c.cfg.DefaultProvider)
}

// validateBody is ValidateJSON with a validator and default provider.
func validateBody(val *rules.Validator, body []byte, defaultProvider string) error {
	cmd, err := contact.DecodeCommand(body)
	var derr *contact.DecodeError
	if errors.As(err, &derr) && derr.Reason == contact.ReasonMalformed {
		return &InvalidError{Reason: ReasonMalformed, Message: "the command is malformed: " + derr.Message}
	}
	var broken []FieldError
	if derr != nil {
		broken = derr.Errors
	} else {
		cmd, _ = rules.Normalize(cmd) // as the service does
	}
	for _, fe := range val.Validate(cmd) {
		if !slices.ContainsFunc(broken, func(d FieldError) bool { return d.Field == fe.Field }) {
			broken = append(broken, fe)
		}
	}
	name := cmd.Provider
	if name == "" {
		name = defaultProvider
	}
	check, known := rules.Provider(name)
	if known {
		broken = append(broken, check(cmd)...)
	}
	var b strings.Builder
	switch n := len(broken); n {
	case 0:
	case 1:
		b.WriteString("the command breaks 1 rule:")
	default:
		fmt.Fprintf(&b, "the command breaks %d rules:", n)
	}
	for _, fe := range broken {
		fmt.Fprintf(&b, "\n  %s: %s", fe.Field, fe.Message)
	}
	reason := ReasonInvalid
	if name != "" && !known {
		if b.Len() > 0 {
			b.WriteString("\n")
		}
		b.WriteString(rules.UnknownProviderMessage(name, Providers()))
		if len(broken) == 0 {
			reason = ReasonUnroutable
		}
	}
	if b.Len() == 0 {
		return nil
	}
	return &InvalidError{Reason: reason, Message: b.String(), Errors: broken}
}
