package rules

import (
	"errors"
	"fmt"
	"reflect"
	"sort"
	"strings"

	"github.com/go-playground/validator/v10"

	"github.com/contactrelay/contactrelay/contact"
)

// isMobile reports whether s is a mobile number as the contract writes
// it: an optional "+", then 10 to 15 ASCII digits. It is the regular
// expression ^\+?[0-9]{10,15}$ checked by hand, off the hot path's
// regexp machinery; FuzzIsMobile holds the two equal.
func isMobile(s string) bool {
	if len(s) > 0 && s[0] == '+' {
		s = s[1:]
	}
	if len(s) < 10 || len(s) > 15 {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

// Validator applies the contract's field rules to commands (the
// validate tags of contact.Command, and the mobile, printable and visible
// rules). Build one with NewValidator at start and share it: it is safe for
// concurrent use.
type Validator struct {
	v *validator.Validate
}

// NewValidator returns a Validator with the contract's rules registered.
func NewValidator() *Validator {
	v := validator.New(validator.WithRequiredStructEnabled())
	v.RegisterTagNameFunc(func(f reflect.StructField) string {
		name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		if name == "-" {
			return ""
		}
		return name
	})
	// The rules are static and known to register.
	for tag, fn := range map[string]validator.Func{
		"mobile": func(fl validator.FieldLevel) bool { return isMobile(fl.Field().String()) },
		"printable": func(fl validator.FieldLevel) bool {
			_, bad := unprintable(fl.Field().String())
			return !bad
		},
		"visible": func(fl validator.FieldLevel) bool { return visible(fl.Field().String()) },
	} {
		if err := v.RegisterValidation(tag, fn); err != nil {
			panic(err)
		}
	}
	return &Validator{v: v}
}

// Validate returns every rule the command breaks, sorted by field, or nil.
// Provider-specific rules are not applied here: see Provider.
func (val *Validator) Validate(cmd contact.Command) []contact.FieldError {
	if quickValid(&cmd) {
		// The common case, certain without the validator's walk.
		return nil
	}
	return val.validate(cmd)
}

// validate is Validate by the validator alone.
func (val *Validator) validate(cmd contact.Command) []contact.FieldError {
	err := val.v.Struct(cmd)
	if err == nil {
		return nil
	}
	var verrs validator.ValidationErrors
	if !errors.As(err, &verrs) {
		return []contact.FieldError{{Field: "", Rule: "internal", Message: err.Error()}}
	}
	out := make([]contact.FieldError, 0, len(verrs))
	for _, fe := range verrs {
		out = append(out, toFieldError(fe))
	}
	sortFieldErrors(out)
	return out
}

// toFieldError turns one validator error into the contract's form, with a
// message a person can act on.
func toFieldError(fe validator.FieldError) contact.FieldError {
	field := fieldPath(fe.Namespace())
	var msg string
	switch fe.Tag() {
	case "required":
		msg = field + " is required"
	case "email":
		msg = field + " must be a valid email address"
	case "mobile":
		msg = field + " must be 10 to 15 digits, with an optional leading +"
	case "max":
		if fe.Kind() == reflect.Map {
			msg = fmt.Sprintf("%s must have at most %s entries", field, fe.Param())
		} else {
			msg = fmt.Sprintf("%s must be at most %s characters", field, fe.Param())
		}
	case "printable":
		msg = field + " must not contain control or format characters"
		if s, ok := fe.Value().(string); ok {
			if r, bad := unprintable(s); bad {
				msg += " (it contains " + codePoint(r) + ")"
			}
		}
	case "visible":
		msg = field + " must contain a visible character, not only white space or invisible characters"
	case "min":
		msg = fmt.Sprintf("%s must be at least %s characters", field, fe.Param())
	default:
		msg = fmt.Sprintf("%s breaks the rule %q", field, fe.Tag())
	}
	return contact.FieldError{Field: field, Rule: fe.Tag(), Message: msg}
}

// fieldPath drops the struct name from a validator namespace
// ("Command.metadata[k]" becomes "metadata[k]"), with the characters the
// printable rule refuses written as code points: a metadata key is part of
// the path.
func fieldPath(ns string) string {
	if _, rest, ok := strings.Cut(ns, "."); ok {
		ns = rest
	}
	return escapeUnprintable(ns)
}

// sortFieldErrors sorts errs by field, keeping the order of one field's.
func sortFieldErrors(errs []contact.FieldError) {
	sort.SliceStable(errs, func(i, j int) bool { return errs[i].Field < errs[j].Field })
}
