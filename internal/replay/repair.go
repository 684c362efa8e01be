package replay

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/contactrelay/contactrelay/contact"
	"github.com/contactrelay/contactrelay/rules"
)

// Set is one field change of a repair: the value, a string, goes to the
// field at Path (nested objects' fields by their dotted path, such as
// pik.firstName).
type Set struct {
	Path  []string
	Value string
}

func (s Set) String() string { return strings.Join(s.Path, ".") + "=" + s.Value }

// ParseSet reads a field change written "field=value" or
// "object.field=value". The commandId cannot be changed: it is the
// command's identity, and a replay keeps it.
func ParseSet(s string) (Set, error) {
	path, value, ok := strings.Cut(s, "=")
	if !ok {
		return Set{}, fmt.Errorf("--set %q: want field=value", s)
	}
	parts := strings.Split(strings.TrimSpace(path), ".")
	for _, p := range parts {
		if p == "" {
			return Set{}, fmt.Errorf("--set %q: the field path %q has an empty part", s, path)
		}
	}
	if parts[0] == "commandId" {
		return Set{}, fmt.Errorf("--set %q: the commandId is the command's identity and cannot be changed by a replay (publish a new command instead)", s)
	}
	return Set{Path: parts, Value: value}, nil
}

// RepairError refuses a repaired command: it does not decode, or it breaks
// the contract's rules. Errors lists every broken rule.
type RepairError struct {
	CommandID string
	Message   string
	Errors    []contact.FieldError
}

func (e *RepairError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "repair of %s refused, nothing was published: %s", e.CommandID, e.Message)
	for _, fe := range e.Errors {
		fmt.Fprintf(&b, "\n  %s: %s", fe.Field, fe.Message)
	}
	return b.String()
}

// Repair returns the command of f with the changes applied and its
// commandId set as Body sets it, after decoding it with contact.DecodeCommand
// and validating it with v: a command that would fail as malformed or
// invalid is refused with a *RepairError. Provider-specific rules are the
// consumer's to apply. A change whose path runs through a field that is
// not an object is refused too.
func Repair(f *Failure, sets []Set, v *rules.Validator) ([]byte, error) {
	if _, err := commandObject(f); err != nil {
		return nil, err
	}
	dec := json.NewDecoder(bytes.NewReader(f.Data.Command))
	dec.UseNumber() // numbers stay as they were written
	var obj map[string]any
	if err := dec.Decode(&obj); err != nil {
		return nil, ErrNothingToReplay
	}
	if obj == nil {
		obj = map[string]any{}
	}
	refuse := func(msg string, errs []contact.FieldError) error {
		return &RepairError{CommandID: f.CommandID(), Message: msg, Errors: errs}
	}
	for _, s := range sets {
		if err := setPath(obj, s.Path, s.Value); err != nil {
			return nil, refuse(fmt.Sprintf("--set %s: %v", s, err), nil)
		}
	}
	obj["commandId"] = f.CommandID()
	body, err := json.Marshal(obj)
	if err != nil {
		return nil, fmt.Errorf("encode repaired command of %s: %w", f.CommandID(), err)
	}
	cmd, err := contact.DecodeCommand(body)
	var fieldErrs []contact.FieldError
	if err != nil {
		var derr *contact.DecodeError
		if !errors.As(err, &derr) || derr.Reason == contact.ReasonMalformed {
			return nil, refuse(err.Error(), nil)
		}
		fieldErrs = derr.Errors
	} else {
		// Sent normalised, as the service would take it (rules.Normalize).
		cmd, _ = rules.Normalize(cmd)
		body, _ = rules.NormalizeBody(body)
	}
	for _, fe := range v.Validate(cmd) {
		// A field of the wrong type did not decode: do not also call it
		// missing.
		if !slices.ContainsFunc(fieldErrs, func(d contact.FieldError) bool { return d.Field == fe.Field }) {
			fieldErrs = append(fieldErrs, fe)
		}
	}
	if len(fieldErrs) > 0 {
		msg := "the repaired command breaks 1 rule:"
		if len(fieldErrs) > 1 {
			msg = fmt.Sprintf("the repaired command breaks %d rules:", len(fieldErrs))
		}
		return nil, refuse(msg, fieldErrs)
	}
	return body, nil
}

// setPath sets obj's field at path to value, making the objects on the way
// that are missing.
func setPath(obj map[string]any, path []string, value string) error {
	for i, name := range path[:len(path)-1] {
		next, ok := obj[name]
		if !ok || next == nil {
			child := map[string]any{}
			obj[name] = child
			obj = child
			continue
		}
		child, ok := next.(map[string]any)
		if !ok {
			return fmt.Errorf("%s is not an object", strings.Join(path[:i+1], "."))
		}
		obj = child
	}
	obj[path[len(path)-1]] = value
	return nil
}
