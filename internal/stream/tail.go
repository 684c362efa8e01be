package stream

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"

	"github.com/contactrelay/contactrelay/contact"
	"github.com/contactrelay/contactrelay/internal/failstore"
	"github.com/contactrelay/contactrelay/internal/handlers"
	"github.com/contactrelay/contactrelay/internal/provision"
	"github.com/contactrelay/contactrelay/record"
)

// maxRedecisions bounds how often one delivery's decision is taken again
// after record writes that did not land, before it is handed back.
const maxRedecisions = 3

// session is one Run's machinery after the handler: the tail, where a
// decided command is recorded, published and settled while its worker
// takes the next one.
type session struct {
	*Runner
	pub *publisher[*command]

	// slots bounds the commands in the tail; tail counts them.
	slots chan struct{}
	tail  sync.WaitGroup
}

// command is one delivery on its way through the runner.
type command struct {
	ctx         context.Context // carries the delivery's span
	msg         jetstream.Msg
	m           handlers.Message
	dec         handlers.Decision
	start       time.Time
	span        trace.Span
	alive       *alive
	inTail      bool // holds one of the tail's slots
	held        int  // deliveries held by a pause before this one
	redecisions int
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

// receive has one fetched delivery decided, and carries the decision out.
func (s *session) receive(ctx context.Context, f fetched) {
	msg := f.msg
	meta, err := msg.Metadata()
	if err != nil {
		f.alive.stop()
		s.cfg.Logger.Error("message without JetStream metadata", "subject", msg.Subject(), "error", err)
		_ = msg.Term()
		return
	}
	hdr := msg.Headers()
	m := handlers.Message{
		Body:       msg.Data(),
		MsgID:      hdr.Get(contact.HeaderMsgID),
		Stream:     meta.Stream,
		Sequence:   meta.Sequence.Stream,
		Generation: hdr.Get(contact.HeaderReplayOf),
		Delivery:   int(meta.NumDelivered),
	}
	held := 0
	if m.Delivery > 1 && s.cfg.Holds != nil {
		// Deliveries held by a pause count toward no limit.
		hctx, cancel := context.WithTimeout(ctx, handlers.DefaultStoreTimeout)
		held, err = s.cfg.Holds.Count(hctx, m.Stream, m.Sequence)
		cancel()
		if err != nil {
			f.alive.stop()
			s.cfg.Logger.Warn("could not read held deliveries; handing back", "sequence", m.Sequence, "error", err)
			_ = msg.NakWithDelay(s.storeDelay(1))
			return
		}
		m.Delivery = max(m.Delivery-held, 1)
	}
	if s.cfg.Hooks.Received != nil {
		s.cfg.Hooks.Received(m)
	}
	ctx = s.cfg.Propagator.Extract(ctx, headerCarrier(hdr))
	span := s.noSpan
	if !s.untraced {
		ctx, span = s.tracer.Start(ctx, contact.SubjectCreate+" process", trace.WithSpanKind(trace.SpanKindConsumer))
	}
	if span.IsRecording() { // attributes cost allocations: only for a real span
		span.SetAttributes(
			attribute.String("messaging.system", "nats"),
			attribute.String("messaging.operation.type", "process"),
			attribute.String("messaging.destination.name", contact.SubjectCreate),
			attribute.String("messaging.consumer.group.name", provision.Durable),
			attribute.String("messaging.message.id", m.MsgID),
			attribute.Int("messaging.message.body.size", len(m.Body)),
			attribute.Int64("messaging.nats.stream_sequence", int64(m.Sequence)),
			attribute.Int("messaging.nats.delivery", m.Delivery),
		)
	}
	c := &command{ctx: ctx, msg: msg, m: m, start: f.at, span: span, alive: f.alive, held: held}
	s.carryOut(c, s.handler.Decide(ctx, m))
}

// carryOut carries a decision out: a retry hands the command back at once;
// a decision with a write enters the tail to be recorded, then published;
// one without (an outcome repeated from the record) is published.
func (s *session) carryOut(c *command, dec handlers.Decision) {
	c.dec = dec
	if c.span.IsRecording() {
		c.span.SetAttributes(attribute.String("contactrelay.command_id", dec.CommandID), attribute.String("contactrelay.provider", dec.Provider))
	}
	if dec.Action == handlers.Retry {
		s.handBack(c, dec.Delay, nil)
		return
	}
	if !c.inTail {
		// The tail holds at most Concurrency commands: a worker waits for
		// room.
		s.slots <- struct{}{}
		s.tail.Add(1)
		c.inTail = true
	}
	if w := dec.Write; w != nil {
		s.record(c, w)
		return
	}
	s.openFailures(c)
}

// record writes a decision's record, then publishes its event. A record
// that is new (revision zero) is created with a read-and-write; any other
// is written without waiting, its answer coming back on a client
// goroutine.
func (s *session) record(c *command, w *handlers.Write) {
	if w.Revision == 0 {
		ctx, cancel := context.WithTimeout(context.WithoutCancel(c.ctx), handlers.DefaultStoreTimeout)
		_, ok, err := s.cfg.Records.Put(ctx, w.Key, w.Value, 0, w.Expires)
		cancel()
		s.recorded(c, ok, err)
		return
	}
	s.cfg.Records.PutAsync(w.Key, w.Value, w.Revision, w.Expires, func(_ uint64, ok bool, err error) { s.recorded(c, ok, err) })
}

// recorded goes on once a record write is answered: to the publish when it
// landed; else back to the handler, which reads the record again (another
// delivery may have decided, or this write may have landed without its
// answer), off the client's goroutine.
func (s *session) recorded(c *command, ok bool, err error) {
	if ok && err == nil {
		if c.dec.Failure != nil && s.cfg.Failures != nil {
			// Off the client's goroutine: the change waits for answers.
			go s.openFailures(c)
			return
		}
		s.publish(c)
		return
	}
	if c.redecisions >= maxRedecisions {
		if err == nil {
			err = errors.New("the record kept changing under its write")
		}
		s.handBack(c, s.storeDelay(c.m.Delivery), fmt.Errorf("record outcome: %w", err))
		return
	}
	c.redecisions++
	go s.carryOut(c, s.handler.Redecide(c.ctx, c.m, c.dec))
}

// openFailures makes the decision's change to the open failures, then
// publishes its event. A change that fails hands the command back, like a
// publish that fails: its outcome is recorded, and the redelivery repeats
// the change and the publish.
func (s *session) openFailures(c *command) {
	fc := c.dec.Failure
	if fc == nil || s.cfg.Failures == nil {
		s.publish(c)
		return
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(c.ctx), s.cfg.PublishTimeout)
	defer cancel()
	var check failstore.Check
	if fc.RecordKey != "" {
		check = newestCheck(s.cfg.Records, fc.RecordKey, c.dec.Event.ID, fc.Open)
	}
	var err error
	if fc.Open {
		var e *failstore.Entry
		if e, err = failstore.NewEntry(c.dec.Event, c.dec.EventJSON, fc.Conflict); err == nil {
			err = s.cfg.Failures.Open(ctx, e, check)
		}
	} else {
		err = s.cfg.Failures.Resolve(ctx, c.dec.CommandID, check)
	}
	if err != nil {
		s.handBack(c, s.publishDelay(c.m.Delivery), fmt.Errorf("open failures: %w", err))
		return
	}
	s.publish(c)
}

// NewestFailureCheck returns the check that the record under key holds
// the failed event eventID as its newest outcome, or no outcome at all (it
// expired, or was never written): the failure is then its command's open
// one.
func NewestFailureCheck(records *Records, key, eventID string) failstore.Check {
	return newestCheck(records, key, eventID, true)
}

// NewestCreatedCheck returns the check that the record under key holds a
// contact.created as its newest outcome: the command's open failures are
// resolved.
func NewestCreatedCheck(records *Records, key string) failstore.Check {
	return newestCheck(records, key, "", false)
}

// newestCheck returns the check that the record under key still holds the
// event eventID as its newest outcome (open), or a contact.created as its
// newest outcome (a resolution).
func newestCheck(records *Records, key, eventID string, open bool) failstore.Check {
	return func(ctx context.Context) (bool, error) {
		val, rev, err := records.Get(ctx, key)
		if err != nil {
			return false, err
		}
		if rev == 0 {
			return open, nil // no record: the outcome was not recorded
		}
		commandID, gen, created, ok := record.NewestOutcome(val)
		if !ok {
			return open, nil // no outcome recorded (a record of an older form)
		}
		if !open {
			return created, nil
		}
		return !created && contact.EventID(commandID, gen, contact.SubjectFailed) == eventID, nil
	}
}

// publish publishes the decided event, with its id as Nats-Msg-Id; the
// stream's acknowledgement settles the command (settle). A subject the
// server refuses to this service is not tried more than Permissions
// allows: the command is handed back at once, backing off.
func (s *session) publish(c *command) {
	ev := c.dec.Event
	if c.span.IsRecording() {
		c.span.SetAttributes(attribute.String("contactrelay.event", ev.Type), attribute.String("contactrelay.reason", string(c.dec.Reason)))
	}
	if err := s.cfg.Permissions.Try(ev.Type, c.dec.CommandID); err != nil {
		s.handBack(c, s.publishDelay(c.m.Delivery), err)
		return
	}
	msg, err := eventMsg(c.ctx, s.cfg.Propagator, ev, c.dec.EventJSON)
	if err != nil {
		s.handBack(c, s.publishDelay(c.m.Delivery), fmt.Errorf("encode %s: %w", ev.Type, err))
		return
	}
	// The header jetstream.WithMsgID would set, set here: no option, no
	// options struct, the library's path without options.
	msg.Header.Set(jetstream.MsgIDHeader, ev.ID)
	s.pub.publish(msg, c)
}

// settle acks a command whose event the stream stored, terminates it for
// bad input, or hands it back when the publish failed: its outcome is
// recorded, so the redelivery publishes the same event, under the same
// id, after a wait that doubles with each delivery.
func (s *session) settle(c *command, pubErr error) {
	if pubErr != nil {
		subject := c.dec.Event.Type
		pubErr = fmt.Errorf("publish %s: %w", subject, pubErr)
		if perr := s.cfg.Permissions.Failed(subject, c.dec.CommandID); perr != nil {
			pubErr = errors.Join(pubErr, perr)
		}
		s.handBack(c, s.publishDelay(c.m.Delivery), pubErr)
		return
	}
	s.cfg.Permissions.Succeeded(c.dec.Event.Type)
	c.alive.stop()
	var err error
	if c.dec.Action == handlers.Term {
		err = c.msg.TermWithReason(string(c.dec.Reason))
	} else {
		err = c.msg.Ack()
	}
	if c.held > 0 && err == nil {
		// Settled: its held count is of no more use.
		ctx, cancel := context.WithTimeout(context.WithoutCancel(c.ctx), handlers.DefaultStoreTimeout)
		if ferr := s.cfg.Holds.Forget(ctx, c.m.Stream, c.m.Sequence); ferr != nil {
			s.cfg.Logger.Warn("could not forget held deliveries", "sequence", c.m.Sequence, "error", ferr)
		}
		cancel()
	}
	s.finish(c, err)
}

// handBack naks the command for redelivery after delay (at once when
// zero), with cause, the error that made it necessary, if any.
func (s *session) handBack(c *command, delay time.Duration, cause error) {
	c.alive.stop()
	if c.span.IsRecording() && cause == nil {
		c.span.SetAttributes(attribute.String("contactrelay.event", "retry"))
	}
	if c.dec.Held && cause == nil && s.cfg.Holds != nil {
		// Counted before the message is handed back, so that its next
		// delivery sees it; a count that fails leaves this delivery
		// counting toward the limit, as any other.
		ctx, cancel := context.WithTimeout(context.WithoutCancel(c.ctx), handlers.DefaultStoreTimeout)
		if _, herr := s.cfg.Holds.Add(ctx, c.m.Stream, c.m.Sequence); herr != nil {
			s.cfg.Logger.Warn("could not count a held delivery", "sequence", c.m.Sequence, "error", herr)
		}
		cancel()
	}
	var err error
	if delay > 0 {
		err = c.msg.NakWithDelay(delay)
	} else {
		err = c.msg.Nak()
	}
	if cause != nil {
		c.dec.Action, c.dec.Delay = handlers.Retry, delay
	}
	s.finish(c, errors.Join(cause, err))
}

// publishDelay is the wait before a delivery whose event could not be
// published is tried again: SettleRetryDelay (a second by default),
// doubling with every delivery, up to five minutes.
func (s *session) publishDelay(delivery int) time.Duration {
	return min(s.cfg.SettleRetryDelay<<min(max(delivery-1, 0), 16), 5*time.Minute)
}

// storeDelay is the wait before a delivery whose decision could not be
// recorded is tried again: twice publishDelay's, up to five minutes.
func (s *session) storeDelay(delivery int) time.Duration {
	return min(2*s.cfg.SettleRetryDelay<<min(max(delivery-1, 0), 16), 5*time.Minute)
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
		s.cfg.Hooks.Settled(c.m, c.dec, took, settleErr)
	}
	s.log(c.m, c.dec, took, settleErr)
	if c.inTail {
		<-s.slots
		s.tail.Done()
	}
}

// eventMsg builds the message of a terminal event, with the trace context
// of ctx in its headers.
func eventMsg(ctx context.Context, prop propagation.TextMapPropagator, ev *contact.Event, body []byte) (*nats.Msg, error) {
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
