package client

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/google/uuid"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/contactrelay/contactrelay/internal/events"
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
// ctx is done, for its terminal event in this generation: the event whose
// id is EventID of its commandId, generation and type, or the conflict
// answer to its content. It subscribes before publishing, so an outcome
// that comes at once is not missed; when the stream already held the
// command (Ack.Duplicate), or the service answers a repeat from its record
// with an event the event stream drops as a duplicate, the outcome is
// found among the events already stored. It returns the Outcome, and:
// a *FailedError for contact.failed, ErrTimeout (with the Ack) when ctx's
// deadline passed first, ctx's error when it was cancelled, ErrNoStreams,
// or an error of the publish.
func (c *Client) PublishMessageAndWait(ctx context.Context, m Message) (Outcome, error) {
	// Subscribe before publishing, so the outcome cannot slip by.
	w, err := c.Watch(ctx, time.Time{})
	if err != nil {
		return Outcome{}, err
	}
	defer func() { w.Stop() }()
	ack, err := c.PublishMessage(ctx, m)
	if err != nil {
		return Outcome{Ack: ack}, err
	}
	if c.cfg.Published != nil {
		c.cfg.Published(ack)
	}
	if ack.Duplicate {
		// Its outcome may be older than the subscription: read from
		// before the stored command, as far back as an answer to it
		// could have been taken for a duplicate of an earlier one.
		since := time.Now()
		if stored, err := c.storedCommand(ctx, ack); err == nil {
			since = stored.Time
		}
		w.Stop()
		earlier, err := c.Watch(ctx, since.Add(-c.duplicateWindow(ctx)))
		if err != nil {
			// w is stopped already; Stop again is a no-op.
			return Outcome{Ack: ack}, err
		}
		w = earlier
	}
	return c.await(ctx, w, ack)
}

// await returns ack's command's outcome from w.
func (c *Client) await(ctx context.Context, w *Watch, ack Ack) (Outcome, error) {
	created := events.EventID(ack.CommandID, ack.Generation, events.SubjectCreated)
	failed := events.EventID(ack.CommandID, ack.Generation, events.SubjectFailed)
	conflict := events.EventID(ack.CommandID, "conflict:"+ack.fingerprint, events.SubjectFailed)
	for {
		ev, raw, err := w.Next(ctx)
		if err != nil {
			if errors.Is(err, context.DeadlineExceeded) {
				return Outcome{Ack: ack}, fmt.Errorf("%w for %s: %w", ErrTimeout, ack.CommandID, err)
			}
			return Outcome{Ack: ack}, fmt.Errorf("wait for the outcome of %s: %w", ack.CommandID, err)
		}
		if ev.Subject != ack.CommandID || (ev.ID != created && ev.ID != failed && ev.ID != conflict) {
			continue
		}
		return outcome(ack, ev, raw)
	}
}

// outcome decodes a terminal event's data.
func outcome(ack Ack, ev Event, raw []byte) (Outcome, error) {
	o := Outcome{Ack: ack, Event: ev, Raw: raw}
	switch ev.Type {
	case events.SubjectCreated:
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
	for _, subject := range []string{events.SubjectCreated, events.SubjectFailed} {
		sub, err := nc.ChanSubscribe(subject, core)
		if err != nil {
			w.Stop()
			return nil, fmt.Errorf("subscribe to %s: %w", subject, err)
		}
		w.stopFn = append(w.stopFn, func() { _ = sub.Unsubscribe() })
	}
	cfg := jetstream.OrderedConsumerConfig{
		FilterSubjects: []string{events.SubjectCreated, events.SubjectFailed},
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
	w.wg.Add(2)
	go func() {
		defer w.wg.Done()
		for {
			msg, err := iter.Next()
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
	case v := <-w.out:
		return v.ev, v.raw, v.err
	case <-ctx.Done():
		return Event{}, nil, ctx.Err()
	case <-w.done:
		return Event{}, nil, errors.New("watch stopped")
	}
}

// Stop stops the reading and waits until it has stopped. It may be called
// more than once.
func (w *Watch) Stop() {
	w.once.Do(func() {
		close(w.done)
		for _, f := range w.stopFn {
			f()
		}
		w.wg.Wait()
	})
}
