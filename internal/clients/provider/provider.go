// Package provider is the taxonomy of what a payment provider answers: the
// contact it created or found, and the classified failure of a call
// (transient, permanent or ambiguous). Provider clients return these; the
// handler decides from them alone. It does no I/O.
package provider

import (
	"errors"
	"fmt"
	"time"

	"github.com/contactrelay/contactrelay/contact"
)

// Contact is what a provider answers for a created (or found) contact: its
// identifier and every identifier the provider returned.
type Contact struct {
	ID       string
	Upstream map[string]any
}

// Class says what a provider failure means for the command.
type Class uint8

const (
	// Transient failures may succeed later unchanged: the provider answered
	// 429, 5xx, or a "try later" status, or no request reached it.
	Transient Class = iota + 1
	// Permanent failures will fail again unchanged: the provider refused
	// the request for good.
	Permanent
	// Ambiguous failures left the outcome unknown: the request was sent
	// but no answer came. The contact may exist; look it up before retrying.
	Ambiguous
)

func (c Class) String() string {
	switch c {
	case Transient:
		return "transient"
	case Permanent:
		return "permanent"
	case Ambiguous:
		return "ambiguous"
	}
	return fmt.Sprintf("Class(%d)", c)
}

// Error is a failed call to a provider, classified once by the
// client that made it; the handler decides from Class alone.
type Error struct {
	Provider   string
	Op         string // "create", "lookup", "token"
	Class      Class
	HTTPStatus int
	Code       string // provider status code, or "timeout" / "connection"
	Message    string
	RequestID  string
	RetryAfter time.Duration // the provider's Retry-After, zero if none
	Err        error         // the underlying error, if any
}

func (e *Error) Error() string {
	s := fmt.Sprintf("%s %s: %s failure", e.Provider, e.Op, e.Class)
	if e.HTTPStatus != 0 {
		s += fmt.Sprintf(", HTTP %d", e.HTTPStatus)
	}
	if e.Code != "" {
		s += ", code " + e.Code
	}
	if e.Message != "" {
		s += ": " + e.Message
	}
	if e.Err != nil && e.Message == "" {
		s += ": " + e.Err.Error()
	}
	return s
}

func (e *Error) Unwrap() error { return e.Err }

// Upstream returns the provider's answer in the form of the failed event.
func (e *Error) Upstream() *contact.Upstream {
	return &contact.Upstream{HTTPStatus: e.HTTPStatus, Code: e.Code, Message: e.Message, RequestID: e.RequestID}
}

// ClassOf returns the class of a provider error, and Transient for any other
// non-nil error (a failure that is not the provider's word is worth a retry).
func ClassOf(err error) Class {
	var pe *Error
	if errors.As(err, &pe) {
		return pe.Class
	}
	return Transient
}

// ErrIncompleteLookup reports a lookup that could not see every contact
// that might match: more pages than it may read, a list whose paging it
// does not understand, or a page that could not be read. "Not found" may
// only be concluded from a complete view; a Lookup returns this (wrapped,
// possibly inside an *Error) instead, and the caller must not create the
// contact again on the strength of it.
var ErrIncompleteLookup = errors.New("the lookup could not see every contact that might match")
