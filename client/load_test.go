package client_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"runtime"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/contactrelay/contactrelay/client"
	"github.com/contactrelay/contactrelay/internal/sandbox"
)

// TestPublishAndWaitUnderLoad runs 500 concurrent waiting calls on one
// connection and restarts the NATS server (same port, same store) while
// they wait: every call returns by its deadline with its outcome, the
// server never cuts the connection as a slow consumer, and the shared
// watch is gone once the calls are. The deadline is far beyond the 7 s the
// calls take on an idle machine: one run on a machine loaded six times
// over its two cores saw calls time out at 30 s.
func TestPublishAndWaitUnderLoad(t *testing.T) {
	t.Parallel()
	runLoad(t, 500, 90*time.Second, 15*time.Second)
}

// TestSoakPublishAndWait is TestPublishAndWaitUnderLoad with 5,000 calls,
// run only with CONTACTRELAY_SOAK=1. Its figures are in
// docs/PUBLISHING.md.
func TestSoakPublishAndWait(t *testing.T) {
	if os.Getenv("CONTACTRELAY_SOAK") != "1" {
		t.Skip("a soak of 5,000 waiting calls: set CONTACTRELAY_SOAK=1 to run it")
	}
	runLoad(t, 5000, 120*time.Second, 30*time.Second)
}

type loadResult struct {
	id   string
	o    client.Outcome
	err  error
	took time.Duration
}

// runLoad runs calls concurrent PublishAndWait calls, each with deadline,
// on one connection, restarting the server once a fifth of them have
// returned; each must return within deadline and margin.
func runLoad(t *testing.T, calls int, deadline, margin time.Duration) {
	w := newWorld(t)
	// Each create takes a little while, so that the restart comes with
	// most calls waiting.
	w.ipay.Inject(sandbox.Fault{Latency: 2 * time.Millisecond})
	w.startService(t)

	var slowErrors atomic.Int64
	nc, err := nats.Connect(w.srv.ClientURL(), nats.MaxReconnects(-1), nats.ReconnectWait(50*time.Millisecond),
		nats.ErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) {
			if errors.Is(err, nats.ErrSlowConsumer) {
				slowErrors.Add(1)
			}
		}))
	require.NoError(t, err)
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	require.NoError(t, err)
	c := client.New(js, client.Config{})

	stopSampling := sampleHeap()
	results := make(chan loadResult, calls)
	start := time.Now()
	for i := range calls {
		go func() {
			id := fmt.Sprintf("load-%05d", i)
			cmd := jane(id)
			cmd.Email = fmt.Sprintf("jane.%05d@example.com", i)
			ctx, cancel := context.WithTimeout(context.Background(), deadline)
			defer cancel()
			began := time.Now()
			o, err := c.PublishAndWait(ctx, cmd)
			results <- loadResult{id: id, o: o, err: err, took: time.Since(began)}
		}()
	}
	guard := time.NewTimer(deadline + margin)
	defer guard.Stop()
	got := make(map[string]loadResult, calls)
	receive := func(until int) {
		for len(got) < until {
			select {
			case r := <-results:
				got[r.id] = r
			case <-guard.C:
				t.Fatalf("%d of %d calls still waiting %s after they began (deadline %s)", calls-len(got), calls, deadline+margin, deadline)
			}
		}
	}
	receive(calls / 5)
	before, err := w.srv.Varz(nil)
	require.NoError(t, err)
	w.srv.Restart()
	restartedAfter := len(got)
	receive(calls)
	took := time.Since(start)
	heap := stopSampling()

	var created, stored, unconfirmed int
	var longest time.Duration
	for id, r := range got {
		longest = max(longest, r.took)
		assert.LessOrEqual(t, r.took, deadline+margin, "%s returned by its deadline", id)
		switch {
		case r.err == nil:
			created++
			require.NotNil(t, r.o.Created, "%s: a contact.created outcome", id)
			assert.Equal(t, client.EventID(id, "", client.SubjectCreated), r.o.Event.ID, "%s: its own event", id)
		case errors.Is(r.err, client.ErrTimeout):
			stored++
			assert.NotZero(t, r.o.Ack.Sequence, "%s: a timeout comes after the stream stored the command", id)
			assert.Contains(t, r.err.Error(), "the command is stored", "%s: the error says so", id)
		case errors.Is(r.err, client.ErrUnconfirmed):
			unconfirmed++
			assert.Contains(t, r.err.Error(), "may or may not be stored", "%s", id)
			assert.Contains(t, r.err.Error(), "same commandId is safe", "%s", id)
		default:
			t.Errorf("%s: %v", id, r.err)
		}
	}
	t.Logf("%d calls in %s (restart after %d had returned): %d created, %d timed out stored, %d unconfirmed; longest call %s; max heap %d MiB (the whole test process: server, service and client)",
		calls, took.Round(time.Millisecond), restartedAfter, created, stored, unconfirmed, longest.Round(time.Millisecond), heap>>20)
	assert.Equal(t, calls, created, "every call got its outcome within its deadline")

	after, err := w.srv.Varz(nil)
	require.NoError(t, err)
	assert.Zero(t, before.SlowConsumers, "the server cut no connection as a slow consumer before the restart")
	assert.Zero(t, after.SlowConsumers, "nor after it")
	assert.Zero(t, slowErrors.Load(), "the client saw no slow consumer")
	assert.LessOrEqual(t, heap, uint64(1<<30), "memory stays bounded")
	require.Eventually(t, func() bool {
		_, running := client.Waiting(c)
		return !running
	}, 5*time.Second, 10*time.Millisecond, "the shared watch stops with the last call")
	assert.LessOrEqual(t, nc.NumSubscriptions(), 1, "no subscription left but the JetStream replies'")
}

// sampleHeap samples the heap in use every 50 ms until stop is called,
// which returns the largest sample.
func sampleHeap() (stop func() uint64) {
	var maxHeap atomic.Uint64
	done, stopped := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(stopped)
		tick := time.NewTicker(50 * time.Millisecond)
		defer tick.Stop()
		for {
			var ms runtime.MemStats
			runtime.ReadMemStats(&ms)
			if ms.HeapInuse > maxHeap.Load() {
				maxHeap.Store(ms.HeapInuse)
			}
			select {
			case <-done:
				return
			case <-tick.C:
			}
		}
	}()
	return func() uint64 {
		close(done)
		<-stopped
		return maxHeap.Load()
	}
}
