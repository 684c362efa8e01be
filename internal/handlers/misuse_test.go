package handlers

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sony/gobreaker/v2"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/contactrelay/contactrelay/contact"
	"github.com/contactrelay/contactrelay/internal/clients/provider"
	"github.com/contactrelay/contactrelay/internal/events"
	"github.com/contactrelay/contactrelay/internal/fakeclock"
	"github.com/contactrelay/contactrelay/record"
	"github.com/contactrelay/contactrelay/rules"
)

func command(fields string) []byte {
	return []byte(`{"commandId":"crm-001",` + fields + `}`)
}

const jane = `"name":"Jane","email":"jane@example.com","mobile":"9876543210","tagId":"t"`

func TestConflictingContentUnderOneCommandID(t *testing.T) {
	p, store := &fakeProvider{}, newMemStore()
	h := newTestHandler(t, p, store, nil)
	first := h.Handle(context.Background(), Message{Body: command(jane + `,"metadata":{"k":"v"}`), MsgID: "m-1", Delivery: 1})
	require.Equal(t, Ack, first.Action)
	require.Equal(t, contact.SubjectCreated, first.Event.Type)
	recorded := store.record(t, "crm-001")

	tests := []struct {
		name     string
		body     []byte
		conflict bool
	}{
		{"same content, other white space, member order and metadata", []byte(`{ "tagId":"t", "mobile":"9876543210",
			"email":"jane@example.com", "name":"Jane", "commandId":"crm-001", "metadata":{"trace":"x"}}`), false},
		{"another email", command(`"name":"Jane","email":"jane.doe@example.com","mobile":"9876543210","tagId":"t"`), true},
		{"an invalid email", command(`"name":"Jane","email":"not-an-email","mobile":"9876543210","tagId":"t"`), true},
		{"an unknown provider", command(`"provider":"acme",` + jane), true},
		{"a wrong type", command(`"name":"Jane","email":"jane@example.com","mobile":9876543210,"tagId":"t"`), true},
		{"a malformed body", []byte(`{"commandId":"crm-001",`), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := Message{Body: tt.body, MsgID: "crm-001", Delivery: 1}
			if tt.name == "a malformed body" {
				// A malformed body's commandId is its Nats-Msg-Id.
				tt.conflict = true
			}
			out := h.Handle(context.Background(), m)
			if !tt.conflict {
				assert.Equal(t, first.Event.ID, out.Event.ID, "the same content repeats the outcome")
				assert.True(t, out.FromRecord)
				return
			}
			require.Equal(t, Term, out.Action)
			d := decodeData[contact.Failed](t, out.Event)
			assert.Equal(t, contact.ReasonConflict, d.Reason)
			assert.False(t, d.Retryable)
			assert.NotEqual(t, first.Event.ID, out.Event.ID, "a conflict is not the generation's outcome: its id differs")
			assert.Contains(t, d.Message, recorded.FirstUsed.Format(time.RFC3339), "it says when the commandId was first used")
			assert.NotContains(t, d.Message, "jane", "without echoing personal data")
			assert.Contains(t, d.Message, "its contact exists; use a new commandId for a new contact, and discard this failure",
				"the first command was created: there is no failure of it to repair")
			assert.Nil(t, out.Write, "nothing is recorded for a conflict")
			again := h.Handle(context.Background(), Message{Body: tt.body, MsgID: "crm-001", Delivery: 2})
			assert.Equal(t, out.Event.ID, again.Event.ID, "the same conflicting content gets the same id")
		})
	}
	assert.EqualValues(t, 1, p.creates.Load(), "no conflicting command reached the provider")
	after := store.record(t, "crm-001")
	assert.Equal(t, recorded.Generations[""].Outcome, after.Generations[""].Outcome, "the original outcome stays untouched")
	assert.Equal(t, recorded.Fingerprint, after.Fingerprint)
}

// When the first command failed, a conflict points to repairing it.
func TestConflictWithAFailedFirstCommandPointsToItsRepair(t *testing.T) {
	p, store := &fakeProvider{}, newMemStore()
	h := newTestHandler(t, p, store, nil)
	first := h.Handle(context.Background(), Message{Body: command(`"name":"Jane","email":"not-an-email","mobile":"9876543210","tagId":"t"`), MsgID: "crm-001", Delivery: 1})
	require.Equal(t, contact.ReasonInvalid, decodeData[contact.Failed](t, first.Event).Reason)
	store.record(t, "crm-001") // the failure is recorded
	out := h.Handle(context.Background(), Message{Body: command(jane), MsgID: "crm-001", Delivery: 1})
	d := decodeData[contact.Failed](t, out.Event)
	require.Equal(t, contact.ReasonConflict, d.Reason)
	assert.Contains(t, d.Message, "use a new commandId for a new contact, or replay the first command's failure with a repair to change it")
	assert.Zero(t, p.creates.Load())
}

func TestAReplayMayChangeContent(t *testing.T) {
	p := &fakeProvider{create: func(n int) (provider.Contact, error) {
		if n == 1 {
			return provider.Contact{}, &provider.Error{Class: provider.Permanent, Code: "RPI", Message: "bad tag"}
		}
		return provider.Contact{ID: "ct-2"}, nil
	}}
	store := newMemStore()
	h := newTestHandler(t, p, store, nil)
	failed := h.Handle(context.Background(), Message{Body: command(jane), Delivery: 1})
	require.Equal(t, contact.ReasonRejected, failed.Reason)

	repaired := Message{Body: command(`"name":"Jane","email":"jane@example.com","mobile":"9876543210","tagId":"t2"`),
		Generation: failed.Event.ID, Delivery: 1}
	out := h.Handle(context.Background(), repaired)
	require.Equal(t, Ack, out.Action)
	assert.Equal(t, contact.SubjectCreated, out.Event.Type, "a repaired replay is a new generation with its own content")

	// The original, re-sent unchanged, is answered with the command's
	// newest outcome: the repaired replay's.
	again := h.Handle(context.Background(), Message{Body: command(jane), Delivery: 1})
	assert.Equal(t, out.Event.ID, again.Event.ID)
}

func TestBadInputResentUnderASettledCommandIDRepeats(t *testing.T) {
	store := newMemStore()
	h := newTestHandler(t, &fakeProvider{}, store, nil)
	bad := Message{Body: command(`"name":"Jane","email":"nope","mobile":"9876543210","tagId":"t"`), Delivery: 1}
	first := h.Handle(context.Background(), bad)
	require.Equal(t, contact.ReasonInvalid, first.Reason)
	require.NotNil(t, store.record(t, "crm-001").Generations[""].Outcome, "bad input is recorded too")
	again := h.Handle(context.Background(), bad)
	assert.Equal(t, first.Event.ID, again.Event.ID, "the generation's one outcome, repeated")
	assert.Equal(t, string(first.EventJSON), string(again.EventJSON), "byte for byte, the command put back")
}

// TestInstancesThatDisagreeGiveOneOutcome runs two handlers on one store:
// one without a default provider (and with the provider not enabled), one
// with it. Whichever takes a delivery, the generation has one outcome.
func TestInstancesThatDisagreeGiveOneOutcome(t *testing.T) {
	store := newMemStore()
	p := &fakeProvider{}
	without := newTestHandler(t, &fakeProvider{}, store, func(c *Config) {
		c.Providers = map[string]Provider{"other": &fakeProvider{}}
		c.DefaultProvider = ""
		c.KnownProviders = []string{"fake", "other"}
	})
	with := newTestHandler(t, p, store, nil)
	noProvider := Message{Body: []byte(`{"commandId":"c-7",` + jane + `}`)}

	m := noProvider
	m.Delivery = 1
	out := without.Handle(context.Background(), m)
	require.Equal(t, Retry, out.Action, "an instance that cannot route it hands it back")
	m.Delivery = 2
	created := with.Handle(context.Background(), m)
	require.Equal(t, contact.SubjectCreated, created.Event.Type)
	m.Delivery = 3 // the last, at the instance without
	last := without.Handle(context.Background(), m)
	assert.Equal(t, created.Event.ID, last.Event.ID, "the recorded outcome wins over this instance's view")
	assert.Equal(t, string(created.EventJSON), string(last.EventJSON))
	assert.EqualValues(t, 1, p.creates.Load())
}

// TestClaimsDoNotTrustClocks runs two handlers on one store whose clocks
// disagree: the second's runs a minute ahead, then the first's jumps back
// a minute during its create call. A duplicate of the command reaches the
// second while the create is under way: one create, one outcome.
func TestClaimsDoNotTrustClocks(t *testing.T) {
	for name, skew := range map[string]func(first, second *fakeclock.Clock){
		"second instance a minute ahead":       func(_, second *fakeclock.Clock) { second.Advance(time.Minute) },
		"first instance's clock jumps back 1m": func(first, _ *fakeclock.Clock) { first.Advance(-time.Minute) },
		"both, and the second moves on 10s too": func(first, second *fakeclock.Clock) {
			first.Advance(-time.Minute)
			second.Advance(time.Minute + 10*time.Second)
		},
	} {
		t.Run(name, func(t *testing.T) {
			store := newMemStore()
			calling, release := make(chan struct{}), make(chan struct{})
			p := &fakeProvider{create: func(int) (provider.Contact, error) {
				close(calling)
				<-release
				return provider.Contact{ID: "ct-1"}, nil
			}}
			firstClock, secondClock := newFakeClock(), newFakeClock()
			first := newTestHandler(t, p, store, func(c *Config) { c.Now = firstClock.Now })
			second := newTestHandler(t, p, store, func(c *Config) { c.Now = secondClock.Now })

			done := make(chan Decision)
			go func() { done <- first.Handle(context.Background(), msg(1)) }()
			<-calling
			skew(firstClock, secondClock)
			dup := msg(1)
			dup.Sequence = 2
			out := second.Handle(context.Background(), dup)
			require.Equal(t, Retry, out.Action, "the claim is live, whatever the clocks say")
			secondClock.Advance(out.Delay / 2)
			out = second.Handle(context.Background(), dup)
			require.Equal(t, Retry, out.Action, "still within the hold, as the second instance measures it")
			close(release)
			created := <-done
			require.Equal(t, Ack, created.Action)
			out = second.Handle(context.Background(), dup)
			assert.Equal(t, created.Event.ID, out.Event.ID, "one outcome")
			assert.EqualValues(t, 1, p.creates.Load(), "one create call")
			assert.Zero(t, p.lookups.Load(), "no lookup raced the create")
		})
	}
}

// TestClaimAfterALongGuardWait holds the provider's only slot while a
// command waits for it, for longer than a hold: the claim it then makes
// must still hold off a duplicate.
func TestClaimAfterALongGuardWait(t *testing.T) {
	store := newMemStore()
	clock := newFakeClock()
	fillerCalling, fillerRelease := make(chan struct{}), make(chan struct{})
	cmdCalling, cmdRelease := make(chan struct{}), make(chan struct{})
	p := &fakeProvider{create: func(n int) (provider.Contact, error) {
		if n == 1 {
			close(fillerCalling)
			<-fillerRelease
			return provider.Contact{ID: "filler"}, nil
		}
		close(cmdCalling)
		<-cmdRelease
		return provider.Contact{ID: "ct-1"}, nil
	}}
	h := newTestHandler(t, p, store, func(c *Config) {
		c.Now = clock.Now
		c.Protection = map[string]Protection{"fake": {MaxConcurrency: 1, BreakerFailures: 1000}}
	})
	filler := Message{Body: []byte(`{"commandId":"filler",` + jane + `}`), Delivery: 1}
	go h.Handle(context.Background(), filler)
	<-fillerCalling

	done := make(chan Decision)
	go func() { done <- h.Handle(context.Background(), msg(1)) }()
	clock.Advance(time.Minute) // the command waits a minute for the slot
	close(fillerRelease)
	<-cmdCalling
	dup := msg(2) // a redelivery reads the record before the guard
	dup.Sequence = 2
	out := h.Handle(context.Background(), dup)
	assert.Equal(t, Retry, out.Action, "a duplicate waits for the call in flight")
	close(cmdRelease)
	<-done
	assert.EqualValues(t, 2, p.creates.Load(), "the filler and the command, once each")
	assert.Zero(t, p.lookups.Load())
}

func TestRetryAfterBeyondTheBudgetFreesTheWorker(t *testing.T) {
	p := &fakeProvider{create: func(int) (provider.Contact, error) {
		return provider.Contact{}, &provider.Error{Class: provider.Transient, HTTPStatus: 503, RetryAfter: 300 * time.Second}
	}}
	h := newTestHandler(t, p, newMemStore(), func(c *Config) { c.RetryMaxElapsed = time.Second })
	start := time.Now()
	out := h.Handle(context.Background(), msg(1))
	require.Equal(t, Retry, out.Action)
	assert.Equal(t, 300*time.Second, out.Delay, "the command waits outside, as long as the provider asked")
	assert.Less(t, time.Since(start), 5*time.Second, "and the worker is free at once")
	assert.EqualValues(t, 1, p.creates.Load())
}

func TestHalfOpenCircuitSaysSo(t *testing.T) {
	trial, release := make(chan struct{}), make(chan struct{})
	p := &fakeProvider{create: func(n int) (provider.Contact, error) {
		if n == 1 {
			return provider.Contact{}, transient("ISE")
		}
		close(trial)
		<-release
		return provider.Contact{ID: "ct"}, nil
	}}
	h := newTestHandler(t, p, newMemStore(), func(c *Config) {
		c.Protection = map[string]Protection{"fake": {BreakerFailures: 1, BreakerOpenFor: 200 * time.Millisecond}}
	})
	out := h.Handle(context.Background(), msg(1)) // opens the circuit
	require.Equal(t, Retry, out.Action)
	require.Eventually(t, func() bool { return h.guards["fake"].breaker.State() == gobreaker.StateHalfOpen },
		5*time.Second, 5*time.Millisecond)
	go h.Handle(context.Background(), msg(2)) // the trial call
	<-trial
	other := Message{Body: []byte(`{"commandId":"c-2",` + jane + `}`), Delivery: 1}
	out = h.Handle(context.Background(), other)
	close(release)
	require.Equal(t, Retry, out.Action)
	assert.Contains(t, out.Err.Error(), "half-open", "it says a trial call is testing the provider")
	assert.NotContains(t, out.Err.Error(), "open until", "no time already past")
	assert.Equal(t, h.hold(), out.Delay, "and comes back once the trial call has had its time")
}

func TestIncompleteLookupEndsAmbiguous(t *testing.T) {
	incomplete := &provider.Error{Provider: "fake", Op: "lookup", Class: provider.Permanent,
		Message: "lookup incomplete: 50 pages read of 80", Err: provider.ErrIncompleteLookup}
	p := &fakeProvider{
		create: func(int) (provider.Contact, error) { return provider.Contact{}, ambiguous() },
		lookup: func() (provider.Contact, bool, error) { return provider.Contact{}, false, incomplete },
	}
	h := newTestHandler(t, p, newMemStore(), func(c *Config) { c.RetryMaxElapsed = time.Second })
	out := h.Handle(context.Background(), msg(1))
	require.Equal(t, Ack, out.Action)
	d := decodeData[contact.Failed](t, out.Event)
	assert.Equal(t, contact.ReasonAmbiguous, d.Reason)
	assert.False(t, d.Retryable)
	assert.Contains(t, d.Message, "may exist")
	assert.Contains(t, d.Message, "50 pages read of 80", "it says what was looked at")
	assert.EqualValues(t, 1, p.creates.Load(), "never created again on a partial view")

	// A replay reconciles again before anything else: still no create.
	replay := msg(1)
	replay.Generation = out.Event.ID
	again := h.Handle(context.Background(), replay)
	assert.Equal(t, contact.ReasonAmbiguous, decodeData[contact.Failed](t, again.Event).Reason)
	assert.EqualValues(t, 1, p.creates.Load())
}

func TestRecordStaysBoundedAcrossGenerations(t *testing.T) {
	big := strings.Repeat("x", 60<<10)
	body := []byte(`{"commandId":"c-big",` + jane + `,"companyName":"` + big[:150] + `","pik":{"note":"` + big + `"}}`)
	p := &fakeProvider{create: func(int) (provider.Contact, error) {
		return provider.Contact{}, &provider.Error{Class: provider.Permanent, Code: "RPI", Message: "no"}
	}}
	store := newMemStore()
	h := newTestHandler(t, p, store, nil)
	gen := ""
	for i := range 20 {
		out := h.Handle(context.Background(), Message{Body: body, Generation: gen, Delivery: 1})
		require.Equal(t, contact.ReasonRejected, out.Reason, "generation %d", i)
		require.NotNil(t, out.Event)
		d := decodeData[contact.Failed](t, out.Event)
		require.JSONEq(t, string(body), string(d.Command), "generation %d: the event still carries the command", i)
		gen = out.Event.ID
	}
	val, _, err := store.Get(context.Background(), record.Key("c-big"))
	require.NoError(t, err)
	assert.Less(t, len(val), 16<<10, "outcomes are recorded without their command")
	rec := store.record(t, "c-big")
	assert.LessOrEqual(t, len(rec.Generations), record.MaxGenerations)
	assert.EqualValues(t, 20, p.creates.Load(), "one create per generation, no loop")
}

func TestLongCommandIDsAreBounded(t *testing.T) {
	long := strings.Repeat("é", 300) // 600 bytes: a header may name a command so
	assert.Len(t, record.Key(long), 2+43, "a digest key")
	assert.LessOrEqual(t, len(record.Key(strings.Repeat("a", 256))), 2+344)
	assert.NotEqual(t, record.Key(long), record.Key(long+"x"))

	store := newMemStore()
	h := newTestHandler(t, &fakeProvider{}, store, nil)
	body := []byte(`{` + jane + `}`)
	out := h.Handle(context.Background(), Message{Body: body, MsgID: long, Delivery: 1})
	require.Equal(t, contact.SubjectCreated, out.Event.Type)
	assert.Equal(t, long, decodeData[contact.Created](t, out.Event).CommandID, "the event keeps the readable id")
	rec := store.record(t, long)
	assert.Equal(t, long, rec.CommandID, "so does the record")

	// A header too long to name a command makes it malformed, under its
	// stream sequence.
	huge := strings.Repeat("x", 5000)
	out = h.Handle(context.Background(), Message{Body: body, MsgID: huge, Stream: "CONTACT_COMMANDS", Sequence: 7, Delivery: 1})
	require.Equal(t, Term, out.Action)
	d := decodeData[contact.Failed](t, out.Event)
	assert.Equal(t, contact.ReasonMalformed, d.Reason)
	assert.Equal(t, "CONTACT_COMMANDS:7", d.CommandID)
	assert.Contains(t, d.Message, "Nats-Msg-Id")
	assert.Less(t, len(out.EventJSON), events.MaxEventSize)
}

func TestConflictEventIDIsDeterministic(t *testing.T) {
	store := newMemStore()
	h := newTestHandler(t, &fakeProvider{}, store, nil)
	require.Equal(t, Ack, h.Handle(context.Background(), Message{Body: command(jane), Delivery: 1}).Action)
	ids := map[string]bool{}
	for i := range 3 {
		other := command(fmt.Sprintf(`"name":"Jane %d","email":"jane@example.com","mobile":"9876543210","tagId":"t"`, i%2))
		out := h.Handle(context.Background(), Message{Body: other, Delivery: 1})
		ids[out.Event.ID] = true
		var ev map[string]any
		require.NoError(t, json.Unmarshal(out.EventJSON, &ev))
	}
	assert.Len(t, ids, 2, "one id per conflicting content")
}

// republished is msg re-published: the same command, stored again under
// another stream sequence.
func republished(m Message, seq uint64) Message {
	m.Sequence, m.Delivery = seq, 1
	return m
}

// TestOneOutcomePerGeneration: a command sent again once its generation is
// decided is answered with the command's newest outcome, of whichever
// generation decided it, the same event (id, type and bytes); never with a
// new event for its own generation. Content no generation had is a
// conflict, under an id of its own.
func TestOneOutcomePerGeneration(t *testing.T) {
	var down atomic.Bool
	down.Store(true)
	p := &fakeProvider{create: func(int) (provider.Contact, error) {
		if down.Load() {
			return provider.Contact{}, transient("ISE")
		}
		return provider.Contact{ID: "ct-2"}, nil
	}}
	store := newMemStore()
	h := newTestHandler(t, p, store, func(c *Config) { c.MaxDeliver = 1 })
	ctx := context.Background()
	original := msg(1)
	failed := h.Handle(ctx, original)
	require.Equal(t, contact.ReasonExhausted, failed.Reason)
	require.Equal(t, contact.EventID("c-1", "", contact.SubjectFailed), failed.Event.ID)
	down.Store(false)
	calls := p.creates.Load()
	replay := republished(original, 2)
	replay.Generation = failed.Event.ID
	created := h.Handle(ctx, replay)
	require.Equal(t, contact.SubjectCreated, created.Event.Type)
	require.Equal(t, contact.EventID("c-1", failed.Event.ID, contact.SubjectCreated), created.Event.ID)

	t.Run("the original sent again gets the replay's contact.created", func(t *testing.T) {
		again := h.Handle(ctx, republished(original, 3))
		require.Equal(t, Ack, again.Action)
		assert.Equal(t, created.Event.ID, again.Event.ID, "the replay's event, not a new one for the original generation")
		assert.Equal(t, string(created.EventJSON), string(again.EventJSON), "the same bytes")
		assert.Equal(t, failed.Event.ID, decodeData[contact.Created](t, again.Event).ReplayOf)
		assert.Nil(t, again.Write, "nothing recorded")
		assert.Equal(t, calls+1, p.creates.Load(), "the replay's create call, and none for the command sent again")
	})
	t.Run("so does the replay sent again", func(t *testing.T) {
		again := h.Handle(ctx, republished(replay, 4))
		assert.Equal(t, created.Event.ID, again.Event.ID)
	})
	t.Run("a redelivery of the message that decided repeats its own outcome", func(t *testing.T) {
		redelivered := original
		redelivered.Delivery = 2
		again := h.Handle(ctx, redelivered)
		assert.Equal(t, failed.Event.ID, again.Event.ID, "a crash may have kept the generation's own event from being published")
		assert.Equal(t, contact.ReasonExhausted, again.Reason)
		assert.NotEmpty(t, decodeData[contact.Failed](t, again.Event).Command, "with its command put back")
	})
	t.Run("content no generation had is a conflict", func(t *testing.T) {
		other := republished(original, 5)
		other.Body = []byte(`{"commandId":"c-1","name":"Jane","email":"nope@example.com","mobile":"9876543210","tagId":"t"}`)
		bad := h.Handle(ctx, other)
		assert.Equal(t, contact.ReasonConflict, bad.Reason)
		assert.NotEqual(t, failed.Event.ID, bad.Event.ID, "an id of its own")
		assert.NotEqual(t, created.Event.ID, bad.Event.ID, "an id of its own")
		assert.Equal(t, calls+1, p.creates.Load())
	})
	rec := store.record(t, "c-1")
	assert.Len(t, rec.Generations, 2, "two generations, one outcome each")
}

// TestARepairedContentAnswersTheOriginalToo: the content a repair gave a
// replay is one of the command's generations' too.
func TestARepairedContentAnswersTheOriginalToo(t *testing.T) {
	p := &fakeProvider{create: func(int) (provider.Contact, error) {
		return provider.Contact{}, &provider.Error{Class: provider.Permanent, Code: "RPI", Message: "bad email"}
	}}
	store := newMemStore()
	h := newTestHandler(t, p, store, nil)
	ctx := context.Background()
	first := Message{Body: command(jane), Stream: "CONTACT_COMMANDS", Sequence: 1, Delivery: 1}
	rejected := h.Handle(ctx, first)
	require.Equal(t, contact.ReasonRejected, rejected.Reason)
	p.create = nil // the repair is accepted
	repaired := command(`"name":"Jane","email":"jane.doe@example.com","mobile":"9876543210","tagId":"t"`)
	replay := Message{Body: repaired, Generation: rejected.Event.ID, Stream: "CONTACT_COMMANDS", Sequence: 2, Delivery: 1}
	created := h.Handle(ctx, replay)
	require.Equal(t, contact.SubjectCreated, created.Event.Type)

	for name, body := range map[string][]byte{"the first content": command(jane), "the repaired content": repaired} {
		t.Run(name, func(t *testing.T) {
			again := h.Handle(ctx, Message{Body: body, Stream: "CONTACT_COMMANDS", Sequence: 3, Delivery: 1})
			assert.Equal(t, created.Event.ID, again.Event.ID, "the command's newest outcome")
			assert.Equal(t, string(created.EventJSON), string(again.EventJSON))
		})
	}
	assert.EqualValues(t, 2, p.creates.Load())
}

// TestANewerFailureIsRepeatedWithoutAnotherCommand: the newest outcome, a
// failure of a replay with other content, is repeated as recorded,
// without the command of the delivery that asked (it was not decided for
// it).
func TestANewerFailureIsRepeatedWithoutAnotherCommand(t *testing.T) {
	p := &fakeProvider{create: func(int) (provider.Contact, error) {
		return provider.Contact{}, &provider.Error{Class: provider.Permanent, Code: "RPI", Message: "no"}
	}}
	store := newMemStore()
	h := newTestHandler(t, p, store, nil)
	ctx := context.Background()
	rejected := h.Handle(ctx, Message{Body: command(jane), Stream: "CONTACT_COMMANDS", Sequence: 1, Delivery: 1})
	require.Equal(t, contact.ReasonRejected, rejected.Reason)
	repaired := command(`"name":"Jane","email":"jane.doe@example.com","mobile":"9876543210","tagId":"t"`)
	again := h.Handle(ctx, Message{Body: repaired, Generation: rejected.Event.ID, Stream: "CONTACT_COMMANDS", Sequence: 2, Delivery: 1})
	require.Equal(t, contact.ReasonRejected, again.Reason)

	resent := h.Handle(ctx, Message{Body: command(jane), Stream: "CONTACT_COMMANDS", Sequence: 3, Delivery: 1})
	assert.Equal(t, again.Event.ID, resent.Event.ID, "the newest outcome")
	assert.Nil(t, decodeData[contact.Failed](t, resent.Event).Command, "not with a command it was not decided for")
	assert.Nil(t, resent.Failure, "the open failure stays as its own decision made it")
	sameAsNewest := h.Handle(ctx, Message{Body: repaired, Stream: "CONTACT_COMMANDS", Sequence: 4, Delivery: 1})
	assert.Equal(t, again.Event.ID, sameAsNewest.Event.ID)
	assert.JSONEq(t, string(repaired), string(decodeData[contact.Failed](t, sameAsNewest.Event).Command), "the generation's own content: its command put back")
	assert.EqualValues(t, 2, p.creates.Load())
}

// TestAnOriginalGivenWayIsStillAnswered: once the original generation gave
// way to eight newer ones, the original sent again is still answered with
// the newest outcome, not decided afresh.
func TestAnOriginalGivenWayIsStillAnswered(t *testing.T) {
	p, store := &fakeProvider{}, newMemStore()
	h := newTestHandler(t, p, store, nil)
	ctx := context.Background()
	invalid := command(`"name":"Jane","email":"nope","mobile":"9876543210","tagId":"t"`)
	gen, last := "", Decision{}
	for i := range record.MaxGenerations + 2 {
		last = h.Handle(ctx, Message{Body: invalid, Generation: gen, Stream: "CONTACT_COMMANDS", Sequence: uint64(i + 1), Delivery: 1})
		require.Equal(t, contact.ReasonInvalid, last.Reason)
		gen = last.Event.ID
	}
	require.NotContains(t, store.record(t, "crm-001").Generations, "", "the original generation gave way")
	again := h.Handle(ctx, Message{Body: invalid, Stream: "CONTACT_COMMANDS", Sequence: 99, Delivery: 1})
	assert.Equal(t, last.Event.ID, again.Event.ID, "the newest outcome, not a new one for the original generation")
	assert.Nil(t, again.Write, "nothing recorded")
	assert.Zero(t, p.creates.Load())
}

// TestResentOutcomeIsTheServicesAnswer: what ResentOutcome reads from a
// record is what the handler answers a command sent again with.
func TestResentOutcomeIsTheServicesAnswer(t *testing.T) {
	p := &fakeProvider{create: func(int) (provider.Contact, error) {
		return provider.Contact{}, &provider.Error{Class: provider.Permanent, Code: "RPI", Message: "no"}
	}}
	store := newMemStore()
	h := newTestHandler(t, p, store, nil)
	ctx := context.Background()
	value := func() []byte {
		v, _, err := store.Get(ctx, record.Key("crm-001"))
		require.NoError(t, err)
		return v
	}
	rejected := h.Handle(ctx, Message{Body: command(jane), Stream: "CONTACT_COMMANDS", Sequence: 1, Delivery: 1})
	require.Equal(t, contact.ReasonRejected, rejected.Reason)
	p.create = nil
	repaired := command(`"name":"Jane","email":"jane.doe@example.com","mobile":"9876543210","tagId":"t"`)
	created := h.Handle(ctx, Message{Body: repaired, Generation: rejected.Event.ID, Stream: "CONTACT_COMMANDS", Sequence: 2, Delivery: 1})
	require.Equal(t, contact.SubjectCreated, created.Event.Type)

	for name, body := range map[string][]byte{
		"first content": command(jane),
		"repaired":      repaired,
		"other":         command(`"name":"Jim","email":"jim@example.com","mobile":"9876543210","tagId":"t"`),
	} {
		t.Run(name, func(t *testing.T) {
			event, ok := record.ResentOutcome(value(), record.ContentFingerprint(body))
			answer := h.Handle(ctx, Message{Body: body, Stream: "CONTACT_COMMANDS", Sequence: 3, Delivery: 1})
			if answer.Reason == contact.ReasonConflict {
				assert.False(t, ok, "no outcome read for content the service answers with a conflict")
				return
			}
			require.True(t, ok, "the record answers")
			assert.Equal(t, string(answer.EventJSON), string(event), "the same event")
		})
	}
	event, ok := record.ResentOutcome(value(), record.ContentFingerprint(command(jane)))
	require.True(t, ok)
	assert.Equal(t, string(created.EventJSON), string(event), "the content first used is answered with the newest outcome")
}

func TestAReplayWithOtherContentThanTheContactsIsAConflict(t *testing.T) {
	p, store := &fakeProvider{}, newMemStore()
	h := newTestHandler(t, p, store, nil)
	require.Equal(t, contact.SubjectCreated, h.Handle(context.Background(), Message{Body: command(jane), Delivery: 1}).Event.Type)
	other := Message{Body: command(`"name":"Jane","email":"jane.doe@example.com","mobile":"9876543210","tagId":"t"`), Delivery: 1}
	conflict := h.Handle(context.Background(), other)
	require.Equal(t, contact.ReasonConflict, conflict.Reason)

	// Replaying the conflict unchanged must not answer with the first
	// command's contact.
	other.Generation = conflict.Event.ID
	out := h.Handle(context.Background(), other)
	require.Equal(t, Term, out.Action)
	assert.Equal(t, contact.ReasonConflict, out.Reason, "the contact was created for other content")
	assert.Contains(t, decodeData[contact.Failed](t, out.Event).Message, "other content")
	assert.EqualValues(t, 1, p.creates.Load())

	// The same content replayed is still answered from the record.
	same := Message{Body: command(jane), Generation: "some-failure", Delivery: 1}
	assert.Equal(t, contact.SubjectCreated, h.Handle(context.Background(), same).Event.Type)
}

func TestAReplayHeaderThatCannotNameAGeneration(t *testing.T) {
	p, store := &fakeProvider{}, newMemStore()
	h := newTestHandler(t, p, store, nil)
	for _, header := range []string{"y\xff", strings.Repeat("R", 10000), "a\x01b", "x\u202ey"} {
		bad := Message{Body: command(`"name":"Jane","email":"bad","mobile":"9876543210","tagId":"t"`), Generation: header, Delivery: 1}
		first := h.Handle(context.Background(), bad)
		require.Equal(t, Term, first.Action, "%q", header)
		d := decodeData[contact.Failed](t, first.Event)
		assert.Equal(t, contact.ReasonMalformed, d.Reason)
		assert.Contains(t, d.Message, contact.HeaderReplayOf)
		assert.LessOrEqual(t, len(d.ReplayOf), 64, "the generation is named by the header's digest")

		good := bad
		good.Body = command(jane)
		again := h.Handle(context.Background(), good)
		assert.NotEqual(t, contact.SubjectCreated, again.Event.Type, "%q: the same generation gets no second, different outcome", header)
	}
	assert.Zero(t, p.creates.Load())
}

func TestAReplayGenerationSentAgainWithOtherContentIsAConflict(t *testing.T) {
	p, store := &fakeProvider{create: func(int) (provider.Contact, error) {
		return provider.Contact{}, &provider.Error{Class: provider.Permanent, Code: "RPI", Message: "no"}
	}}, newMemStore()
	h := newTestHandler(t, p, store, nil)
	replay := Message{Body: command(jane), Generation: "failed-1", Delivery: 1}
	first := h.Handle(context.Background(), replay)
	require.Equal(t, contact.ReasonRejected, first.Reason)
	replay.Body = command(`"name":"Jane","email":"jane.doe@example.com","mobile":"9876543210","tagId":"t"`)
	again := h.Handle(context.Background(), replay)
	assert.Equal(t, contact.ReasonConflict, again.Reason, "not a repeat of the generation's outcome carrying another command")
	assert.EqualValues(t, 1, p.creates.Load())
}

func TestDerivedIDsCannotBeTaken(t *testing.T) {
	p, store := &fakeProvider{}, newMemStore()
	h := newTestHandler(t, p, store, nil)
	squat := h.Handle(context.Background(), Message{Body: []byte(`{"commandId":"CONTACT_COMMANDS:9",` + jane + `}`), Delivery: 1})
	require.Equal(t, contact.ReasonInvalid, squat.Reason)
	assert.Equal(t, "reserved", decodeData[contact.Failed](t, squat.Event).Errors[0].Rule)
	viaHeader := h.Handle(context.Background(), Message{Body: []byte(`{` + jane + `}`), MsgID: "CONTACT_COMMANDS:9", Stream: "CONTACT_COMMANDS", Sequence: 3, Delivery: 1})
	require.Equal(t, contact.SubjectCreated, viaHeader.Event.Type)
	assert.Equal(t, "CONTACT_COMMANDS:3", viaHeader.CommandID, "a header of that form does not name the command")

	victim := h.Handle(context.Background(), Message{Body: []byte(`{` + strings.Replace(jane, "jane@", "victim@", 1) + `}`), Stream: "CONTACT_COMMANDS", Sequence: 9, Delivery: 1})
	assert.Equal(t, contact.SubjectCreated, victim.Event.Type, "the command that the id names is its own")

	replay := h.Handle(context.Background(), Message{Body: []byte(`{"commandId":"CONTACT_COMMANDS:9",` + strings.Replace(jane, "jane@", "victim@", 1) + `}`), Generation: "f-1", Delivery: 1})
	assert.Equal(t, contact.SubjectCreated, replay.Event.Type, "a replay of an id-less command carries its derived id")
}

func TestAnAmbiguousLastCallIsLookedUpBeforeExhausted(t *testing.T) {
	p := &fakeProvider{
		create: func(int) (provider.Contact, error) { return provider.Contact{}, ambiguous() },
		lookup: func() (provider.Contact, bool, error) { return provider.Contact{ID: "ct-late"}, true, nil },
	}
	h := newTestHandler(t, p, newMemStore(), func(c *Config) { c.MaxDeliver = 1; c.RetryMaxElapsed = time.Nanosecond })
	out := h.Handle(context.Background(), msg(1))
	require.Equal(t, Ack, out.Action)
	assert.Equal(t, contact.SubjectCreated, out.Event.Type, "the contact the last call stored is found, not reported exhausted")
	assert.Equal(t, "ct-late", decodeData[contact.Created](t, out.Event).ContactID)
	assert.EqualValues(t, 1, p.creates.Load())
}

func TestDerivedIDForm(t *testing.T) {
	for id, want := range map[string]bool{
		"CONTACT_COMMANDS:42": true, "a-b_9:0": true,
		"crm-001": false, "replay:6f1b2c1e-4c43": false, ":42": false, "X:": false, "X:4a": false, "a.b:1": false, "x:1:2": false,
	} {
		assert.Equal(t, want, rules.DerivedID(id), id)
	}
}
