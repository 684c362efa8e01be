package handlers_test

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/contactrelay/contactrelay/contact"
	"github.com/contactrelay/contactrelay/internal/clients/provider"
	"github.com/contactrelay/contactrelay/internal/handlers"
	"github.com/contactrelay/contactrelay/internal/provision"
	"github.com/contactrelay/contactrelay/record"
)

// The handler's outcomes as the runner records, publishes and settles
// them, over an in-process JetStream: the tests whose later deliveries
// read what the runner recorded.

func TestHandleCreated(t *testing.T) {
	t.Parallel()
	r := newRelay(t)
	p := handlers.NewFakeProvider(nil, nil)
	r.run(r.handler(p, nil))

	// The first delivery's event is lost with its publish: the command
	// comes back, its outcome recorded.
	restore := r.loseEvents(contact.SubjectCreated)
	seq := r.publish([]byte(handlers.Body), "", "")
	first := r.next()
	require.Equal(t, seq, first.m.Sequence)
	require.Error(t, first.err, "the event's publish failed")
	out := first.dec
	require.NotNil(t, out.Event)
	assert.Equal(t, contact.SubjectCreated, out.Event.Type)
	assert.Equal(t, contact.EventID("c-1", "", contact.SubjectCreated), out.Event.ID)
	d := decoded[contact.Created](t, out)
	assert.Equal(t, contact.Created{CommandID: "c-1", Provider: "fake", ContactID: "ct-1",
		Upstream: map[string]any{"contactId": "ct-1"}, Attempts: 1, Metadata: map[string]string{"k": "v"}}, d)
	assert.JSONEq(t, string(mustJSON(t, out.Event)), string(out.EventJSON), "the bytes are the event's encoding")

	rec := r.record("c-1")
	require.NotNil(t, rec.Contact)
	assert.Equal(t, "ct-1", rec.Contact.ID)
	assert.False(t, rec.Unsettled, "a settled create leaves the record settled")
	restore()

	again := r.next()
	require.NoError(t, again.err)
	require.Equal(t, 2, again.m.Delivery, "the command is delivered again")
	assert.Equal(t, handlers.Ack, again.dec.Action)
	stored := r.events()
	require.Len(t, stored, 1)
	assert.Equal(t, out.Event.ID, stored[0].id, "a redelivery repeats the recorded event")
	assert.Equal(t, string(out.EventJSON), string(stored[0].data), "byte for byte")
	assert.Equal(t, 1, p.Creates(), "a redelivery makes no second create call")
}

func TestHandleExhaustion(t *testing.T) {
	t.Parallel()
	r := newRelay(t)
	p := handlers.NewFakeProvider(func(int) (provider.Contact, error) { return provider.Contact{}, handlers.Transient("ISE") }, nil)
	const redelivery = 100 * time.Millisecond
	r.run(r.handler(p, func(c *handlers.Config) { c.MaxDeliver, c.RedeliveryDelay = 2, redelivery }))

	restore := r.loseEvents(contact.SubjectFailed)
	r.publish([]byte(handlers.Body), "", "")
	out := r.next()
	require.NoError(t, out.err)
	assert.Equal(t, handlers.Retry, out.dec.Action, "a spent budget before the last delivery asks for redelivery")
	assert.Equal(t, redelivery, out.dec.Delay)
	assert.Nil(t, out.dec.Event)

	last := r.next()
	require.Equal(t, 2, last.m.Delivery, "the last delivery decides")
	require.Error(t, last.err, "its event's publish is lost")
	d := decoded[contact.Failed](t, last.dec)
	assert.Equal(t, contact.ReasonExhausted, d.Reason)
	assert.True(t, d.Retryable)
	assert.Equal(t, p.Creates(), d.Attempts, "attempts counts the calls of every delivery")
	assert.Equal(t, "ISE", d.Upstream.Code)
	restore()

	calls := p.Creates()
	again := r.next()
	require.NoError(t, again.err)
	require.Equal(t, 3, again.m.Delivery)
	assert.Equal(t, handlers.Ack, again.dec.Action)
	assert.Equal(t, last.dec.Event.ID, r.event(last.dec.Event.ID).id, "a later delivery repeats the outcome")
	assert.Equal(t, string(last.dec.EventJSON), string(r.event(last.dec.Event.ID).data))
	assert.Len(t, r.events(), 1)
	assert.Equal(t, calls, p.Creates())
}

func TestHandleReplayIsANewGeneration(t *testing.T) {
	t.Parallel()
	r := newRelay(t)
	p := handlers.NewFakeProvider(nil, nil)
	r.run(r.handler(p, nil))
	first := r.send([]byte(handlers.Body), "", "")
	require.Equal(t, handlers.Ack, first.dec.Action)

	out := r.send([]byte(handlers.Body), "", "failed-event-id")
	require.Equal(t, handlers.Ack, out.dec.Action)
	assert.Equal(t, contact.SubjectCreated, out.dec.Event.Type)
	assert.Equal(t, contact.EventID("c-1", "failed-event-id", contact.SubjectCreated), out.dec.Event.ID, "a new generation, a new id")
	assert.NotEqual(t, first.dec.Event.ID, out.dec.Event.ID)
	d := decodeEvent[contact.Created](t, r.event(out.dec.Event.ID).data)
	assert.Equal(t, "failed-event-id", d.ReplayOf)
	assert.Equal(t, 0, d.Attempts, "no create call in the replay's generation")
	assert.Len(t, r.events(), 2, "both generations' events are published")
	assert.Equal(t, 1, p.Creates(), "the contact is not created twice")
}

func TestHandleConcurrentDeliveriesCreateOnce(t *testing.T) {
	t.Parallel()
	release, started := make(chan struct{}), make(chan struct{})
	p := handlers.NewFakeProvider(func(int) (provider.Contact, error) {
		close(started)
		<-release
		return provider.Contact{ID: "ct-1"}, nil
	}, nil)
	r := newRelay(t)
	// A call timeout of 100ms: a claim holds 2.1s.
	r.run(r.handler(p, func(c *handlers.Config) { c.RetryMaxElapsed, c.CallTimeout = 5*time.Second, 100*time.Millisecond }))
	unblock := func() {
		select {
		case <-release:
		default:
			close(release)
		}
	}
	t.Cleanup(unblock) // before the runner stops, which waits for the call

	const n = 8 // the same commandId published n times
	for range n {
		r.publish([]byte(handlers.Body), "", "")
	}
	// Every delivery but the one whose create call is under way ends
	// while it is.
	<-started
	for range n - 1 {
		s := r.next()
		require.NoError(t, s.err)
		require.Equal(t, handlers.Retry, s.dec.Action, "sequence %d: only one delivery decides", s.m.Sequence)
		assert.Positive(t, s.dec.Delay, "sequence %d: the others come back once the call is over", s.m.Sequence)
	}
	unblock()
	decided := r.next()
	require.NoError(t, decided.err)
	require.Equal(t, handlers.Ack, decided.dec.Action)
	created := decided.dec.Event
	require.Equal(t, contact.SubjectCreated, created.Type)

	// The others come back when the call's hold ends, and find its outcome.
	for range n - 1 {
		again := r.next()
		require.NoError(t, again.err)
		require.Equal(t, 2, again.m.Delivery)
		require.Equal(t, handlers.Ack, again.dec.Action)
		assert.Equal(t, created.ID, again.dec.Event.ID, "sequence %d: one outcome per generation", again.m.Sequence)
	}
	assert.Len(t, r.events(), 1, "one event")
	assert.Equal(t, 1, p.Creates(), "one create call for one commandId")
}

// TestOnlySettledRecordsExpire: every write of a record whose create
// call's outcome is unknown (a claim, an ambiguous answer not yet looked
// up) may not expire; a write that settles it may. A record write that
// may expire carries a TTL (Nats-TTL) in the bucket.
func TestOnlySettledRecordsExpire(t *testing.T) {
	t.Parallel()
	notFound := func() (provider.Contact, bool, error) { return provider.Contact{}, false, nil }
	lookupFails := func() (provider.Contact, bool, error) { return provider.Contact{}, false, handlers.Transient("ISE") }
	tests := []struct {
		name    string
		create  func(int) (provider.Contact, error)
		lookup  func() (provider.Contact, bool, error)
		expires bool
		want    string // the event's type, or a failure's reason
	}{
		{"a lookup proves the contact absent", ambiguousCreate, notFound, true, string(contact.ReasonExhausted)},
		{"no lookup could tell", ambiguousCreate, lookupFails, false, string(contact.ReasonExhausted)},
		{"a created contact", nil, nil, true, contact.SubjectCreated},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			r := newRelay(t)
			r.records.TTL = time.Hour
			var claims []bool // whether the record could expire, at each create call
			p := handlers.NewFakeProvider(func(n int) (provider.Contact, error) {
				expires, err := r.lastWriteExpires("c-1")
				claims = append(claims, expires || err != nil)
				if tt.create == nil {
					return provider.Contact{ID: "ct-1"}, nil
				}
				return tt.create(n)
			}, tt.lookup)
			r.run(r.handler(p, func(c *handlers.Config) { c.MaxDeliver = 1; c.RetryMaxElapsed = time.Nanosecond }))
			out := r.send([]byte(handlers.Body), "", "")
			if out.dec.Reason != "" {
				require.Equal(t, tt.want, string(out.dec.Reason))
			} else {
				require.Equal(t, tt.want, out.dec.Event.Type)
			}
			require.NotEmpty(t, claims)
			assert.NotContains(t, claims, true, "a claim may not expire")
			expires, err := r.lastWriteExpires("c-1")
			require.NoError(t, err)
			assert.Equal(t, tt.expires, expires, "the outcome's write")
			assert.Equal(t, !tt.expires, r.record("c-1").Unsettled)
		})
	}
}

func ambiguousCreate(int) (provider.Contact, error) { return provider.Contact{}, handlers.Ambiguous() }

// lastWriteExpires reports whether the last write of commandID's record
// carries a TTL. It is safe to call from any goroutine.
func (r *relay) lastWriteExpires(commandID string) (bool, error) {
	ctx := context.Background()
	s, err := r.js.Stream(ctx, "KV_"+provision.RecordBucket)
	if err != nil {
		return false, err
	}
	raw, err := s.GetLastMsgForSubject(ctx, "$KV."+provision.RecordBucket+"."+record.Key(commandID))
	if err != nil {
		return false, err
	}
	return raw.Header.Get(jetstream.MsgTTLHeader) != "", nil
}

func mustJSON(t testing.TB, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	require.NoError(t, err)
	return b
}
