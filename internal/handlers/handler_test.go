package handlers

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/contactrelay/contactrelay/contact"
	"github.com/contactrelay/contactrelay/internal/clients/provider"
	"github.com/contactrelay/contactrelay/record"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/contactrelay/contactrelay/internal/events"
	"github.com/contactrelay/contactrelay/internal/fakeclock"
)

// memStore is an in-memory Store with revisions, as the KV bucket keeps.
type memStore struct {
	mu   sync.Mutex
	rev  uint64
	vals map[string]memVal
	fail error // returned by every call when set
}

type memVal struct {
	val []byte
	rev uint64
}

func newMemStore() *memStore { return &memStore{vals: map[string]memVal{}} }

func (s *memStore) Get(_ context.Context, key string) ([]byte, uint64, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.fail != nil {
		return nil, 0, s.fail
	}
	v := s.vals[key]
	return v.val, v.rev, nil
}

func (s *memStore) Put(_ context.Context, key string, val []byte, rev uint64, _ bool) (uint64, bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.fail != nil {
		return 0, false, s.fail
	}
	if s.vals[key].rev != rev {
		return 0, false, nil
	}
	s.rev++
	s.vals[key] = memVal{val: append([]byte(nil), val...), rev: s.rev}
	return s.rev, true, nil
}

func (s *memStore) record(t testing.TB, commandID string) record.Record {
	t.Helper()
	r, rev, err := records{store: s}.load(context.Background(), commandID)
	require.NoError(t, err)
	require.NotZero(t, rev, "a record exists for %s", commandID)
	return r
}

// fakeProvider answers create and lookup calls from functions, counting them.
type fakeProvider struct {
	create  func(n int) (provider.Contact, error)
	lookup  func() (provider.Contact, bool, error)
	creates atomic.Int32
	lookups atomic.Int32
}

func (p *fakeProvider) Validate(contact.Command) []contact.FieldError { return nil }

func (p *fakeProvider) Create(context.Context, contact.Command) (provider.Contact, error) {
	n := int(p.creates.Add(1))
	if p.create == nil {
		return provider.Contact{ID: "ct-1", Upstream: map[string]any{"contactId": "ct-1"}}, nil
	}
	return p.create(n)
}

func (p *fakeProvider) Lookup(context.Context, contact.Command) (provider.Contact, bool, error) {
	p.lookups.Add(1)
	if p.lookup == nil {
		return provider.Contact{}, false, nil
	}
	return p.lookup()
}

func transient(code string) error {
	return &provider.Error{Provider: "fake", Op: "create", Class: provider.Transient, HTTPStatus: 503, Code: code, Message: "try later"}
}

func ambiguous() error {
	return &provider.Error{Provider: "fake", Op: "create", Class: provider.Ambiguous, Code: "timeout", Message: "no answer"}
}

func newTestHandler(t testing.TB, p Provider, store Store, change func(*Config)) *Handler {
	t.Helper()
	cfg := Config{
		Providers:            map[string]Provider{"fake": p},
		DefaultProvider:      "fake",
		Store:                store,
		MaxDeliver:           3,
		RetryInitialInterval: time.Millisecond,
		RetryMaxInterval:     2 * time.Millisecond,
		RetryMaxElapsed:      20 * time.Millisecond,
		CallTimeout:          time.Second,
		// Tests of retries want the provider called every time.
		Protection: map[string]Protection{"fake": {BreakerFailures: 1000}},
	}
	if change != nil {
		change(&cfg)
	}
	h, err := New(cfg)
	require.NoError(t, err)
	return h
}

const body = `{"commandId":"c-1","name":"Jane","email":"jane@example.com","mobile":"9876543210","tagId":"t","metadata":{"k":"v"}}`

func msg(delivery int) Message {
	return Message{Body: []byte(body), Stream: "CONTACT_COMMANDS", Sequence: 1, Delivery: delivery}
}

func decodeData[T any](t testing.TB, ev *contact.Event) T {
	t.Helper()
	require.NotNil(t, ev, "an event was decided")
	var d T
	require.NoError(t, json.Unmarshal(ev.Data, &d))
	return d
}

func TestDecideLeavesTheWriteToTheRunner(t *testing.T) {
	p, store := &fakeProvider{}, newMemStore()
	h := newTestHandler(t, p, store, nil)

	dec := h.Decide(context.Background(), msg(1))
	require.Equal(t, Ack, dec.Action)
	require.NotNil(t, dec.Write, "a new outcome comes with the record write that makes it the generation's")
	rec := store.record(t, "c-1")
	assert.True(t, rec.InFlight, "until the write, the record holds only the claim")
	assert.Nil(t, rec.Generations[""].Outcome)

	// Meanwhile a redelivery elsewhere finds the claim, not an outcome.
	busy := h.Decide(context.Background(), msg(2))
	assert.Equal(t, Retry, busy.Action, "another delivery waits for the call in flight")
	assert.Nil(t, busy.Write)

	rev, ok, err := store.Put(context.Background(), dec.Write.Key, dec.Write.Value, dec.Write.Revision, dec.Write.Expires)
	require.NoError(t, err)
	require.True(t, ok, "the write is a compare-and-set over the claim's revision")
	require.NotZero(t, rev)
	rec = store.record(t, "c-1")
	assert.False(t, rec.Unsettled)
	assert.False(t, rec.InFlight)
	again := h.Decide(context.Background(), msg(2))
	assert.Nil(t, again.Write, "a recorded outcome is repeated, not written again")
	assert.Equal(t, string(dec.EventJSON), string(again.EventJSON), "the recorded event, byte for byte")
	assert.EqualValues(t, 1, p.creates.Load())
}

func TestRedecideAfterAWriteThatDidNotLand(t *testing.T) {
	for name, meanwhile := range map[string]func(t *testing.T, h *Handler, store *memStore, w *Write){
		"written, answer lost": func(t *testing.T, _ *Handler, store *memStore, w *Write) {
			_, ok, err := store.Put(context.Background(), w.Key, w.Value, w.Revision, w.Expires)
			require.True(t, ok)
			require.NoError(t, err)
		},
		"another delivery settled the claim": func(t *testing.T, _ *Handler, store *memStore, w *Write) {
			rec := store.record(t, "c-1")
			rec.LastFailure = &contact.Upstream{Code: "noise"}
			val, err := record.Encode(&rec, "")
			require.NoError(t, err)
			_, ok, err := store.Put(context.Background(), w.Key, val, w.Revision, w.Expires)
			require.True(t, ok)
			require.NoError(t, err)
		},
		"nothing happened": func(*testing.T, *Handler, *memStore, *Write) {},
	} {
		t.Run(name, func(t *testing.T) {
			p, store := &fakeProvider{}, newMemStore()
			h := newTestHandler(t, p, store, nil)
			first := h.Decide(context.Background(), msg(1))
			require.NotNil(t, first.Write)
			meanwhile(t, h, store, first.Write)

			dec := h.Redecide(context.Background(), msg(1), first)
			require.Equal(t, Ack, dec.Action)
			assert.Equal(t, first.Event.ID, dec.Event.ID, "the same outcome, under the same id")
			assert.Equal(t, "ct-1", decodeData[contact.Created](t, dec.Event).ContactID)
			if dec.Write != nil {
				_, ok, err := store.Put(context.Background(), dec.Write.Key, dec.Write.Value, dec.Write.Revision, dec.Write.Expires)
				require.NoError(t, err)
				require.True(t, ok, "the write is made against the record as it is now")
			}
			rec := store.record(t, "c-1")
			require.NotNil(t, rec.Contact, "the contact this delivery created is recorded")
			assert.False(t, rec.Unsettled)
			assert.NotEmpty(t, rec.Generations[""].Outcome)
			assert.EqualValues(t, 1, p.creates.Load(), "deciding again calls nothing")
		})
	}
}

func TestHandleRetriesTransientFailuresInProcess(t *testing.T) {
	p := &fakeProvider{create: func(n int) (provider.Contact, error) {
		if n < 3 {
			return provider.Contact{}, transient("ISE")
		}
		return provider.Contact{ID: "ct-3"}, nil
	}}
	h := newTestHandler(t, p, newMemStore(), func(c *Config) { c.RetryMaxElapsed = time.Second })
	out := h.Decide(context.Background(), msg(1))
	require.Equal(t, Ack, out.Action)
	assert.Equal(t, 3, decodeData[contact.Created](t, out.Event).Attempts, "attempts counts every create call")
}

func TestHandleHonoursRetryAfter(t *testing.T) {
	p := &fakeProvider{create: func(n int) (provider.Contact, error) {
		if n == 1 {
			return provider.Contact{}, &provider.Error{Class: provider.Transient, HTTPStatus: 429, RetryAfter: 80 * time.Millisecond}
		}
		return provider.Contact{ID: "ct"}, nil
	}}
	h := newTestHandler(t, p, newMemStore(), func(c *Config) { c.RetryMaxElapsed = time.Second })
	start := time.Now()
	out := h.Decide(context.Background(), msg(1))
	require.Equal(t, Ack, out.Action)
	assert.GreaterOrEqual(t, time.Since(start), 80*time.Millisecond, "the second try waits for Retry-After")
}

func TestHandlePermanentFailureIsRejected(t *testing.T) {
	p := &fakeProvider{create: func(int) (provider.Contact, error) {
		return provider.Contact{}, &provider.Error{Provider: "fake", Op: "create", Class: provider.Permanent, HTTPStatus: 200, Code: "RPI", Message: "invalid tag", RequestID: "r-9"}
	}}
	h := newTestHandler(t, p, newMemStore(), nil)
	out := h.Decide(context.Background(), msg(1))
	require.Equal(t, Ack, out.Action)
	d := decodeData[contact.Failed](t, out.Event)
	assert.Equal(t, contact.ReasonRejected, d.Reason)
	assert.False(t, d.Retryable)
	assert.Equal(t, &contact.Upstream{HTTPStatus: 200, Code: "RPI", Message: "invalid tag", RequestID: "r-9"}, d.Upstream)
	assert.JSONEq(t, body, string(d.Command), "the failed event carries the command")
	assert.EqualValues(t, 1, p.creates.Load(), "a permanent failure is not retried")
}

func TestHandleReconcilesAmbiguousCreate(t *testing.T) {
	p := &fakeProvider{
		create: func(int) (provider.Contact, error) { return provider.Contact{}, ambiguous() },
		lookup: func() (provider.Contact, bool, error) {
			return provider.Contact{ID: "ct-found", Upstream: map[string]any{"reconciled": true}}, true, nil
		},
	}
	h := newTestHandler(t, p, newMemStore(), func(c *Config) { c.RetryMaxElapsed = time.Second })
	out := h.Decide(context.Background(), msg(1))
	require.Equal(t, Ack, out.Action)
	d := decodeData[contact.Created](t, out.Event)
	assert.Equal(t, "ct-found", d.ContactID)
	assert.Equal(t, true, d.Upstream["reconciled"])
	assert.EqualValues(t, 1, p.creates.Load(), "no second create after an ambiguous one whose contact exists")
	assert.EqualValues(t, 1, p.lookups.Load())
}

func TestHandleCreatesAgainWhenLookupFindsNothing(t *testing.T) {
	p := &fakeProvider{create: func(n int) (provider.Contact, error) {
		if n == 1 {
			return provider.Contact{}, ambiguous()
		}
		return provider.Contact{ID: "ct-2"}, nil
	}}
	h := newTestHandler(t, p, newMemStore(), func(c *Config) { c.RetryMaxElapsed = time.Second })
	out := h.Decide(context.Background(), msg(1))
	require.Equal(t, Ack, out.Action)
	assert.Equal(t, "ct-2", decodeData[contact.Created](t, out.Event).ContactID)
	assert.EqualValues(t, 1, p.lookups.Load(), "looked up before the second create")
}

func TestHandleCrashDuringCreateIsReconciledOnRedelivery(t *testing.T) {
	for name, rec := range map[string]record.Record{
		"version 2 claim": {CommandID: "c-1", Unsettled: true, InFlight: true, HoldMillis: 3000,
			Generations: map[string]*record.Generation{"": {Attempts: 1}}},
		"version 1 claim, its time long past": {CommandID: "c-1", Unsettled: true, InFlightUntil: time.Unix(0, 0),
			Generations: map[string]*record.Generation{"": {Attempts: 1}}},
	} {
		t.Run(name, func(t *testing.T) {
			store := newMemStore()
			// A record left by a process that died during its create call.
			val, _ := json.Marshal(rec)
			_, _, _ = store.Put(context.Background(), record.Key("c-1"), val, 0, true)

			clock := newFakeClock()
			p := &fakeProvider{lookup: func() (provider.Contact, bool, error) { return provider.Contact{ID: "ct-0"}, true, nil }}
			h := newTestHandler(t, p, store, func(c *Config) { c.Now = clock.Now })
			out := h.Decide(context.Background(), msg(2))
			require.Equal(t, Retry, out.Action, "a claim seen for the first time is waited out: its call may be under way")
			assert.Equal(t, 3*time.Second, out.Delay, "for one hold (call timeout 1s + 2s), on this instance's clock")
			assert.Zero(t, p.lookups.Load()+p.creates.Load())

			clock.Advance(3 * time.Second)
			out = h.Decide(context.Background(), msg(3))
			require.Equal(t, Ack, out.Action, "one hold after it was first seen, the claim is taken for a dead one")
			assert.Equal(t, "ct-0", decodeData[contact.Created](t, out.Event).ContactID)
			assert.Zero(t, p.creates.Load(), "the contact created before the crash is found, not created again")
		})
	}
}

func TestHandlePastLastDelivery(t *testing.T) {
	tests := []struct {
		name     string
		found    bool
		wantType string
	}{
		{"contact found", true, contact.SubjectCreated},
		{"nothing found", false, contact.SubjectFailed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			store := newMemStore()
			rec := record.Record{CommandID: "c-1", Unsettled: true, Generations: map[string]*record.Generation{"": {Attempts: 4}}}
			val, _ := json.Marshal(rec)
			_, _, _ = store.Put(context.Background(), record.Key("c-1"), val, 0, true)
			p := &fakeProvider{lookup: func() (provider.Contact, bool, error) { return provider.Contact{ID: "ct"}, tt.found, nil }}
			h := newTestHandler(t, p, store, nil)

			out := h.Decide(context.Background(), msg(4)) // MaxDeliver is 3
			require.Equal(t, Ack, out.Action)
			assert.Equal(t, tt.wantType, out.Event.Type)
			assert.Zero(t, p.creates.Load(), "past its last delivery a command is settled without a create")
			if !tt.found {
				d := decodeData[contact.Failed](t, out.Event)
				assert.Equal(t, contact.ReasonExhausted, d.Reason)
				assert.Equal(t, 4, d.Attempts)
			}
		})
	}
}

func TestHandleBadInputIsTerminated(t *testing.T) {
	tests := []struct {
		name       string
		body       string
		msgID      string
		reason     contact.Reason
		commandID  string
		errorField string
	}{
		{"malformed", "not json", "", contact.ReasonMalformed, "CONTACT_COMMANDS:9", ""},
		{"malformed keeps the header id", "[1]", "hdr-1", contact.ReasonMalformed, "hdr-1", ""},
		{"invalid", `{"commandId":"c-9","name":"x","email":"bad","mobile":"9876543210","tagId":"t"}`, "", contact.ReasonInvalid, "c-9", "email"},
		{"wrong type", `{"commandId":"c-9","name":"x","email":"a@b.io","mobile":9876543210,"tagId":"t"}`, "", contact.ReasonInvalid, "c-9", "mobile"},
		{"bad command id falls back", `{"commandId":"","name":"x","email":"a@b.io","mobile":"9876543210","tagId":"t"}`, "", contact.ReasonInvalid, "CONTACT_COMMANDS:9", "commandId"},
		{"unknown provider", `{"commandId":"c-9","provider":"acme","name":"x","email":"a@b.io","mobile":"9876543210","tagId":"t"}`, "", contact.ReasonUnroutable, "c-9", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := &fakeProvider{}
			h := newTestHandler(t, p, newMemStore(), nil)
			out := h.Decide(context.Background(), Message{Body: []byte(tt.body), MsgID: tt.msgID, Stream: "CONTACT_COMMANDS", Sequence: 9, Delivery: 1})
			require.Equal(t, Term, out.Action, "bad input is terminated")
			d := decodeData[contact.Failed](t, out.Event)
			assert.Equal(t, tt.reason, d.Reason)
			assert.Equal(t, tt.commandID, d.CommandID)
			assert.False(t, d.Retryable)
			assert.NotEmpty(t, d.Message)
			if tt.errorField != "" {
				require.NotEmpty(t, d.Errors)
				assert.Equal(t, tt.errorField, d.Errors[0].Field)
			}
			if tt.reason == contact.ReasonMalformed {
				assert.Equal(t, tt.body, string(d.CommandRaw), "a malformed body is carried raw")
			} else {
				assert.JSONEq(t, tt.body, string(d.Command), "the command is carried for repair")
			}
			assert.Zero(t, p.creates.Load(), "bad input never reaches a provider")
		})
	}
}

func TestHandleNoDefaultProvider(t *testing.T) {
	h := newTestHandler(t, &fakeProvider{}, newMemStore(), func(c *Config) { c.DefaultProvider = "" })
	out := h.Decide(context.Background(), msg(1))
	require.Equal(t, Retry, out.Action, "handed back for an instance that has a default provider")
	assert.Nil(t, out.Event)
	out = h.Decide(context.Background(), msg(3))
	require.Equal(t, Term, out.Action, "on its last delivery, nobody took it")
	d := decodeData[contact.Failed](t, out.Event)
	assert.Equal(t, contact.ReasonUnroutable, d.Reason)
	assert.Contains(t, d.Message, "fake", "the message names the enabled providers")
	assert.Contains(t, d.Message, "3 deliveries")
}

func TestHandleProviderEnabledElsewhere(t *testing.T) {
	p := &fakeProvider{}
	h := newTestHandler(t, p, newMemStore(), func(c *Config) { c.KnownProviders = []string{"fake", "other"} })
	other := []byte(`{"commandId":"c-2","provider":"other","name":"Jane","email":"jane@example.com","mobile":"9876543210","tagId":"t"}`)
	for delivery := 1; delivery < 3; delivery++ {
		out := h.Decide(context.Background(), Message{Body: other, Delivery: delivery})
		require.Equal(t, Retry, out.Action, "delivery %d: a provider this build knows is left to an instance that has it", delivery)
		assert.Nil(t, out.Write, "nothing is recorded for it")
	}
	out := h.Decide(context.Background(), Message{Body: other, Delivery: 3})
	require.Equal(t, Term, out.Action)
	assert.Equal(t, contact.ReasonUnroutable, decodeData[contact.Failed](t, out.Event).Reason)

	unknown := []byte(`{"commandId":"c-3","provider":"acme","name":"Jane","email":"jane@example.com","mobile":"9876543210","tagId":"t"}`)
	out = h.Decide(context.Background(), Message{Body: unknown, Delivery: 1})
	require.Equal(t, Term, out.Action, "a provider no build knows fails at once")
	assert.Contains(t, decodeData[contact.Failed](t, out.Event).Message, "known providers: fake, other")
	assert.Zero(t, p.creates.Load())
}

func TestHandleStoreTroubleRetriesWithoutDeciding(t *testing.T) {
	store := newMemStore()
	store.fail = errors.New("nats: timeout")
	p := &fakeProvider{}
	h := newTestHandler(t, p, store, nil)
	out := h.Decide(context.Background(), msg(3)) // even on the last delivery
	assert.Equal(t, Retry, out.Action, "a record that cannot be written decides nothing")
	assert.Nil(t, out.Event)
	assert.Zero(t, p.creates.Load(), "no create without a claimed record")
}

func TestHandleShutdownInterruptsBackoff(t *testing.T) {
	p := &fakeProvider{create: func(int) (provider.Contact, error) { return provider.Contact{}, transient("ISE") }}
	h := newTestHandler(t, p, newMemStore(), func(c *Config) {
		c.RetryInitialInterval, c.RetryMaxInterval, c.RetryMaxElapsed = time.Minute, time.Minute, time.Hour
	})
	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(50*time.Millisecond, cancel)
	start := time.Now()
	out := h.Decide(ctx, msg(1))
	assert.Equal(t, Retry, out.Action)
	assert.Zero(t, out.Delay, "a command interrupted by shutdown is handed back at once")
	assert.Less(t, time.Since(start), 10*time.Second, "the minute-long backoff wait was interrupted")
}

func TestHandleBusyOnLastDeliveryWaitsForTheHolder(t *testing.T) {
	store := newMemStore()
	// Another delivery holds the create call.
	rec := record.Record{Version: record.Version, CommandID: "c-1", Unsettled: true, InFlight: true, HoldMillis: 3000,
		Generations: map[string]*record.Generation{"": {Attempts: 1}}}
	val, _ := json.Marshal(rec)
	_, _, _ = store.Put(context.Background(), record.Key("c-1"), val, 0, true)
	p := &fakeProvider{}
	clock := newFakeClock()
	h := newTestHandler(t, p, store, func(c *Config) { c.Now = clock.Now })

	for i, delivery := range []int{3, 4} { // the last, and one past it
		out := h.Decide(context.Background(), msg(delivery))
		assert.Equal(t, Retry, out.Action, "delivery %d: a held command is not exhausted", delivery)
		assert.Equal(t, 3*time.Second-time.Duration(i)*time.Second, out.Delay, "delivery %d: it comes back when the hold ends", delivery)
		clock.Advance(time.Second)
	}
	assert.Zero(t, p.creates.Load()+p.lookups.Load(), "nothing is called while another delivery holds the call")
}

func newFakeClock() *fakeclock.Clock {
	return fakeclock.New(time.Date(2026, 11, 21, 10, 0, 0, 0, time.UTC))
}

func TestRecordRoundTrip(t *testing.T) {
	store := newMemStore()
	rs := records{store: store}
	ev1, _ := events.NewEvent("", contact.SubjectFailed, "c-1", "", time.Now(), contact.Failed{CommandID: "c-1", Message: "line one\nline two"})
	ev2, _ := events.NewEvent("", contact.SubjectCreated, "c-1", "g2", time.Now(), contact.Created{CommandID: "c-1"})
	rec := record.Record{CommandID: "c-1", Contact: &record.StoredContact{Provider: "p", ID: "x", Upstream: map[string]any{"userId": json.Number("12345678901234567890")}},
		Generations: map[string]*record.Generation{
			"":   {Attempts: 3, Outcome: ev1.AppendJSON(nil), Reason: contact.ReasonExhausted},
			"g2": {Attempts: 0, Outcome: ev2.AppendJSON(nil)},
			"g3": {Attempts: 1},
		}}
	_, err := rs.save(context.Background(), rec, 0)
	require.NoError(t, err)
	got, rev, err := rs.load(context.Background(), "c-1")
	require.NoError(t, err)
	require.NotZero(t, rev)
	assert.Equal(t, rec.Generations[""].Outcome, got.Generations[""].Outcome, "outcomes come back byte for byte")
	assert.Equal(t, rec.Generations["g2"].Outcome, got.Generations["g2"].Outcome)
	assert.Empty(t, got.Generations["g3"].Outcome)
	assert.Equal(t, 3, got.Generations[""].Attempts)
	assert.Equal(t, json.Number("12345678901234567890"), got.Contact.Upstream["userId"], "big ids stay exact")
	assert.NotNil(t, rec.Generations[""].Outcome, "saving leaves the caller's record as it was")
}

// TestExhaustedSaysItsCreateCalls: an exhausted failure's message counts
// deliveries and create calls apart, and its create calls are its
// attempts, the same figure everywhere.
func TestExhaustedSaysItsCreateCalls(t *testing.T) {
	down := func(int) (provider.Contact, error) { return provider.Contact{}, transient("ISE") }
	t.Run("calls made", func(t *testing.T) {
		p := &fakeProvider{create: down}
		h := newTestHandler(t, p, newMemStore(), func(c *Config) { c.MaxDeliver = 1 })
		out := h.Decide(context.Background(), msg(1))
		require.Equal(t, contact.ReasonExhausted, out.Reason)
		d := decodeData[contact.Failed](t, out.Event)
		require.Greater(t, d.Attempts, 1, "retried within the delivery")
		assert.EqualValues(t, p.creates.Load(), d.Attempts, "attempts are the create calls")
		assert.Contains(t, d.Message, fmt.Sprintf("transient failures outlasted 1 delivery and %d create calls: ", d.Attempts))
	})
	t.Run("no call made", func(t *testing.T) {
		p := &fakeProvider{create: down}
		h := newTestHandler(t, p, newMemStore(), func(c *Config) {
			c.MaxDeliver = 1
			c.Protection = map[string]Protection{"fake": {BreakerFailures: 1, BreakerOpenFor: time.Hour}}
		})
		h.Decide(context.Background(), msgFor("c-opens-the-circuit"))
		calls := p.creates.Load()
		out := h.Decide(context.Background(), msg(1))
		require.Equal(t, contact.ReasonExhausted, out.Reason)
		d := decodeData[contact.Failed](t, out.Event)
		assert.Zero(t, d.Attempts)
		assert.Equal(t, calls, p.creates.Load(), "no create call")
		assert.Contains(t, d.Message, "transient failures outlasted 1 delivery in which no create call was made: fake circuit open until")
	})
}
