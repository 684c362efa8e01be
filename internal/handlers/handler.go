// Package handlers holds the business of one contact.create command: decode
// and validate it, pick its provider, consult and update its idempotency
// record, call the provider with retries and reconcile ambiguous outcomes,
// and decide the outcome. It knows nothing of NATS: a runner hands it a
// Message and turns the Outcome it returns into a publish and an ack.
package handlers

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"time"

	"github.com/contactrelay/contactrelay/internal/clients/provider"

	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"

	"github.com/contactrelay/contactrelay/internal/events"
)

// Provider creates contacts at one payment provider. Errors should be
// *provider.Error so that the handler knows their class; any other
// error is treated as transient.
type Provider interface {
	// Validate returns the provider's own rules that the command breaks.
	Validate(cmd events.Command) []events.FieldError
	// Create creates the contact.
	Create(ctx context.Context, cmd events.Command) (provider.Contact, error)
	// Lookup finds a contact created earlier for the command, if any.
	Lookup(ctx context.Context, cmd events.Command) (provider.Contact, bool, error)
}

// Config configures a Handler. Zero durations and counts take the documented
// defaults.
type Config struct {
	// Providers are the enabled providers by name. At least one is needed.
	Providers map[string]Provider
	// DefaultProvider serves commands that name none; empty means such
	// commands are unroutable.
	DefaultProvider string
	// Store keeps idempotency records. Required.
	Store Store
	// Validator applies the contract's field rules. Default: a new one.
	Validator *events.Validator
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
	// CallTimeout bounds one provider call, and with it how long a create
	// call may hold a record in flight. Default 10s.
	CallTimeout time.Duration
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
}

func (hk Hooks) providerCall(provider, op string, took time.Duration, err error) {
	if hk.ProviderCall != nil {
		hk.ProviderCall(provider, op, took, err)
	}
}

func (c *Config) setDefaults() {
	if c.Validator == nil {
		c.Validator = events.NewValidator()
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
	if c.StoreTimeout == 0 {
		c.StoreTimeout = DefaultStoreTimeout
	}
	if c.Now == nil {
		c.Now = time.Now
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
}

// New returns a Handler, or an error when the configuration cannot work.
func New(cfg Config) (*Handler, error) {
	cfg.setDefaults()
	if err := cfg.validate(); err != nil {
		return nil, fmt.Errorf("handler config: %w", err)
	}
	h := &Handler{
		cfg:     cfg,
		records: records{store: cfg.Store},
		names:   strings.Join(providerNames(cfg.Providers), ", "),
		guards:  map[string]*guard{},
	}
	for name := range cfg.Providers {
		h.guards[name] = newGuard(name, cfg.Protection[name], cfg.Hooks, cfg.Now)
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

// Message is one delivery of a command, as the runner saw it.
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

// commandID returns the idempotency key of a command: its commandId, else
// the Nats-Msg-Id header, else <stream>:<sequence>.
func (m Message) commandID(cmd events.Command, idValid bool) string {
	switch {
	case cmd.CommandID != "" && idValid:
		return cmd.CommandID
	case m.MsgID != "":
		return m.MsgID
	default:
		return fmt.Sprintf("%s:%d", m.Stream, m.Sequence)
	}
}

// Action says what the runner does with the command message.
type Action uint8

const (
	// Ack acknowledges the message after its event is published.
	Ack Action = iota + 1
	// Term terminates the message after its event is published: bad input
	// that no redelivery can mend.
	Term
	// Retry leaves the outcome open: the message is redelivered after
	// Outcome.Delay, and no event is published.
	Retry
)

// Outcome is the handler's decision on one delivery.
type Outcome struct {
	Action Action
	// Event is the terminal event to publish before Ack or Term, and
	// EventJSON its encoding, when the handler has it: the bytes to publish.
	Event     *events.Event
	EventJSON []byte
	// Delay is how long to wait before redelivery, with Retry.
	Delay time.Duration
	// What happened, for logs and metrics.
	CommandID string
	Provider  string
	Reason    events.Reason // empty for contact.created
	Attempts  int
	// FromRecord is set when the record answered without a provider call:
	// the generation's outcome was recorded, or the contact existed.
	FromRecord bool
	Err        error
	// Finish, when set, completes a delivery whose create call succeeded
	// (Start returns it; the other fields are then provisional): it
	// records the generation's outcome and returns the final Outcome. It
	// must be called exactly once, and may be called on another goroutine,
	// so that the caller can take its next command meanwhile.
	Finish func(context.Context) Outcome
	// FinishAsync, set beside Finish when the Store is an AsyncStore, is
	// Finish without waiting: done gets the final Outcome, on another
	// goroutine, once the outcome is recorded. Call Finish or FinishAsync,
	// once.
	FinishAsync func(ctx context.Context, done func(Outcome))
}

// Handle decides the outcome of one delivery. Cancelling ctx interrupts
// waits (backoff, a concurrent create elsewhere) and ends the delivery with
// Retry; a provider call or record write already started is let finish,
// bounded by its own timeout, so that its answer is not lost.
func (h *Handler) Handle(ctx context.Context, m Message) Outcome {
	out := h.Start(ctx, m)
	if out.Finish != nil {
		out = out.Finish(ctx)
	}
	return out
}

// Start is Handle, up to a successful create call's answer: the Outcome it
// returns then has Finish set, which records the outcome and returns it.
func (h *Handler) Start(ctx context.Context, m Message) Outcome {
	cmd, err := events.DecodeCommand(m.Body)
	var derr *events.DecodeError
	if errors.As(err, &derr) && derr.Reason == events.ReasonMalformed {
		cmd := events.Command{CommandID: m.commandID(events.Command{}, false)}
		return h.fail(m, cmd, "", events.ReasonMalformed, derr.Message, nil)
	}
	fieldErrs := h.cfg.Validator.Validate(cmd)
	if derr != nil {
		fieldErrs = append(derr.Errors, fieldErrs...)
	}
	idValid := !slices.ContainsFunc(fieldErrs, func(fe events.FieldError) bool { return fe.Field == "commandId" })
	cmd.CommandID = m.commandID(cmd, idValid)

	name := cmd.Provider
	if name == "" {
		name = h.cfg.DefaultProvider
	}
	provider := h.cfg.Providers[name]
	if provider != nil {
		fieldErrs = append(fieldErrs, provider.Validate(cmd)...)
	}
	if len(fieldErrs) > 0 {
		chosen := "" // the event names a provider only if one was chosen
		if provider != nil {
			chosen = name
		}
		return h.fail(m, cmd, chosen, events.ReasonInvalid, invalidMessage(fieldErrs), fieldErrs)
	}
	if provider == nil {
		return h.fail(m, cmd, "", events.ReasonUnroutable, h.unroutableMessage(cmd.Provider), nil)
	}
	cmd.Provider = name
	return h.process(ctx, m, cmd, provider)
}

func invalidMessage(errs []events.FieldError) string {
	msgs := make([]string, len(errs))
	for i, fe := range errs {
		msgs[i] = fe.Message
	}
	if len(errs) == 1 {
		return "the command breaks 1 rule: " + msgs[0]
	}
	return fmt.Sprintf("the command breaks %d rules: %s", len(errs), strings.Join(msgs, "; "))
}

func (h *Handler) unroutableMessage(asked string) string {
	if asked == "" {
		return "the command names no provider and no default provider is set; enabled providers: " + h.names
	}
	return fmt.Sprintf("provider %q is unknown or not enabled on this service; enabled providers: %s", asked, h.names)
}
