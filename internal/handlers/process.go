package handlers

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/cenkalti/backoff/v4"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"

	"github.com/contactrelay/contactrelay/contact"
	"github.com/contactrelay/contactrelay/internal/clients/provider"
	"github.com/contactrelay/contactrelay/record"
)

// lookupTimeoutFactor times the call timeout bounds a lookup, which may
// read many pages of the provider's list.
const lookupTimeoutFactor = 3

// maxRetryAfter bounds how long a provider's Retry-After can defer a
// command, so that a provider's typo cannot park it for days.
const maxRetryAfter = time.Hour

// delivery is the state of one delivery of a command.
type delivery struct {
	m        Message
	in       input
	cmd      contact.Command
	provider Provider
	rec      record.Record
	rev      uint64
	last     *provider.Error // the provider's last failure, if any
	stale    bool            // rec may be out of date: read it before the next try
	key      string          // record.Key(cmd.CommandID), once asked for
}

// recordKey returns the key of the command's record, digested once per
// delivery (the claim and the outcome both need it).
func (d *delivery) recordKey() string {
	if d.key == "" {
		d.key = record.Key(d.cmd.CommandID)
	}
	return d.key
}

// errBusy reports that another delivery of the same commandId has a create
// call in flight (or had, until its hold ends); it counts no attempt.
type errBusy struct{ wait time.Duration }

func (e errBusy) Error() string {
	return fmt.Sprintf("another delivery of this command holds its create call for up to %s more", e.wait.Round(time.Millisecond))
}

// errStore marks failures of the record store: they end the delivery with
// Retry, never with a failed event.
type errStore struct{ err error }

func (e errStore) Error() string { return e.err.Error() }
func (e errStore) Unwrap() error { return e.err }

// errIncomplete marks a lookup that could not prove the contact absent and
// will not do better by being retried at once.
type errIncomplete struct{ err error }

func (e errIncomplete) Error() string { return e.err.Error() }
func (e errIncomplete) Unwrap() error { return e.err }

// hold is how long a create call of this instance can hold its claim.
func (h *Handler) hold() time.Duration { return h.cfg.CallTimeout + h.cfg.ClaimMargin }

// process runs the idempotent, retried creation of a valid, routed command.
func (h *Handler) process(ctx context.Context, d *delivery) Decision {
	if h.paused(d.cmd.Provider) {
		return h.holdPaused(d, errPaused{provider: d.cmd.Provider})
	}
	if d.m.Delivery > h.cfg.MaxDeliver {
		// The last allowed delivery ended without an outcome (the process
		// died during it): settle with what is known, calling nothing but a
		// lookup.
		return h.finalPass(ctx, d)
	}
	// The first attempt is made before the retry machinery is built: most
	// commands need no second one. Its error is the loop's first.
	start := time.Now()
	first, firstErr := h.attempt(ctx, d)
	if firstErr == nil {
		return *first
	}
	var dec *Decision
	b := h.newBackOff(start)
	tried := false
	op := func() error {
		var (
			o   *Decision
			err error
		)
		if !tried {
			tried, err = true, firstErr // the attempt made above
		} else {
			o, err = h.attempt(ctx, d)
		}
		if err == nil {
			dec = o
			return nil
		}
		var pe *provider.Error
		b.hint = 0
		switch {
		case errors.As(err, new(errStore)), errors.As(err, new(errCircuitOpen)), errors.As(err, new(errBusy)),
			errors.As(err, new(errIncomplete)), errors.As(err, new(errPaused)):
			return backoff.Permanent(err)
		case errors.As(err, &pe) && pe.Class == provider.Permanent:
			return backoff.Permanent(err)
		case errors.As(err, &pe):
			b.hint = min(pe.RetryAfter, maxRetryAfter)
		}
		return err
	}
	notify := func(err error, wait time.Duration) {
		if h.cfg.Hooks.Retry != nil {
			h.cfg.Hooks.Retry(d.cmd.Provider)
		}
		if h.cfg.Hooks.Retrying != nil {
			h.cfg.Hooks.Retrying(d.m, time.Now().Add(wait))
		}
		h.cfg.Logger.Info("retrying", "commandId", shortID(d.cmd.CommandID), "provider", d.cmd.Provider,
			"delivery", d.m.Delivery, "attempts", d.attempts(), "wait", wait, "error", err)
	}
	err := backoff.RetryNotify(op, backoff.WithContext(b, ctx), notify)
	var (
		busy  errBusy
		cOpen errCircuitOpen
	)
	switch {
	case dec != nil:
		return *dec
	case errors.As(err, new(errPaused)):
		return h.holdPaused(d, err)
	case errors.As(err, new(errStore)):
		return h.retryStore(d, err)
	case errors.As(err, &busy):
		// Another delivery holds the create call: it decides, whatever our
		// delivery count. Come back when its hold ends.
		return h.retry(d, max(busy.wait, h.cfg.RetryInitialInterval), err)
	case errors.As(err, new(errIncomplete)):
		return h.finish(ctx, d, contact.ReasonAmbiguous, ambiguousMessage(err))
	case errors.As(err, &cOpen) && d.m.Delivery < h.cfg.MaxDeliver:
		if cOpen.probing {
			// One trial call is testing the provider: come back when it
			// has had its time.
			return h.retry(d, h.hold(), err)
		}
		// Free the slot for other providers' commands, and spend this
		// delivery no faster than retrying through it would have.
		return h.retry(d, h.cfg.RetryMaxElapsed+h.cfg.RedeliveryDelay, err)
	case ctx.Err() != nil:
		// Shutting down: let another instance, or this one restarted,
		// take the command at once.
		return h.retry(d, 0, err)
	case provider.ClassOf(err) == provider.Permanent:
		return h.finish(ctx, d, contact.ReasonRejected, "the provider refused the contact: "+err.Error())
	case d.m.Delivery >= h.cfg.MaxDeliver:
		if d.rec.Unsettled {
			// The last call's answer was lost: look before saying the
			// contact was not created.
			dec, lerr := h.reconcile(ctx, d)
			switch {
			case dec != nil:
				return *dec
			case errors.As(lerr, new(errPaused)):
				return h.holdPaused(d, lerr)
			case errors.As(lerr, new(errIncomplete)):
				return h.finish(ctx, d, contact.ReasonAmbiguous, ambiguousMessage(lerr))
			}
		}
		return h.finish(ctx, d, contact.ReasonExhausted,
			fmt.Sprintf("transient failures outlasted %s %s: %v", deliveries(d.m.Delivery), createCalls(d.attempts()), err))
	}
	delay := h.cfg.RedeliveryDelay
	if d.last != nil {
		// A Retry-After beyond what was left of the delivery's budget
		// ended it: the command waits outside, freeing its worker.
		delay = max(delay, min(d.last.RetryAfter, maxRetryAfter))
	}
	return h.retry(d, delay, err)
}

// errPaused reports that the command's provider is paused by an operator.
type errPaused struct{ provider string }

func (e errPaused) Error() string { return e.provider + " is paused" }

func (h *Handler) paused(provider string) bool { return h.cfg.Paused != nil && h.cfg.Paused(provider) }

// holdPaused hands a command of a paused provider back: a held delivery, which
// counts toward no delivery limit.
func (h *Handler) holdPaused(d *delivery, err error) Decision {
	dec := h.retry(d, h.cfg.PauseDelay, err)
	dec.Held = true
	return dec
}

func (h *Handler) retry(d *delivery, delay time.Duration, err error) Decision {
	return Decision{Action: Retry, Delay: delay, CommandID: d.cmd.CommandID, Provider: d.cmd.Provider, Attempts: d.attempts(), Err: err}
}

func ambiguousMessage(err error) string {
	return "the contact may exist: a create call's answer was lost, and the lookup could not prove the contact absent (" +
		err.Error() + "); creating it again could duplicate it, so check the provider, then discard this failure or replay it"
}

// hintedBackOff is an exponential backoff that waits at least as long as
// the provider asked (Retry-After) for the next try, and stops instead
// when that wait would outlast the delivery's budget.
type hintedBackOff struct {
	*backoff.ExponentialBackOff
	hint  time.Duration
	clock startClock
}

func (b *hintedBackOff) NextBackOff() time.Duration {
	d := b.ExponentialBackOff.NextBackOff()
	if d != backoff.Stop && b.hint > d {
		if b.GetElapsedTime()+b.hint > b.MaxElapsedTime {
			return backoff.Stop
		}
		d = b.hint
	}
	return d
}

// Reset restarts the backoff; its elapsed time counts from the first
// attempt's start, which is made before the backoff is built.
func (b *hintedBackOff) Reset() {
	b.clock.pinned = true
	b.ExponentialBackOff.Reset()
	b.clock.pinned = false
}

// startClock is the system clock, but for a Reset, which it tells the
// start of the first attempt.
type startClock struct {
	start  time.Time
	pinned bool
}

func (c *startClock) Now() time.Time {
	if c.pinned {
		return c.start
	}
	return time.Now()
}

// newBackOff returns a fresh backoff for one delivery whose first attempt
// started at start.
func (h *Handler) newBackOff(start time.Time) *hintedBackOff {
	eb := backoff.NewExponentialBackOff()
	eb.InitialInterval = h.cfg.RetryInitialInterval
	eb.MaxInterval = h.cfg.RetryMaxInterval
	eb.MaxElapsedTime = h.cfg.RetryMaxElapsed
	b := &hintedBackOff{ExponentialBackOff: eb, clock: startClock{start: start}}
	eb.Clock = &b.clock
	b.Reset()
	return b
}

// attempt makes one try: it returns a decision when the command is
// concluded, or the error that kept it from being concluded.
func (h *Handler) attempt(ctx context.Context, d *delivery) (dec *Decision, err error) {
	if d.stale {
		if err := h.reload(ctx, d); err != nil {
			return nil, errStore{err}
		}
	}
	// Between tries, another delivery may change the record.
	defer func() { d.stale = err != nil }()
	for {
		if dec, ok := h.fromRecord(d); ok {
			return &dec, nil
		}
		if h.paused(d.cmd.Provider) {
			return nil, errPaused{provider: d.cmd.Provider}
		}
		if err := h.waitOutClaim(d); err != nil {
			return nil, err
		}
		if d.rec.Unsettled {
			// An earlier create call's answer never arrived: the contact may
			// exist. Look before creating again.
			dec, err := h.reconcile(ctx, d)
			if dec != nil || err != nil {
				return dec, err
			}
		}

		// Wait for the provider's guard before claiming, so that neither a
		// rate limit nor an open circuit holds a claim or counts an attempt,
		// and the claim's hold starts as the call does.
		done, err := h.guards[d.cmd.Provider].admit(ctx)
		if err != nil {
			return nil, err
		}
		// Claim the create call: mark the record in flight and count the
		// attempt, atomically, so that no other delivery creates meanwhile.
		claim := d.rec
		claim.Unsettled, claim.InFlight, claim.HoldMillis = true, true, h.hold().Milliseconds()
		claim.Generations = cloneGenerations(d.rec.Generations)
		if d.m.Generation == "" && claim.Fingerprint == "" {
			claim.Fingerprint, claim.FirstUsed = d.in.fingerprint, h.cfg.Now().UTC()
		}
		cg := claim.AddGeneration(d.m.Generation)
		cg.Attempts++
		if d.m.Generation != "" && cg.Fingerprint == "" {
			cg.Fingerprint = d.in.fingerprint
		}
		rev, err := h.save(ctx, d.recordKey(), &claim, d.rev)
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
		if errors.As(err, new(errPaused)) {
			// Paused between the claim and the call: nothing was sent, so
			// the claim is released as settled.
			done(errNotCalled)
			if _, serr := h.update(ctx, d, func(r *record.Record) bool {
				r.Unsettled, r.InFlight, r.HoldMillis = false, false, 0
				return true
			}); serr != nil {
				h.cfg.Logger.Warn("could not release claim", "commandId", shortID(d.cmd.CommandID), "error", serr)
			}
			return nil, err
		}
		done(err)
		if err == nil {
			dec := h.conclude(d, conclusion{contact: &contact})
			return &dec, nil
		}
		d.noteFailure(err)
		// Settle the claim: a definite answer clears it; an ambiguous one
		// leaves the record unsettled but ends the call's hold at once, so
		// the next try looks the contact up without waiting.
		ambiguous := provider.ClassOf(err) == provider.Ambiguous
		if _, serr := h.update(ctx, d, func(r *record.Record) bool {
			r.Unsettled, r.InFlight, r.HoldMillis = ambiguous, false, 0
			if d.last != nil {
				r.LastFailure = d.last.Upstream()
				r.AddAnswer(record.Answer{At: h.cfg.Now().UTC(), Class: provider.ClassOf(err).String(), Upstream: *r.LastFailure})
			}
			return true
		}); serr != nil {
			h.cfg.Logger.Warn("could not settle record", "commandId", shortID(d.cmd.CommandID), "error", serr)
		}
		return nil, err
	}
}

// waitOutClaim returns errBusy while another delivery's claim on the
// record may still have its create call under way. The hold is measured
// on this instance's clock from when it first saw this revision of the
// record, never against a time another instance wrote; once it has
// passed, the claim is taken for one whose answer was lost.
func (h *Handler) waitOutClaim(d *delivery) error {
	if !d.rec.InFlight {
		return nil
	}
	hold := max(h.hold(), time.Duration(d.rec.HoldMillis)*time.Millisecond)
	if wait := h.holds.remaining(d.recordKey(), d.rev, hold); wait > 0 {
		return errBusy{wait: wait}
	}
	d.rec.InFlight = false // Unsettled stays: look the contact up
	return nil
}

// reconcile looks up a contact whose creation may have happened. It returns
// a decision when the contact exists, and nil, nil only when the lookup saw
// the provider's whole list and the contact is not in it.
func (h *Handler) reconcile(ctx context.Context, d *delivery) (*Decision, error) {
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
		err = fmt.Errorf("reconcile an earlier create: %w", err)
		if errors.Is(err, provider.ErrIncompleteLookup) && provider.ClassOf(err) == provider.Permanent {
			return nil, errIncomplete{err}
		}
		return nil, err
	}
	if found {
		h.cfg.Logger.Info("reconciled: the contact was created by an earlier attempt",
			"commandId", shortID(d.cmd.CommandID), "provider", d.cmd.Provider, "contactId", contact.ID)
		dec := h.conclude(d, conclusion{contact: &contact})
		return &dec, nil
	}
	// The lookup saw the whole list: no earlier call created the contact,
	// and the record's outcome is known again.
	d.rec.Unsettled = false
	return nil, nil
}

// call makes one provider call in a span of its own, bounded by the call
// timeout but not by ctx's cancellation: a call under way when shutdown
// begins finishes, so that its answer is recorded.
func (h *Handler) call(ctx context.Context, d *delivery, op string, fn func(context.Context) (provider.Contact, error)) (provider.Contact, error) {
	span := h.noSpan
	if !h.untraced {
		ctx, span = h.cfg.Tracer.Start(ctx, h.spanName(d.cmd.Provider, op), h.spanOpts...)
	}
	defer span.End()
	if span.IsRecording() {
		span.SetAttributes(
			attribute.String("contactrelay.provider", d.cmd.Provider),
			attribute.String("contactrelay.operation", op),
			attribute.String("contactrelay.command_id", d.cmd.CommandID),
		)
	}
	bound := h.callBound
	if op == "lookup" {
		// A lookup may read many pages of a list; it holds no claim.
		bound = h.lookupBound
	}
	if h.paused(d.cmd.Provider) {
		// The last gate: a pause seen since the claim stops the call.
		span.SetStatus(codes.Error, "paused")
		return provider.Contact{}, errPaused{provider: d.cmd.Provider}
	}
	callCtx, cancel := bound.context(ctx)
	defer cancel()
	start := time.Now()
	contact, err := fn(callCtx)
	h.cfg.Hooks.providerCall(d.cmd.Provider, op, time.Since(start), err)
	if h.cfg.Hooks.Attempted != nil {
		class := "ok"
		if err != nil {
			class = provider.ClassOf(err).String()
		}
		h.cfg.Hooks.Attempted(d.m, op, start, class)
	}
	if err != nil {
		span.RecordError(err)
		span.SetStatus(codes.Error, provider.ClassOf(err).String())
	}
	return contact, err
}

// spanName is the name of a provider call's span: "<provider> <op>".
func (h *Handler) spanName(provider, op string) string {
	if names := h.spans[provider]; names != nil {
		switch op {
		case "create":
			return names[0]
		case "lookup":
			return names[1]
		}
	}
	return provider + " " + op
}

// finalPass settles a command past its last delivery without creating.
func (h *Handler) finalPass(ctx context.Context, d *delivery) Decision {
	if dec, ok := h.fromRecord(d); ok {
		return dec
	}
	var busy errBusy
	if err := h.waitOutClaim(d); errors.As(err, &busy) {
		return h.retry(d, max(busy.wait, h.cfg.RetryInitialInterval), err)
	}
	if d.rec.Unsettled {
		dec, err := h.reconcile(ctx, d)
		switch {
		case dec != nil:
			return *dec
		case errors.As(err, new(errPaused)):
			return h.holdPaused(d, err)
		case errors.As(err, new(errStore)):
			return h.retryStore(d, err)
		case errors.As(err, new(errIncomplete)):
			return h.finish(ctx, d, contact.ReasonAmbiguous, ambiguousMessage(err))
		}
	}
	return h.finish(ctx, d, contact.ReasonExhausted,
		fmt.Sprintf("the command was not settled within %s %s (the last one ended without an answer)", deliveries(h.cfg.MaxDeliver), createCalls(d.attempts())))
}

// deliveries counts deliveries in words.
func deliveries(n int) string {
	if n == 1 {
		return "1 delivery"
	}
	return fmt.Sprintf("%d deliveries", n)
}

// createCalls says how many create calls a generation made, as its
// events' attempts count them, for a message about its deliveries: the
// two are not the same (a delivery may make several calls, or none while
// a circuit is open).
func createCalls(n int) string {
	switch n {
	case 0:
		return "in which no create call was made"
	case 1:
		return "and 1 create call"
	}
	return fmt.Sprintf("and %d create calls", n)
}

// finish concludes a delivery with a failure of the provider's making.
func (h *Handler) finish(_ context.Context, d *delivery, reason contact.Reason, msg string) Decision {
	c := conclusion{reason: reason, provider: d.cmd.Provider, message: msg}
	if d.last != nil {
		c.upstream = d.last.Upstream()
	}
	return h.conclude(d, c)
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

// storeContext bounds one record read or write; it outlives ctx's
// cancellation so that a claim's bookkeeping is written during shutdown.
func (h *Handler) storeContext(ctx context.Context) (context.Context, context.CancelFunc) {
	return h.storeBound.context(ctx)
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

// save writes rec under key over revision rev.
func (h *Handler) save(ctx context.Context, key string, rec *record.Record, rev uint64) (uint64, error) {
	sctx, cancel := h.storeContext(ctx)
	defer cancel()
	return h.records.saveAt(sctx, key, *rec, rev)
}

// update changes the delivery's record with a compare-and-set, reading and
// reapplying on conflict, and keeps the delivery's copy current.
func (h *Handler) update(ctx context.Context, d *delivery, change func(*record.Record) bool) (record.Record, error) {
	sctx, cancel := h.storeContext(ctx)
	defer cancel()
	rec, rev, err := h.records.update(sctx, d.cmd.CommandID, d.rec, d.rev, change)
	if err != nil {
		return record.Record{}, err
	}
	d.rec, d.rev = rec, rev
	return rec, nil
}
