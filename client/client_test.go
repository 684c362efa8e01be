package client_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/otel/trace"

	"github.com/contactrelay/contactrelay/client"
	"github.com/contactrelay/contactrelay/internal/natstest"
	"github.com/contactrelay/contactrelay/internal/provision"
	"github.com/contactrelay/contactrelay/internal/sandbox"
)

const tagID = "65a1b2c3d4e5f6a7b8c9d0e1"

func jane(id string) client.Command {
	return client.Command{CommandID: id, Name: "Jane Doe", Email: "jane@example.com", Mobile: "+919876543210", TagID: tagID}
}

func wait(t *testing.T) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func TestPublishAndWait(t *testing.T) {
	t.Parallel()
	w := newWorld(t)
	w.startService(t)
	c := client.New(w.js, client.Config{})
	ctx := wait(t)

	t.Run("created", func(t *testing.T) {
		o, err := c.PublishAndWait(ctx, jane("paw-1"))
		require.NoError(t, err)
		require.NotNil(t, o.Created, "a contact.created outcome")
		assert.Equal(t, client.SubjectCreated, o.Event.Type)
		assert.Equal(t, client.EventID("paw-1", "", client.SubjectCreated), o.Event.ID, "this generation's event")
		assert.Equal(t, "instantpay", o.Created.Provider)
		assert.NotEmpty(t, o.Created.ContactID)
		assert.False(t, o.Ack.Duplicate)
	})
	t.Run("the same command again: a duplicate whose outcome already exists", func(t *testing.T) {
		o, err := c.PublishAndWait(ctx, jane("paw-1"))
		require.NoError(t, err)
		assert.True(t, o.Ack.Duplicate, "the stream dropped the second publish")
		assert.Equal(t, client.EventID("paw-1", "", client.SubjectCreated), o.Event.ID)
		assert.Equal(t, 1, w.ipay.CreateCalls(), "one contact created for both")
	})
	t.Run("failed is an error value", func(t *testing.T) {
		bad := jane("paw-bad")
		bad.Email = "not-an-email"
		o, err := c.PublishAndWait(ctx, bad)
		var fe *client.FailedError
		require.ErrorAs(t, err, &fe)
		assert.Equal(t, client.ReasonInvalid, fe.Reason)
		require.Len(t, fe.Errors, 1)
		assert.Equal(t, "email", fe.Errors[0].Field)
		assert.Equal(t, "email", fe.Errors[0].Rule)
		assert.Contains(t, fe.Message, "email must be a valid email address")
		require.NotNil(t, o.Failed)
		assert.Equal(t, client.EventID("paw-bad", "", client.SubjectFailed), o.Event.ID)
	})
	t.Run("a replay waits for its own generation, not the failure it replays", func(t *testing.T) {
		failedID := client.EventID("paw-bad", "", client.SubjectFailed)
		body, err := json.Marshal(jane("paw-bad"))
		require.NoError(t, err)
		o, err := c.PublishMessageAndWait(ctx, client.Message{Body: body, ReplayOf: failedID})
		require.NoError(t, err, "the repaired replay is created")
		assert.Equal(t, client.EventID("paw-bad", failedID, client.SubjectCreated), o.Event.ID)
		assert.Equal(t, failedID, o.Created.ReplayOf)
	})
	t.Run("other content under a used commandId, within the window", func(t *testing.T) {
		other := jane("paw-1")
		other.Email = "jane.doe@example.com"
		_, err := c.PublishAndWait(ctx, other)
		require.ErrorIs(t, err, client.ErrOtherContent)
	})
}

// TestPublishAndWaitWhenTheOutcomeCameFirst: a command published without
// a wait is settled; the same command published again within the window
// finds the outcome stored before its subscription.
// A commandId the service cannot use (a control or format character, or
// the reserved form <stream>:<sequence>) is answered under
// <stream>:<sequence>: the wait finds that answer instead of waiting for
// one under the id given.
func TestPublishAndWaitWithACommandIDTheServiceCannotUse(t *testing.T) {
	t.Parallel()
	w := newWorld(t)
	w.startService(t)
	c := client.New(w.js, client.Config{})
	for _, id := range []string{"tab\tid", "line\nid", "cr\r\nid", "nul\x00id", "zero\u200bwidth", "CONTACT_COMMANDS:999999", strings.Repeat("x", 5000)} {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		o, err := c.PublishAndWait(ctx, jane(id))
		cancel()
		var failed *client.FailedError
		require.ErrorAs(t, err, &failed, "%q", id)
		assert.Equal(t, client.ReasonInvalid, failed.Reason, "%q", id)
		assert.Equal(t, fmt.Sprintf("%s:%d", o.Ack.Stream, o.Ack.Sequence), o.Ack.CommandID, "%q", id)
		assert.Equal(t, o.Ack.CommandID, o.Event.Subject, "%q", id)
	}
}

func TestPublishAndWaitWhenTheOutcomeCameFirst(t *testing.T) {
	t.Parallel()
	w := newWorld(t)
	w.startService(t)
	c := client.New(w.js, client.Config{})
	ctx := wait(t)
	_, err := c.Publish(ctx, jane("first-1"))
	require.NoError(t, err)
	require.Eventually(t, func() bool { return eventsStored(t, w) == 1 }, 10*time.Second, 10*time.Millisecond, "the outcome is stored")
	o, err := c.PublishAndWait(ctx, jane("first-1"))
	require.NoError(t, err)
	assert.True(t, o.Ack.Duplicate)
	assert.Equal(t, client.EventID("first-1", "", client.SubjectCreated), o.Event.ID)
}

// TestPublishAndWaitSeesAnAnswerTheStreamDrops: when the service answers a
// re-published command from its record with an event the event stream
// drops as a duplicate (the command's window had passed, the event's had
// not), the wait still sees it.
func TestPublishAndWaitSeesAnAnswerTheStreamDrops(t *testing.T) {
	t.Parallel()
	w := newWorld(t)
	w.startService(t)
	c := client.New(w.js, client.Config{})
	ctx := wait(t)
	// The command stream forgets message ids after 100ms; the event
	// stream keeps its two minutes.
	shortenDuplicateWindow(t, w.js)
	_, err := c.PublishAndWait(ctx, jane("drop-1"))
	require.NoError(t, err)
	o := publishUntilStoredAgain(t, ctx, c, jane("drop-1"))
	assert.Equal(t, client.EventID("drop-1", "", client.SubjectCreated), o.Event.ID)
	assert.Equal(t, 1, w.ipay.CreateCalls(), "answered from the record")
	assert.EqualValues(t, 1, eventsStored(t, w), "the stream dropped the repeated answer")
}

func eventsStored(t *testing.T, w *world) uint64 {
	t.Helper()
	s, err := w.js.Stream(context.Background(), client.EventStream)
	require.NoError(t, err)
	info, err := s.Info(context.Background())
	require.NoError(t, err)
	return info.State.Msgs
}

func TestErrors(t *testing.T) {
	t.Parallel()
	t.Run("no streams", func(t *testing.T) {
		srv := natstest.Start(t, nil)
		_, js := srv.Connect(t)
		c := client.New(js, client.Config{})
		ctx := wait(t)
		_, err := c.Publish(ctx, jane("x"))
		assert.ErrorIs(t, err, client.ErrNoStreams)
		_, err = c.PublishAndWait(ctx, jane("x"))
		assert.ErrorIs(t, err, client.ErrNoStreams)
		assert.ErrorIs(t, c.CheckStreams(ctx), client.ErrNoStreams)
	})
	t.Run("timeout", func(t *testing.T) {
		w := newWorld(t) // no service
		c := client.New(w.js, client.Config{})
		ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
		defer cancel()
		o, err := c.PublishAndWait(ctx, jane("t-1"))
		require.ErrorIs(t, err, client.ErrTimeout)
		assert.ErrorIs(t, err, context.DeadlineExceeded)
		assert.Equal(t, "t-1", o.Ack.CommandID, "the command was published")
		cctx, ccancel := context.WithCancel(context.Background())
		ccancel()
		_, err = c.PublishAndWait(cctx, jane("t-2"))
		assert.False(t, errors.Is(err, client.ErrTimeout), "a cancel is not a timeout: %v", err)
	})
	t.Run("cancelled after a duplicate's publish", func(t *testing.T) {
		w := newWorld(t) // no service: the first publish has no outcome
		_, err := client.New(w.js, client.Config{}).Publish(wait(t), jane("d-1"))
		require.NoError(t, err)
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		// Cancelled between the publish and the wait: the watch from
		// before the stored command cannot start.
		c := client.New(w.js, client.Config{Published: func(client.Ack) { cancel() }})
		o, err := c.PublishAndWait(ctx, jane("d-1"))
		assert.ErrorIs(t, err, context.Canceled)
		assert.True(t, o.Ack.Duplicate)
	})
}

func TestPublishSetsHeaders(t *testing.T) {
	t.Parallel()
	w := newWorld(t)
	c := client.New(w.js, client.Config{})
	ctx := wait(t)
	traceID, _ := trace.TraceIDFromHex("4bf92f3577b34da6a3ce929d0e0e4736")
	spanID, _ := trace.SpanIDFromHex("00f067aa0ba902b7")
	sctx := trace.ContextWithSpanContext(ctx, trace.NewSpanContext(trace.SpanContextConfig{TraceID: traceID, SpanID: spanID, TraceFlags: trace.FlagsSampled}))
	ack, err := c.Publish(sctx, jane("h-1"))
	require.NoError(t, err)
	s, err := w.js.Stream(ctx, client.CommandStream)
	require.NoError(t, err)
	m, err := s.GetMsg(ctx, ack.Sequence)
	require.NoError(t, err)
	assert.Equal(t, "h-1", m.Header.Get(client.HeaderMsgID))
	assert.Equal(t, "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", nats.Header(m.Header).Get("traceparent"))

	ack, err = c.Publish(ctx, client.Command{Name: "No Id", Email: "n@example.com", Mobile: "9876543210", TagID: tagID})
	require.NoError(t, err)
	assert.NotEmpty(t, ack.CommandID, "a command without an id is given one")
	m, err = s.GetMsg(ctx, ack.Sequence)
	require.NoError(t, err)
	assert.Equal(t, ack.CommandID, m.Header.Get(client.HeaderMsgID))
}

func TestValidate(t *testing.T) {
	t.Parallel()
	c := client.New(nil, client.Config{DefaultProvider: "instantpay"})
	for _, tc := range []struct {
		name   string
		cmd    client.Command
		reason client.Reason
		fields []string
	}{
		{"good", jane("v-1"), "", nil},
		{"nothing", client.Command{}, client.ReasonInvalid, []string{"email", "mobile", "name", "tagId"}},
		{"InstantPay's own rule, by default", func() client.Command { c := jane("v-2"); c.TagID = "vip"; return c }(), client.ReasonInvalid, []string{"tagId"}},
		{"PIK takes any tag", func() client.Command { c := jane("v-3"); c.TagID = "vip"; c.Provider = "pik"; return c }(), "", nil},
		{"unknown provider", func() client.Command { c := jane("v-4"); c.Provider = "paypal"; return c }(), client.ReasonUnroutable, nil},
		{"a spaced mobile and a provider in capitals are normalised", func() client.Command {
			c := jane("v-5")
			c.Mobile, c.Provider, c.TagID = "+91 98765-10011", " PIK ", "vip"
			return c
		}(), "", nil},
		{"parentheses are not normalised", func() client.Command { c := jane("v-6"); c.Mobile = "+44 (0)20 7946 0958"; return c }(), client.ReasonInvalid, []string{"mobile"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := c.Validate(tc.cmd)
			if tc.reason == "" {
				assert.NoError(t, err)
				return
			}
			var ie *client.InvalidError
			require.ErrorAs(t, err, &ie)
			assert.Equal(t, tc.reason, ie.Reason)
			var fields []string
			for _, fe := range ie.Errors {
				fields = append(fields, fe.Field)
			}
			assert.Equal(t, tc.fields, fields)
		})
	}
	t.Run("a body", func(t *testing.T) {
		var ie *client.InvalidError
		require.ErrorAs(t, c.ValidateJSON([]byte(`[1]`)), &ie)
		assert.Equal(t, client.ReasonMalformed, ie.Reason)
		require.ErrorAs(t, c.ValidateJSON([]byte(`{"name":1,"email":"a@b.co","mobile":"9876543210","tagId":"`+tagID+`"}`)), &ie)
		assert.Equal(t, []client.FieldError{{Field: "name", Rule: "type", Message: "name must be a string"}}, ie.Errors)
	})
}

// Settled tells a command the service has decided from one it has not,
// from the service's record: the outcome of this content only.
func TestSettled(t *testing.T) {
	t.Parallel()
	w := newWorld(t)
	w.startService(t)
	c := client.New(w.js, client.Config{})
	ctx := wait(t)
	body := func(cmd client.Command) []byte {
		b, err := json.Marshal(cmd)
		require.NoError(t, err)
		return b
	}

	_, ok, err := c.Settled(ctx, body(jane("st-1")))
	require.NoError(t, err)
	assert.False(t, ok, "never sent: nothing to tell")

	created, err := c.PublishAndWait(ctx, jane("st-1"))
	require.NoError(t, err)
	o, ok, err := c.Settled(ctx, body(jane("st-1")))
	require.NoError(t, err)
	require.True(t, ok)
	assert.Equal(t, created.Event.ID, o.Event.ID, "the outcome the service recorded")
	require.NotNil(t, o.Created)
	assert.Equal(t, created.Created.ContactID, o.Created.ContactID)
	assert.Equal(t, "st-1", o.Ack.CommandID)

	other := jane("st-1")
	other.Email = "jane.doe@example.com"
	_, ok, err = c.Settled(ctx, body(other))
	require.NoError(t, err)
	assert.False(t, ok, "other content under the commandId is not this command")

	bad := jane("st-2")
	bad.Email = "not-an-email"
	_, err = c.PublishAndWait(ctx, bad)
	require.Error(t, err)
	o, ok, err = c.Settled(ctx, body(bad))
	require.NoError(t, err)
	require.True(t, ok)
	require.NotNil(t, o.Failed)
	assert.Equal(t, client.ReasonInvalid, o.Failed.Reason)

	_, ok, err = c.Settled(ctx, []byte(`{"name":"no commandId"}`))
	require.NoError(t, err)
	assert.False(t, ok, "no usable commandId: no record to read")
}

// TestPublishAndWaitFindsAnOutcomeDecidedBefore: a command whose newest
// outcome was decided before the wait began (here a replay's
// contact.created, after the original generation was rejected) is
// answered with that outcome, whether the stream drops the re-sent
// command as a duplicate or stores it again after its window.
func TestPublishAndWaitFindsAnOutcomeDecidedBefore(t *testing.T) {
	t.Parallel()
	w := newWorld(t)
	w.startService(t)
	c := client.New(w.js, client.Config{})
	ctx := wait(t)

	cmd := jane("newest-1")
	cmd.Email = "rejected.once@example.com"
	w.ipay.Inject(sandbox.Fault{Times: 1, Email: cmd.Email, Code: "RPI"})
	_, err := c.PublishAndWait(ctx, cmd)
	var failed *client.FailedError
	require.ErrorAs(t, err, &failed, "the original generation is rejected")
	require.Equal(t, client.ReasonRejected, failed.Reason)
	failedID := client.EventID(cmd.CommandID, "", client.SubjectFailed)
	body, err := json.Marshal(cmd)
	require.NoError(t, err)
	replayed, err := c.PublishMessageAndWait(ctx, client.Message{Body: body, ReplayOf: failedID})
	require.NoError(t, err, "the replay creates the contact")
	newest := client.EventID(cmd.CommandID, failedID, client.SubjectCreated)
	require.Equal(t, newest, replayed.Event.ID)

	t.Run("a duplicate", func(t *testing.T) {
		o, err := c.PublishAndWait(ctx, cmd)
		require.NoError(t, err, "answered with the newest outcome, not the original generation's failure")
		assert.True(t, o.Ack.Duplicate)
		assert.Equal(t, newest, o.Event.ID)
		require.NotNil(t, o.Created)
		assert.Equal(t, replayed.Created.ContactID, o.Created.ContactID)
	})
	t.Run("stored again after the window", func(t *testing.T) {
		shortenDuplicateWindow(t, w.js)
		o := publishUntilStoredAgain(t, ctx, c, cmd)
		assert.Equal(t, newest, o.Event.ID)
	})
	assert.Equal(t, 2, w.ipay.CreateCalls(), "the rejected call and the replay's")
}

// TestPublishAndWaitDuplicatesAtOnce: many calls re-sending commands
// settled before they began all find their outcomes.
func TestPublishAndWaitDuplicatesAtOnce(t *testing.T) {
	t.Parallel()
	w := newWorld(t)
	w.startService(t)
	c := client.New(w.js, client.Config{})
	ctx := wait(t)
	const n = 50
	for i := range n {
		_, err := c.Publish(ctx, jane(fmt.Sprintf("dups-%d", i)))
		require.NoError(t, err)
	}
	require.Eventually(t, func() bool { return eventsStored(t, w) == n }, 10*time.Second, 10*time.Millisecond, "the outcomes are stored")
	errs := make(chan error, n)
	for i := range n {
		go func() {
			id := fmt.Sprintf("dups-%d", i)
			o, err := c.PublishAndWait(ctx, jane(id))
			switch {
			case err != nil:
			case !o.Ack.Duplicate:
				err = fmt.Errorf("%s: not a duplicate", id)
			case o.Event.ID != client.EventID(id, "", client.SubjectCreated):
				err = fmt.Errorf("%s: event %s", id, o.Event.ID)
			}
			errs <- err
		}()
	}
	for range n {
		assert.NoError(t, <-errs)
	}
}

// shortenDuplicateWindow makes the command stream forget message ids
// after 100ms (the event stream keeps its two minutes). It updates the
// stream twice: the server lets its de-duplication timer fire at once on
// an update, before it takes the new window, so a timer firing in between
// would purge by the old two minutes and then wait that long; on the
// second update the window it fires with is already the short one.
func shortenDuplicateWindow(t *testing.T, js jetstream.JetStream) {
	t.Helper()
	ctx := wait(t)
	s, err := js.Stream(ctx, provision.CommandStream)
	require.NoError(t, err)
	cfg := s.CachedInfo().Config
	for _, d := range []time.Duration{100 * time.Millisecond, 101 * time.Millisecond} {
		cfg.Duplicates = d
		_, err = js.UpdateStream(ctx, cfg)
		require.NoError(t, err)
	}
}

// publishUntilStoredAgain publishes cmd and waits for its outcome until the
// command stream stores it again rather than dropping it as a duplicate
// (its duplicate window passed), and returns that outcome.
func publishUntilStoredAgain(t *testing.T, ctx context.Context, c *client.Client, cmd client.Command) client.Outcome {
	t.Helper()
	var o client.Outcome
	var err error
	require.Eventually(t, func() bool {
		o, err = c.PublishAndWait(ctx, cmd)
		return err != nil || !o.Ack.Duplicate
	}, 10*time.Second, 50*time.Millisecond, "the command stream forgets %s's message id", cmd.CommandID)
	require.NoError(t, err)
	return o
}
