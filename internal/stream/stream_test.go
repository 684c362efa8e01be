package stream

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/contactrelay/contactrelay/internal/events"
	"github.com/contactrelay/contactrelay/internal/handlers"
	"github.com/contactrelay/contactrelay/internal/natstest"
)

func setup(t *testing.T, topo Topology) (*natstest.Server, *nats.Conn, jetstream.JetStream) {
	t.Helper()
	srv := natstest.Start(t, nil)
	nc, js := srv.Connect(t)
	require.NoError(t, Setup(context.Background(), js, topo))
	return srv, nc, js
}

func TestSetupIsIdempotent(t *testing.T) {
	_, _, js := setup(t, Topology{})
	ctx := context.Background()
	snapshot := func() (jetstream.StreamConfig, jetstream.StreamConfig, jetstream.ConsumerConfig) {
		cs, err := js.Stream(ctx, CommandStream)
		require.NoError(t, err)
		es, err := js.Stream(ctx, EventStream)
		require.NoError(t, err)
		ci, err := js.Consumer(ctx, CommandStream, Durable)
		require.NoError(t, err)
		return cs.CachedInfo().Config, es.CachedInfo().Config, ci.CachedInfo().Config
	}
	c1, e1, d1 := snapshot()
	require.NoError(t, Setup(ctx, js, Topology{}), "a second setup succeeds")
	c2, e2, d2 := snapshot()
	assert.Equal(t, c1, c2, "the command stream is unchanged")
	assert.Equal(t, e1, e2, "the event stream is unchanged")
	assert.Equal(t, d1, d2, "the consumer is unchanged")

	assert.Equal(t, []string{events.SubjectCreate}, c1.Subjects)
	assert.Equal(t, jetstream.FileStorage, c1.Storage)
	assert.Equal(t, jetstream.LimitsPolicy, c1.Retention)
	assert.Equal(t, 2*time.Minute, c1.Duplicates)
	assert.Equal(t, []string{events.SubjectCreated, events.SubjectFailed}, e1.Subjects)
	assert.Equal(t, jetstream.AckExplicitPolicy, d1.AckPolicy)
	_, err := js.KeyValue(ctx, RecordBucket)
	assert.NoError(t, err, "the record bucket exists")
}

func TestSetupKeepsWhatAnOperatorAdded(t *testing.T) {
	_, _, js := setup(t, Topology{})
	ctx := context.Background()
	s, err := js.Stream(ctx, EventStream)
	require.NoError(t, err)
	cfg := s.CachedInfo().Config
	cfg.Subjects = append(cfg.Subjects, "contact.audit")
	cfg.MaxAge = 90 * 24 * time.Hour
	_, err = js.UpdateStream(ctx, cfg)
	require.NoError(t, err)

	require.NoError(t, Setup(ctx, js, Topology{}))
	s, err = js.Stream(ctx, EventStream)
	require.NoError(t, err)
	assert.Contains(t, s.CachedInfo().Config.Subjects, "contact.audit", "extra subjects are left")
	assert.Equal(t, 90*24*time.Hour, s.CachedInfo().Config.MaxAge, "limits are left")
}

func TestRecordsCompareAndSet(t *testing.T) {
	_, _, js := setup(t, Topology{})
	ctx := context.Background()
	r, err := OpenRecords(ctx, js, 5*time.Second)
	require.NoError(t, err)
	defer r.Close()
	val, rev, err := r.Get(ctx, "c.a")
	require.NoError(t, err)
	assert.Zero(t, rev, "a missing key has revision zero")
	assert.Nil(t, val)
	checkCompareAndSet(t, r)
}

// checkCompareAndSet writes key c.a (which must not exist yet) through
// every path, with and without waiting, with stale revisions too.
func checkCompareAndSet(t *testing.T, r *Records) {
	t.Helper()
	ctx := context.Background()
	rev1, ok, err := r.Put(ctx, "c.a", []byte("one"), 0)
	require.NoError(t, err)
	require.True(t, ok)
	_, ok, err = r.Put(ctx, "c.a", []byte("again"), 0)
	require.NoError(t, err)
	assert.False(t, ok, "create fails on an existing key")

	rev2, ok, err := r.Put(ctx, "c.a", []byte("two"), rev1)
	require.NoError(t, err)
	require.True(t, ok)
	_, ok, err = r.Put(ctx, "c.a", []byte("stale"), rev1)
	require.NoError(t, err, "a stale revision is a conflict, not an error")
	assert.False(t, ok, "an update over a stale revision fails")

	done := make(chan error, 1)
	r.PutAsync("c.a", []byte("stale"), rev1, func(_ uint64, ok bool, err error) {
		if err == nil && ok {
			err = errors.New("written over a stale revision")
		}
		done <- err
	})
	select {
	case err := <-done:
		assert.NoError(t, err, "without waiting too, a stale revision is a conflict")
	case <-time.After(10 * time.Second):
		t.Fatal("no answer")
	}

	val, rev, err := r.Get(ctx, "c.a")
	require.NoError(t, err)
	assert.Equal(t, "two", string(val))
	assert.Equal(t, rev2, rev)
}

func TestRecordsPutAsync(t *testing.T) {
	srv, _, _ := setup(t, Topology{})
	nc, js := srv.Connect(t)
	ctx := context.Background()
	r, err := OpenRecords(ctx, js, 5*time.Second)
	require.NoError(t, err)
	type answer struct {
		rev uint64
		ok  bool
		err error
	}
	put := func(key, val string, rev uint64) answer {
		ch := make(chan answer, 1)
		r.PutAsync(key, []byte(val), rev, func(rev uint64, ok bool, err error) { ch <- answer{rev, ok, err} })
		select {
		case a := <-ch:
			return a
		case <-time.After(10 * time.Second):
			t.Fatal("no answer")
			return answer{}
		}
	}

	create := put("c.a", "one", 0)
	assert.Error(t, create.err, "a create is refused: it takes the synchronous way")
	assert.False(t, create.ok)
	rev1, ok, err := r.Put(ctx, "c.a", []byte("one"), 0)
	require.NoError(t, err)
	require.True(t, ok)
	a := answer{rev: rev1, ok: true}
	b := put("c.a", "two", a.rev)
	require.NoError(t, b.err)
	require.True(t, b.ok)
	assert.Greater(t, b.rev, a.rev)
	stale := put("c.a", "stale", a.rev)
	assert.NoError(t, stale.err, "a stale revision is a conflict, not an error")
	assert.False(t, stale.ok)
	val, rev, err := r.Get(ctx, "c.a")
	require.NoError(t, err)
	assert.Equal(t, "two", string(val))
	assert.Equal(t, b.rev, rev)

	r.Close()
	afterClose := put("c.a", "three", b.rev)
	assert.ErrorIs(t, afterClose.err, errPublisherClosed, "a closed store answers at once")

	r2, err := OpenRecords(ctx, js, 5*time.Second)
	require.NoError(t, err)
	defer r2.Close()
	r = r2
	nc.Close()
	closed := put("c.a", "three", b.rev)
	assert.Error(t, closed.err, "a closed connection answers with an error")
	assert.False(t, closed.ok)
}

func TestRecordsCompareAndSetReplicated(t *testing.T) {
	// Replicated streams may report a revision conflict with another
	// error code than R1 streams: it is a conflict all the same.
	c := natstest.StartCluster(t, 3)
	_, js := c.Connect(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	require.NoError(t, Setup(ctx, js, Topology{Replicas: 3}))
	r, err := OpenRecords(ctx, js, 5*time.Second)
	require.NoError(t, err)
	defer r.Close()
	checkCompareAndSet(t, r)
}

// handlerFunc adapts a function to the runner's Handler.
type handlerFunc func(ctx context.Context, m handlers.Message) handlers.Outcome

func (f handlerFunc) Start(ctx context.Context, m handlers.Message) handlers.Outcome {
	return f(ctx, m)
}

func createdOutcome(t testing.TB, m handlers.Message) handlers.Outcome {
	id := string(m.Body)
	ev, err := events.NewEvent("", events.SubjectCreated, id, m.Generation, time.Now(), events.Created{CommandID: id})
	require.NoError(t, err)
	return handlers.Outcome{Action: handlers.Ack, Event: &ev, CommandID: id}
}

func publish(t testing.TB, js jetstream.JetStream, body string, hdr map[string]string) {
	t.Helper()
	msg := nats.NewMsg(events.SubjectCreate)
	msg.Data = []byte(body)
	for k, v := range hdr {
		msg.Header.Set(k, v)
	}
	_, err := js.PublishMsg(context.Background(), msg)
	require.NoError(t, err)
}

// startRunner runs a runner until the test ends; stop ends it early and
// waits for Run to return.
func startRunner(t *testing.T, js jetstream.JetStream, h Handler, cfg RunnerConfig) (stop func()) {
	t.Helper()
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
	s, err := js.Stream(ctx, EventStream)
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
	c, err := js.Consumer(context.Background(), CommandStream, Durable)
	require.NoError(t, err)
	info, err := c.Info(context.Background())
	require.NoError(t, err)
	return info
}

func TestRunnerPublishesTheEventThenAcks(t *testing.T) {
	_, _, js := setup(t, Topology{})
	startRunner(t, js, handlerFunc(func(_ context.Context, m handlers.Message) handlers.Outcome {
		return createdOutcome(t, m)
	}), RunnerConfig{Concurrency: 4})

	trace := "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
	publish(t, js, "c-1", map[string]string{"traceparent": trace})
	require.Eventually(t, func() bool { return len(eventsIn(t, js)) == 1 }, 10*time.Second, 20*time.Millisecond)

	ev := eventsIn(t, js)[0]
	var got events.Event
	require.NoError(t, json.Unmarshal(ev.Data, &got))
	assert.Equal(t, events.SubjectCreated, ev.Subject)
	assert.Equal(t, got.ID, ev.Header.Get(events.HeaderMsgID), "the event is published under its id")
	assert.Equal(t, trace, ev.Header.Get("traceparent"), "trace context is carried on")
	require.Eventually(t, func() bool {
		info := consumerInfo(t, js)
		return info.NumAckPending == 0 && info.NumPending == 0
	}, 5*time.Second, 20*time.Millisecond, "the command is acked")
}

func TestRunnerTermAndRetry(t *testing.T) {
	_, _, js := setup(t, Topology{})
	var deliveries sync.Map // body → []time.Time
	startRunner(t, js, handlerFunc(func(_ context.Context, m handlers.Message) handlers.Outcome {
		v, _ := deliveries.LoadOrStore(string(m.Body), &[]time.Time{})
		times := v.(*[]time.Time)
		*times = append(*times, time.Now())
		switch {
		case string(m.Body) == "bad":
			out := createdOutcome(t, m)
			out.Action = handlers.Term
			return out
		case m.Delivery == 1:
			return handlers.Outcome{Action: handlers.Retry, Delay: 300 * time.Millisecond}
		}
		return createdOutcome(t, m)
	}), RunnerConfig{Concurrency: 2})

	publish(t, js, "bad", nil)
	publish(t, js, "later", nil)
	require.Eventually(t, func() bool { return len(eventsIn(t, js)) == 2 }, 10*time.Second, 20*time.Millisecond)
	time.Sleep(200 * time.Millisecond)

	bad, _ := deliveries.Load("bad")
	assert.Len(t, *bad.(*[]time.Time), 1, "a terminated command is not redelivered")
	later, _ := deliveries.Load("later")
	times := *later.(*[]time.Time)
	require.Len(t, times, 2, "a retried command is delivered again")
	assert.GreaterOrEqual(t, times[1].Sub(times[0]), 300*time.Millisecond, "after the asked delay")
}

func TestRunnerKeepsLongCommandsAlive(t *testing.T) {
	_, _, js := setup(t, Topology{AckWait: time.Second})
	var calls atomic.Int32
	startRunner(t, js, handlerFunc(func(_ context.Context, m handlers.Message) handlers.Outcome {
		calls.Add(1)
		time.Sleep(2500 * time.Millisecond) // well past the ack wait
		return createdOutcome(t, m)
	}), RunnerConfig{Concurrency: 1, AckWait: time.Second})

	publish(t, js, "slow", nil)
	require.Eventually(t, func() bool { return len(eventsIn(t, js)) == 1 }, 10*time.Second, 20*time.Millisecond)
	assert.EqualValues(t, 1, calls.Load(), "in-progress acks kept the command from being redelivered")
}

func TestRunnerBoundsConcurrency(t *testing.T) {
	_, _, js := setup(t, Topology{})
	const limit, n = 4, 40
	var inFlight, peak atomic.Int32
	startRunner(t, js, handlerFunc(func(_ context.Context, m handlers.Message) handlers.Outcome {
		now := inFlight.Add(1)
		for {
			p := peak.Load()
			if now <= p || peak.CompareAndSwap(p, now) {
				break
			}
		}
		time.Sleep(20 * time.Millisecond)
		inFlight.Add(-1)
		return createdOutcome(t, m)
	}), RunnerConfig{Concurrency: limit})

	for i := range n {
		publish(t, js, fmt.Sprintf("c-%d", i), nil)
	}
	var maxAckPending int
	require.Eventually(t, func() bool {
		maxAckPending = max(maxAckPending, consumerInfo(t, js).NumAckPending)
		return len(eventsIn(t, js)) == n
	}, 20*time.Second, 10*time.Millisecond)
	assert.LessOrEqual(t, peak.Load(), int32(limit), "never more than Concurrency commands at once")
	assert.Equal(t, int32(limit), peak.Load(), "and the limit is used")
	// Handled (limit), in the tail (limit), one in the loop's hand and a
	// prefetch of at most limit; acks reach the server a little after the
	// work is done.
	assert.LessOrEqual(t, maxAckPending, 4*limit, "fetched no further ahead than the limit")
}

func TestRunnerShutdownLetsInFlightFinish(t *testing.T) {
	_, _, js := setup(t, Topology{})
	started := make(chan struct{}, 100)
	var finished atomic.Int32
	stop := startRunner(t, js, handlerFunc(func(ctx context.Context, m handlers.Message) handlers.Outcome {
		started <- struct{}{}
		time.Sleep(300 * time.Millisecond) // a provider call in flight
		finished.Add(1)
		return createdOutcome(t, m)
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
	startRunner(t, js, handlerFunc(func(_ context.Context, m handlers.Message) handlers.Outcome {
		return createdOutcome(t, m)
	}), RunnerConfig{Concurrency: 2})
	require.Eventually(t, func() bool { return len(eventsIn(t, js)) == 6 }, 10*time.Second, 20*time.Millisecond,
		"the commands not finished before shutdown are processed after the restart")
}

func TestRunnerStopsWhenTheConsumerIsDeleted(t *testing.T) {
	_, _, js := setup(t, Topology{})
	done := make(chan error, 1)
	go func() {
		done <- NewRunner(js, handlerFunc(func(_ context.Context, m handlers.Message) handlers.Outcome {
			return createdOutcome(t, m)
		}), RunnerConfig{Concurrency: 2}).Run(context.Background())
	}()
	time.Sleep(200 * time.Millisecond)
	require.NoError(t, js.DeleteConsumer(context.Background(), CommandStream, Durable))
	select {
	case err := <-done:
		require.Error(t, err, "a deleted consumer ends the run with an error, so the process restarts")
		assert.Contains(t, err.Error(), Durable)
	case <-time.After(20 * time.Second):
		t.Fatal("the runner went on without its consumer")
	}
}

func TestRunnerFinishesOffTheWorker(t *testing.T) {
	_, _, js := setup(t, Topology{})
	secondStarted := make(chan struct{})
	var releasedBySecond atomic.Bool
	startRunner(t, js, handlerFunc(func(_ context.Context, m handlers.Message) handlers.Outcome {
		if string(m.Body) == "second" {
			close(secondStarted)
			return createdOutcome(t, m)
		}
		return handlers.Outcome{CommandID: "first", Finish: func(context.Context) handlers.Outcome {
			// Recording the first outcome waits until the only worker has
			// taken the next command: it must not be the worker's job.
			select {
			case <-secondStarted:
				releasedBySecond.Store(true)
			case <-time.After(10 * time.Second):
			}
			return createdOutcome(t, m)
		}}
	}), RunnerConfig{Concurrency: 1})

	publish(t, js, "first", nil)
	publish(t, js, "second", nil)
	require.Eventually(t, func() bool { return len(eventsIn(t, js)) == 2 }, 15*time.Second, 10*time.Millisecond)
	assert.True(t, releasedBySecond.Load(), "the worker took the second command while the first was finishing")
	require.Eventually(t, func() bool { return consumerInfo(t, js).NumAckPending == 0 }, 5*time.Second, 10*time.Millisecond,
		"both commands are acked once their events are stored")
}

func TestRunnerSettlesAtOnceWhenItsConnectionCloses(t *testing.T) {
	srv, _, js := setup(t, Topology{})
	ctx := context.Background()
	// Events go nowhere: a subscriber takes them and never acknowledges,
	// so the publish waits.
	require.NoError(t, js.DeleteStream(ctx, EventStream))
	sink, _ := srv.Connect(t)
	_, err := sink.Subscribe(events.SubjectCreated, func(*nats.Msg) {})
	require.NoError(t, err)
	require.NoError(t, sink.Flush())

	nc, rjs := srv.Connect(t)
	handled := make(chan struct{}, 1)
	settled := make(chan error, 1)
	done := make(chan error, 1)
	runner := NewRunner(rjs, handlerFunc(func(_ context.Context, m handlers.Message) handlers.Outcome {
		handled <- struct{}{}
		return createdOutcome(t, m)
	}), RunnerConfig{Concurrency: 2, PublishTimeout: time.Minute, ShutdownGrace: time.Minute,
		Hooks: Hooks{Settled: func(_ handlers.Message, _ handlers.Outcome, _ time.Duration, err error) { settled <- err }}})
	go func() { done <- runner.Run(ctx) }()

	publish(t, js, "c-1", nil)
	<-handled
	time.Sleep(100 * time.Millisecond) // the event's publish is under way
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
	_, _, js := setup(t, Topology{})
	const limit = 2
	release := make(chan struct{})
	var started atomic.Int32
	startRunner(t, js, handlerFunc(func(_ context.Context, m handlers.Message) handlers.Outcome {
		started.Add(1)
		return handlers.Outcome{CommandID: string(m.Body), Finish: func(context.Context) handlers.Outcome {
			<-release // recording the outcome is stuck
			return createdOutcome(t, m)
		}}
	}), RunnerConfig{Concurrency: limit})

	for i := range 10 {
		publish(t, js, fmt.Sprintf("c-%d", i), nil)
	}
	// limit commands in the tail, then limit workers blocked handing
	// theirs on: nothing more is started while the tail is full.
	require.Eventually(t, func() bool { return started.Load() == 2*limit }, 5*time.Second, 5*time.Millisecond)
	time.Sleep(200 * time.Millisecond)
	assert.EqualValues(t, 2*limit, started.Load(), "no command is started while the tail and the workers are full")
	close(release)
	require.Eventually(t, func() bool { return len(eventsIn(t, js)) == 10 }, 10*time.Second, 10*time.Millisecond)
}

func TestRunnerFinishesAsynchronously(t *testing.T) {
	_, _, js := setup(t, Topology{})
	var finishes atomic.Int32
	startRunner(t, js, handlerFunc(func(_ context.Context, m handlers.Message) handlers.Outcome {
		return handlers.Outcome{CommandID: string(m.Body),
			Finish: func(context.Context) handlers.Outcome { panic("FinishAsync is preferred") },
			FinishAsync: func(_ context.Context, done func(handlers.Outcome)) {
				finishes.Add(1)
				go done(createdOutcome(t, m)) // as a store's acknowledgement would
			}}
	}), RunnerConfig{Concurrency: 2})

	for i := range 10 {
		publish(t, js, fmt.Sprintf("c-%d", i), nil)
	}
	require.Eventually(t, func() bool { return len(eventsIn(t, js)) == 10 }, 10*time.Second, 10*time.Millisecond)
	require.Eventually(t, func() bool { return consumerInfo(t, js).NumAckPending == 0 }, 5*time.Second, 10*time.Millisecond)
	assert.EqualValues(t, 10, finishes.Load())
}
