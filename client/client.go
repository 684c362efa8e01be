package client

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/google/uuid"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.opentelemetry.io/otel/propagation"

	"github.com/contactrelay/contactrelay/contact"
	"github.com/contactrelay/contactrelay/record"
	"github.com/contactrelay/contactrelay/rules"
)

// ErrNoStreams says the service's JetStream streams do not exist: it has
// never run against this NATS (or its account or domain), or no one ran
// 'consumer setup'.
var ErrNoStreams = errors.New("the streams do not exist: start the service ('consumer run' or 'consumer dev') or run 'consumer setup'")

// ErrTimeout says no terminal event came before the context's deadline.
// The command was published and stored (the Ack says where): its outcome
// comes later, as an event.
var ErrTimeout = errors.New("no outcome before the deadline")

// ErrUnconfirmed says a publish got no answer from the stream before the
// context was done, or the connection failed under it: the command may or
// may not be stored. Publishing it again with the same commandId (for a
// replay, the same ReplayOf) is safe: the stream, within its duplicate
// window, and after it the service's record, make it one command.
var ErrUnconfirmed = errors.New("the stream did not confirm the publish: the command may or may not be stored")

// ErrOtherContent says the command stream already holds a command with the
// same commandId and other content, published within its duplicate window:
// the stream dropped this one before the service saw it. (After the window
// the service answers it with a contact.failed of reason conflict.) Use a
// new commandId for a new contact.
var ErrOtherContent = errors.New("the commandId is taken by a command with other content")

// Config is a Client's configuration. Its zero value is ready to use.
type Config struct {
	// DefaultProvider is the service's DEFAULT_PROVIDER: Validate applies
	// its rules to commands that name no provider. Empty: only the rules
	// of a provider a command names.
	DefaultProvider string
	// Propagator writes the trace context of the publishing context into
	// the command's headers, for the service to carry on to its events.
	// nil: W3C trace context and baggage, what the service reads.
	Propagator propagation.TextMapPropagator
	// Published, when set, is told of each command the waiting publishes
	// (PublishAndWait, PublishMessageAndWait) published, before the wait:
	// to say so, or to log it.
	Published func(Ack)
}

// Client publishes commands through a JetStream context and reads their
// outcomes. It is safe for concurrent use. It does not own the connection
// under js: the caller closes it. The calls waiting for outcomes share one
// watch of the events, which runs while any waits (see the package
// documentation); a Client needs no Close.
type Client struct {
	js  jetstream.JetStream
	cfg Config
	val *rules.Validator

	mu      sync.Mutex
	watch   *sharedWatch   // nil while no call waits
	records *record.Reader // the record bucket, once found
}

// New returns a Client publishing through js.
func New(js jetstream.JetStream, cfg Config) *Client {
	if cfg.Propagator == nil {
		cfg.Propagator = propagation.NewCompositeTextMapPropagator(propagation.TraceContext{}, propagation.Baggage{})
	}
	return &Client{js: js, cfg: cfg, val: rules.NewValidator()}
}

// Message is a command as it travels: its body, sent as it is, and for a
// replay the id of the contact.failed event it replays.
type Message struct {
	// Body is the command's JSON object (at most MaxCommandSize bytes).
	Body []byte
	// ReplayOf, when set, makes the command a replay of that failed
	// event: a new generation of its commandId, sent with the header
	// Contact-Replay-Of and the message id "replay:<ReplayOf>".
	ReplayOf string
}

// Ack is what the stream said of a published command.
type Ack struct {
	// CommandID is the commandId the service uses: the body's, or
	// "<stream>:<sequence>" for a body without a usable one.
	CommandID string
	// Generation is "" for an original command, ReplayOf for a replay.
	Generation string
	Stream     string
	Sequence   uint64
	// Duplicate is true when the stream already held this message id
	// within its duplicate window and did not store it again; Sequence is
	// then the stored command's.
	Duplicate bool
	// Fingerprint digests the body's content as the service does, to
	// tell this command's conflict answer (see Outcome).
	fingerprint string
}

// Publish publishes cmd. A command without a CommandID is given a new
// random one (in the returned Ack): set one yourself to make re-publishing
// safe. Publish does not validate: call Validate first to refuse bad input.
func (c *Client) Publish(ctx context.Context, cmd Command) (Ack, error) {
	if cmd.CommandID == "" {
		cmd.CommandID = uuid.NewString()
	}
	body, err := json.Marshal(cmd)
	if err != nil {
		return Ack{}, fmt.Errorf("encode command %s: %w", cmd.CommandID, err)
	}
	return c.PublishMessage(ctx, Message{Body: body})
}

// PublishMessage publishes m's body as it is, valid or not, with
// Nats-Msg-Id set to its commandId when it has a usable one (for a replay,
// "replay:" and ReplayOf), and the trace context of ctx in its headers.
// It returns ErrNoStreams when the command stream does not exist, and
// ErrOtherContent (with the Ack) when the stream dropped it as a
// duplicate of a command with other content.
func (c *Client) PublishMessage(ctx context.Context, m Message) (Ack, error) {
	msg := nats.NewMsg(contact.SubjectCreate)
	msg.Data = m.Body
	id, hasID := bodyCommandID(m.Body, m.ReplayOf != "")
	switch {
	case m.ReplayOf != "":
		msg.Header.Set(contact.HeaderReplayOf, m.ReplayOf)
		msg.Header.Set(contact.HeaderMsgID, "replay:"+m.ReplayOf)
	case hasID:
		msg.Header.Set(contact.HeaderMsgID, id)
	}
	c.cfg.Propagator.Inject(ctx, headerCarrier(msg.Header))
	pa, err := c.publish(ctx, msg, m.ReplayOf != "" || hasID)
	if err != nil {
		if errors.Is(err, jetstream.ErrNoStreamResponse) {
			return Ack{}, ErrNoStreams
		}
		switch {
		case m.ReplayOf != "":
			return Ack{}, fmt.Errorf("publish the replay of %s: %w; publishing it again with the same ReplayOf is safe: %w", m.ReplayOf, ErrUnconfirmed, err)
		case hasID:
			return Ack{}, fmt.Errorf("publish %s: %w; publishing it again with the same commandId is safe: %w", id, ErrUnconfirmed, err)
		}
		return Ack{}, fmt.Errorf("publish: %w; it has no commandId the stream can tell a repeat by, so publishing it again may store it twice: %w", ErrUnconfirmed, err)
	}
	if !hasID {
		id = fmt.Sprintf("%s:%d", pa.Stream, pa.Sequence)
	}
	ack := Ack{CommandID: id, Generation: m.ReplayOf, Stream: pa.Stream, Sequence: pa.Sequence, Duplicate: pa.Duplicate,
		fingerprint: record.ContentFingerprint(m.Body)}
	if pa.Duplicate {
		if err := c.checkStored(ctx, ack); err != nil {
			return ack, err
		}
	}
	return ack, nil
}

// Publishing a command with a message id is tried again, with the same
// id, when the stream does not answer an attempt within publishAttempt
// (the connection was lost under it): the stream drops a repeat of a
// stored one. A publish the connection could not buffer while it
// reconnects is tried again too. A publish that no stream answers at all is tried again for
// noStreamFor (JetStream may be starting) before it is ErrNoStreams.
const (
	publishAttempt = 5 * time.Second
	noStreamFor    = 3 * time.Second
	publishPause   = 100 * time.Millisecond
)

// publish publishes msg, trying again as said above; repeatable says msg
// has a message id.
func (c *Client) publish(ctx context.Context, msg *nats.Msg, repeatable bool) (*jetstream.PubAck, error) {
	start := time.Now()
	for {
		actx, cancel := ctx, context.CancelFunc(func() {})
		if repeatable {
			actx, cancel = context.WithTimeout(ctx, publishAttempt)
		}
		pa, err := c.js.PublishMsg(actx, msg)
		cancel()
		switch {
		case err == nil, ctx.Err() != nil:
			return pa, err
		case errors.Is(err, jetstream.ErrNoStreamResponse) && time.Since(start) < noStreamFor:
		case errors.Is(err, nats.ErrReconnectBufExceeded): // not sent
		case repeatable && (errors.Is(err, context.DeadlineExceeded) || errors.Is(err, nats.ErrTimeout)):
		default:
			return pa, err
		}
		select {
		case <-ctx.Done():
			return nil, err
		case <-time.After(publishPause):
		}
	}
}

// checkStored checks a publish the stream took for a duplicate: when the
// command stored under its id has other content, the stream dropped this
// one before the service could answer it with a conflict.
func (c *Client) checkStored(ctx context.Context, ack Ack) error {
	var fingerprint string
	if stored, err := c.storedCommand(ctx, ack); err == nil {
		fingerprint = record.ContentFingerprint(stored.Data)
	} else if ack.Generation == "" {
		// Settled and gone from the work queue: its record keeps the
		// fingerprint of the content its commandId was first used for.
		fingerprint = c.recordedFingerprint(ctx, ack.CommandID)
	}
	if fingerprint == "" || fingerprint == ack.fingerprint {
		return nil // the same content, or cannot tell: a wait shows the outcome
	}
	return fmt.Errorf("%w: not stored: %s seq %d already holds a command with commandId %s and other content, sent within the stream's duplicate window; "+
		"the stream dropped this one before the service saw it (after the window the service answers it with reason conflict). "+
		"Use a new commandId for a new contact", ErrOtherContent, ack.Stream, ack.Sequence, ack.CommandID)
}

// Settled returns the outcome the service has recorded for the command
// body holds, read from its idempotency record (kept for RECORD_TTL)
// without publishing: when body's content is that of one of the command's
// generations, the command's newest outcome (contact.created or
// contact.failed, a failure without its command, of whichever generation
// decided it), which is what the service answers the command with if it is
// sent again. ok is false when there is none: a command without a usable
// commandId, never decided, expired, or content no generation had (the
// service answers that with a conflict); publishing it is then how to get
// an outcome. Outcome.Ack holds the CommandID only: nothing was sent.
// An error says the record could not be read (the bucket's read
// permission, for one).
func (c *Client) Settled(ctx context.Context, body []byte) (o Outcome, ok bool, err error) {
	id, usable := bodyCommandID(body, false)
	if !usable {
		return Outcome{}, false, nil
	}
	value, err := c.readRecord(ctx, id)
	if err != nil {
		return Outcome{}, false, fmt.Errorf("read the record of %s: %w", id, err)
	}
	if value == nil {
		return Outcome{}, false, nil
	}
	raw, decided := record.ResentOutcome(value, record.ContentFingerprint(body))
	if !decided {
		return Outcome{}, false, nil
	}
	var ev Event
	if err := json.Unmarshal(raw, &ev); err != nil {
		return Outcome{}, false, fmt.Errorf("the record of %s: %w", id, err)
	}
	o, err = outcome(Ack{CommandID: id}, ev, raw)
	var failed *FailedError
	if err != nil && !errors.As(err, &failed) {
		return Outcome{}, false, err
	}
	return o, true, nil
}

// recordedFingerprint returns the fingerprint the service recorded for
// the content a commandId was first used for, or "" when there is none to
// read.
func (c *Client) recordedFingerprint(ctx context.Context, commandID string) string {
	value, err := c.readRecord(ctx, commandID)
	if err != nil || value == nil {
		return ""
	}
	rec, err := record.Decode(value)
	if err != nil {
		return ""
	}
	return rec.Fingerprint
}

// readRecord reads the service's record of a commandId, read-only (a get from
// the record bucket): nil when there is none, or no bucket.
func (c *Client) readRecord(ctx context.Context, commandID string) ([]byte, error) {
	c.mu.Lock()
	records := c.records
	c.mu.Unlock()
	if records == nil {
		var err error
		records, err = record.OpenReader(ctx, c.js)
		if errors.Is(err, jetstream.ErrBucketNotFound) {
			return nil, nil
		}
		if err != nil {
			return nil, err
		}
		c.mu.Lock()
		c.records = records
		c.mu.Unlock()
	}
	value, _, err := records.Get(ctx, record.Key(commandID))
	return value, err
}

func (c *Client) storedCommand(ctx context.Context, ack Ack) (*jetstream.RawStreamMsg, error) {
	s, err := c.js.Stream(ctx, ack.Stream)
	if err != nil {
		return nil, err
	}
	return s.GetMsg(ctx, ack.Sequence)
}

// CheckStreams returns ErrNoStreams when the command or the event stream
// does not exist, or the error of asking.
func (c *Client) CheckStreams(ctx context.Context) error {
	for _, name := range []string{CommandStream, EventStream} {
		if _, err := c.js.Stream(ctx, name); err != nil {
			if errors.Is(err, jetstream.ErrStreamNotFound) {
				return ErrNoStreams
			}
			return fmt.Errorf("stream %s: %w", name, err)
		}
	}
	return nil
}

// duplicateWindow returns the event stream's duplicate window: how long
// before an answer an identical one may have been stored, making the
// stream drop the new one.
func (c *Client) duplicateWindow(ctx context.Context) time.Duration {
	s, err := c.js.Stream(ctx, EventStream)
	if err != nil {
		return 2 * time.Minute // the service's own window
	}
	if d := s.CachedInfo().Config.Duplicates; d > 0 {
		return d
	}
	return 2 * time.Minute
}

// bodyCommandID returns the body's commandId when it is one the service
// will use (a string of 1 to 128 characters, none a control or format
// character, and unless the body is a replay's not of the form
// <stream>:<sequence>). Any other the service answers under
// <stream>:<sequence>; sent as Nats-Msg-Id it would also be changed (a
// line end) or refused by the service.
func bodyCommandID(body []byte, replay bool) (string, bool) {
	var v struct {
		CommandID any `json:"commandId"`
	}
	if json.Unmarshal(body, &v) != nil {
		return "", false
	}
	s, ok := v.CommandID.(string)
	switch {
	case !ok:
		return "", false
	case replay && rules.DerivedID(s) && len(s) <= 128:
		return s, true // a replay of a command the service gave a derived id
	case !rules.UsableCommandID(s):
		return "", false
	}
	return s, true
}

// headerCarrier adapts NATS headers to OpenTelemetry propagation, in the
// lower-case names W3C trace context uses (NATS header names are
// case-sensitive), as the service reads and writes them.
type headerCarrier nats.Header

func (h headerCarrier) Get(key string) string { return nats.Header(h).Get(strings.ToLower(key)) }

func (h headerCarrier) Set(key, value string) { nats.Header(h).Set(strings.ToLower(key), value) }

func (h headerCarrier) Keys() []string {
	keys := make([]string, 0, len(h))
	for k := range h {
		keys = append(keys, k)
	}
	return keys
}
