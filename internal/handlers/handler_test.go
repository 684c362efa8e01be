package handlers

import (
	"context"
	"encoding/json"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/contactrelay/contactrelay/internal/clients/provider"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/contactrelay/contactrelay/internal/events"
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

func (s *memStore) Put(_ context.Context, key string, val []byte, rev uint64) (uint64, bool, error) {
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

func (s *memStore) record(t testing.TB, commandID string) Record {
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

func (p *fakeProvider) Validate(events.Command) []events.FieldError { return nil }

func (p *fakeProvider) Create(context.Context, events.Command) (provider.Contact, error) {
	n := int(p.creates.Add(1))
	if p.create == nil {
		return provider.Contact{ID: "ct-1", Upstream: map[string]any{"contactId": "ct-1"}}, nil
	}
	return p.create(n)
}

func (p *fakeProvider) Lookup(context.Context, events.Command) (provider.Contact, bool, error) {
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

func decodeData[T any](t testing.TB, ev *events.Event) T {
	t.Helper()
	require.NotNil(t, ev, "an event was decided")
	var d T
	require.NoError(t, json.Unmarshal(ev.Data, &d))
	return d
}

func TestHandleCreated(t *testing.T) {
	p, store := &fakeProvider{}, newMemStore()
	h := newTestHandler(t, p, store, nil)

	out := h.Handle(context.Background(), msg(1))
	require.Equal(t, Ack, out.Action)
	assert.Equal(t, events.SubjectCreated, out.Event.Type)
	assert.Equal(t, events.EventID("c-1", "", events.SubjectCreated), out.Event.ID)
	d := decodeData[events.Created](t, out.Event)
	assert.Equal(t, events.Created{CommandID: "c-1", Provider: "fake", ContactID: "ct-1",
		Upstream: map[string]any{"contactId": "ct-1"}, Attempts: 1, Metadata: map[string]string{"k": "v"}}, d)

	rec := store.record(t, "c-1")
	require.NotNil(t, rec.Contact)
	assert.Equal(t, "ct-1", rec.Contact.ID)
	assert.False(t, rec.Unsettled, "a settled create leaves the record settled")

	again := h.Handle(context.Background(), msg(2))
	assert.Equal(t, out.Event, again.Event, "a redelivery repeats the recorded event")
	assert.Equal(t, string(out.EventJSON), string(again.EventJSON), "byte for byte")
	assert.JSONEq(t, string(mustJSON(t, out.Event)), string(out.EventJSON), "the bytes are the event's encoding")
	assert.EqualValues(t, 1, p.creates.Load(), "a redelivery makes no second create call")
}

func TestStartLeavesTheOutcomeToFinish(t *testing.T) {
	p, store := &fakeProvider{}, newMemStore()
	h := newTestHandler(t, p, store, nil)

	out := h.Start(context.Background(), msg(1))
	require.NotNil(t, out.Finish, "a created contact's outcome is left to Finish")
	assert.Nil(t, out.Event)
	rec := store.record(t, "c-1")
	assert.True(t, rec.Unsettled, "until Finish, the record holds only the claim")
	assert.Nil(t, rec.Generations[""].Outcome)

	// Meanwhile a redelivery elsewhere finds the claim, not an outcome.
	busy := h.Start(context.Background(), msg(2))
	assert.Equal(t, Retry, busy.Action, "another delivery waits for the call in flight")

	final := out.Finish(context.Background())
	require.Equal(t, Ack, final.Action)
	assert.Nil(t, final.Finish)
	assert.Equal(t, "ct-1", decodeData[events.Created](t, final.Event).ContactID)
	rec = store.record(t, "c-1")
	assert.False(t, rec.Unsettled)
	assert.Equal(t, string(final.EventJSON), string(rec.Generations[""].Outcome), "Finish recorded the event it returns")
	assert.EqualValues(t, 1, p.creates.Load())
}

// asyncStore is a memStore that also writes without waiting; answer, when
// set, decides how the next asynchronous write goes: it may call write,
// and returns what the writer is told.
type asyncStore struct {
	*memStore
	answer func(write func() (uint64, bool, error)) (uint64, bool, error)
	async  atomic.Int32
}

func (s *asyncStore) PutAsync(key string, val []byte, rev uint64, done func(uint64, bool, error)) {
	s.async.Add(1)
	write := func() (uint64, bool, error) { return s.Put(context.Background(), key, val, rev) }
	answer := s.answer
	s.answer = nil
	go func() {
		if answer == nil {
			done(write())
			return
		}
		done(answer(write))
	}()
}

func TestFinishAsyncRecordsWithoutWaiting(t *testing.T) {
	for name, answer := range map[string]func(func() (uint64, bool, error)) (uint64, bool, error){
		"written":  nil,
		"conflict": func(func() (uint64, bool, error)) (uint64, bool, error) { return 0, false, nil },
		"store trouble": func(func() (uint64, bool, error)) (uint64, bool, error) {
			return 0, false, errors.New("timeout")
		},
		"written, answer lost": func(write func() (uint64, bool, error)) (uint64, bool, error) {
			_, _, _ = write()
			return 0, false, errors.New("timeout waiting for ack")
		},
	} {
		t.Run(name, func(t *testing.T) {
			store := &asyncStore{memStore: newMemStore(), answer: answer}
			p := &fakeProvider{}
			h := newTestHandler(t, p, store, nil)
			out := h.Start(context.Background(), msg(1))
			require.NotNil(t, out.FinishAsync, "an AsyncStore gets FinishAsync")
			got := make(chan Outcome, 1)
			out.FinishAsync(context.Background(), func(o Outcome) { got <- o })
			var final Outcome
			select {
			case final = <-got:
			case <-time.After(5 * time.Second):
				t.Fatal("done was not called")
			}
			require.Equal(t, Ack, final.Action)
			assert.Equal(t, events.EventID("c-1", "", events.SubjectCreated), final.Event.ID)
			assert.Equal(t, "ct-1", decodeData[events.Created](t, final.Event).ContactID)
			rec := store.record(t, "c-1")
			assert.False(t, rec.Unsettled)
			assert.Equal(t, string(final.EventJSON), string(rec.Generations[""].Outcome), "the event it returns is the one recorded")
			assert.EqualValues(t, 1, store.async.Load(), "one write without waiting")
			assert.EqualValues(t, 1, p.creates.Load())

			again := h.Handle(context.Background(), msg(2))
			assert.Equal(t, string(final.EventJSON), string(again.EventJSON), "a redelivery repeats it")
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
	out := h.Handle(context.Background(), msg(1))
	require.Equal(t, Ack, out.Action)
	assert.Equal(t, 3, decodeData[events.Created](t, out.Event).Attempts, "attempts counts every create call")
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
	out := h.Handle(context.Background(), msg(1))
	require.Equal(t, Ack, out.Action)
	assert.GreaterOrEqual(t, time.Since(start), 80*time.Millisecond, "the second try waits for Retry-After")
}

func TestHandlePermanentFailureIsRejected(t *testing.T) {
	p := &fakeProvider{create: func(int) (provider.Contact, error) {
		return provider.Contact{}, &provider.Error{Provider: "fake", Op: "create", Class: provider.Permanent, HTTPStatus: 200, Code: "RPI", Message: "invalid tag", RequestID: "r-9"}
	}}
	h := newTestHandler(t, p, newMemStore(), nil)
	out := h.Handle(context.Background(), msg(1))
	require.Equal(t, Ack, out.Action)
	d := decodeData[events.Failed](t, out.Event)
	assert.Equal(t, events.ReasonRejected, d.Reason)
	assert.False(t, d.Retryable)
	assert.Equal(t, &events.Upstream{HTTPStatus: 200, Code: "RPI", Message: "invalid tag", RequestID: "r-9"}, d.Upstream)
	assert.JSONEq(t, body, string(d.Command), "the failed event carries the command")
	assert.EqualValues(t, 1, p.creates.Load(), "a permanent failure is not retried")
}

func TestHandleExhaustion(t *testing.T) {
	p := &fakeProvider{create: func(int) (provider.Contact, error) { return provider.Contact{}, transient("ISE") }}
	store := newMemStore()
	h := newTestHandler(t, p, store, func(c *Config) { c.RedeliveryDelay = 7 * time.Second })

	out := h.Handle(context.Background(), msg(1))
	assert.Equal(t, Retry, out.Action, "a spent budget before the last delivery asks for redelivery")
	assert.Equal(t, 7*time.Second, out.Delay)
	assert.Nil(t, out.Event)

	out = h.Handle(context.Background(), msg(3))
	require.Equal(t, Ack, out.Action, "the last delivery decides")
	d := decodeData[events.Failed](t, out.Event)
	assert.Equal(t, events.ReasonExhausted, d.Reason)
	assert.True(t, d.Retryable)
	assert.Equal(t, int(p.creates.Load()), d.Attempts, "attempts counts the calls of every delivery")
	assert.Equal(t, "ISE", d.Upstream.Code)

	calls := p.creates.Load()
	again := h.Handle(context.Background(), msg(4))
	assert.Equal(t, out.Event, again.Event, "a later delivery repeats the outcome")
	assert.Equal(t, calls, p.creates.Load())
}

func TestHandleReconcilesAmbiguousCreate(t *testing.T) {
	p := &fakeProvider{
		create: func(int) (provider.Contact, error) { return provider.Contact{}, ambiguous() },
		lookup: func() (provider.Contact, bool, error) {
			return provider.Contact{ID: "ct-found", Upstream: map[string]any{"reconciled": true}}, true, nil
		},
	}
	h := newTestHandler(t, p, newMemStore(), func(c *Config) { c.RetryMaxElapsed = time.Second })
	out := h.Handle(context.Background(), msg(1))
	require.Equal(t, Ack, out.Action)
	d := decodeData[events.Created](t, out.Event)
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
	out := h.Handle(context.Background(), msg(1))
	require.Equal(t, Ack, out.Action)
	assert.Equal(t, "ct-2", decodeData[events.Created](t, out.Event).ContactID)
	assert.EqualValues(t, 1, p.lookups.Load(), "looked up before the second create")
}

func TestHandleCrashDuringCreateIsReconciledOnRedelivery(t *testing.T) {
	store := newMemStore()
	now := time.Date(2026, 11, 21, 10, 0, 0, 0, time.UTC)
	// A record left by a process that died during its create call.
	rec := Record{CommandID: "c-1", Unsettled: true, InFlightUntil: now.Add(-time.Second),
		Generations: map[string]*Generation{"": {Attempts: 1}}}
	val, _ := json.Marshal(rec)
	_, _, _ = store.Put(context.Background(), RecordKey("c-1"), val, 0)

	p := &fakeProvider{lookup: func() (provider.Contact, bool, error) { return provider.Contact{ID: "ct-0"}, true, nil }}
	h := newTestHandler(t, p, store, func(c *Config) { c.Now = func() time.Time { return now } })
	out := h.Handle(context.Background(), msg(2))
	require.Equal(t, Ack, out.Action)
	assert.Equal(t, "ct-0", decodeData[events.Created](t, out.Event).ContactID)
	assert.Zero(t, p.creates.Load(), "the contact created before the crash is found, not created again")
}

func TestHandlePastLastDelivery(t *testing.T) {
	tests := []struct {
		name     string
		found    bool
		wantType string
	}{
		{"contact found", true, events.SubjectCreated},
		{"nothing found", false, events.SubjectFailed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			store := newMemStore()
			rec := Record{CommandID: "c-1", Unsettled: true, Generations: map[string]*Generation{"": {Attempts: 4}}}
			val, _ := json.Marshal(rec)
			_, _, _ = store.Put(context.Background(), RecordKey("c-1"), val, 0)
			p := &fakeProvider{lookup: func() (provider.Contact, bool, error) { return provider.Contact{ID: "ct"}, tt.found, nil }}
			h := newTestHandler(t, p, store, nil)

			out := h.Handle(context.Background(), msg(4)) // MaxDeliver is 3
			require.Equal(t, Ack, out.Action)
			assert.Equal(t, tt.wantType, out.Event.Type)
			assert.Zero(t, p.creates.Load(), "past its last delivery a command is settled without a create")
			if !tt.found {
				d := decodeData[events.Failed](t, out.Event)
				assert.Equal(t, events.ReasonExhausted, d.Reason)
				assert.Equal(t, 4, d.Attempts)
			}
		})
	}
}

func TestHandleReplayIsANewGeneration(t *testing.T) {
	p, store := &fakeProvider{}, newMemStore()
	h := newTestHandler(t, p, store, nil)
	first := h.Handle(context.Background(), msg(1))
	require.Equal(t, Ack, first.Action)

	replay := msg(1)
	replay.Generation = "failed-event-id"
	out := h.Handle(context.Background(), replay)
	require.Equal(t, Ack, out.Action)
	assert.Equal(t, events.SubjectCreated, out.Event.Type)
	assert.Equal(t, events.EventID("c-1", "failed-event-id", events.SubjectCreated), out.Event.ID, "a new generation, a new id")
	assert.NotEqual(t, first.Event.ID, out.Event.ID)
	d := decodeData[events.Created](t, out.Event)
	assert.Equal(t, "failed-event-id", d.ReplayOf)
	assert.Equal(t, 0, d.Attempts, "no create call in the replay's generation")
	assert.EqualValues(t, 1, p.creates.Load(), "the contact is not created twice")
}

func TestHandleConcurrentDeliveriesCreateOnce(t *testing.T) {
	release := make(chan struct{})
	p := &fakeProvider{create: func(int) (provider.Contact, error) {
		<-release
		return provider.Contact{ID: "ct-1"}, nil
	}}
	store := newMemStore()
	h := newTestHandler(t, p, store, func(c *Config) { c.RetryMaxElapsed = 5 * time.Second })

	const n = 8
	outs := make([]Outcome, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			m := msg(1)
			m.Sequence = uint64(i + 1) // the same commandId published n times
			outs[i] = h.Handle(context.Background(), m)
		}()
	}
	time.Sleep(50 * time.Millisecond)
	close(release)
	wg.Wait()
	assert.EqualValues(t, 1, p.creates.Load(), "one create call for one commandId")
	for i, out := range outs {
		require.Equal(t, Ack, out.Action, "delivery %d", i)
		assert.Equal(t, outs[0].Event.ID, out.Event.ID, "one outcome per generation")
	}
}

func TestHandleBadInputIsTerminated(t *testing.T) {
	tests := []struct {
		name       string
		body       string
		msgID      string
		reason     events.Reason
		commandID  string
		errorField string
	}{
		{"malformed", "not json", "", events.ReasonMalformed, "CONTACT_COMMANDS:9", ""},
		{"malformed keeps the header id", "[1]", "hdr-1", events.ReasonMalformed, "hdr-1", ""},
		{"invalid", `{"commandId":"c-9","name":"x","email":"bad","mobile":"9876543210","tagId":"t"}`, "", events.ReasonInvalid, "c-9", "email"},
		{"wrong type", `{"commandId":"c-9","name":"x","email":"a@b.io","mobile":9876543210,"tagId":"t"}`, "", events.ReasonInvalid, "c-9", "mobile"},
		{"bad command id falls back", `{"commandId":"","name":"x","email":"a@b.io","mobile":"9876543210","tagId":"t"}`, "", events.ReasonInvalid, "CONTACT_COMMANDS:9", "commandId"},
		{"unknown provider", `{"commandId":"c-9","provider":"acme","name":"x","email":"a@b.io","mobile":"9876543210","tagId":"t"}`, "", events.ReasonUnroutable, "c-9", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := &fakeProvider{}
			h := newTestHandler(t, p, newMemStore(), nil)
			out := h.Handle(context.Background(), Message{Body: []byte(tt.body), MsgID: tt.msgID, Stream: "CONTACT_COMMANDS", Sequence: 9, Delivery: 1})
			require.Equal(t, Term, out.Action, "bad input is terminated")
			d := decodeData[events.Failed](t, out.Event)
			assert.Equal(t, tt.reason, d.Reason)
			assert.Equal(t, tt.commandID, d.CommandID)
			assert.False(t, d.Retryable)
			assert.NotEmpty(t, d.Message)
			if tt.errorField != "" {
				require.NotEmpty(t, d.Errors)
				assert.Equal(t, tt.errorField, d.Errors[0].Field)
			}
			if tt.reason == events.ReasonMalformed {
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
	out := h.Handle(context.Background(), msg(1))
	require.Equal(t, Term, out.Action)
	d := decodeData[events.Failed](t, out.Event)
	assert.Equal(t, events.ReasonUnroutable, d.Reason)
	assert.Contains(t, d.Message, "fake", "the message names the enabled providers")
}

func TestHandleStoreTroubleRetriesWithoutDeciding(t *testing.T) {
	store := newMemStore()
	store.fail = errors.New("nats: timeout")
	p := &fakeProvider{}
	h := newTestHandler(t, p, store, nil)
	out := h.Handle(context.Background(), msg(3)) // even on the last delivery
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
	out := h.Handle(ctx, msg(1))
	assert.Equal(t, Retry, out.Action)
	assert.Zero(t, out.Delay, "a command interrupted by shutdown is handed back at once")
	assert.Less(t, time.Since(start), 10*time.Second, "the minute-long backoff wait was interrupted")
}

func TestHandleBusyOnLastDeliveryWaitsForTheHolder(t *testing.T) {
	store := newMemStore()
	now := time.Date(2026, 11, 21, 10, 0, 0, 0, time.UTC)
	// Another delivery holds the create call for two more seconds.
	rec := Record{CommandID: "c-1", Unsettled: true, InFlightUntil: now.Add(2 * time.Second),
		Generations: map[string]*Generation{"": {Attempts: 1}}}
	val, _ := json.Marshal(rec)
	_, _, _ = store.Put(context.Background(), RecordKey("c-1"), val, 0)
	p := &fakeProvider{}
	h := newTestHandler(t, p, store, func(c *Config) { c.Now = func() time.Time { return now } })

	for _, delivery := range []int{3, 4} { // the last, and one past it
		out := h.Handle(context.Background(), msg(delivery))
		assert.Equal(t, Retry, out.Action, "delivery %d: a held command is not exhausted", delivery)
		assert.Equal(t, 2*time.Second, out.Delay, "delivery %d: it comes back when the hold ends", delivery)
	}
	assert.Zero(t, p.creates.Load()+p.lookups.Load(), "nothing is called while another delivery holds the call")
}

func mustJSON(t testing.TB, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	require.NoError(t, err)
	return b
}

func TestRecordRoundTrip(t *testing.T) {
	store := newMemStore()
	rs := records{store: store}
	ev1, _ := events.NewEvent("", events.SubjectFailed, "c-1", "", time.Now(), events.Failed{CommandID: "c-1", Message: "line one\nline two"})
	ev2, _ := events.NewEvent("", events.SubjectCreated, "c-1", "g2", time.Now(), events.Created{CommandID: "c-1"})
	rec := Record{CommandID: "c-1", Contact: &StoredContact{Provider: "p", ID: "x", Upstream: map[string]any{"userId": json.Number("12345678901234567890")}},
		Generations: map[string]*Generation{
			"":   {Attempts: 3, Outcome: ev1.AppendJSON(nil), Reason: events.ReasonExhausted},
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
	assert.Zero(t, got.Generations[""].OutcomeLine, "the line numbers stay in storage")
	assert.NotNil(t, rec.Generations[""].Outcome, "saving leaves the caller's record as it was")
}
