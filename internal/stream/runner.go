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
// An Outcome with FinishAsync or Finish set is finished by the runner, off
// the worker that started it (FinishAsync preferred: it holds no goroutine
// while the outcome's record is written).
type Handler interface {
	Start(ctx context.Context, m handlers.Message) handlers.Outcome
}

// RunnerConfig configures a Runner. Zero values take the documented defaults.
type RunnerConfig struct {
	// Concurrency is the number of commands handled at once (decoded,
	// validated, claimed and sent to their provider), and the number
	// fetched ahead. As many more may be finishing meanwhile (recording
	// the outcome, publishing the event, acking). Default 64.
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
	s, err := r.newSession()
	if err != nil {
		return err
	}
	defer s.close()
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

	// A fixed pool of workers, each with a stack that has grown to what a
	// command needs, rather than a goroutine per command. A worker keeps
	// a command up to its provider's answer; the outcome's record write,
	// the event's publish and the ack follow asynchronously (the tail).
	var workers sync.WaitGroup
	work := make(chan jetstream.Msg)
	for range r.cfg.Concurrency {
		workers.Add(1)
		go func() {
			defer workers.Done()
			for msg := range work {
				s.process(ctx, msg)
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
	go func() {
		workers.Wait()
		s.publishing.Wait()
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(r.cfg.ShutdownGrace):
		r.cfg.Logger.Warn("shutdown grace ran out; unfinished commands will be redelivered", "grace", r.cfg.ShutdownGrace)
	}
	return runErr
}

// session is one Run's machinery after the handler: the tail, and the
// asynchronous publisher of events, whose stream acknowledgement acks the
// command.
type session struct {
	*Runner
	pub *publisher[*command]

	// The tail: commands past their worker, their outcome being recorded
	// or their event published; slots bounds them, publishing counts them.
	slots      chan struct{}
	publishing sync.WaitGroup
}

// command is one delivery on its way through the runner.
type command struct {
	ctx   context.Context // carries the delivery's span
	msg   jetstream.Msg
	m     handlers.Message
	out   handlers.Outcome
	start time.Time
	span  trace.Span
	alive *alive
	tail  bool // holds one of the tail's slots
}

func (r *Runner) newSession() (*session, error) {
	s := &session{Runner: r, slots: make(chan struct{}, r.cfg.Concurrency)}
	// Room for more than the tail, so that a publish never stalls in the
	// client.
	pub, err := newPublisher(r.js.Conn(), r.cfg.PublishTimeout, 2*r.cfg.Concurrency+1, func(c *command, _ *jetstream.PubAck, err error) {
		s.settle(c, err)
	})
	if err != nil {
		return nil, fmt.Errorf("event publisher: %w", err)
	}
	s.pub = pub
	return s, nil
}

// close releases what the session holds on the connection: a publish
// still pending, past the shutdown grace, fails, and its command is
// handed back.
func (s *session) close() { s.pub.close(errors.New("runner stopped")) }

// process starts one delivery and hands it on to the tail: through the
// handler's Finish when it left the outcome to record, else straight to
// conclude.
func (s *session) process(ctx context.Context, msg jetstream.Msg) {
	start := time.Now()
	meta, err := msg.Metadata()
	if err != nil {
		s.cfg.Logger.Error("message without JetStream metadata", "subject", msg.Subject(), "error", err)
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

	if s.cfg.Hooks.Received != nil {
		s.cfg.Hooks.Received(m)
	}
	ctx = s.cfg.Propagator.Extract(ctx, headerCarrier(hdr))
	ctx, span := s.tracer.Start(ctx, events.SubjectCreate+" process", trace.WithSpanKind(trace.SpanKindConsumer))
	if span.IsRecording() { // attributes cost allocations: only for a real span
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

	c := &command{ctx: ctx, msg: msg, m: m, start: start, span: span, alive: keepAlive(msg, s.cfg.AckWait/3)}
	out := s.handler.Start(ctx, m)
	switch {
	case out.FinishAsync != nil:
		c.out = out
		s.enterTail(c)
		out.FinishAsync(ctx, func(final handlers.Outcome) { s.conclude(c, final) })
	case out.Finish != nil:
		c.out = out
		s.enterTail(c)
		go func() { s.conclude(c, out.Finish(ctx)) }() // the tail's slots bound these
	default:
		s.conclude(c, out)
	}
}

// enterTail admits a command to the tail, where its outcome is recorded
// and its event published while the worker takes the next command. The
// tail holds at most Concurrency commands: a worker waits for room.
func (s *session) enterTail(c *command) {
	s.slots <- struct{}{}
	s.publishing.Add(1)
	c.tail = true
}

// conclude acts on a delivery's final outcome: a terminal event is
// published, and the command acked (or terminated) once the stream has
// stored it; a retry hands the command back at once.
func (s *session) conclude(c *command, out handlers.Outcome) {
	c.out = out
	recording := c.span.IsRecording()
	if recording {
		c.span.SetAttributes(attribute.String("contactrelay.command_id", out.CommandID), attribute.String("contactrelay.provider", out.Provider))
	}
	if out.Action == handlers.Retry {
		c.alive.stop()
		if recording {
			c.span.SetAttributes(attribute.String("contactrelay.event", "retry"))
		}
		var err error
		if out.Delay > 0 {
			err = c.msg.NakWithDelay(out.Delay)
		} else {
			err = c.msg.Nak()
		}
		s.finish(c, err)
		return
	}
	if recording {
		c.span.SetAttributes(attribute.String("contactrelay.event", out.Event.Type), attribute.String("contactrelay.reason", string(out.Reason)))
	}
	ev, err := eventMsg(c.ctx, s.cfg.Propagator, out.Event, out.EventJSON)
	if err != nil {
		c.alive.stop()
		s.finish(c, errors.Join(fmt.Errorf("encode %s: %w", out.Event.Type, err), c.msg.NakWithDelay(time.Second)))
		return
	}
	if !c.tail {
		s.enterTail(c)
	}
	s.pub.publish(ev, c, jetstream.WithMsgID(out.Event.ID))
}

// settle acks a command whose event the stream stored, terminates it for
// a failure (contact.failed), or hands it back when the publish failed:
// its outcome is recorded, so the redelivery publishes the same event,
// under the same id.
func (s *session) settle(c *command, pubErr error) {
	c.alive.stop()
	var err error
	switch {
	case pubErr != nil:
		err = errors.Join(fmt.Errorf("publish %s: %w", c.out.Event.Type, pubErr), c.msg.NakWithDelay(time.Second))
	case c.out.Action == handlers.Term:
		err = c.msg.TermWithReason(string(c.out.Reason))
	default:
		err = c.msg.Ack()
	}
	s.finish(c, err)
}

// finish reports a delivery that ended: its span, hooks and log line.
func (s *session) finish(c *command, settleErr error) {
	if settleErr != nil {
		c.span.RecordError(settleErr)
		c.span.SetStatus(codes.Error, "settle failed")
	}
	c.span.End()
	took := time.Since(c.start)
	if s.cfg.Hooks.Settled != nil {
		s.cfg.Hooks.Settled(c.m, c.out, took, settleErr)
	}
	s.log(c.m, c.out, took, settleErr)
	if c.tail {
		<-s.slots
		s.publishing.Done()
	}
}

// eventMsg builds the message of a terminal event, with the trace context
// of ctx in its headers.
func eventMsg(ctx context.Context, prop propagation.TextMapPropagator, ev *events.Event, body []byte) (*nats.Msg, error) {
	if body == nil {
		var err error
		if body, err = json.Marshal(ev); err != nil {
			return nil, err
		}
	}
	msg := nats.NewMsg(ev.Type)
	msg.Data = body
	prop.Inject(ctx, headerCarrier(msg.Header))
	return msg, nil
}

func (r *Runner) log(m handlers.Message, out handlers.Outcome, took time.Duration, settleErr error) {
	level := slog.LevelInfo
	switch {
	case settleErr != nil:
		level = slog.LevelError
	case out.Action == handlers.Retry || out.Reason != "":
		level = slog.LevelWarn
	}
	if !r.cfg.Logger.Enabled(context.Background(), level) {
		return // build no line that would be dropped
	}
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
	text := "contact created"
	switch {
	case out.Action == handlers.Retry:
		text = "will retry"
		attrs = append(attrs, "delay", out.Delay)
	case out.Reason != "":
		text = "contact failed"
		attrs = append(attrs, "reason", out.Reason)
	}
	if out.Event != nil {
		attrs = append(attrs, "eventId", out.Event.ID)
	}
	if out.Err != nil {
		attrs = append(attrs, "error", out.Err.Error())
	}
	if settleErr != nil {
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
