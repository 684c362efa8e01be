package handlers

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/contactrelay/contactrelay/internal/clients/provider"

	"github.com/contactrelay/contactrelay/internal/events"
)

// storeRetryDelay is how long a command waits for redelivery when its record
// could not be read or written (NATS trouble): short, since no provider is
// being spared.
const storeRetryDelay = 2 * time.Second

// fail decides a failed outcome that needs no record: the command was
// malformed, invalid or unroutable, which every delivery decides alike.
func (h *Handler) fail(m Message, cmd events.Command, provider string, reason events.Reason, msg string, errs []events.FieldError) Outcome {
	commandID := cmd.CommandID
	data := events.Failed{
		CommandID: commandID,
		Provider:  provider,
		Reason:    reason,
		Retryable: reason.Retryable(),
		Message:   msg,
		Errors:    errs,
		ReplayOf:  m.Generation,
		Metadata:  cmd.Metadata,
	}
	if reason == events.ReasonMalformed {
		data.CommandRaw = m.Body
	} else {
		data.Command = m.Body
	}
	ev, err := events.NewEvent(h.cfg.Source, events.SubjectFailed, commandID, m.Generation, h.cfg.Now(), data)
	if err != nil {
		// Only data that cannot be encoded gets here; keep the raw bytes.
		data.Command, data.CommandRaw, data.Metadata = nil, m.Body, nil
		ev, _ = events.NewEvent(h.cfg.Source, events.SubjectFailed, commandID, m.Generation, h.cfg.Now(), data)
	}
	return Outcome{Action: Term, Event: &ev, CommandID: commandID, Provider: provider, Reason: reason, Err: errors.New(msg)}
}

// settled returns the outcome of a command that needs no provider call: its
// generation's recorded outcome, or contact.created from the record of a
// contact created earlier (by another generation, delivery or instance).
func (h *Handler) settled(ctx context.Context, d *delivery) *Outcome {
	if g := d.rec.Generations[d.m.Generation]; g != nil && g.Outcome != nil {
		out := recordedOutcome(d, g)
		out.FromRecord = true
		return &out
	}
	if d.rec.Contact != nil {
		c := d.rec.Contact
		out := h.created(ctx, d, provider.Contact{ID: c.ID, Upstream: c.Upstream})
		out.FromRecord = out.Event != nil
		return &out
	}
	return nil
}

// created records the contact and the generation's created outcome, unless
// the generation already has an outcome, which is then kept.
func (h *Handler) created(ctx context.Context, d *delivery, c provider.Contact) Outcome {
	return h.decide(ctx, d, h.createdBuild(d, c))
}

// createdBuild builds the created outcome of contact c into a record.
func (h *Handler) createdBuild(d *delivery, c provider.Contact) func(*Record, *Generation) (events.Reason, any) {
	return func(r *Record, g *Generation) (events.Reason, any) {
		if r.Contact == nil {
			r.Contact = &StoredContact{Provider: d.cmd.Provider, ID: c.ID, Upstream: c.Upstream, CreatedAt: h.cfg.Now().UTC()}
		}
		r.Unsettled, r.InFlightUntil = false, time.Time{}
		return "", h.createdData(d, r.Contact, g)
	}
}

// finish records a failed outcome for the generation, unless it already has
// an outcome or the contact exists meanwhile (then it is created).
func (h *Handler) finish(ctx context.Context, d *delivery, reason events.Reason, msg string) Outcome {
	return h.decide(ctx, d, func(r *Record, g *Generation) (events.Reason, any) {
		if r.Contact != nil {
			return "", h.createdData(d, r.Contact, g)
		}
		data := events.Failed{
			CommandID: d.cmd.CommandID,
			Provider:  d.cmd.Provider,
			Reason:    reason,
			Retryable: reason.Retryable(),
			Message:   msg,
			Attempts:  g.Attempts,
			ReplayOf:  d.m.Generation,
			Metadata:  d.cmd.Metadata,
			Command:   d.m.Body,
		}
		switch {
		case d.last != nil:
			data.Upstream = d.last.Upstream()
		case r.LastFailure != nil:
			data.Upstream = r.LastFailure
		}
		return reason, data
	})
}

func (h *Handler) createdData(d *delivery, c *StoredContact, g *Generation) events.Created {
	up := c.Upstream
	if up == nil {
		up = map[string]any{}
	}
	return events.Created{
		CommandID: d.cmd.CommandID,
		Provider:  c.Provider,
		ContactID: c.ID,
		Upstream:  up,
		Attempts:  g.Attempts,
		ReplayOf:  d.m.Generation,
		Metadata:  d.cmd.Metadata,
	}
}

// decide records the generation's outcome, built by build from the freshest
// record, with a compare-and-set; a generation has one outcome, so one
// recorded first by another delivery wins. The event is encoded once: the
// record keeps those bytes and the runner publishes them.
func (h *Handler) decide(ctx context.Context, d *delivery, build func(*Record, *Generation) (events.Reason, any)) Outcome {
	var (
		buildErr error
		fresh    *Outcome // the outcome this delivery wrote, if it did
	)
	_, err := h.update(ctx, d, func(r *Record) bool {
		fresh, buildErr = h.applyOutcome(d, r, build)
		return fresh != nil
	})
	if err == nil {
		err = buildErr
	}
	if err != nil {
		return h.retryStore(d, err)
	}
	if fresh != nil {
		return *fresh
	}
	return recordedOutcome(d, d.rec.Generations[d.m.Generation])
}

// applyOutcome sets the generation's outcome in r, built by build, and
// returns it; it returns nil when the generation has one already (or the
// event cannot be built: then with the error).
func (h *Handler) applyOutcome(d *delivery, r *Record, build func(*Record, *Generation) (events.Reason, any)) (*Outcome, error) {
	r.Generations = cloneGenerations(r.Generations)
	g := r.generation(d.m.Generation)
	if g.Outcome != nil {
		return nil, nil
	}
	reason, data := build(r, g)
	typ, provider, msg := events.SubjectCreated, "", ""
	switch v := data.(type) {
	case events.Created:
		provider = v.Provider
	case events.Failed:
		typ, provider, msg = events.SubjectFailed, v.Provider, v.Message
	}
	ev, err := events.NewEvent(h.cfg.Source, typ, d.cmd.CommandID, d.m.Generation, h.cfg.Now(), data)
	if err != nil {
		return nil, err
	}
	encoded := ev.AppendJSON(make([]byte, 0, 320+len(ev.Data)))
	g.Outcome, g.Provider, g.Reason = encoded, provider, reason
	out := &Outcome{Action: Ack, Event: &ev, EventJSON: encoded, CommandID: d.cmd.CommandID,
		Provider: provider, Reason: reason, Attempts: g.Attempts}
	if reason != "" {
		out.Err = errors.New(msg)
	}
	return out, nil
}

// createdAsync is created through an AsyncStore: the outcome is written
// over the delivery's revision without waiting, and done gets the Outcome
// once it is recorded. A conflict or trouble takes the careful way,
// created, which reads the record again (on a goroutine of its own).
func (h *Handler) createdAsync(ctx context.Context, store AsyncStore, d *delivery, c provider.Contact, done func(Outcome)) {
	careful := func() { go func() { done(h.created(ctx, d, c)) }() }
	rec := d.rec
	fresh, err := h.applyOutcome(d, &rec, h.createdBuild(d, c))
	if fresh == nil || err != nil || d.rev == 0 {
		careful()
		return
	}
	val, err := h.records.encode(rec)
	if err != nil {
		careful()
		return
	}
	store.PutAsync(RecordKey(d.cmd.CommandID), val, d.rev, func(rev uint64, ok bool, err error) {
		if err != nil || !ok {
			careful()
			return
		}
		d.rec, d.rev = rec, rev
		done(*fresh)
	})
}

// recordedOutcome turns a generation's recorded event into an Outcome.
func recordedOutcome(d *delivery, g *Generation) Outcome {
	var ev events.Event
	if err := json.Unmarshal(g.Outcome, &ev); err != nil {
		// Our own encoding: only a damaged record gets here. Publishing
		// the bytes as they are still repeats the outcome.
		ev = events.Event{Type: events.SubjectFailed}
	}
	out := Outcome{Action: Ack, Event: &ev, EventJSON: g.Outcome, CommandID: d.cmd.CommandID,
		Provider: g.Provider, Reason: g.Reason, Attempts: g.Attempts}
	if g.Reason != "" {
		out.Err = fmt.Errorf("%s, as decided earlier", g.Reason)
	}
	return out
}

// retryStore ends a delivery whose record could not be read or written.
// Each such delivery counts towards MAX_DELIVER, so the wait doubles with
// every delivery, up to one delivery's full retry schedule: a NATS
// election costs a delivery or two, and the default of ten deliveries
// outlasts some ten minutes without a record store.
func (h *Handler) retryStore(d *delivery, err error) Outcome {
	delay := storeRetryDelay << min(max(d.m.Delivery-1, 0), 16)
	delay = min(delay, h.cfg.RetryMaxElapsed+h.cfg.RedeliveryDelay)
	return Outcome{Action: Retry, Delay: delay, CommandID: d.cmd.CommandID, Provider: d.cmd.Provider, Attempts: d.attempts(), Err: err}
}

// storeContext bounds one record read or write; it outlives ctx's
// cancellation so that a decided outcome is recorded during shutdown.
func (h *Handler) storeContext(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.WithoutCancel(ctx), h.cfg.StoreTimeout)
}

// reload reads the delivery's record afresh.
func (h *Handler) reload(ctx context.Context, d *delivery) error {
	sctx, cancel := h.storeContext(ctx)
	defer cancel()
	rec, rev, err := h.records.load(sctx, d.cmd.CommandID)
	if err != nil {
		return err
	}
	d.rec, d.rev = rec, rev
	return nil
}

// save writes rec over revision rev.
func (h *Handler) save(ctx context.Context, rec Record, rev uint64) (uint64, error) {
	sctx, cancel := h.storeContext(ctx)
	defer cancel()
	return h.records.save(sctx, rec, rev)
}

// update changes the delivery's record with a compare-and-set, reading and
// reapplying on conflict, and keeps the delivery's copy current.
func (h *Handler) update(ctx context.Context, d *delivery, change func(*Record) bool) (Record, error) {
	sctx, cancel := h.storeContext(ctx)
	defer cancel()
	rec, rev, err := h.records.update(sctx, d.cmd.CommandID, d.rec, d.rev, change)
	if err != nil {
		return Record{}, err
	}
	d.rec, d.rev = rec, rev
	return rec, nil
}
