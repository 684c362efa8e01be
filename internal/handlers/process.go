package handlers

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/contactrelay/contactrelay/internal/clients/provider"

	"github.com/cenkalti/backoff/v4"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"

	"github.com/contactrelay/contactrelay/internal/events"
)

// inFlightMargin is added to the call timeout to form the time a create call
// holds its record: past it, the call is over whatever became of it.
const inFlightMargin = 2 * time.Second

// delivery is the state of one delivery of a routed, valid command.
type delivery struct {
	m        Message
	cmd      events.Command
	provider Provider
	rec      Record
	rev      uint64
	last     *provider.Error // the provider's last failure, if any
	stale    bool            // rec may be out of date: read it before the next try
}

// errBusy reports that another delivery of the same commandId has a create
// call in flight; it is transient and counts no attempt.
type errBusy struct{ until time.Time }

func (e errBusy) Error() string {
	return "another delivery of this command has a create call in flight until " + e.until.Format(time.RFC3339)
}

// errStore marks failures of the record store: they end the delivery with
// Retry, never with a failed event.
type errStore struct{ err error }

func (e errStore) Error() string { return e.err.Error() }
func (e errStore) Unwrap() error { return e.err }

// process runs the idempotent, retried creation of a valid command.
func (h *Handler) process(ctx context.Context, m Message, cmd events.Command, p Provider) Outcome {
	d := &delivery{m: m, cmd: cmd, provider: p, rec: Record{CommandID: cmd.CommandID}}
	// A first delivery of an original command is almost always new: skip
	// the read, and let the first write's compare-and-set tell otherwise.
	if m.Delivery > 1 || m.Generation != "" {
		if err := h.reload(ctx, d); err != nil {
			return h.retryStore(d, err)
		}
	}
	if m.Delivery > h.cfg.MaxDeliver {
		// The last allowed delivery ended without an outcome (the process
		// died during it): settle with what is known, calling nothing but a
		// lookup.
		return h.finalPass(ctx, d)
	}

	var out *Outcome
	b := h.newBackOff()
	op := func() error {
		o, err := h.attempt(ctx, d)
		if err == nil {
			out = o
			return nil
		}
		var pe *provider.Error
		b.hint = 0
		switch {
		case errors.As(err, new(errStore)), errors.As(err, new(errCircuitOpen)):
			return backoff.Permanent(err)
		case errors.As(err, &pe) && pe.Class == provider.Permanent:
			return backoff.Permanent(err)
		case errors.As(err, &pe):
			b.hint = pe.RetryAfter
		}
		return err
	}
	notify := func(err error, wait time.Duration) {
		if h.cfg.Hooks.Retry != nil {
			h.cfg.Hooks.Retry(cmd.Provider)
		}
		h.cfg.Logger.Info("retrying", "commandId", cmd.CommandID, "provider", cmd.Provider,
			"delivery", m.Delivery, "attempts", d.attempts(), "wait", wait, "error", err)
	}
	err := backoff.RetryNotify(op, backoff.WithContext(b, ctx), notify)
	var busy errBusy
	switch {
	case out != nil:
		return *out
	case errors.As(err, new(errStore)):
		return h.retryStore(d, err)
	case errors.As(err, &busy):
		// Another delivery holds the create call: it decides, whatever our
		// delivery count. Come back when its hold ends.
		return h.retryBusy(d, busy, err)
	case errors.As(err, new(errCircuitOpen)) && m.Delivery < h.cfg.MaxDeliver:
		// Free the slot for other providers' commands, and spend this
		// delivery no faster than retrying through it would have.
		return Outcome{Action: Retry, Delay: h.cfg.RetryMaxElapsed + h.cfg.RedeliveryDelay,
			CommandID: cmd.CommandID, Provider: cmd.Provider, Attempts: d.attempts(), Err: err}
	case ctx.Err() != nil:
		// Shutting down: let another instance, or this one restarted,
		// take the command at once.
		return Outcome{Action: Retry, CommandID: cmd.CommandID, Provider: cmd.Provider, Attempts: d.attempts(), Err: err}
	case provider.ClassOf(err) == provider.Permanent:
		return h.finish(ctx, d, events.ReasonRejected, "the provider refused the contact: "+err.Error())
	case m.Delivery >= h.cfg.MaxDeliver:
		return h.finish(ctx, d, events.ReasonExhausted,
			fmt.Sprintf("transient failures outlasted %d deliveries: %v", m.Delivery, err))
	}
	delay := h.cfg.RedeliveryDelay
	if d.last != nil && d.last.RetryAfter > delay {
		delay = d.last.RetryAfter
	}
	return Outcome{Action: Retry, Delay: delay, CommandID: cmd.CommandID, Provider: cmd.Provider, Attempts: d.attempts(), Err: err}
}

// hintedBackOff is an exponential backoff that waits at least as long as
// the provider asked (Retry-After) for the next try.
type hintedBackOff struct {
	*backoff.ExponentialBackOff
	hint time.Duration
}

func (b *hintedBackOff) NextBackOff() time.Duration {
	d := b.ExponentialBackOff.NextBackOff()
	if d != backoff.Stop && b.hint > d {
		d = b.hint
	}
	return d
}

// newBackOff returns a fresh backoff for one delivery.
func (h *Handler) newBackOff() *hintedBackOff {
	eb := backoff.NewExponentialBackOff()
	eb.InitialInterval = h.cfg.RetryInitialInterval
	eb.MaxInterval = h.cfg.RetryMaxInterval
	eb.MaxElapsedTime = h.cfg.RetryMaxElapsed
	eb.Reset()
	return &hintedBackOff{ExponentialBackOff: eb}
}

// attempt makes one try: it returns an outcome when the command is settled,
// or the error that kept it from being settled.
func (h *Handler) attempt(ctx context.Context, d *delivery) (out *Outcome, err error) {
	if d.stale {
		if err := h.reload(ctx, d); err != nil {
			return nil, errStore{err}
		}
	}
	// Between tries, another delivery may change the record.
	defer func() { d.stale = err != nil }()
	for {
		if out := h.settled(ctx, d); out != nil {
			return out, nil
		}
		now := h.cfg.Now()
		if d.rec.Unsettled {
			if now.Before(d.rec.InFlightUntil) {
				return nil, errBusy{until: d.rec.InFlightUntil}
			}
			// An earlier create call's answer never arrived: the contact may
			// exist. Look before creating again.
			out, err := h.reconcile(ctx, d)
			if out != nil || err != nil {
				return out, err
			}
		}

		// Wait for the provider's guard before claiming, so that neither a
		// rate limit nor an open circuit holds a claim or counts an attempt.
		done, err := h.guards[d.cmd.Provider].admit(ctx)
		if err != nil {
			return nil, err
		}
		// Claim the create call: mark the record unsettled and count the
		// attempt, atomically, so that no other delivery creates meanwhile.
		claim := d.rec
		claim.Unsettled = true
		claim.InFlightUntil = now.Add(h.cfg.CallTimeout + inFlightMargin)
		claim.Generations = cloneGenerations(d.rec.Generations)
		claim.generation(d.m.Generation).Attempts++
		rev, err := h.save(ctx, claim, d.rev)
		if err != nil {
			done(errNotCalled)
			if !errors.Is(err, errConflict) {
				return nil, errStore{err}
			}
			if err := h.reload(ctx, d); err != nil {
				return nil, errStore{err}
			}
			continue
		}
		d.rec, d.rev = claim, rev

		contact, err := h.call(ctx, d, "create", func(ctx context.Context) (provider.Contact, error) {
			return d.provider.Create(ctx, d.cmd)
		})
		done(err)
		if err == nil {
			out := &Outcome{CommandID: d.cmd.CommandID, Provider: d.cmd.Provider, Attempts: d.attempts(),
				Finish: func(ctx context.Context) Outcome { return h.created(ctx, d, contact) }}
			if as, ok := h.cfg.Store.(AsyncStore); ok {
				out.FinishAsync = func(ctx context.Context, done func(Outcome)) { h.createdAsync(ctx, as, d, contact, done) }
			}
			return out, nil
		}
		d.noteFailure(err)
		// Settle the claim: a definite answer clears it; an ambiguous one
		// leaves the record unsettled but ends the call's hold at once, so
		// the next try looks the contact up without waiting.
		ambiguous := provider.ClassOf(err) == provider.Ambiguous
		if _, serr := h.update(ctx, d, func(r *Record) bool {
			r.Unsettled = ambiguous
			r.InFlightUntil = time.Time{}
			if d.last != nil {
				r.LastFailure = d.last.Upstream()
			}
			return true
		}); serr != nil {
			h.cfg.Logger.Warn("could not settle record", "commandId", d.cmd.CommandID, "error", serr)
		}
		return nil, err
	}
}

// reconcile looks up a contact whose creation may have happened. It returns
// an outcome when the contact exists.
func (h *Handler) reconcile(ctx context.Context, d *delivery) (*Outcome, error) {
	done, err := h.guards[d.cmd.Provider].admit(ctx)
	if err != nil {
		return nil, err
	}
	var found bool
	contact, err := h.call(ctx, d, "lookup", func(ctx context.Context) (c provider.Contact, err error) {
		c, found, err = d.provider.Lookup(ctx, d.cmd)
		return c, err
	})
	done(err)
	if err != nil {
		d.noteFailure(err)
		return nil, fmt.Errorf("reconcile an earlier create: %w", err)
	}
	if found {
		h.cfg.Logger.Info("reconciled: the contact was created by an earlier attempt",
			"commandId", d.cmd.CommandID, "provider", d.cmd.Provider, "contactId", contact.ID)
		out := h.created(ctx, d, contact)
		return &out, nil
	}
	return nil, nil
}

// call makes one provider call in a span of its own, bounded by the call
// timeout but not by ctx's cancellation: a call under way when shutdown
// begins finishes, so that its answer is recorded.
func (h *Handler) call(ctx context.Context, d *delivery, op string, fn func(context.Context) (provider.Contact, error)) (provider.Contact, error) {
	ctx, span := h.cfg.Tracer.Start(ctx, d.cmd.Provider+" "+op, trace.WithSpanKind(trace.SpanKindInternal))
	defer span.End()
	if span.IsRecording() {
		span.SetAttributes(
			attribute.String("contactrelay.provider", d.cmd.Provider),
			attribute.String("contactrelay.operation", op),
			attribute.String("contactrelay.command_id", d.cmd.CommandID),
		)
	}
	callCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), h.cfg.CallTimeout)
	defer cancel()
	start := time.Now()
	contact, err := fn(callCtx)
	h.cfg.Hooks.providerCall(d.cmd.Provider, op, time.Since(start), err)
	if err != nil {
		span.RecordError(err)
		span.SetStatus(codes.Error, provider.ClassOf(err).String())
	}
	return contact, err
}

// finalPass settles a command past its last delivery without creating.
func (h *Handler) finalPass(ctx context.Context, d *delivery) Outcome {
	if out := h.settled(ctx, d); out != nil {
		return *out
	}
	if until := d.rec.InFlightUntil; d.rec.Unsettled && h.cfg.Now().Before(until) {
		busy := errBusy{until: until}
		return h.retryBusy(d, busy, busy)
	}
	if d.rec.Unsettled {
		out, err := h.reconcile(ctx, d)
		if out != nil {
			return *out
		}
		if errors.As(err, new(errStore)) {
			return h.retryStore(d, err)
		}
	}
	return h.finish(ctx, d, events.ReasonExhausted,
		fmt.Sprintf("the command was not settled within %d deliveries (the last one ended without an answer)", h.cfg.MaxDeliver))
}

// retryBusy asks for redelivery once another delivery's create call is over.
func (h *Handler) retryBusy(d *delivery, busy errBusy, err error) Outcome {
	delay := max(busy.until.Sub(h.cfg.Now()), h.cfg.RetryInitialInterval)
	return Outcome{Action: Retry, Delay: delay, CommandID: d.cmd.CommandID, Provider: d.cmd.Provider, Attempts: d.attempts(), Err: err}
}

func (d *delivery) noteFailure(err error) {
	var pe *provider.Error
	if errors.As(err, &pe) {
		d.last = pe
	}
}

func (d *delivery) attempts() int {
	if g := d.rec.Generations[d.m.Generation]; g != nil {
		return g.Attempts
	}
	return 0
}

func cloneGenerations(gs map[string]*Generation) map[string]*Generation {
	out := make(map[string]*Generation, len(gs)+1)
	for k, g := range gs {
		c := *g
		out[k] = &c
	}
	return out
}
