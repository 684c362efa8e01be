package client

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/google/uuid"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/contactrelay/contactrelay/contact"
	"github.com/contactrelay/contactrelay/record"
)

// Outcome is a command's terminal event in its generation.
type Outcome struct {
	// Ack is what the stream said of the publish.
	Ack Ack
	// Event is the envelope; Raw its bytes as published.
	Event Event
	Raw   []byte
	// Created is the event's data when it is contact.created; Failed
	// when it is contact.failed (then the error is a *FailedError too).
	Created *Created
	Failed  *Failed
}

// FailedError is a contact.failed outcome as an error: the event's data
// (Reason, Message, Errors, Upstream, Retryable, …) and the envelope.
type FailedError struct {
	Event Event
	Failed
}

func (e *FailedError) Error() string {
	return fmt.Sprintf("contact.failed for %s: %s: %s", e.CommandID, e.Reason, e.Message)
}

// PublishAndWait publishes cmd (see Publish) and waits for its terminal
// event (see PublishMessageAndWait).
func (c *Client) PublishAndWait(ctx context.Context, cmd Command) (Outcome, error) {
	if cmd.CommandID == "" {
		cmd.CommandID = uuid.NewString()
	}
	body, err := json.Marshal(cmd)
	if err != nil {
		return Outcome{}, fmt.Errorf("encode command %s: %w", cmd.CommandID, err)
	}
	return c.PublishMessageAndWait(ctx, Message{Body: body})
}

// PublishMessageAndWait publishes m (see PublishMessage) and waits, until
// ctx is done, for its answer: the terminal event of its generation (the
// event whose id is EventID of its commandId, generation and type), the
// conflict answer to its content, or, once the service's record holds a
// decided outcome for this content (see Settled), that outcome: the
// command's newest, which may be another generation's.
//
// The calls of one Client share one watch of the events (see the package
// documentation): a call joins it before publishing, so an outcome that
// comes at once is not missed, and an outcome that came before the call
// (a duplicate, a command re-sent) is found in the record or, for an
// answer the record does not keep, among the events already stored. While
// it waits, and whenever the connection comes back after a loss, the call
// reads the record again, so that an event missed meanwhile cannot leave
// it waiting.
//
// It returns by ctx's deadline, whatever the connection does: the
// Outcome, and a *FailedError for contact.failed; ErrTimeout (with the
// Ack: the command is stored, its outcome comes later as an event) when
// the deadline passed first; ctx's error when it was cancelled;
// ErrNoStreams; or an error of the publish (ErrUnconfirmed: it may or may
// not be stored).
func (c *Client) PublishMessageAndWait(ctx context.Context, m Message) (Outcome, error) {
	id, usable := bodyCommandID(m.Body, m.ReplayOf != "")
	sw, w, err := c.join(id)
	if err != nil {
		return Outcome{}, err
	}
	defer c.leave(sw, w)
	published := time.Now()
	ack, err := c.PublishMessage(ctx, m)
	if err != nil {
		return Outcome{Ack: ack}, err
	}
	if c.cfg.Published != nil {
		c.cfg.Published(ack)
	}
	var scanFrom time.Time
	if !usable {
		// The stream named the command: follow that name, and look for
		// an answer that came before.
		sw.rekey(w, ack.CommandID)
		scanFrom = published.Add(-scanMargin)
	}
	if ack.Duplicate {
		// Its outcome may be older than the call: when the record does
		// not have it, read the events from before the stored command,
		// as far back as an answer to it could have been taken for a
		// duplicate of an earlier one.
		since := time.Now()
		if stored, err := c.storedCommand(ctx, ack); err == nil {
			since = stored.Time
		}
		scanFrom = since.Add(-c.duplicateWindow(ctx))
	}
	return c.await(ctx, sw, w, ack, scanFrom)
}

// The record is read again while a call waits: after firstRecheck, then
// at doubling intervals up to maxRecheck, each read bounded by recordRead.
const (
	firstRecheck = time.Second
	maxRecheck   = 15 * time.Second
	recordRead   = 3 * time.Second
)

// await returns ack's command's answer: from the events the shared watch
// hands w, or from the record, read at once, when an event of the
// commandId does not match, when the connection came back, and from time
// to time. When the record does not answer at once and scanFrom is set, it
// has the events from scanFrom on read too.
func (c *Client) await(ctx context.Context, sw *sharedWatch, w *waiter, ack Ack, scanFrom time.Time) (Outcome, error) {
	created := contact.EventID(ack.CommandID, ack.Generation, contact.SubjectCreated)
	failed := contact.EventID(ack.CommandID, ack.Generation, contact.SubjectFailed)
	conflict := contact.EventID(ack.CommandID, "conflict:"+ack.fingerprint, contact.SubjectFailed)
	recheck := sw.rechecked()
	if o, ok, err := c.answered(ctx, ack); ok || err != nil {
		return o, err
	}
	if !scanFrom.IsZero() {
		sw.scan(scanFrom)
	}
	delay := firstRecheck
	timer := time.NewTimer(jitter(delay))
	defer timer.Stop()
	for {
		select {
		case <-ctx.Done():
			return Outcome{Ack: ack}, waitError(ack, ctx.Err())
		case v := <-w.events:
			if v.ev.Subject != ack.CommandID {
				continue
			}
			if v.ev.ID == created || v.ev.ID == failed || v.ev.ID == conflict {
				return outcome(ack, v.ev, v.raw)
			}
			// Another event of the commandId: another generation's,
			// or the service's answer with the command's newest
			// outcome. The record says whether it is this content's.
		case <-recheck:
			recheck = sw.rechecked()
		case <-timer.C:
			delay = min(2*delay, maxRecheck)
			timer.Reset(jitter(delay))
		}
		if o, ok, err := c.answered(ctx, ack); ok || err != nil {
			return o, err
		}
	}
}

// answered reads the service's record of ack's command, and returns the
// outcome it holds for this command: for an original, the newest
// outcome recorded for this content (what Settled returns); for a
// replay, its generation's, once it is the newest. ok is false when there
// is none, or the record could not be read (the call goes on waiting); an
// error only when the connection is closed, so that waiting is vain.
func (c *Client) answered(ctx context.Context, ack Ack) (o Outcome, ok bool, err error) {
	rctx, cancel := context.WithTimeout(ctx, recordRead)
	defer cancel()
	value, err := c.readRecord(rctx, ack.CommandID)
	if errors.Is(err, nats.ErrConnectionClosed) {
		return Outcome{Ack: ack}, false, fmt.Errorf("wait for the outcome of %s: %s: %w", ack.CommandID, stored(ack), err)
	}
	if err != nil || value == nil {
		return Outcome{}, false, nil
	}
	var raw []byte
	if ack.Generation == "" {
		// The service's own rule: the newest outcome, when this content
		// is that of one of the command's generations. Other content is
		// a conflict, answered by an event.
		var decided bool
		if raw, decided = record.ResentOutcome(value, ack.fingerprint); !decided {
			return Outcome{}, false, nil
		}
	} else {
		// A replay's answer, once its generation's outcome is the
		// newest.
		generation, newest, ok := record.NewestEvent(value)
		if !ok || generation != ack.Generation {
			return Outcome{}, false, nil
		}
		raw = newest
	}
	var ev Event
	if json.Unmarshal(raw, &ev) != nil || ev.ID == "" {
		return Outcome{}, false, nil
	}
	o, err = outcome(ack, ev, raw)
	var fe *FailedError
	if err != nil && !errors.As(err, &fe) {
		return Outcome{}, false, nil
	}
	return o, true, err
}

// jitter returns d give or take a fifth, so that many calls waiting since
// the same moment do not read their records at the same moment.
func jitter(d time.Duration) time.Duration {
	return d - d/5 + rand.N(2*d/5+1)
}

// stored says where ack's command is stored.
func stored(ack Ack) string {
	return fmt.Sprintf("the command is stored (%s seq %d) and its outcome comes as a %s or %s event", ack.Stream, ack.Sequence, contact.SubjectCreated, contact.SubjectFailed)
}

// waitError says why a wait for ack's command's outcome ended without
// one: ErrTimeout for a deadline, else err.
func waitError(ack Ack, err error) error {
	if errors.Is(err, context.DeadlineExceeded) {
		return fmt.Errorf("%w for %s: %s later (Settled reads it once decided): %w", ErrTimeout, ack.CommandID, stored(ack), err)
	}
	return fmt.Errorf("wait for the outcome of %s: %s: %w", ack.CommandID, stored(ack), err)
}

// outcome decodes a terminal event's data.
func outcome(ack Ack, ev Event, raw []byte) (Outcome, error) {
	o := Outcome{Ack: ack, Event: ev, Raw: raw}
	switch ev.Type {
	case contact.SubjectCreated:
		o.Created = new(Created)
		if err := json.Unmarshal(ev.Data, o.Created); err != nil {
			return o, fmt.Errorf("event %s: %w", ev.ID, err)
		}
		return o, nil
	default:
		o.Failed = new(Failed)
		if err := json.Unmarshal(ev.Data, o.Failed); err != nil {
			return o, fmt.Errorf("event %s: %w", ev.ID, err)
		}
		return o, &FailedError{Event: ev, Failed: *o.Failed}
	}
}

// Watch reads terminal events: those stored in the event stream from a
// point in time on, and those published from now on that the stream drops
// as duplicates of stored ones (repeats of an outcome from the service's
// record), which a reader of the stream alone would never see. The same
// event may come more than once: deduplicate by id. Stop it when done.
type Watch struct {
	out    chan watched
	done   chan struct{}
	once   sync.Once
	stopFn []func()
	wg     sync.WaitGroup
}

type watched struct {
	ev  Event
	raw []byte
	err error
}

// Watch starts reading the event stream at since (the zero time: only
// events stored from now on). It returns ErrNoStreams when the event
// stream does not exist.
func (c *Client) Watch(ctx context.Context, since time.Time) (*Watch, error) {
	w := &Watch{out: make(chan watched, 256), done: make(chan struct{})}
	nc := c.js.Conn()
	core := make(chan *nats.Msg, 8192)
	for _, subject := range []string{contact.SubjectCreated, contact.SubjectFailed} {
		sub, err := nc.ChanSubscribe(subject, core)
		if err != nil {
			w.Stop()
			return nil, fmt.Errorf("subscribe to %s: %w", subject, err)
		}
		w.stopFn = append(w.stopFn, func() { _ = sub.Unsubscribe() })
	}
	cfg := jetstream.OrderedConsumerConfig{
		FilterSubjects: []string{contact.SubjectCreated, contact.SubjectFailed},
		DeliverPolicy:  jetstream.DeliverNewPolicy,
	}
	if !since.IsZero() {
		cfg.DeliverPolicy = jetstream.DeliverByStartTimePolicy
		cfg.OptStartTime = &since
	}
	cons, err := c.js.OrderedConsumer(ctx, EventStream, cfg)
	if err != nil {
		w.Stop()
		if errors.Is(err, jetstream.ErrStreamNotFound) {
			return nil, ErrNoStreams
		}
		return nil, fmt.Errorf("read %s: %w", EventStream, err)
	}
	iter, err := cons.Messages()
	if err != nil {
		w.Stop()
		if errors.Is(err, jetstream.ErrStreamNotFound) {
			return nil, ErrNoStreams
		}
		return nil, fmt.Errorf("read %s: %w", EventStream, err)
	}
	w.stopFn = append(w.stopFn, iter.Stop)
	// The stream's reader wakes up every second to see whether the watch
	// stopped: an iterator may stay blocked in Next after its Stop (it
	// can be resetting the consumer after a reconnect), so Stop does not
	// wait for this goroutine, which sends nothing once it is stopped
	// and returns at its next wake-up.
	go func() {
		for {
			msg, err := iter.Next(jetstream.NextMaxWait(time.Second))
			select {
			case <-w.done:
				return
			default:
			}
			if errors.Is(err, nats.ErrTimeout) {
				continue
			}
			if err != nil {
				if !errors.Is(err, jetstream.ErrMsgIteratorClosed) {
					w.send(watched{err: err})
				}
				return
			}
			if !w.send(decode(msg.Data())) {
				return
			}
		}
	}()
	w.wg.Add(1)
	go func() {
		defer w.wg.Done()
		for {
			select {
			case <-w.done:
				return
			case msg := <-core:
				if !w.send(decode(msg.Data)) {
					return
				}
			}
		}
	}()
	return w, nil
}

func decode(raw []byte) watched {
	var ev Event
	if json.Unmarshal(raw, &ev) != nil {
		return watched{} // not an event: skipped
	}
	return watched{ev: ev, raw: raw}
}

func (w *Watch) send(v watched) bool {
	if v.err == nil && v.ev.ID == "" {
		return true
	}
	select {
	case w.out <- v:
		return true
	case <-w.done:
		return false
	}
}

// Next returns the next event and its bytes, or ctx's error, or the
// stream's error when it can no longer be read.
func (w *Watch) Next(ctx context.Context) (Event, []byte, error) {
	select {
	case <-w.done:
		return Event{}, nil, errors.New("watch stopped")
	default:
	}
	select {
	case v := <-w.out:
		return v.ev, v.raw, v.err
	case <-ctx.Done():
		return Event{}, nil, ctx.Err()
	case <-w.done:
		return Event{}, nil, errors.New("watch stopped")
	}
}

// Stop stops the reading: it returns at once, whatever the connection
// does, and Next returns no event after it. It may be called more than
// once.
func (w *Watch) Stop() {
	w.once.Do(func() {
		close(w.done)
		for _, f := range w.stopFn {
			f()
		}
		w.wg.Wait()
	})
}
