package stream

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/contactrelay/contactrelay/contact"
	"github.com/contactrelay/contactrelay/internal/events"
	"github.com/contactrelay/contactrelay/internal/handlers"
	"github.com/contactrelay/contactrelay/internal/provision"
)

// handlerFunc adapts a function to the runner's Handler: Redecide decides
// afresh.
type handlerFunc func(ctx context.Context, m handlers.Message) handlers.Decision

func (f handlerFunc) Decide(ctx context.Context, m handlers.Message) handlers.Decision {
	return f(ctx, m)
}

func (f handlerFunc) Redecide(ctx context.Context, m handlers.Message, _ handlers.Decision) handlers.Decision {
	return f(ctx, m)
}

func createdDecision(t testing.TB, m handlers.Message) handlers.Decision {
	id := string(m.Body)
	ev, err := events.NewEvent("", contact.SubjectCreated, id, m.Generation, time.Now(), contact.Created{CommandID: id})
	require.NoError(t, err)
	return handlers.Decision{Action: handlers.Ack, Event: &ev, CommandID: id}
}

func publish(t testing.TB, js jetstream.JetStream, body string, hdr map[string]string) {
	t.Helper()
	msg := nats.NewMsg(contact.SubjectCreate)
	msg.Data = []byte(body)
	for k, v := range hdr {
		msg.Header.Set(k, v)
	}
	_, err := js.PublishMsg(context.Background(), msg)
	require.NoError(t, err)
}

func openRecords(t testing.TB, js jetstream.JetStream) *Records {
	t.Helper()
	r, err := OpenRecords(context.Background(), js, 5*time.Second)
	require.NoError(t, err)
	t.Cleanup(r.Close)
	return r
}

// startRunner runs a runner until the test ends; stop ends it early and
// waits for Run to return.
func startRunner(t *testing.T, js jetstream.JetStream, h Handler, cfg RunnerConfig) (stop func()) {
	t.Helper()
	if cfg.Records == nil {
		cfg.Records = openRecords(t, js)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- NewRunner(js, h, cfg).Run(ctx) }()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			select {
			case err := <-done:
				assert.NoError(t, err)
			case <-time.After(30 * time.Second):
				t.Error("runner did not stop")
			}
		})
	}
	t.Cleanup(stop)
	return stop
}

// eventsIn returns the events stored in the event stream.
func eventsIn(t testing.TB, js jetstream.JetStream) []*nats.Msg {
	t.Helper()
	ctx := context.Background()
	s, err := js.Stream(ctx, provision.EventStream)
	require.NoError(t, err)
	info, err := s.Info(ctx)
	require.NoError(t, err)
	var out []*nats.Msg
	for seq := info.State.FirstSeq; seq <= info.State.LastSeq && info.State.Msgs > 0; seq++ {
		raw, err := s.GetMsg(ctx, seq)
		require.NoError(t, err)
		out = append(out, &nats.Msg{Subject: raw.Subject, Data: raw.Data, Header: raw.Header})
	}
	return out
}

func consumerInfo(t testing.TB, js jetstream.JetStream) *jetstream.ConsumerInfo {
	t.Helper()
	c, err := js.Consumer(context.Background(), provision.CommandStream, provision.Durable)
	require.NoError(t, err)
	info, err := c.Info(context.Background())
	require.NoError(t, err)
	return info
}

// settledAll reports whether every command was taken and settled.
func settledAll(t testing.TB, js jetstream.JetStream) func() bool {
	return func() bool {
		info := consumerInfo(t, js)
		return info.NumAckPending == 0 && info.NumPending == 0 && info.NumRedelivered == 0
	}
}

func TestRunnerPublishesTheEventThenAcks(t *testing.T) {
	_, _, js := setup(t, provision.Topology{})
	startRunner(t, js, handlerFunc(func(_ context.Context, m handlers.Message) handlers.Decision {
		return createdDecision(t, m)
	}), RunnerConfig{Concurrency: 4})

	trace := "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
	publish(t, js, "c-1", map[string]string{"traceparent": trace})
	require.Eventually(t, func() bool { return len(eventsIn(t, js)) == 1 }, 10*time.Second, 20*time.Millisecond)

	ev := eventsIn(t, js)[0]
	var got contact.Event
	require.NoError(t, json.Unmarshal(ev.Data, &got))
	assert.Equal(t, contact.SubjectCreated, ev.Subject)
	assert.Equal(t, got.ID, ev.Header.Get(contact.HeaderMsgID), "the event is published under its id")
	assert.Equal(t, trace, ev.Header.Get("traceparent"), "trace context is carried on")
	require.Eventually(t, settledAll(t, js), 5*time.Second, 20*time.Millisecond, "the command is acked")
}

// TestRunnerRecordsPublishesThenSettles follows one decision through the
// runner: its record is written before its event is published, and the
// command is acked only after both.
func TestRunnerRecordsPublishesThenSettles(t *testing.T) {
	srv, _, js := setup(t, provision.Topology{})
	records := openRecords(t, js)
	ctx := context.Background()
	// One existing record, to be written over (asynchronously), one new.
	rev, ok, err := records.Put(ctx, "c.b2xk", []byte(`{"old":true}`), 0, true)
	require.NoError(t, err)
	require.True(t, ok)

	// One subscription, so that one goroutine sees the messages in the
	// order the server routed them.
	watch, _ := srv.Connect(t)
	seen := make(chan string, 100)
	_, err = watch.Subscribe(">", func(m *nats.Msg) {
		if !isProbe(m) && (strings.HasPrefix(m.Subject, "$KV."+provision.RecordBucket+".") || m.Subject == contact.SubjectCreated) {
			seen <- m.Subject
		}
	})
	require.NoError(t, err)
	require.NoError(t, watch.Flush())

	startRunner(t, js, handlerFunc(func(_ context.Context, m handlers.Message) handlers.Decision {
		dec := createdDecision(t, m)
		switch string(m.Body) {
		case "old":
			dec.Write = &handlers.Write{Key: "c.b2xk", Value: []byte(`{"new":true}`), Revision: rev}
		case "new":
			dec.Write = &handlers.Write{Key: "c.bmV3", Value: []byte(`{"created":true}`)}
		}
		return dec
	}), RunnerConfig{Concurrency: 1, Records: records})

	for _, body := range []string{"old", "new"} {
		publish(t, js, body, nil)
		first, second := <-seen, <-seen
		assert.Contains(t, first, "$KV."+provision.RecordBucket, "%s: recorded first", body)
		assert.Equal(t, contact.SubjectCreated, second, "%s: then published", body)
	}
	require.Eventually(t, settledAll(t, js), 5*time.Second, 20*time.Millisecond, "then settled")
	for key, want := range map[string]string{"c.b2xk": `{"new":true}`, "c.bmV3": `{"created":true}`} {
		got, _, err := records.Get(ctx, key)
		require.NoError(t, err)
		assert.JSONEq(t, want, string(got))
	}
}

func TestRunnerRedecidesAWriteThatDidNotLand(t *testing.T) {
	_, _, js := setup(t, provision.Topology{})
	records := openRecords(t, js)
	ctx := context.Background()
	rev, _, err := records.Put(ctx, "c.a2V5", []byte(`{"v":1}`), 0, true)
	require.NoError(t, err)

	var decided, redecided atomic.Int32
	h := testHandler{
		decide: func(m handlers.Message) handlers.Decision {
			decided.Add(1)
			dec := createdDecision(t, m)
			dec.Write = &handlers.Write{Key: "c.a2V5", Value: []byte(`{"v":"stale"}`), Revision: rev + 100}
			return dec
		},
		redecide: func(m handlers.Message, prev handlers.Decision) handlers.Decision {
			redecided.Add(1)
			if string(m.Body) == "never" {
				return prev // keeps writing over a revision that is gone
			}
			_, cur, err := records.Get(ctx, "c.a2V5")
			require.NoError(t, err)
			prev.Write = &handlers.Write{Key: "c.a2V5", Value: []byte(`{"v":2}`), Revision: cur}
			return prev
		},
	}
	settled := make(chan handlers.Decision, 2)
	startRunner(t, js, h, RunnerConfig{Concurrency: 1, Records: records,
		Hooks: Hooks{Settled: func(_ handlers.Message, dec handlers.Decision, _ time.Duration, _ error) { settled <- dec }}})

	publish(t, js, "lands", nil)
	dec := <-settled
	assert.Equal(t, handlers.Ack, dec.Action, "decided again against the record as it is, and carried out")
	assert.EqualValues(t, 1, redecided.Load())
	got, _, err := records.Get(ctx, "c.a2V5")
	require.NoError(t, err)
	assert.JSONEq(t, `{"v":2}`, string(got))
	assert.Len(t, eventsIn(t, js), 1)

	publish(t, js, "never", nil)
	dec = <-settled
	assert.Equal(t, handlers.Retry, dec.Action, "a write that never lands hands the command back")
	assert.EqualValues(t, 1+maxRedecisions, redecided.Load(), "after a bounded number of decisions")
	assert.Len(t, eventsIn(t, js), 1, "nothing unrecorded is published")
}

// testHandler is a Handler of two functions.
type testHandler struct {
	decide   func(m handlers.Message) handlers.Decision
	redecide func(m handlers.Message, prev handlers.Decision) handlers.Decision
}

func (h testHandler) Decide(_ context.Context, m handlers.Message) handlers.Decision {
	return h.decide(m)
}

func (h testHandler) Redecide(_ context.Context, m handlers.Message, prev handlers.Decision) handlers.Decision {
	return h.redecide(m, prev)
}

func TestRunnerTermAndRetry(t *testing.T) {
	_, _, js := setup(t, provision.Topology{})
	var mu sync.Mutex
	deliveries := map[string][]time.Time{}
	startRunner(t, js, handlerFunc(func(_ context.Context, m handlers.Message) handlers.Decision {
		mu.Lock()
		deliveries[string(m.Body)] = append(deliveries[string(m.Body)], time.Now())
		mu.Unlock()
		switch {
		case string(m.Body) == "bad":
			out := createdDecision(t, m)
			out.Action = handlers.Term
			return out
		case m.Delivery == 1:
			return handlers.Decision{Action: handlers.Retry, Delay: 300 * time.Millisecond}
		}
		return createdDecision(t, m)
	}), RunnerConfig{Concurrency: 2})

	publish(t, js, "bad", nil)
	publish(t, js, "later", nil)
	require.Eventually(t, func() bool { return len(eventsIn(t, js)) == 2 }, 10*time.Second, 20*time.Millisecond)
	require.Eventually(t, func() bool {
		info := consumerInfo(t, js)
		return info.NumAckPending == 0 && info.NumPending == 0
	}, 5*time.Second, 20*time.Millisecond)

	mu.Lock()
	defer mu.Unlock()
	assert.Len(t, deliveries["bad"], 1, "a terminated command is not redelivered")
	times := deliveries["later"]
	require.Len(t, times, 2, "a retried command is delivered again")
	assert.GreaterOrEqual(t, times[1].Sub(times[0]), 300*time.Millisecond, "after the asked delay")
}

func TestRunnerKeepsLongCommandsAlive(t *testing.T) {
	_, _, js := setup(t, provision.Topology{AckWait: time.Second})
	var calls atomic.Int32
	release := make(chan struct{})
	startRunner(t, js, handlerFunc(func(_ context.Context, m handlers.Message) handlers.Decision {
		calls.Add(1)
		<-release // a provider call, until well past the ack wait
		return createdDecision(t, m)
	}), RunnerConfig{Concurrency: 1, AckWait: time.Second})
	unblock := sync.OnceFunc(func() { close(release) })
	t.Cleanup(unblock) // before the runner's stop, which waits for the call

	publish(t, js, "slow", nil)
	require.Eventually(t, func() bool { return calls.Load() == 1 }, 5*time.Second, 5*time.Millisecond, "the call starts")
	require.Never(t, func() bool { return consumerInfo(t, js).Delivered.Consumer > 1 }, 2500*time.Millisecond, 50*time.Millisecond,
		"in-progress acks keep the command from being delivered again, ack wait after ack wait")
	unblock()
	require.Eventually(t, func() bool { return len(eventsIn(t, js)) == 1 }, 10*time.Second, 20*time.Millisecond)
	assert.EqualValues(t, 1, calls.Load(), "in-progress acks kept the command from being redelivered")
}

// TestRunnerKeepsFetchedCommandsAlive holds the only worker for three ack
// waits while more commands are fetched: those waiting for the worker are
// kept alive too, so none is delivered twice.
func TestRunnerKeepsFetchedCommandsAlive(t *testing.T) {
	_, _, js := setup(t, provision.Topology{AckWait: time.Second})
	var calls atomic.Int32
	release := make(chan struct{})
	startRunner(t, js, handlerFunc(func(_ context.Context, m handlers.Message) handlers.Decision {
		calls.Add(1)
		if string(m.Body) == "c-0" {
			<-release
		}
		return createdDecision(t, m)
	}), RunnerConfig{Concurrency: 1, Prefetch: 1, AckWait: time.Second})

	for i := range 3 {
		publish(t, js, fmt.Sprintf("c-%d", i), nil)
	}
	// c-1 waits in the loop's hand for the worker: its ack wait passes
	// three times over while it waits.
	require.Eventually(t, func() bool { return consumerInfo(t, js).NumAckPending >= 2 }, 5*time.Second, 10*time.Millisecond)
	waitedFrom := time.Now()
	require.Eventually(t, func() bool { return time.Since(waitedFrom) > 3*time.Second }, 5*time.Second, 100*time.Millisecond)
	close(release)
	require.Eventually(t, func() bool { return len(eventsIn(t, js)) == 3 }, 10*time.Second, 20*time.Millisecond)
	require.Eventually(t, settledAll(t, js), 5*time.Second, 20*time.Millisecond)
	assert.EqualValues(t, 3, calls.Load(), "no command was delivered twice")
	assert.Zero(t, consumerInfo(t, js).NumRedelivered)
}

func TestRunnerBoundsConcurrency(t *testing.T) {
	_, _, js := setup(t, provision.Topology{})
	const limit, n = 4, 40
	var inFlight, peak atomic.Int32
	release := make(chan struct{})
	startRunner(t, js, handlerFunc(func(_ context.Context, m handlers.Message) handlers.Decision {
		now := inFlight.Add(1)
		for {
			p := peak.Load()
			if now <= p || peak.CompareAndSwap(p, now) {
				break
			}
		}
		<-release // a provider call, until the test has seen the limit reached
		inFlight.Add(-1)
		return createdDecision(t, m)
	}), RunnerConfig{Concurrency: limit})
	unblock := sync.OnceFunc(func() { close(release) })
	t.Cleanup(unblock) // before the runner's stop, which waits for the calls

	for i := range n {
		publish(t, js, fmt.Sprintf("c-%d", i), nil)
	}
	require.Eventually(t, func() bool { return inFlight.Load() >= limit }, 10*time.Second, 5*time.Millisecond, "the limit is used")
	// Nothing tells of a command that is not started: give the runner a
	// moment to start a fifth, while the four hold their workers.
	// The conditions run on testify's goroutines, which may overlap.
	var maxAckPending atomic.Int64
	seeAckPending := func() {
		n := int64(consumerInfo(t, js).NumAckPending)
		for {
			m := maxAckPending.Load()
			if n <= m || maxAckPending.CompareAndSwap(m, n) {
				return
			}
		}
	}
	require.Never(t, func() bool {
		seeAckPending()
		return inFlight.Load() > limit
	}, 200*time.Millisecond, 5*time.Millisecond, "no more than Concurrency commands at once")
	unblock()
	require.Eventually(t, func() bool {
		seeAckPending()
		return len(eventsIn(t, js)) == n
	}, 20*time.Second, 10*time.Millisecond)
	assert.LessOrEqual(t, peak.Load(), int32(limit), "never more than Concurrency commands at once")
	assert.Equal(t, int32(limit), peak.Load(), "and the limit is used")
	// Decided (limit), in the tail (limit), one in the loop's hand and a
	// prefetch of at most limit; acks reach the server a little after the
	// work is done.
	assert.LessOrEqual(t, maxAckPending.Load(), int64(4*limit), "fetched no further ahead than the limit")
}

func TestRunnerShutdownLetsInFlightFinish(t *testing.T) {
	_, _, js := setup(t, provision.Topology{})
	started := make(chan struct{}, 100)
	var finished atomic.Int32
	stop := startRunner(t, js, handlerFunc(func(ctx context.Context, m handlers.Message) handlers.Decision {
		started <- struct{}{}
		<-ctx.Done() // a provider call in flight when the shutdown begins
		finished.Add(1)
		return createdDecision(t, m)
	}), RunnerConfig{Concurrency: 2})

	for i := range 6 {
		publish(t, js, fmt.Sprintf("c-%d", i), nil)
	}
	<-started
	stop()
	n := int(finished.Load())
	assert.GreaterOrEqual(t, n, 1, "the command in flight finished")
	assert.Len(t, eventsIn(t, js), n, "every finished command published its event")

	// A restarted runner takes the rest, each exactly once.
	startRunner(t, js, handlerFunc(func(_ context.Context, m handlers.Message) handlers.Decision {
		return createdDecision(t, m)
	}), RunnerConfig{Concurrency: 2})
	require.Eventually(t, func() bool { return len(eventsIn(t, js)) == 6 }, 10*time.Second, 20*time.Millisecond,
		"the commands not finished before shutdown are processed after the restart")
}

func TestRunnerStopsWhenTheConsumerIsDeleted(t *testing.T) {
	_, _, js := setup(t, provision.Topology{})
	done := make(chan error, 1)
	runner := NewRunner(js, handlerFunc(func(_ context.Context, m handlers.Message) handlers.Decision {
		return createdDecision(t, m)
	}), RunnerConfig{Concurrency: 2, Records: openRecords(t, js)})
	go func() { done <- runner.Run(context.Background()) }()
	require.Eventually(t, func() bool { return runner.Consuming() == nil }, 5*time.Second, 10*time.Millisecond)
	require.NoError(t, js.DeleteConsumer(context.Background(), provision.CommandStream, provision.Durable))
	select {
	case err := <-done:
		require.Error(t, err, "a deleted consumer ends the run with an error, so the process restarts")
		assert.Contains(t, err.Error(), provision.Durable)
	case <-time.After(20 * time.Second):
		t.Fatal("the runner went on without its consumer")
	}
}

// stallEvents makes publishes of contact.created wait: the event stream is
// gone, and a subscriber takes the events and never acknowledges. It
// returns a channel that receives each event as it reaches the server.
func stallEvents(t *testing.T, js jetstream.JetStream, connect func(testing.TB) (*nats.Conn, jetstream.JetStream)) <-chan struct{} {
	t.Helper()
	require.NoError(t, js.DeleteStream(context.Background(), provision.EventStream))
	sink, _ := connect(t)
	arrived := make(chan struct{}, 100)
	_, err := sink.Subscribe(contact.SubjectCreated, func(m *nats.Msg) {
		if !isProbe(m) {
			arrived <- struct{}{}
		}
	})
	require.NoError(t, err)
	require.NoError(t, sink.Flush())
	return arrived
}

func TestRunnerSettlesAtOnceWhenItsConnectionCloses(t *testing.T) {
	srv, _, js := setup(t, provision.Topology{})
	ctx := context.Background()
	arrived := stallEvents(t, js, srv.Connect)

	nc, rjs := srv.Connect(t)
	settled := make(chan error, 1)
	done := make(chan error, 1)
	runner := NewRunner(rjs, handlerFunc(func(_ context.Context, m handlers.Message) handlers.Decision {
		return createdDecision(t, m)
	}), RunnerConfig{Concurrency: 2, PublishTimeout: time.Minute, ShutdownGrace: time.Minute, Records: openRecords(t, rjs),
		Hooks: Hooks{Settled: func(_ handlers.Message, _ handlers.Decision, _ time.Duration, err error) { settled <- err }}})
	go func() { done <- runner.Run(ctx) }()

	publish(t, js, "c-1", nil)
	<-arrived // the event's publish is under way
	closedAt := time.Now()
	nc.Close()
	select {
	case err := <-settled:
		assert.ErrorIs(t, err, nats.ErrConnectionClosed, "the command waiting for its event is settled with the closed connection")
	case <-time.After(10 * time.Second):
		t.Fatal("the command was not settled when the connection closed")
	}
	select {
	case <-done:
		assert.Less(t, time.Since(closedAt), 10*time.Second, "Run returns without waiting out the publish timeout")
	case <-time.After(20 * time.Second):
		t.Fatal("Run did not return after its connection closed")
	}
}

func TestRunnerBoundsTheTail(t *testing.T) {
	srv, _, js := setup(t, provision.Topology{})
	arrived := stallEvents(t, js, srv.Connect)
	const limit = 2
	var decided atomic.Int32
	startRunner(t, js, handlerFunc(func(_ context.Context, m handlers.Message) handlers.Decision {
		decided.Add(1)
		return createdDecision(t, m)
	}), RunnerConfig{Concurrency: limit, PublishTimeout: 30 * time.Second, ShutdownGrace: time.Second})

	for i := range 10 {
		publish(t, js, fmt.Sprintf("c-%d", i), nil)
	}
	// limit commands in the tail, their publishes stuck, then limit
	// workers blocked handing theirs on: nothing more is decided.
	for range limit {
		<-arrived
	}
	require.Eventually(t, func() bool { return decided.Load() == 2*limit }, 5*time.Second, 5*time.Millisecond)
	require.Never(t, func() bool { return decided.Load() > 2*limit }, 300*time.Millisecond, 10*time.Millisecond,
		"no command is decided while the tail and the workers are full")
}

// isProbe tells the runner's permission probes (CheckPublish) from what
// it publishes for commands.
func isProbe(m *nats.Msg) bool { return m.Header.Get(nats.ExpectedStreamHdr) == provision.ProbeStream }
