package stream

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"

	"github.com/contactrelay/contactrelay/internal/failstore"
	"github.com/contactrelay/contactrelay/internal/handlers"
	"github.com/contactrelay/contactrelay/internal/pause"
	"github.com/contactrelay/contactrelay/internal/provision"
)

// pullExpiry and pullHeartbeat bound each pull request and its idle
// heartbeats: two heartbeats missed and the runner pulls again.
const (
	pullExpiry    = 10 * time.Second
	pullHeartbeat = 2 * time.Second
)

// Handler decides the outcome of one delivery; *handlers.Handler is one.
// Decide decides a received delivery; Redecide decides it again when the
// Decision's record write did not land (see handlers.Handler.Redecide).
type Handler interface {
	Decide(ctx context.Context, m handlers.Message) handlers.Decision
	Redecide(ctx context.Context, m handlers.Message, prev handlers.Decision) handlers.Decision
}

// RunnerConfig configures a Runner. Zero values take the documented defaults.
type RunnerConfig struct {
	// Records is where decisions are recorded. Required.
	Records *Records
	// Failures is the store of open failures, which decisions keep in
	// step with the records. Nil leaves it alone (tests of the runner
	// alone).
	Failures *failstore.Writer
	// Concurrency is the number of commands decided at once (decoded,
	// validated, claimed and sent to their provider). As many more may be
	// in the tail meanwhile (recorded, published, settled). Default 64.
	Concurrency int
	// Prefetch is how many commands are fetched ahead of the workers.
	// Default Concurrency. Behind a provider's rate limit, fewer: a
	// fetched command waits for a worker without being kept alive by the
	// server, and one that waits out its ack wait is delivered again.
	Prefetch int
	// AckWait is the consumer's ack wait; a message is kept alive with an
	// in-progress ack every AckWait/3 from the moment it is fetched.
	// Default 30s.
	AckWait time.Duration
	// ShutdownGrace bounds how long Run waits for in-flight commands once
	// its context is cancelled. Default 30s.
	ShutdownGrace time.Duration
	// PublishTimeout bounds one event publish. Default 10s.
	PublishTimeout time.Duration
	// SettleRetryDelay is how long a delivery whose event could not be
	// published waits before it is tried again, doubling with every
	// delivery up to five minutes; one whose decision could not be
	// recorded waits twice as long. Default 1s.
	SettleRetryDelay time.Duration
	// Logger receives one line per settled delivery. Default: discard.
	Logger *slog.Logger
	// Holds counts the deliveries held by a paused provider, which the
	// runner takes off the server's delivery count before the handler
	// sees it, and adds to when a Decision is Held. Nil: none is counted.
	Holds *pause.Holds
	// Hooks are told of each delivery, for metrics.
	Hooks Hooks
	// Permissions, when set, is told of publishes the server refused for
	// want of permission, and tells which subjects are known refused (see
	// Permissions). Default: a Permissions of the runner's own.
	Permissions *Permissions
	// TracerProvider makes a span per command, continuing the trace of
	// the command's traceparent header. Default: no tracing (the trace
	// context is still carried on to the events).
	TracerProvider trace.TracerProvider
	// Propagator reads and writes trace context headers. Default: W3C
	// trace context.
	Propagator propagation.TextMapPropagator
}

// Hooks are called for each delivery. Nil hooks are not called; the others
// must be quick and safe for concurrent use.
type Hooks struct {
	// Received is called as a delivery starts.
	Received func(m handlers.Message)
	// Settled is called as it ends, with its decision and the error of
	// recording, publishing or settling it, if any.
	Settled func(m handlers.Message, dec handlers.Decision, took time.Duration, settleErr error)
}

func (c *RunnerConfig) setDefaults() {
	if c.Concurrency == 0 {
		c.Concurrency = 64
	}
	if c.Prefetch <= 0 || c.Prefetch > c.Concurrency {
		c.Prefetch = c.Concurrency
	}
	if c.AckWait == 0 {
		c.AckWait = 30 * time.Second
	}
	if c.ShutdownGrace == 0 {
		c.ShutdownGrace = 30 * time.Second
	}
	if c.PublishTimeout == 0 {
		c.PublishTimeout = 10 * time.Second
	}
	if c.SettleRetryDelay == 0 {
		c.SettleRetryDelay = time.Second
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.Permissions == nil {
		c.Permissions = NewPermissions(c.Logger)
	}
	if c.TracerProvider == nil {
		c.TracerProvider = noop.NewTracerProvider()
	}
	if c.Propagator == nil {
		c.Propagator = propagation.TraceContext{}
	}
}

// Runner consumes contact.create commands from the durable consumer, hands
// each to a Handler to be decided, and carries the decision out: it records
// it, publishes its event and only then settles the command. It owns every
// outcome's write and every ack.
type Runner struct {
	js        jetstream.JetStream
	handler   Handler
	cfg       RunnerConfig
	tracer    trace.Tracer
	consuming atomic.Bool
	// untraced is set when tracer is OpenTelemetry's no-op: its spans are
	// not started at all (what its Start returns carries nothing a
	// context did not), and a command's span is noSpan.
	untraced bool
	noSpan   trace.Span
}

// Consuming reports nil while Run is bound to the consumer and pulling.
func (r *Runner) Consuming() error {
	if !r.consuming.Load() {
		return errors.New("not consuming from " + provision.Durable)
	}
	return nil
}

// NewRunner returns a Runner. The JetStream resources must exist
// (provision.Setup), and cfg.Records must be set.
func NewRunner(js jetstream.JetStream, h Handler, cfg RunnerConfig) *Runner {
	cfg.setDefaults()
	r := &Runner{js: js, handler: h, cfg: cfg, tracer: cfg.TracerProvider.Tracer("github.com/contactrelay/contactrelay/internal/stream"),
		noSpan: noop.Span{}}
	_, r.untraced = r.tracer.(noop.Tracer)
	return r
}

// Run consumes until ctx is cancelled, then stops fetching, lets in-flight
// commands finish within the shutdown grace and returns nil. Commands that
// were fetched but not started are handed back (Nak) for immediate
// redelivery. It returns an error when it cannot start consuming, or when
// the durable consumer is deleted under it (after finishing what is in
// flight): the process should exit, and its restart sets the consumer up.
func (r *Runner) Run(ctx context.Context) error {
	if r.cfg.Records == nil {
		return errors.New("runner: no record store")
	}
	cons, err := r.js.Consumer(ctx, provision.CommandStream, provision.Durable)
	if err != nil {
		if ctx.Err() != nil {
			return nil // stopped before it began
		}
		return fmt.Errorf("bind consumer %s: %w", provision.Durable, err)
	}
	s, err := r.newSession()
	if err != nil {
		return err
	}
	defer s.close()
	// Know before the first command which subjects the server refuses us
	// (a few milliseconds when none is); probe them until granted.
	nc := r.js.Conn()
	r.cfg.Permissions.checkAll(ctx, nc, provision.PublishSubjects())
	probeCtx, stopProbing := context.WithCancel(ctx)
	probing := make(chan struct{})
	go func() {
		defer close(probing)
		r.cfg.Permissions.probeRefused(probeCtx, nc)
	}()
	defer func() {
		stopProbing()
		<-probing
	}()
	// Fetch no further ahead than the commands we can work on at once, so
	// that nothing waits out its ack wait in a buffer. Pull requests live
	// on the consumer's leader: when its server dies they die with it,
	// silently, and only missing heartbeats tell. The client's defaults
	// (30s requests, 15s heartbeats, two missed) stalled every instance for
	// 30s after losing that server in a cluster; these notice within 4s.
	iter, err := cons.Messages(jetstream.PullMaxMessages(r.cfg.Prefetch),
		jetstream.PullExpiry(pullExpiry), jetstream.PullHeartbeat(pullHeartbeat))
	if err != nil {
		return fmt.Errorf("consume %s: %w", provision.Durable, err)
	}
	r.consuming.Store(true)
	defer r.consuming.Store(false)
	stopped := make(chan struct{})
	go func() {
		select {
		case <-ctx.Done():
			iter.Drain()
		case <-stopped:
		}
	}()
	defer close(stopped)

	// A fixed pool of workers, each with a stack that has grown to what a
	// command needs, rather than a goroutine per command. A worker keeps
	// a command until it is decided; recording, publishing and settling
	// follow asynchronously (the tail).
	var workers sync.WaitGroup
	work := make(chan fetched)
	for range r.cfg.Concurrency {
		workers.Add(1)
		go func() {
			defer workers.Done()
			for f := range work {
				s.receive(ctx, f)
			}
		}()
	}
	var runErr error
	for {
		msg, err := iter.Next()
		if errors.Is(err, jetstream.ErrMsgIteratorClosed) {
			break
		}
		if errors.Is(err, jetstream.ErrConsumerDeleted) {
			// Someone deleted the durable: stop, with what is in flight
			// finished, and say so; a restart sets it up again.
			runErr = fmt.Errorf("consumer %s was deleted: %w", provision.Durable, err)
			iter.Stop()
			break
		}
		if err != nil {
			r.cfg.Logger.Warn("fetch failed", "error", err)
			// A pull made after the durable was deleted may fail with
			// another error than ErrConsumerDeleted: ask the server.
			if _, cerr := r.js.Consumer(ctx, provision.CommandStream, provision.Durable); errors.Is(cerr, jetstream.ErrConsumerNotFound) {
				runErr = fmt.Errorf("consumer %s was deleted: %w", provision.Durable, cerr)
				iter.Stop()
				break
			}
			sleep(ctx, 500*time.Millisecond)
			continue
		}
		// Kept alive from here: waiting for a worker counts as work.
		f := fetched{msg: msg, at: time.Now(), alive: keepAlive(msg, r.cfg.AckWait/3)}
		if ctx.Err() == nil {
			select {
			case work <- f:
				continue
			case <-ctx.Done():
			}
		}
		// Draining: hand it back untouched for another instance.
		f.alive.stop()
		_ = msg.Nak()
	}
	close(work)
	done := make(chan struct{})
	go func() {
		workers.Wait()
		s.tail.Wait()
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(r.cfg.ShutdownGrace):
		r.cfg.Logger.Warn("shutdown grace ran out; unfinished commands will be redelivered", "grace", r.cfg.ShutdownGrace)
	}
	return runErr
}

// fetched is a message taken from the consumer, kept alive until settled.
type fetched struct {
	msg   jetstream.Msg
	at    time.Time
	alive *alive
}
