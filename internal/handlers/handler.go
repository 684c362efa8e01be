// Package handlers holds the business of one contact.create command: decode
// and validate it, pick its provider, consult its idempotency record, claim
// and make the create call with retries, reconcile ambiguous outcomes, and
// decide the outcome. It knows nothing of NATS.
//
// A command goes through five stages, named the same everywhere (code,
// logs, metrics, README):
//
//   - received: a runner got one delivery of it (a Message);
//   - decided: the Handler's Decide returned a Decision: the terminal event,
//     the record write that makes it the generation's one outcome, and what
//     to do with the message (Ack, Term), or Retry with a delay;
//   - recorded: the runner wrote the Decision's record, compare-and-set on
//     the revision the handler read; a write that did not land goes back
//     to Redecide, which reads the record again;
//   - published: the runner published the event;
//   - settled: the runner acked, terminated or handed back the message.
//
// The handler itself writes only claims (the record marked in flight just
// before a create call) and the record's bookkeeping after a failed call;
// every outcome is recorded by the runner, in that order.
package handlers

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"time"

	"github.com/contactrelay/contactrelay/contact"
	"github.com/contactrelay/contactrelay/internal/clients/provider"
	"github.com/contactrelay/contactrelay/record"
	"github.com/contactrelay/contactrelay/rules"

	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"

	"github.com/contactrelay/contactrelay/internal/events"
)

// Provider creates contacts at one payment provider. Errors should be
// *provider.Error so that the handler knows their class; any other
// error is treated as transient.
type Provider interface {
	// Validate returns the provider's own rules that the command breaks.
	Validate(cmd contact.Command) []contact.FieldError
	// Create creates the contact.
	Create(ctx context.Context, cmd contact.Command) (provider.Contact, error)
	// Lookup finds a contact created earlier for the command, if any.
	Lookup(ctx context.Context, cmd contact.Command) (provider.Contact, bool, error)
}

// Config configures a Handler. Zero durations and counts take the documented
// defaults.
type Config struct {
	// Providers are the enabled providers by name. At least one is needed.
	Providers map[string]Provider
	// DefaultProvider serves commands that name none; empty means such
	// commands are handed back for an instance that has one, and fail as
	// unroutable on their last delivery.
	DefaultProvider string
	// KnownProviders names every provider this build can serve, enabled
	// here or not. A command for a known provider that is not enabled on
	// this instance is handed back (Retry) for an instance that has it,
	// and fails as unroutable only on its last delivery; a name no build
	// knows fails at once. Default: the enabled providers.
	KnownProviders []string
	// Store keeps idempotency records. Required.
	Store Store
	// Validator applies the contract's field rules. Default: a new one.
	Validator *rules.Validator
	// Logger receives retry and reconciliation lines. Default: discard.
	Logger *slog.Logger
	// Source is the CloudEvents source. Default: events.DefaultSource.
	Source string
	// MaxDeliver is the number of deliveries of one generation after which
	// a command that keeps failing transiently is exhausted. Default 10.
	MaxDeliver int
	// RetryInitialInterval, RetryMaxInterval and RetryMaxElapsed shape the
	// in-process backoff of one delivery. Defaults 500ms, 30s, 2m.
	RetryInitialInterval time.Duration
	RetryMaxInterval     time.Duration
	RetryMaxElapsed      time.Duration
	// RedeliveryDelay is how long a command waits before its next delivery
	// once a delivery's retry budget is spent. Default RetryMaxInterval.
	RedeliveryDelay time.Duration
	// CallTimeout bounds one create call, and with it how long a create
	// call may hold a record in flight (CallTimeout + ClaimMargin); a
	// lookup, which may read many pages, gets three times as long.
	// Default 10s.
	CallTimeout time.Duration
	// ClaimMargin is added to CallTimeout to form how long a create call
	// holds its claim: past it, the call is over whatever became of it.
	// Default 2s.
	ClaimMargin time.Duration
	// HandBackDelay is how long a command for a provider this instance
	// has not enabled waits before another delivery, perhaps to an
	// instance that has it. Default 2s.
	HandBackDelay time.Duration
	// StoreTimeout bounds one record read or write. Default
	// DefaultStoreTimeout; an AsyncStore bounds its own writes.
	StoreTimeout time.Duration
	// Protection guards each provider by name (rate limit, concurrency
	// cap, circuit breaker); a provider not named gets the zero
	// Protection's defaults.
	Protection map[string]Protection
	// Hooks are told what the handler does, for health and metrics.
	Hooks Hooks
	// Tracer makes a span per provider call. Default: no tracing.
	Tracer trace.Tracer
	// Now is the clock. Default time.Now.
	Now func() time.Time
	// Paused reports a provider paused by an operator: its commands are
	// held (Decision.Held), and no call to it starts, from the moment it
	// reports true. Nil: none is ever paused.
	Paused func(provider string) bool
	// PauseDelay is how long a held command waits before its next
	// delivery. Default 5s.
	PauseDelay time.Duration
}

// DefaultStoreTimeout bounds one record read or write by default.
const DefaultStoreTimeout = 5 * time.Second

// Hooks are called as the handler works. Nil hooks are not called; the
// others must be quick and safe for concurrent use.
type Hooks struct {
	// ProviderCall reports one call to a provider: op is "create" or
	// "lookup"; err is nil when the provider answered with success.
	ProviderCall func(provider, op string, took time.Duration, err error)
	// Retry reports an in-process retry of a command after a failure.
	Retry func(provider string)
	// CircuitChange reports a provider's circuit breaker changing state
	// ("closed", "half-open", "open").
	CircuitChange func(provider, from, to string)
	// Routed reports a delivery of a valid command about to be decided
	// for its provider (not held by a pause).
	Routed func(m Message, commandID, provider string)
	// Attempted reports one provider call of a delivery: op "create" or
	// "lookup", when it started, and its answer's class ("ok",
	// "transient", "permanent" or "ambiguous").
	Attempted func(m Message, op string, at time.Time, class string)
	// Retrying reports when a delivery's next try is due, after a failure.
	Retrying func(m Message, next time.Time)
}

func (hk Hooks) providerCall(provider, op string, took time.Duration, err error) {
	if hk.ProviderCall != nil {
		hk.ProviderCall(provider, op, took, err)
	}
}

func (c *Config) setDefaults() {
	if c.Validator == nil {
		c.Validator = rules.NewValidator()
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.Source == "" {
		c.Source = events.DefaultSource
	}
	if c.MaxDeliver == 0 {
		c.MaxDeliver = 10
	}
	if c.PauseDelay == 0 {
		c.PauseDelay = 5 * time.Second
	}
	if c.RetryInitialInterval == 0 {
		c.RetryInitialInterval = 500 * time.Millisecond
	}
	if c.RetryMaxInterval == 0 {
		c.RetryMaxInterval = 30 * time.Second
	}
	if c.RetryMaxElapsed == 0 {
		c.RetryMaxElapsed = 2 * time.Minute
	}
	if c.RedeliveryDelay == 0 {
		c.RedeliveryDelay = c.RetryMaxInterval
	}
	if c.CallTimeout == 0 {
		c.CallTimeout = 10 * time.Second
	}
	if c.ClaimMargin == 0 {
		c.ClaimMargin = 2 * time.Second
	}
	if c.HandBackDelay == 0 {
		c.HandBackDelay = 2 * time.Second
	}
	if c.StoreTimeout == 0 {
		c.StoreTimeout = DefaultStoreTimeout
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.KnownProviders == nil {
		c.KnownProviders = providerNames(c.Providers)
	}
	if c.Tracer == nil {
		c.Tracer = noop.NewTracerProvider().Tracer("")
	}
}

func (c *Config) validate() error {
	if len(c.Providers) == 0 {
		return errors.New("no provider is enabled")
	}
	if c.Store == nil {
		return errors.New("no record store")
	}
	if c.DefaultProvider != "" && c.Providers[c.DefaultProvider] == nil {
		return fmt.Errorf("default provider %q is not enabled (enabled: %s)", c.DefaultProvider, strings.Join(providerNames(c.Providers), ", "))
	}
	if c.MaxDeliver < 1 {
		return fmt.Errorf("max deliver must be at least 1, not %d", c.MaxDeliver)
	}
	return nil
}

// Handler decides the outcome of contact.create commands. It is safe for
// concurrent use: one Handler serves every message of a runner.
type Handler struct {
	cfg     Config
	records records
	names   string            // enabled provider names, for messages
	guards  map[string]*guard // by provider name
	holds   *holds            // claims seen, timed on this instance's clock
	// spans names each provider's create and lookup spans, and spanOpts
	// starts them: made once, not per call.
	spans    map[string]*[2]string
	spanOpts []trace.SpanStartOption
	// untraced is set when the tracer is OpenTelemetry's no-op: a call's
	// span is not started (what its Start returns carries nothing the
	// delivery's context did not), and is noSpan.
	untraced bool
	noSpan   trace.Span
	// storeBound, callBound and lookupBound bound a record read or write,
	// a create call and a lookup.
	storeBound, callBound, lookupBound *deadlines
}

// New returns a Handler, or an error when the configuration cannot work.
func New(cfg Config) (*Handler, error) {
	cfg.setDefaults()
	if err := cfg.validate(); err != nil {
		return nil, fmt.Errorf("handler config: %w", err)
	}
	h := &Handler{
		cfg:      cfg,
		records:  records{store: cfg.Store},
		names:    strings.Join(providerNames(cfg.Providers), ", "),
		guards:   map[string]*guard{},
		holds:    newHolds(cfg.Now),
		spans:    map[string]*[2]string{},
		spanOpts: []trace.SpanStartOption{trace.WithSpanKind(trace.SpanKindInternal)},

		storeBound:  newDeadlines(cfg.StoreTimeout),
		callBound:   newDeadlines(cfg.CallTimeout),
		lookupBound: newDeadlines(lookupTimeoutFactor * cfg.CallTimeout),
		noSpan:      noop.Span{},
	}
	_, h.untraced = cfg.Tracer.(noop.Tracer)
	for name := range cfg.Providers {
		h.guards[name] = newGuard(name, cfg.Protection[name], cfg.Hooks, cfg.Now)
		h.spans[name] = &[2]string{name + " create", name + " lookup"}
	}
	return h, nil
}

func providerNames(ps map[string]Provider) []string {
	names := make([]string, 0, len(ps))
	for n := range ps {
		names = append(names, n)
	}
	slices.Sort(names)
	return names
}

// Message is one delivery of a command, as the runner received it.
type Message struct {
	Body []byte
	// MsgID is the Nats-Msg-Id header, the commandId of last resort.
	MsgID string
	// Stream and Sequence locate the command in its stream; they name
	// commands that carry no id at all.
	Stream   string
	Sequence uint64
	// Generation is the Contact-Replay-Of header: empty for an original
	// command, the replayed failure's event id for a replay.
	Generation string
	// Delivery counts deliveries of this message, from 1.
	Delivery int
}

// fallbackID returns the idempotency key of a command that has no usable
// commandId of its own: the Nats-Msg-Id header when it can serve as one
// (see rules.CommandIDFromHeader; a header of the form
// <stream>:<sequence> cannot, so that no message takes another's id), else
// <stream>:<sequence>.
func (m Message) fallbackID() string {
	if id, err := rules.CommandIDFromHeader(m.MsgID); err == nil && id != "" && !rules.DerivedID(id) {
		return id
	}
	return fmt.Sprintf("%s:%d", m.Stream, m.Sequence)
}

// Action says what the runner does with the command message once the
// Decision's record is written and its event published.
type Action uint8

const (
	// Ack acknowledges the message.
	Ack Action = iota + 1
	// Term terminates the message: bad input that no redelivery can mend.
	Term
	// Retry leaves the outcome open: nothing is written or published, and
	// the message is redelivered after Decision.Delay.
	Retry
)

// Decision is the handler's word on one delivery: final, with everything
// the runner must do to carry it out. It holds no function; the runner
// records Write (when set), changes the open failures (Failure, when
// set), publishes EventJSON, and settles the message by Action.
type Decision struct {
	Action Action
	// Write is the record to write before the event is published, when
	// the decision is new: a compare-and-set over Write.Revision. Nil when
	// the outcome is already recorded (it is repeated) or needs no record
	// (a conflict, decided alike by every delivery).
	Write *Write
	// Event is the terminal event, and EventJSON its encoding: the bytes
	// to publish, with Event.ID as Nats-Msg-Id. Nil with Retry.
	Event     *contact.Event
	EventJSON []byte
	// Delay is how long to wait before redelivery, with Retry.
	Delay time.Duration
	// What was decided, for logs and metrics.
	CommandID string
	Provider  string
	Reason    contact.Reason // empty for contact.created
	Attempts  int
	// Held is set, with Retry, when the command's provider is paused: the
	// delivery counts toward no delivery limit.
	Held bool
	// FromRecord is set when the record answered without a provider call:
	// the generation's outcome was recorded, or the contact existed.
	FromRecord bool
	Err        error
	// Failure is the change to the open failures, made after Write and
	// before the event is published; nil when there is none.
	Failure *FailureChange

	// outcome is what was concluded, for Redecide.
	outcome *conclusion
}

// Write is a record write: Value under Key if the key's revision is still
// Revision (zero: if the key does not exist). Expires is passed on to
// Store.Put: false while the record's create call's outcome is unknown.
type Write struct {
	Key      string
	Value    []byte
	Revision uint64
	Expires  bool
}

// Decide decides one delivery. It reads the command's record when it may
// exist, and may claim the create call and make it; it records no outcome
// itself: the Decision carries the record write that makes it the
// generation's one outcome. Cancelling ctx interrupts waits (backoff, the
// guard) and ends the delivery with Retry; a provider call or record write
// already started is let finish, bounded by its own timeout, so that its
// answer is not lost.
func (h *Handler) Decide(ctx context.Context, m Message) Decision {
	in := h.read(&m)
	d := &delivery{m: m, in: in, cmd: in.cmd, provider: in.provider, rec: record.Record{CommandID: in.cmd.CommandID}}
	if in.bad == nil && in.provider != nil && h.paused(d.cmd.Provider) {
		// Held before the record is read: a pause costs no NATS work.
		return h.holdPaused(d, errPaused{provider: d.cmd.Provider})
	}
	if in.bad == nil && in.provider != nil && h.cfg.Hooks.Routed != nil {
		h.cfg.Hooks.Routed(m, d.cmd.CommandID, d.cmd.Provider)
	}
	// A first delivery of an original command is almost always new: skip
	// the read, and let the first write's compare-and-set tell otherwise.
	if m.Delivery > 1 || m.Generation != "" {
		if err := h.reload(ctx, d); err != nil {
			return h.retryStore(d, err)
		}
	}
	return h.decide(ctx, d)
}

// Redecide decides again a delivery whose Decision's record write did not
// land: another delivery changed the record meanwhile, or the write's
// answer never came. It reads the record and applies the same conclusion
// to it, unless the record now holds this generation's outcome (which is
// then repeated, whoever wrote it) or shows a conflict.
func (h *Handler) Redecide(ctx context.Context, m Message, prev Decision) Decision {
	in := h.read(&m)
	d := &delivery{m: m, in: in, cmd: in.cmd, provider: in.provider, rec: record.Record{CommandID: in.cmd.CommandID}}
	if err := h.reload(ctx, d); err != nil {
		return h.retryStore(d, err)
	}
	if dec, ok := h.fromRecord(d); ok {
		return dec
	}
	if prev.outcome == nil {
		return h.decide(ctx, d)
	}
	return h.conclude(d, *prev.outcome)
}

// decide decides a delivery whose record d holds (as read, or empty).
func (h *Handler) decide(ctx context.Context, d *delivery) Decision {
	if dec, ok := h.fromRecord(d); ok {
		return dec
	}
	switch in := d.in; {
	case in.bad != nil:
		return h.conclude(d, *in.bad)
	case in.elsewhere && d.m.Delivery < h.cfg.MaxDeliver:
		return Decision{Action: Retry, Delay: h.cfg.HandBackDelay, CommandID: d.cmd.CommandID, Provider: in.asked,
			Err: errors.New(h.unroutableMessage(in.asked, false))}
	case in.elsewhere:
		return h.conclude(d, conclusion{reason: contact.ReasonUnroutable, message: h.unroutableMessage(in.asked, true)})
	}
	return h.process(ctx, d)
}

func (h *Handler) unroutableMessage(asked string, last bool) string {
	var s string
	if asked == "" {
		s = "the command names no provider and no default provider is set"
	} else {
		s = fmt.Sprintf("provider %q is not enabled on this instance", asked)
	}
	if last {
		return fmt.Sprintf("%s, and no instance took it within %d deliveries; enabled here: %s", s, h.cfg.MaxDeliver, h.names)
	}
	return s + "; handed back for an instance that has it; enabled here: " + h.names
}
