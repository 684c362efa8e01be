package handlers

import (
	"testing"

	"github.com/contactrelay/contactrelay/internal/clients/provider"
	"github.com/contactrelay/contactrelay/internal/fakeclock"
	"github.com/contactrelay/contactrelay/record"
)

// What the tests of package handlers_test, which drive the handler
// through the service's own runner (package stream imports this one),
// share with the tests inside the package.

// FakeProvider is the tests' provider: it answers create and lookup calls
// from functions, counting them.
type FakeProvider = fakeProvider

// NewFakeProvider returns a FakeProvider; nil functions create contact
// ct-1 and find nothing.
func NewFakeProvider(create func(n int) (provider.Contact, error), lookup func() (provider.Contact, bool, error)) *FakeProvider {
	return &fakeProvider{create: create, lookup: lookup}
}

// Creates and Lookups count the calls made so far.
func (p *fakeProvider) Creates() int { return int(p.creates.Load()) }
func (p *fakeProvider) Lookups() int { return int(p.lookups.Load()) }

// NewTestHandler returns a handler of one provider, "fake", the default,
// with the tests' short retries (see newTestHandler).
func NewTestHandler(tb testing.TB, p Provider, store Store, change func(*Config)) *Handler {
	tb.Helper()
	return newTestHandler(tb, p, store, change)
}

// NewFakeClock returns the tests' clock, at the time they start at.
func NewFakeClock() *fakeclock.Clock { return newFakeClock() }

// Transient and Ambiguous are provider errors of those classes.
func Transient(code string) error { return transient(code) }
func Ambiguous() error            { return ambiguous() }

// MaxGenerations is how many generations a record keeps; MaxPlainKey is
// the longest commandId a record key holds as it is.
const (
	MaxGenerations = record.MaxGenerations
	MaxPlainKey    = record.MaxPlainKey
)

// Commands of the tests: Body is command c-1; Jane is the fields of a
// valid command, and Command(fields) a command crm-001 with them.
const (
	Body = body
	Jane = jane
)

func Command(fields string) []byte { return command(fields) }
