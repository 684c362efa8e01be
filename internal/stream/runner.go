package stream

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"

	"github.com/contactrelay/contactrelay/internal/events"
	"github.com/contactrelay/contactrelay/internal/handlers"
)

// pullExpiry and pullHeartbeat bound each pull request and its idle
// heartbeats: two heartbeats missed and the runner pulls again.
const (
	pullExpiry    = 10 * time.Second
	pullHeartbeat = 2 * time.Second
)

// Handler decides the outcome of one delivery; *handlers.Handler is one.
type Handler interface {
	Handle(ctx context.Context, m handlers.Message) handlers.Outcome
}

// RunnerConfig configures a Runner. Zero values take the documented defaults.
type RunnerConfig struct {
	// Concurrency is the number of commands processed at once, and the
	// number fetched ahead. Default 64.
	Concurrency int
	// AckWait is the consumer's ack wait; a message being processed is kept
	// alive with an in-progress ack every AckWait/3. Default 30s.
	AckWait time.Duration
	// ShutdownGrace bounds how long Run waits for in-flight commands once
	// its context is cancelled. Default 30s.
	ShutdownGrace time.Duration
	// PublishTimeout bounds one event publish. Default 10s.
	PublishTimeout time.Duration
	// Logger receives one line per outcome. Default: discard.
	Logger *slog.Logger
	// Hooks are told of each delivery, for metrics.
	Hooks Hooks
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
	// Settled is called as it ends, with its outcome and the error of
	// publishing its event or settling it on the stream, if any.
	Settled func(m handlers.Message, out handlers.Outcome, took time.Duration, settleErr error)
}

func (c *RunnerConfig) setDefaults() {
	if c.Concurrency == 0 {
		c.Concurrency = 64
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
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.TracerProvider == nil {
		c.TracerProvider = noop.NewTracerProvider()
	}
	if c.Propagator == nil {
		c.Propagator = propagation.TraceContext{}
	}
}

// Runner consumes contact.create commands from the durable consumer, hands
// each to a Handler, publishes the terminal event the handler decides and
// only then acknowledges the command. It owns every ack.
type Runner struct {
	js        jetstream.JetStream
	handler   Handler
	cfg       RunnerConfig
	tracer    trace.Tracer
	consuming atomic.Bool
}

// Consuming reports nil while Run is bound to the consumer and pulling.
func (r *Runner) Consuming() error {
	if !r.consuming.Load() {
		return errors.New("not consuming from " + Durable)
	}
	return nil
}

// NewRunner returns a Runner. The JetStream resources must exist (Setup).
func NewRunner(js jetstream.JetStream, h Handler, cfg RunnerConfig) *Runner {
	cfg.setDefaults()
	return &Runner{js: js, handler: h, cfg: cfg, tracer: cfg.TracerProvider.Tracer("github.com/contactrelay/contactrelay/internal/stream")}
}

// Run consumes until ctx is cancelled, then stops fetching, lets in-flight
// commands finish within the shutdown grace and returns nil. Commands that
// were fetched but not started are handed back (Nak) for immediate
// redelivery. It returns an error when it cannot start consuming, or when
// the durable consumer is deleted under it (after finishing what is in
// flight): the process should exit, and its restart sets the consumer up.
func (r *Runner) Run(ctx context.Context) error {
	cons, err := r.js.Consumer(ctx, CommandStream, Durable)
	if err != nil {
		if ctx.Err() != nil {
			return nil // stopped before it began
		}
		return fmt.Errorf("bind consumer %s: %w", Durable, err)
	}
	// Fetch no further ahead than the commands we can work on at once, so
	// that nothing waits out its ack wait in a buffer. Pull requests live
	// on the consumer's leader: when its server dies they die with it,
	// silently, and only missing heartbeats tell. The client's defaults
	// (30s requests, 15s heartbeats, two missed) stalled every instance for
	// 30s after losing that server in a cluster; these notice within 4s.
	iter, err := cons.Messages(jetstream.PullMaxMessages(r.cfg.Concurrency),
		jetstream.PullExpiry(pullExpiry), jetstream.PullHeartbeat(pullHeartbeat))
	if err != nil {
		return fmt.Errorf("consume %s: %w", Durable, err)
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

	// A fixed pool of workers, each with a stack that has grown to what
	// a command needs, rather than a goroutine per command.
	var wg sync.WaitGroup
	work := make(chan jetstream.Msg)
	for range r.cfg.Concurrency {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for msg := range work {
				r.process(ctx, msg)
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
			runErr = fmt.Errorf("consumer %s was deleted: %w", Durable, err)
			iter.Stop()
			break
		}
		if err != nil {
			r.cfg.Logger.Warn("fetch failed", "error", err)
			sleep(ctx, 500*time.Millisecond)
			continue
		}
		if ctx.Err() == nil {
			select {
			case work <- msg:
				continue
			case <-ctx.Done():
			}
		}
		// Draining: hand it back untouched for another instance.
		_ = msg.Nak()
	}
	close(work)
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(r.cfg.ShutdownGrace):
		r.cfg.Logger.Warn("shutdown grace ran out; unfinished commands will be redelivered", "grace", r.cfg.ShutdownGrace)
	}
	return runErr
}

// process handles one message and settles it.
func (r *Runner) process(ctx context.Context, msg jetstream.Msg) {
	start := time.Now()
	meta, err := msg.Metadata()
	if err != nil {
		r.cfg.Logger.Error("message without JetStream metadata", "subject", msg.Subject(), "error", err)
		_ = msg.Term()
		return
	}
	hdr := msg.Headers()
	m := handlers.Message{
		Body:       msg.Data(),
		MsgID:      hdr.Get(events.HeaderMsgID),
		Stream:     meta.Stream,
		Sequence:   meta.Sequence.Stream,
		Generation: hdr.Get(events.HeaderReplayOf),
		Delivery:   int(meta.NumDelivered),
	}

	if r.cfg.Hooks.Received != nil {
		r.cfg.Hooks.Received(m)
	}
	ctx = r.cfg.Propagator.Extract(ctx, headerCarrier(hdr))
	ctx, span := r.tracer.Start(ctx, events.SubjectCreate+" process", trace.WithSpanKind(trace.SpanKindConsumer))
	recording := span.IsRecording() // attributes cost allocations: only for a real span
	if recording {
		span.SetAttributes(
			attribute.String("messaging.system", "nats"),
			attribute.String("messaging.operation.type", "process"),
			attribute.String("messaging.destination.name", events.SubjectCreate),
			attribute.String("messaging.consumer.group.name", Durable),
			attribute.String("messaging.message.id", m.MsgID),
			attribute.Int("messaging.message.body.size", len(m.Body)),
			attribute.Int64("messaging.nats.stream_sequence", int64(m.Sequence)),
			attribute.Int("messaging.nats.delivery", m.Delivery),
		)
	}
	defer span.End()

	ka := keepAlive(msg, r.cfg.AckWait/3)
	out := r.handler.Handle(ctx, m)
	ka.stop()
	if recording {
		span.SetAttributes(attribute.String("contactrelay.command_id", out.CommandID), attribute.String("contactrelay.provider", out.Provider))
	}

	var settleErr error
	switch out.Action {
	case handlers.Ack, handlers.Term:
		if recording {
			span.SetAttributes(attribute.String("contactrelay.event", out.Event.Type), attribute.String("contactrelay.reason", string(out.Reason)))
		}
		if err := r.publish(ctx, out.Event, out.EventJSON); err != nil {
			// The outcome is recorded: the redelivery publishes the same
			// event, under the same id.
			settleErr = fmt.Errorf("publish %s: %w", out.Event.Type, err)
			_ = msg.NakWithDelay(time.Second)
			break
		}
		if out.Action == handlers.Term {
			settleErr = msg.TermWithReason(string(out.Reason))
		} else {
			settleErr = msg.Ack()
		}
	default:
		if recording {
			span.SetAttributes(attribute.String("contactrelay.event", "retry"))
		}
		if out.Delay > 0 {
			settleErr = msg.NakWithDelay(out.Delay)
		} else {
			settleErr = msg.Nak()
		}
	}
	if settleErr != nil {
		span.RecordError(settleErr)
		span.SetStatus(codes.Error, "settle failed")
	}
	took := time.Since(start)
	if r.cfg.Hooks.Settled != nil {
		r.cfg.Hooks.Settled(m, out, took, settleErr)
	}
	r.log(m, out, took, settleErr)
}

// publish publishes a terminal event with its id as Nats-Msg-Id and waits
// for the stream's acknowledgement. It outlives ctx's cancellation, bounded
// by the publish timeout, so that a decided outcome is not dropped.
func (r *Runner) publish(ctx context.Context, ev *events.Event, body []byte) error {
	if body == nil {
		var err error
		if body, err = json.Marshal(ev); err != nil {
			return err
		}
	}
	msg := nats.NewMsg(ev.Type)
	msg.Data = body
	r.cfg.Propagator.Inject(ctx, headerCarrier(msg.Header))
	pctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), r.cfg.PublishTimeout)
	defer cancel()
	_, err := r.js.PublishMsg(pctx, msg, jetstream.WithMsgID(ev.ID))
	return err
}

func (r *Runner) log(m handlers.Message, out handlers.Outcome, took time.Duration, settleErr error) {
	attrs := []any{
		"commandId", out.CommandID,
		"provider", out.Provider,
		"delivery", m.Delivery,
		"attempts", out.Attempts,
		"duration", took,
	}
	if m.Generation != "" {
		attrs = append(attrs, "replayOf", m.Generation)
	}
	if out.FromRecord {
		attrs = append(attrs, "fromRecord", true)
	}
	level, text := slog.LevelInfo, "contact created"
	switch {
	case out.Action == handlers.Retry:
		level, text = slog.LevelWarn, "will retry"
		attrs = append(attrs, "delay", out.Delay)
	case out.Reason != "":
		level, text = slog.LevelWarn, "contact failed"
		attrs = append(attrs, "reason", out.Reason)
	}
	if out.Event != nil {
		attrs = append(attrs, "eventId", out.Event.ID)
	}
	if out.Err != nil {
		attrs = append(attrs, "error", out.Err.Error())
	}
	if settleErr != nil {
		level = slog.LevelError
		attrs = append(attrs, "settleError", settleErr.Error())
	}
	r.cfg.Logger.Log(context.Background(), level, text, attrs...)
}

// alive keeps a message from being redelivered while it is processed.
type alive struct {
	mu      sync.Mutex
	t       *time.Timer
	stopped bool
}

// keepAlive sends an in-progress ack for msg every period until stopped.
func keepAlive(msg jetstream.Msg, period time.Duration) *alive {
	a := &alive{}
	a.mu.Lock()
	defer a.mu.Unlock()
	a.t = time.AfterFunc(period, func() {
		a.mu.Lock()
		defer a.mu.Unlock()
		if a.stopped {
			return
		}
		_ = msg.InProgress()
		a.t.Reset(period)
	})
	return a
}

func (a *alive) stop() {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.stopped = true
	a.t.Stop()
}

// sleep waits for d or until ctx is done.
func sleep(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
	case <-ctx.Done():
	}
}

// headerCarrier adapts NATS headers to OpenTelemetry propagation. NATS
// header names are case-sensitive; W3C trace context uses lower case.
type headerCarrier nats.Header

func (c headerCarrier) Get(key string) string {
	if v := nats.Header(c).Get(key); v != "" {
		return v
	}
	return nats.Header(c).Get(strings.ToLower(key))
}

func (c headerCarrier) Set(key, value string) { nats.Header(c).Set(strings.ToLower(key), value) }

func (c headerCarrier) Keys() []string {
	keys := make([]string, 0, len(c))
	for k := range c {
		keys = append(keys, k)
	}
	return keys
}
