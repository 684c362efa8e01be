package handlers_test

import (
	"context"
	"encoding/json"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/contactrelay/contactrelay/contact"
	"github.com/contactrelay/contactrelay/internal/failstore"
	"github.com/contactrelay/contactrelay/internal/handlers"
	"github.com/contactrelay/contactrelay/internal/natstest"
	"github.com/contactrelay/contactrelay/internal/provision"
	"github.com/contactrelay/contactrelay/internal/stream"
	"github.com/contactrelay/contactrelay/record"
)

// relay is the service's own consume loop around a handler under test: an
// in-process JetStream server set up as the service sets it up, and
// stream.Runner pulling contact.create commands from the durable consumer,
// having the handler decide each delivery, then recording the decision in
// the record bucket, changing the open failures, publishing the event to
// CONTACT_EVENTS and settling the command. Tests publish commands and see
// what the runner did: each settled delivery (its Settled hook), the
// events stored, the records.
type relay struct {
	t       *testing.T
	js      jetstream.JetStream
	records *stream.Records
	settled chan settled
	pending []settled // settled deliveries nextOf passed over
}

// settled is one delivery as the runner settled it: the message the
// handler saw, the decision carried out (Retry when the runner handed the
// command back) and the error of recording, publishing or settling it.
type settled struct {
	m   handlers.Message
	dec handlers.Decision
	err error
}

// newRelay starts a JetStream server for the test and sets it up; run
// starts runners on it.
func newRelay(t *testing.T) *relay {
	t.Helper()
	srv := natstest.Start(t, nil)
	_, js := srv.Connect(t)
	ctx := context.Background()
	require.NoError(t, provision.Setup(ctx, js, provision.Topology{}))
	records, err := stream.OpenRecords(ctx, js, 5*time.Second)
	require.NoError(t, err)
	t.Cleanup(records.Close)
	return &relay{t: t, js: js, records: records, settled: make(chan settled, 1000)}
}

// handler returns a handler of the tests' configuration (one provider,
// "fake", short retries, three deliveries, a claim margin and hand-back
// delay of a tenth of the service's) on the relay's record bucket.
func (r *relay) handler(p handlers.Provider, change func(*handlers.Config)) *handlers.Handler {
	r.t.Helper()
	return handlers.NewTestHandler(r.t, p, r.records, func(c *handlers.Config) {
		c.ClaimMargin = 200 * time.Millisecond
		c.HandBackDelay = 200 * time.Millisecond
		if change != nil {
			change(c)
		}
	})
}

// during has the relay report to subtest t until t ends.
func (r *relay) during(t *testing.T) {
	parent := r.t
	r.t = t
	t.Cleanup(func() { r.t = parent })
}

// run starts a runner deciding with h until the test ends; stop ends it
// earlier, waiting for what it has in flight.
func (r *relay) run(h stream.Handler) (stop func()) {
	r.t.Helper()
	failures, err := failstore.OpenWriter(context.Background(), r.js)
	require.NoError(r.t, err)
	runner := stream.NewRunner(r.js, h, stream.RunnerConfig{
		Records:       r.records,
		Failures:      failures,
		Concurrency:   16,
		ShutdownGrace: 10 * time.Second,
		// A tenth of the service's wait after an event that could not
		// be published: the tests lose events on purpose.
		SettleRetryDelay: 100 * time.Millisecond,
		Hooks: stream.Hooks{Settled: func(m handlers.Message, dec handlers.Decision, _ time.Duration, err error) {
			r.settled <- settled{m: m, dec: dec, err: err}
		}},
	})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- runner.Run(ctx) }()
	stop = sync.OnceFunc(func() {
		cancel()
		select {
		case err := <-done:
			assert.NoError(r.t, err, "the runner stops cleanly")
		case <-time.After(30 * time.Second):
			r.t.Error("the runner did not stop")
		}
	})
	r.t.Cleanup(stop)
	return stop
}

// publish publishes a command to contact.create, with a Nats-Msg-Id
// header when msgID is set and a Contact-Replay-Of header when replayOf
// is, and returns its stream sequence.
func (r *relay) publish(body []byte, msgID, replayOf string) uint64 {
	r.t.Helper()
	msg := nats.NewMsg(contact.SubjectCreate)
	msg.Data = body
	if msgID != "" {
		msg.Header.Set(contact.HeaderMsgID, msgID)
	}
	if replayOf != "" {
		msg.Header.Set(contact.HeaderReplayOf, replayOf)
	}
	ack, err := r.js.PublishMsg(context.Background(), msg)
	require.NoError(r.t, err)
	require.False(r.t, ack.Duplicate, "the command is stored, not taken for a duplicate")
	return ack.Sequence
}

// next waits for the next delivery the runner settles.
func (r *relay) next() settled {
	r.t.Helper()
	if len(r.pending) > 0 {
		s := r.pending[0]
		r.pending = r.pending[1:]
		return s
	}
	select {
	case s := <-r.settled:
		return s
	case <-time.After(30 * time.Second):
		r.t.Fatal("no delivery was settled within 30s")
		return settled{}
	}
}

// nextOf waits for the next delivery of the command at stream sequence
// seq to be settled; next returns the others settled meanwhile.
func (r *relay) nextOf(seq uint64) settled {
	r.t.Helper()
	for i, s := range r.pending {
		if s.m.Sequence == seq {
			r.pending = append(r.pending[:i], r.pending[i+1:]...)
			return s
		}
	}
	for {
		select {
		case s := <-r.settled:
			if s.m.Sequence == seq {
				return s
			}
			r.pending = append(r.pending, s)
		case <-time.After(30 * time.Second):
			r.t.Fatalf("no delivery of sequence %d was settled within 30s", seq)
		}
	}
}

// send publishes a command (see publish) and waits for its delivery to be
// settled, which it requires to have gone through without an error.
func (r *relay) send(body []byte, msgID, replayOf string) settled {
	r.t.Helper()
	s := r.nextOf(r.publish(body, msgID, replayOf))
	require.NoError(r.t, s.err, "the decision was carried out")
	return s
}

// openFailures returns the open failures of commandID in the store of
// open failures, newest first.
func (r *relay) openFailures(commandID string) []*failstore.Failure {
	r.t.Helper()
	ctx := context.Background()
	snap, err := failstore.Load(ctx, r.js, failstore.Select{CommandID: commandID})
	require.NoError(r.t, err)
	fs, err := failstore.Get(ctx, r.js, snap.Failures)
	require.NoError(r.t, err)
	return fs
}

// storedEvent is an event as CONTACT_EVENTS holds it.
type storedEvent struct {
	subject string
	id      string // its Nats-Msg-Id
	data    []byte
}

// events returns the events stored in CONTACT_EVENTS, in order.
func (r *relay) events() []storedEvent {
	r.t.Helper()
	ctx := context.Background()
	s, err := r.js.Stream(ctx, provision.EventStream)
	require.NoError(r.t, err)
	info, err := s.Info(ctx)
	require.NoError(r.t, err)
	var out []storedEvent
	for seq := info.State.FirstSeq; info.State.Msgs > 0 && seq <= info.State.LastSeq; seq++ {
		raw, err := s.GetMsg(ctx, seq)
		require.NoError(r.t, err)
		out = append(out, storedEvent{subject: raw.Subject, id: raw.Header.Get(contact.HeaderMsgID), data: raw.Data})
	}
	return out
}

// event returns the event stored under id, failing the test when there
// is none or more than one.
func (r *relay) event(id string) storedEvent {
	r.t.Helper()
	var found []storedEvent
	for _, e := range r.events() {
		if e.id == id {
			found = append(found, e)
		}
	}
	require.Len(r.t, found, 1, "one event %s is stored", id)
	return found[0]
}

// value returns the record of commandID as stored, and its revision (zero
// when there is none).
func (r *relay) value(commandID string) ([]byte, uint64) {
	r.t.Helper()
	val, rev, err := r.records.Get(context.Background(), record.Key(commandID))
	require.NoError(r.t, err)
	return val, rev
}

// record returns the record of commandID, which must exist.
func (r *relay) record(commandID string) record.Record {
	r.t.Helper()
	val, rev := r.value(commandID)
	require.NotZero(r.t, rev, "a record exists for %s", commandID)
	rec, err := record.Decode(val)
	require.NoError(r.t, err)
	return rec
}

// loseEvents takes subjects out of CONTACT_EVENTS, so that the runner's
// publishes of such events find no stream and fail, as a publish lost with
// a process that died before settling: the runner hands the command back,
// its outcome recorded, and the redelivery publishes it again. restore
// puts the subjects back.
func (r *relay) loseEvents(subjects ...string) (restore func()) {
	r.t.Helper()
	ctx := context.Background()
	s, err := r.js.Stream(ctx, provision.EventStream)
	require.NoError(r.t, err)
	cfg := s.CachedInfo().Config
	kept := cfg
	kept.Subjects = slices.DeleteFunc(slices.Clone(cfg.Subjects), func(s string) bool { return slices.Contains(subjects, s) })
	_, err = r.js.UpdateStream(ctx, kept)
	require.NoError(r.t, err)
	return sync.OnceFunc(func() {
		_, err := r.js.UpdateStream(ctx, cfg)
		require.NoError(r.t, err)
	})
}

// decodeEvent decodes an event's data.
func decodeEvent[T any](t testing.TB, data []byte) T {
	t.Helper()
	var ev contact.Event
	require.NoError(t, json.Unmarshal(data, &ev))
	var d T
	require.NoError(t, json.Unmarshal(ev.Data, &d))
	return d
}

// decoded decodes the data of a decision's event.
func decoded[T any](t testing.TB, dec handlers.Decision) T {
	t.Helper()
	require.NotNil(t, dec.Event, "an event was decided")
	var d T
	require.NoError(t, json.Unmarshal(dec.Event.Data, &d))
	return d
}
