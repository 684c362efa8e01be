package handlers_test

import (
	"context"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/contactrelay/contactrelay/contact"
	"github.com/contactrelay/contactrelay/internal/clients/provider"
	"github.com/contactrelay/contactrelay/internal/events"
	"github.com/contactrelay/contactrelay/internal/fakeclock"
	"github.com/contactrelay/contactrelay/internal/handlers"
	"github.com/contactrelay/contactrelay/record"
)

// Commands misused, content changed under one commandId, replays and
// claims, as the runner records, publishes and settles them.

var (
	jane    = handlers.Jane
	command = handlers.Command
)

func rejectedCreate(int) (provider.Contact, error) {
	return provider.Contact{}, &provider.Error{Class: provider.Permanent, Code: "RPI", Message: "no"}
}

func TestConflictingContentUnderOneCommandID(t *testing.T) {
	t.Parallel()
	r := newRelay(t)
	p := handlers.NewFakeProvider(nil, nil)
	r.run(r.handler(p, nil))
	first := r.send(command(jane+`,"metadata":{"k":"v"}`), "m-1", "")
	require.Equal(t, handlers.Ack, first.dec.Action)
	require.Equal(t, contact.SubjectCreated, first.dec.Event.Type)
	recorded := r.record("crm-001")

	tests := []struct {
		name     string
		body     []byte
		msgID    string
		conflict bool
	}{
		{"same content, other white space, member order and metadata", []byte(`{ "tagId":"t", "mobile":"9876543210",
			"email":"jane@example.com", "name":"Jane", "commandId":"crm-001", "metadata":{"trace":"x"}}`), "", false},
		{"another email", command(`"name":"Jane","email":"jane.doe@example.com","mobile":"9876543210","tagId":"t"`), "", true},
		{"an invalid email", command(`"name":"Jane","email":"not-an-email","mobile":"9876543210","tagId":"t"`), "", true},
		{"an unknown provider", command(`"provider":"acme",` + jane), "", true},
		{"a wrong type", command(`"name":"Jane","email":"jane@example.com","mobile":9876543210,"tagId":"t"`), "", true},
		// A malformed body's commandId is its Nats-Msg-Id.
		{"a malformed body", []byte(`{"commandId":"crm-001",`), "crm-001", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r.during(t)
			_, revBefore := r.value("crm-001")
			if !tt.conflict {
				out := r.send(tt.body, tt.msgID, "")
				assert.Equal(t, first.dec.Event.ID, out.dec.Event.ID, "the same content repeats the outcome")
				assert.Equal(t, 1, p.Creates(), "answered from the record")
				return
			}
			// The same content comes again: sent again, or, for a
			// malformed body, whose Nats-Msg-Id JetStream takes for a
			// duplicate within its window, delivered again once its
			// conflict's event is lost with its publish.
			var out, again settled
			if tt.msgID == "" {
				out = r.send(tt.body, "", "")
				again = r.send(tt.body, "", "")
			} else {
				restore := r.loseEvents(contact.SubjectFailed)
				seq := r.publish(tt.body, tt.msgID, "")
				out = r.nextOf(seq)
				require.Error(t, out.err)
				restore()
				again = r.nextOf(seq)
				require.NoError(t, again.err)
			}
			require.NotNil(t, out.dec.Event)
			d := decoded[contact.Failed](t, out.dec)
			assert.Equal(t, contact.ReasonConflict, d.Reason)
			assert.False(t, d.Retryable)
			assert.NotEqual(t, first.dec.Event.ID, out.dec.Event.ID, "a conflict is not the generation's outcome: its id differs")
			assert.Contains(t, d.Message, recorded.FirstUsed.Format(time.RFC3339), "it says when the commandId was first used")
			assert.NotContains(t, d.Message, "jane", "without echoing personal data")
			assert.Contains(t, d.Message, "its contact exists; use a new commandId for a new contact, and discard this failure",
				"the first command was created: there is no failure of it to repair")
			_, rev := r.value("crm-001")
			assert.Equal(t, revBefore, rev, "nothing is recorded for a conflict")
			require.Equal(t, handlers.Term, again.dec.Action, "terminated")
			assert.Equal(t, out.dec.Event.ID, again.dec.Event.ID, "the same conflicting content gets the same id")
			assert.Equal(t, contact.SubjectFailed, r.event(out.dec.Event.ID).subject, "one event for both")
		})
	}
	assert.Equal(t, 1, p.Creates(), "no conflicting command reached the provider")
	after := r.record("crm-001")
	assert.Equal(t, recorded.Generations[""].Outcome, after.Generations[""].Outcome, "the original outcome stays untouched")
	assert.Equal(t, recorded.Fingerprint, after.Fingerprint)
}

// When the first command failed, a conflict points to repairing it.
func TestConflictWithAFailedFirstCommandPointsToItsRepair(t *testing.T) {
	t.Parallel()
	r := newRelay(t)
	p := handlers.NewFakeProvider(nil, nil)
	r.run(r.handler(p, nil))
	first := r.send(command(`"name":"Jane","email":"not-an-email","mobile":"9876543210","tagId":"t"`), "", "")
	require.Equal(t, contact.ReasonInvalid, decoded[contact.Failed](t, first.dec).Reason)
	r.record("crm-001") // the failure is recorded
	out := r.send(command(jane), "", "")
	d := decoded[contact.Failed](t, out.dec)
	require.Equal(t, contact.ReasonConflict, d.Reason)
	assert.Contains(t, d.Message, "use a new commandId for a new contact, or replay the first command's failure with a repair to change it")
	assert.Zero(t, p.Creates())
}

func TestAReplayMayChangeContent(t *testing.T) {
	t.Parallel()
	r := newRelay(t)
	p := handlers.NewFakeProvider(func(n int) (provider.Contact, error) {
		if n == 1 {
			return provider.Contact{}, &provider.Error{Class: provider.Permanent, Code: "RPI", Message: "bad tag"}
		}
		return provider.Contact{ID: "ct-2"}, nil
	}, nil)
	r.run(r.handler(p, nil))
	failed := r.send(command(jane), "", "")
	require.Equal(t, contact.ReasonRejected, failed.dec.Reason)

	out := r.send(command(`"name":"Jane","email":"jane@example.com","mobile":"9876543210","tagId":"t2"`), "", failed.dec.Event.ID)
	require.Equal(t, handlers.Ack, out.dec.Action)
	assert.Equal(t, contact.SubjectCreated, out.dec.Event.Type, "a repaired replay is a new generation with its own content")

	// The original, re-sent unchanged, is answered with the command's
	// newest outcome: the repaired replay's.
	again := r.send(command(jane), "", "")
	assert.Equal(t, out.dec.Event.ID, again.dec.Event.ID)
}

func TestBadInputResentUnderASettledCommandIDRepeats(t *testing.T) {
	t.Parallel()
	r := newRelay(t)
	r.run(r.handler(handlers.NewFakeProvider(nil, nil), nil))
	bad := command(`"name":"Jane","email":"nope","mobile":"9876543210","tagId":"t"`)
	first := r.send(bad, "", "")
	require.Equal(t, contact.ReasonInvalid, first.dec.Reason)
	require.NotNil(t, r.record("crm-001").Generations[""].Outcome, "bad input is recorded too")
	again := r.send(bad, "", "")
	assert.Equal(t, first.dec.Event.ID, again.dec.Event.ID, "the generation's one outcome, repeated")
	assert.Equal(t, string(first.dec.EventJSON), string(again.dec.EventJSON), "byte for byte, the command put back")
	assert.Equal(t, string(first.dec.EventJSON), string(r.event(first.dec.Event.ID).data), "as published")
}

// TestInstancesThatDisagreeGiveOneOutcome runs two handlers on one record
// bucket, in turn: one without a default provider (and with the provider
// not enabled), one with it. Whichever takes a delivery, the generation
// has one outcome.
func TestInstancesThatDisagreeGiveOneOutcome(t *testing.T) {
	t.Parallel()
	r := newRelay(t)
	p := handlers.NewFakeProvider(nil, nil)
	without := r.handler(handlers.NewFakeProvider(nil, nil), func(c *handlers.Config) {
		c.Providers = map[string]handlers.Provider{"other": handlers.NewFakeProvider(nil, nil)}
		c.DefaultProvider = ""
		c.KnownProviders = []string{"fake", "other"}
	})
	with := r.handler(p, nil)

	stop := r.run(without)
	seq := r.publish([]byte(`{"commandId":"c-7",`+jane+`}`), "", "")
	out := r.nextOf(seq)
	require.NoError(t, out.err)
	require.Equal(t, handlers.Retry, out.dec.Action, "an instance that cannot route it hands it back")
	stop()

	// The instance with the provider decides; its event is lost with its
	// publish, so that the command comes back once more.
	restore := r.loseEvents(contact.SubjectCreated)
	stop = r.run(with)
	created := r.nextOf(seq)
	require.Equal(t, 2, created.m.Delivery)
	require.Error(t, created.err)
	require.Equal(t, contact.SubjectCreated, created.dec.Event.Type)
	stop()
	restore()

	r.run(without)
	last := r.nextOf(seq)
	require.NoError(t, last.err)
	require.Equal(t, 3, last.m.Delivery, "the last, at the instance without")
	assert.Equal(t, handlers.Ack, last.dec.Action)
	assert.Equal(t, created.dec.Event.ID, last.dec.Event.ID, "the recorded outcome wins over this instance's view")
	assert.Equal(t, string(created.dec.EventJSON), string(r.event(created.dec.Event.ID).data))
	assert.Len(t, r.events(), 1)
	assert.Equal(t, 1, p.Creates())
}

// instances are two handlers behind one runner, as two instances on one
// durable consumer: the command at stream sequence 1 goes to the first,
// every other to the second.
type instances struct{ first, second *handlers.Handler }

func (i instances) pick(m handlers.Message) *handlers.Handler {
	if m.Sequence == 1 {
		return i.first
	}
	return i.second
}

func (i instances) Decide(ctx context.Context, m handlers.Message) handlers.Decision {
	return i.pick(m).Decide(ctx, m)
}

func (i instances) Redecide(ctx context.Context, m handlers.Message, prev handlers.Decision) handlers.Decision {
	return i.pick(m).Redecide(ctx, m, prev)
}

// TestClaimsDoNotTrustClocks runs two handlers on one record bucket whose
// clocks disagree: the second's runs a minute ahead, then the first's
// jumps back a minute during its create call. A duplicate of the command
// reaches the second while the create is under way: one create, one
// outcome.
func TestClaimsDoNotTrustClocks(t *testing.T) {
	t.Parallel()
	for name, skew := range map[string]func(first, second *fakeclock.Clock){
		"second instance a minute ahead":       func(_, second *fakeclock.Clock) { second.Advance(time.Minute) },
		"first instance's clock jumps back 1m": func(first, _ *fakeclock.Clock) { first.Advance(-time.Minute) },
		"both, and the second moves on 10s too": func(first, second *fakeclock.Clock) {
			first.Advance(-time.Minute)
			second.Advance(time.Minute + 10*time.Second)
		},
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			r := newRelay(t)
			calling, release := make(chan struct{}), make(chan struct{})
			p := handlers.NewFakeProvider(func(int) (provider.Contact, error) {
				close(calling)
				<-release
				return provider.Contact{ID: "ct-1"}, nil
			}, nil)
			firstClock, secondClock := handlers.NewFakeClock(), handlers.NewFakeClock()
			// A call timeout of 100ms: a claim holds 2.1s.
			first := r.handler(p, func(c *handlers.Config) { c.Now, c.CallTimeout = firstClock.Now, 100*time.Millisecond })
			second := r.handler(p, func(c *handlers.Config) { c.Now, c.CallTimeout = secondClock.Now, 100*time.Millisecond })
			r.run(instances{first: first, second: second})
			var released atomic.Bool
			unblock := func() {
				if released.CompareAndSwap(false, true) {
					close(release)
				}
			}
			t.Cleanup(unblock) // before the runner stops, which waits for the call

			original := r.publish([]byte(handlers.Body), "", "")
			require.EqualValues(t, 1, original)
			<-calling
			skew(firstClock, secondClock)
			dup := r.publish([]byte(handlers.Body), "", "")
			out := r.nextOf(dup)
			require.NoError(t, out.err)
			require.Equal(t, handlers.Retry, out.dec.Action, "the claim is live, whatever the clocks say")
			secondClock.Advance(out.dec.Delay / 2)
			out = r.nextOf(dup)
			require.NoError(t, out.err)
			require.Equal(t, handlers.Retry, out.dec.Action, "still within the hold, as the second instance measures it")
			unblock()
			created := r.nextOf(original)
			require.NoError(t, created.err)
			require.Equal(t, handlers.Ack, created.dec.Action)
			out = r.nextOf(dup)
			require.NoError(t, out.err)
			assert.Equal(t, created.dec.Event.ID, out.dec.Event.ID, "one outcome")
			assert.Len(t, r.events(), 1)
			assert.Equal(t, 1, p.Creates(), "one create call")
			assert.Zero(t, p.Lookups(), "no lookup raced the create")
		})
	}
}

func TestIncompleteLookupEndsAmbiguous(t *testing.T) {
	t.Parallel()
	incomplete := &provider.Error{Provider: "fake", Op: "lookup", Class: provider.Permanent,
		Message: "lookup incomplete: 50 pages read of 80", Err: provider.ErrIncompleteLookup}
	p := handlers.NewFakeProvider(ambiguousCreate, func() (provider.Contact, bool, error) { return provider.Contact{}, false, incomplete })
	r := newRelay(t)
	r.run(r.handler(p, func(c *handlers.Config) { c.RetryMaxElapsed = time.Second }))
	out := r.send([]byte(handlers.Body), "", "")
	require.Equal(t, handlers.Ack, out.dec.Action)
	d := decodeEvent[contact.Failed](t, r.event(out.dec.Event.ID).data)
	assert.Equal(t, contact.ReasonAmbiguous, d.Reason)
	assert.False(t, d.Retryable)
	assert.Contains(t, d.Message, "may exist")
	assert.Contains(t, d.Message, "50 pages read of 80", "it says what was looked at")
	assert.Equal(t, 1, p.Creates(), "never created again on a partial view")

	// A replay reconciles again before anything else: still no create.
	again := r.send([]byte(handlers.Body), "", out.dec.Event.ID)
	assert.Equal(t, contact.ReasonAmbiguous, decoded[contact.Failed](t, again.dec).Reason)
	assert.Equal(t, 1, p.Creates())
}

func TestRecordStaysBoundedAcrossGenerations(t *testing.T) {
	t.Parallel()
	big := strings.Repeat("x", 60<<10)
	body := []byte(`{"commandId":"c-big",` + jane + `,"companyName":"` + big[:150] + `","pik":{"note":"` + big + `"}}`)
	p := handlers.NewFakeProvider(rejectedCreate, nil)
	r := newRelay(t)
	r.run(r.handler(p, nil))
	gen := ""
	for i := range 20 {
		out := r.send(body, "", gen)
		require.Equal(t, contact.ReasonRejected, out.dec.Reason, "generation %d", i)
		require.NotNil(t, out.dec.Event)
		d := decoded[contact.Failed](t, out.dec)
		require.JSONEq(t, string(body), string(d.Command), "generation %d: the event still carries the command", i)
		gen = out.dec.Event.ID
	}
	val, _ := r.value("c-big")
	assert.Less(t, len(val), 16<<10, "outcomes are recorded without their command")
	assert.LessOrEqual(t, len(r.record("c-big").Generations), handlers.MaxGenerations)
	assert.Equal(t, 20, p.Creates(), "one create per generation, no loop")
}

func TestLongCommandIDsAreBounded(t *testing.T) {
	t.Parallel()
	long := strings.Repeat("é", 300) // 600 bytes: a header may name a command so
	assert.Len(t, record.Key(long), 2+43, "a digest key")
	assert.LessOrEqual(t, len(record.Key(strings.Repeat("a", handlers.MaxPlainKey))), 2+344)
	assert.NotEqual(t, record.Key(long), record.Key(long+"x"))

	r := newRelay(t)
	r.run(r.handler(handlers.NewFakeProvider(nil, nil), nil))
	body := []byte(`{` + jane + `}`)
	out := r.send(body, long, "")
	require.Equal(t, contact.SubjectCreated, out.dec.Event.Type)
	assert.Equal(t, long, decodeEvent[contact.Created](t, r.event(out.dec.Event.ID).data).CommandID, "the event keeps the readable id")
	assert.Equal(t, long, r.record(long).CommandID, "so does the record")

	// A header too long to name a command makes it malformed, under its
	// stream sequence.
	huge := strings.Repeat("x", 5000)
	out = r.send(body, huge, "")
	require.Equal(t, handlers.Term, out.dec.Action)
	stored := r.event(out.dec.Event.ID)
	d := decodeEvent[contact.Failed](t, stored.data)
	assert.Equal(t, contact.ReasonMalformed, d.Reason)
	assert.Equal(t, fmt.Sprintf("CONTACT_COMMANDS:%d", out.m.Sequence), d.CommandID)
	assert.Contains(t, d.Message, "Nats-Msg-Id")
	assert.Less(t, len(stored.data), events.MaxEventSize)
}

func TestConflictEventIDIsDeterministic(t *testing.T) {
	t.Parallel()
	r := newRelay(t)
	r.run(r.handler(handlers.NewFakeProvider(nil, nil), nil))
	require.Equal(t, handlers.Ack, r.send(command(jane), "", "").dec.Action)
	ids := map[string]bool{}
	for i := range 3 {
		other := command(fmt.Sprintf(`"name":"Jane %d","email":"jane@example.com","mobile":"9876543210","tagId":"t"`, i%2))
		out := r.send(other, "", "")
		require.Equal(t, contact.ReasonConflict, out.dec.Reason)
		ids[out.dec.Event.ID] = true
	}
	assert.Len(t, ids, 2, "one id per conflicting content")
	assert.Len(t, r.events(), 3, "the contact.created and one conflict per content")
}

// TestOneOutcomePerGeneration: a command sent again once its generation is
// decided is answered with the command's newest outcome, of whichever
// generation decided it, the same event (id, type and bytes); never with a
// new event for its own generation. Content no generation had is a
// conflict, under an id of its own.
func TestOneOutcomePerGeneration(t *testing.T) {
	t.Parallel()
	var down atomic.Bool
	down.Store(true)
	p := handlers.NewFakeProvider(func(int) (provider.Contact, error) {
		if down.Load() {
			return provider.Contact{}, handlers.Transient("ISE")
		}
		return provider.Contact{ID: "ct-2"}, nil
	}, nil)
	r := newRelay(t)
	r.run(r.handler(p, func(c *handlers.Config) { c.MaxDeliver = 1 }))

	// The original's failed event is lost with its publish: its message
	// comes back later, its outcome recorded.
	restore := r.loseEvents(contact.SubjectFailed)
	original := r.publish([]byte(handlers.Body), "", "")
	failed := r.nextOf(original)
	require.Error(t, failed.err)
	require.Equal(t, contact.ReasonExhausted, failed.dec.Reason)
	require.Equal(t, contact.EventID("c-1", "", contact.SubjectFailed), failed.dec.Event.ID)
	down.Store(false)
	calls := p.Creates()
	replay := r.send([]byte(handlers.Body), "", failed.dec.Event.ID)
	created := replay.dec
	require.Equal(t, contact.SubjectCreated, created.Event.Type)
	require.Equal(t, contact.EventID("c-1", failed.dec.Event.ID, contact.SubjectCreated), created.Event.ID)

	t.Run("the original sent again gets the replay's contact.created", func(t *testing.T) {
		r.during(t)
		_, revBefore := r.value("c-1")
		again := r.send([]byte(handlers.Body), "", "")
		require.Equal(t, handlers.Ack, again.dec.Action)
		assert.Equal(t, created.Event.ID, again.dec.Event.ID, "the replay's event, not a new one for the original generation")
		assert.Equal(t, string(created.EventJSON), string(again.dec.EventJSON), "the same bytes")
		assert.Equal(t, failed.dec.Event.ID, decoded[contact.Created](t, again.dec).ReplayOf)
		_, rev := r.value("c-1")
		assert.Equal(t, revBefore, rev, "nothing recorded")
		assert.Equal(t, calls+1, p.Creates(), "the replay's create call, and none for the command sent again")
	})
	t.Run("so does the replay sent again", func(t *testing.T) {
		r.during(t)
		again := r.send([]byte(handlers.Body), "", failed.dec.Event.ID)
		assert.Equal(t, created.Event.ID, again.dec.Event.ID)
	})
	t.Run("a redelivery of the message that decided repeats its own outcome", func(t *testing.T) {
		r.during(t)
		restore()
		again := r.nextOf(original)
		for again.err != nil { // delivered again while its events were still lost
			again = r.nextOf(original)
		}
		require.Greater(t, again.m.Delivery, 1)
		assert.Equal(t, failed.dec.Event.ID, again.dec.Event.ID, "a crash may have kept the generation's own event from being published")
		assert.Equal(t, contact.ReasonExhausted, again.dec.Reason)
		assert.NotEmpty(t, decodeEvent[contact.Failed](t, r.event(failed.dec.Event.ID).data).Command, "with its command put back")
	})
	t.Run("content no generation had is a conflict", func(t *testing.T) {
		r.during(t)
		bad := r.send([]byte(`{"commandId":"c-1","name":"Jane","email":"nope@example.com","mobile":"9876543210","tagId":"t"}`), "", "")
		assert.Equal(t, contact.ReasonConflict, bad.dec.Reason)
		assert.NotEqual(t, failed.dec.Event.ID, bad.dec.Event.ID, "an id of its own")
		assert.NotEqual(t, created.Event.ID, bad.dec.Event.ID, "an id of its own")
		assert.Equal(t, calls+1, p.Creates())
	})
	assert.Len(t, r.record("c-1").Generations, 2, "two generations, one outcome each")
}

// TestARepairedContentAnswersTheOriginalToo: the content a repair gave a
// replay is one of the command's generations' too.
func TestARepairedContentAnswersTheOriginalToo(t *testing.T) {
	t.Parallel()
	var accepted atomic.Bool
	p := handlers.NewFakeProvider(func(int) (provider.Contact, error) {
		if accepted.Load() {
			return provider.Contact{ID: "ct-1"}, nil
		}
		return provider.Contact{}, &provider.Error{Class: provider.Permanent, Code: "RPI", Message: "bad email"}
	}, nil)
	r := newRelay(t)
	r.run(r.handler(p, nil))
	rejected := r.send(command(jane), "", "")
	require.Equal(t, contact.ReasonRejected, rejected.dec.Reason)
	accepted.Store(true) // the repair is accepted
	repaired := command(`"name":"Jane","email":"jane.doe@example.com","mobile":"9876543210","tagId":"t"`)
	created := r.send(repaired, "", rejected.dec.Event.ID)
	require.Equal(t, contact.SubjectCreated, created.dec.Event.Type)

	for name, body := range map[string][]byte{"the first content": command(jane), "the repaired content": repaired} {
		t.Run(name, func(t *testing.T) {
			r.during(t)
			again := r.send(body, "", "")
			assert.Equal(t, created.dec.Event.ID, again.dec.Event.ID, "the command's newest outcome")
			assert.Equal(t, string(created.dec.EventJSON), string(again.dec.EventJSON))
		})
	}
	assert.Equal(t, 2, p.Creates())
}

// TestANewerFailureIsRepeatedWithoutAnotherCommand: the newest outcome, a
// failure of a replay with other content, is repeated as recorded,
// without the command of the delivery that asked (it was not decided for
// it).
func TestANewerFailureIsRepeatedWithoutAnotherCommand(t *testing.T) {
	t.Parallel()
	p := handlers.NewFakeProvider(rejectedCreate, nil)
	r := newRelay(t)
	r.run(r.handler(p, nil))
	rejected := r.send(command(jane), "", "")
	require.Equal(t, contact.ReasonRejected, rejected.dec.Reason)
	repaired := command(`"name":"Jane","email":"jane.doe@example.com","mobile":"9876543210","tagId":"t"`)
	again := r.send(repaired, "", rejected.dec.Event.ID)
	require.Equal(t, contact.ReasonRejected, again.dec.Reason)
	open := func() *contact.Failed {
		t.Helper()
		fs := r.openFailures("crm-001")
		require.Len(t, fs, 1, "one open failure")
		assert.Equal(t, again.dec.Event.ID, fs[0].Event.ID, "the newest failure is open")
		return &fs[0].Data
	}
	require.JSONEq(t, string(repaired), string(open().Command))

	resent := r.send(command(jane), "", "")
	assert.Equal(t, again.dec.Event.ID, resent.dec.Event.ID, "the newest outcome")
	assert.Nil(t, decoded[contact.Failed](t, resent.dec).Command, "not with a command it was not decided for")
	assert.JSONEq(t, string(repaired), string(open().Command), "the open failure stays as its own decision made it")
	sameAsNewest := r.send(repaired, "", "")
	assert.Equal(t, again.dec.Event.ID, sameAsNewest.dec.Event.ID)
	assert.JSONEq(t, string(repaired), string(decoded[contact.Failed](t, sameAsNewest.dec).Command), "the generation's own content: its command put back")
	assert.Equal(t, 2, p.Creates())
}

// TestAnOriginalGivenWayIsStillAnswered: once the original generation gave
// way to eight newer ones, the original sent again is still answered with
// the newest outcome, not decided afresh.
func TestAnOriginalGivenWayIsStillAnswered(t *testing.T) {
	t.Parallel()
	p := handlers.NewFakeProvider(nil, nil)
	r := newRelay(t)
	r.run(r.handler(p, nil))
	invalid := command(`"name":"Jane","email":"nope","mobile":"9876543210","tagId":"t"`)
	gen, last := "", settled{}
	for range handlers.MaxGenerations + 2 {
		last = r.send(invalid, "", gen)
		require.Equal(t, contact.ReasonInvalid, last.dec.Reason)
		gen = last.dec.Event.ID
	}
	require.NotContains(t, r.record("crm-001").Generations, "", "the original generation gave way")
	_, revBefore := r.value("crm-001")
	again := r.send(invalid, "", "")
	assert.Equal(t, last.dec.Event.ID, again.dec.Event.ID, "the newest outcome, not a new one for the original generation")
	_, rev := r.value("crm-001")
	assert.Equal(t, revBefore, rev, "nothing recorded")
	assert.Zero(t, p.Creates())
}

// TestResentOutcomeIsTheServicesAnswer: what ResentOutcome reads from a
// record is what the handler answers a command sent again with.
func TestResentOutcomeIsTheServicesAnswer(t *testing.T) {
	t.Parallel()
	var accepted atomic.Bool
	p := handlers.NewFakeProvider(func(int) (provider.Contact, error) {
		if accepted.Load() {
			return provider.Contact{ID: "ct-1"}, nil
		}
		return rejectedCreate(0)
	}, nil)
	r := newRelay(t)
	r.run(r.handler(p, nil))
	rejected := r.send(command(jane), "", "")
	require.Equal(t, contact.ReasonRejected, rejected.dec.Reason)
	accepted.Store(true)
	repaired := command(`"name":"Jane","email":"jane.doe@example.com","mobile":"9876543210","tagId":"t"`)
	created := r.send(repaired, "", rejected.dec.Event.ID)
	require.Equal(t, contact.SubjectCreated, created.dec.Event.Type)

	for name, body := range map[string][]byte{
		"first content": command(jane),
		"repaired":      repaired,
		"other":         command(`"name":"Jim","email":"jim@example.com","mobile":"9876543210","tagId":"t"`),
	} {
		t.Run(name, func(t *testing.T) {
			r.during(t)
			value, _ := r.value("crm-001")
			event, ok := record.ResentOutcome(value, record.ContentFingerprint(body))
			answer := r.send(body, "", "")
			if answer.dec.Reason == contact.ReasonConflict {
				assert.False(t, ok, "no outcome read for content the service answers with a conflict")
				return
			}
			require.True(t, ok, "the record answers")
			assert.Equal(t, string(answer.dec.EventJSON), string(event), "the same event")
		})
	}
	value, _ := r.value("crm-001")
	event, ok := record.ResentOutcome(value, record.ContentFingerprint(command(jane)))
	require.True(t, ok)
	assert.Equal(t, string(created.dec.EventJSON), string(event), "the content first used is answered with the newest outcome")
}

func TestAReplayWithOtherContentThanTheContactsIsAConflict(t *testing.T) {
	t.Parallel()
	p := handlers.NewFakeProvider(nil, nil)
	r := newRelay(t)
	r.run(r.handler(p, nil))
	require.Equal(t, contact.SubjectCreated, r.send(command(jane), "", "").dec.Event.Type)
	other := command(`"name":"Jane","email":"jane.doe@example.com","mobile":"9876543210","tagId":"t"`)
	conflict := r.send(other, "", "")
	require.Equal(t, contact.ReasonConflict, conflict.dec.Reason)

	// Replaying the conflict unchanged must not answer with the first
	// command's contact.
	out := r.send(other, "", conflict.dec.Event.ID)
	require.Equal(t, handlers.Term, out.dec.Action)
	assert.Equal(t, contact.ReasonConflict, out.dec.Reason, "the contact was created for other content")
	assert.Contains(t, decoded[contact.Failed](t, out.dec).Message, "other content")
	assert.Equal(t, 1, p.Creates())

	// The same content replayed is still answered from the record.
	assert.Equal(t, contact.SubjectCreated, r.send(command(jane), "", "some-failure").dec.Event.Type)
}

func TestAReplayHeaderThatCannotNameAGeneration(t *testing.T) {
	t.Parallel()
	p := handlers.NewFakeProvider(nil, nil)
	r := newRelay(t)
	r.run(r.handler(p, nil))
	for _, header := range []string{"y\xff", strings.Repeat("R", 10000), "a\x01b", "x\u202ey"} {
		first := r.send(command(`"name":"Jane","email":"bad","mobile":"9876543210","tagId":"t"`), "", header)
		require.Equal(t, handlers.Term, first.dec.Action, "%q", header)
		d := decodeEvent[contact.Failed](t, r.event(first.dec.Event.ID).data)
		assert.Equal(t, contact.ReasonMalformed, d.Reason)
		assert.Contains(t, d.Message, contact.HeaderReplayOf)
		assert.LessOrEqual(t, len(d.ReplayOf), 64, "the generation is named by the header's digest")

		again := r.send(command(jane), "", header)
		assert.NotEqual(t, contact.SubjectCreated, again.dec.Event.Type, "%q: the same generation gets no second, different outcome", header)
	}
	assert.Zero(t, p.Creates())
}

func TestAReplayGenerationSentAgainWithOtherContentIsAConflict(t *testing.T) {
	t.Parallel()
	p := handlers.NewFakeProvider(rejectedCreate, nil)
	r := newRelay(t)
	r.run(r.handler(p, nil))
	first := r.send(command(jane), "", "failed-1")
	require.Equal(t, contact.ReasonRejected, first.dec.Reason)
	again := r.send(command(`"name":"Jane","email":"jane.doe@example.com","mobile":"9876543210","tagId":"t"`), "", "failed-1")
	assert.Equal(t, contact.ReasonConflict, again.dec.Reason, "not a repeat of the generation's outcome carrying another command")
	assert.Equal(t, 1, p.Creates())
}

// TestDerivedIDsCannotBeTaken: a command without a commandId is named by
// its stream sequence (CONTACT_COMMANDS:<sequence>); no command can take
// such an id, by its body or its Nats-Msg-Id, from the command it names.
func TestDerivedIDsCannotBeTaken(t *testing.T) {
	t.Parallel()
	r := newRelay(t)
	r.run(r.handler(handlers.NewFakeProvider(nil, nil), nil))
	victimContent := strings.Replace(jane, "jane@", "victim@", 1)
	// The victim will be the third command in the stream.
	squat := r.send([]byte(`{"commandId":"CONTACT_COMMANDS:3",`+jane+`}`), "", "")
	require.Equal(t, contact.ReasonInvalid, squat.dec.Reason)
	assert.Equal(t, "reserved", decoded[contact.Failed](t, squat.dec).Errors[0].Rule)
	viaHeader := r.send([]byte(`{`+jane+`}`), "CONTACT_COMMANDS:3", "")
	require.Equal(t, contact.SubjectCreated, viaHeader.dec.Event.Type)
	assert.Equal(t, fmt.Sprintf("CONTACT_COMMANDS:%d", viaHeader.m.Sequence), viaHeader.dec.CommandID, "a header of that form does not name the command")

	victim := r.send([]byte(`{`+victimContent+`}`), "", "")
	require.EqualValues(t, 3, victim.m.Sequence)
	assert.Equal(t, contact.SubjectCreated, victim.dec.Event.Type, "the command that the id names is its own")
	assert.Equal(t, "CONTACT_COMMANDS:3", victim.dec.CommandID)

	replay := r.send([]byte(`{"commandId":"CONTACT_COMMANDS:3",`+victimContent+`}`), "", "f-1")
	assert.Equal(t, contact.SubjectCreated, replay.dec.Event.Type, "a replay of an id-less command carries its derived id")
}
