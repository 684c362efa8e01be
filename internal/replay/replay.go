package replay

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"golang.org/x/time/rate"

	"github.com/contactrelay/contactrelay/contact"
	"github.com/contactrelay/contactrelay/rules"
)

// Options configures Replay. The zero value replays the retryable failures
// that no later outcome supersedes, 20 a second.
type Options struct {
	// All includes failures that are not retryable.
	All bool
	// IncludeSuperseded includes failures superseded by a later
	// contact.created: the consumer answers their replay with
	// contact.created again, from its record, without a provider call.
	// Only the newest failure of a command is replayed all the same.
	IncludeSuperseded bool
	// Repair, when not empty, changes these fields of the command before
	// it is sent. The selection must hold failures of one commandId only,
	// of which only the newest is replayed; it is, retryable or not.
	Repair []Set
	// Validator checks repaired commands. Default: a new one.
	Validator *rules.Validator
	// Rate is the most commands sent per second. Default 20.
	Rate float64
	// Limiter, when set, paces the sends instead of a limiter of Rate:
	// a job that replays page after page shares one across its calls.
	Limiter *rate.Limiter
	// DryRun sends nothing; Item.Msg still says what would be sent.
	DryRun bool
	// PublishTimeout bounds one publish, from its sending to the stream's
	// answer. Default 10s.
	PublishTimeout time.Duration
	// Window is how many publishes may await the stream's answer at once.
	// Default 64; 1 sends each after the previous one's answer.
	Window int
	// OnItem, if set, is told the fate of each selected failure, in order.
	OnItem func(Item)
	// Progress, if set, is called after each selected failure with how
	// many are done and the summary so far.
	Progress func(done int, s Summary)
}

func (o *Options) setDefaults() {
	if o.Validator == nil {
		o.Validator = rules.NewValidator()
	}
	if o.Rate <= 0 {
		o.Rate = 20
	}
	if o.PublishTimeout <= 0 {
		o.PublishTimeout = 10 * time.Second
	}
	if o.Window <= 0 {
		o.Window = 64
	}
}

// Skip says why a selected failure is not replayed.
type Skip string

// The reasons a selected failure is skipped, in the order they are checked.
const (
	SkipSupersededByCreated Skip = "superseded by a later contact.created"
	SkipSupersededByFailure Skip = "superseded by a later failure of the same commandId"
	SkipMalformed           Skip = "malformed, with no command to replay"
	SkipNotRetryable        Skip = "not retryable"
)

// skipOrder lists the skips in the order summaries show them.
var skipOrder = []Skip{SkipNotRetryable, SkipSupersededByCreated, SkipSupersededByFailure, SkipMalformed}

// Item is what became of one selected failure.
type Item struct {
	Failure *Failure
	// Skip says why it was not replayed; empty when it was (or, in a dry
	// run, would be).
	Skip Skip
	// Msg is the message sent, or that a dry run would send.
	Msg *nats.Msg
	// Ack is the stream's acknowledgement; Ack.Duplicate means the stream
	// dropped the message as a replay of the same failure within its
	// duplicate window (Earlier says what it holds instead).
	Ack *jetstream.PubAck
	// Earlier, set when the stream dropped the message as a duplicate, is
	// the command it stored for the failure before.
	Earlier *Earlier
	// Refused, with Earlier, says that this replay did not happen: the
	// command stored before is another (a repair of other content), or,
	// for a repair, one the stream no longer holds to compare. Without
	// it, the very command was sent before: already sent.
	Refused bool
	// Err is why the publish failed.
	Err error
}

// Earlier is the command the command stream stored for a failure before a
// replay of it that the stream dropped: every replay of one failure has
// the Nats-Msg-Id "replay:<failed event id>", and the stream keeps only
// the first within its duplicate window.
type Earlier struct {
	Stream string
	Seq    uint64
	// Held reports whether the stream still holds it (the service has not
	// settled it yet); Time, when it was stored, is known only then.
	Held bool
	Time time.Time
	// Same reports whether it is the command this replay sent, byte for
	// byte. False when it is another, or no longer held.
	Same bool
}

// String says where the earlier command is and when it was stored:
// "CONTACT_COMMANDS seq 6277, stored 2026-12-03T12:23:28Z".
func (e *Earlier) String() string {
	if !e.Held {
		return fmt.Sprintf("%s seq %d, settled since", e.Stream, e.Seq)
	}
	return fmt.Sprintf("%s seq %d, stored %s", e.Stream, e.Seq, e.Time.UTC().Format(time.RFC3339))
}

// What says what was sent for the failure before, and where: "was
// repaired before with other content (CONTACT_COMMANDS seq 6277, stored
// 2026-12-03T12:23:28Z)".
func (e *Earlier) What() string {
	switch {
	case e.Same:
		return fmt.Sprintf("was sent before, this very command (%s)", e)
	case e.Held:
		return fmt.Sprintf("was repaired before with other content (%s)", e)
	}
	return fmt.Sprintf("was replayed or repaired before (%s)", e)
}

// Summary counts what a replay did.
type Summary struct {
	DryRun   bool
	Selected int
	// Replayed counts the commands the stream stored (in a dry run, that
	// would be sent).
	Replayed int
	// AlreadySent counts the commands the stream dropped because the same
	// command was sent for the failure before, within its duplicate
	// window; Refused those it dropped because another was (Item.Refused):
	// neither is stored again.
	AlreadySent int
	Refused     int
	Skipped     map[Skip]int
	// PublishFailed counts the publishes that failed; NotAttempted the
	// failures left when the replay was interrupted.
	PublishFailed int
	NotAttempted  int
}

// SkippedTotal returns how many selected failures were skipped.
func (s Summary) SkippedTotal() int {
	n := 0
	for _, c := range s.Skipped {
		n += c
	}
	return n
}

// Replay re-publishes the selected failures' commands to contact.create,
// the newest first, at most opts.Rate a second, and returns what it did.
// It returns a *RepairError, having sent nothing, when a repaired command
// does not validate; and ctx's error, with the summary so far, when ctx is
// cancelled. A failed publish is counted, not returned: the replay goes on.
// So is a replay the command stream drops as a duplicate of an earlier one
// of the same failure: as already sent when that was the same command, as
// refused when it was another (Item.Refused).
// Replay does not wait for the consumer's outcomes.
func Replay(ctx context.Context, js jetstream.JetStream, failures []*Failure, opts Options) (Summary, error) {
	opts.setDefaults()
	sum := Summary{DryRun: opts.DryRun, Selected: len(failures), Skipped: map[Skip]int{}}
	if len(opts.Repair) > 0 {
		for _, f := range failures[min(1, len(failures)):] {
			if f.CommandID() != failures[0].CommandID() {
				return sum, fmt.Errorf("a repair changes the command of one commandId, and the selection holds %s and %s", failures[0].CommandID(), f.CommandID())
			}
		}
	}
	items := make([]Item, len(failures))
	for i, f := range failures {
		items[i] = Item{Failure: f, Skip: skip(f, opts)}
	}
	// Build every message first, so that a refused repair sends nothing.
	for i := range items {
		it := &items[i]
		if it.Skip != "" {
			continue
		}
		var body []byte
		var err error
		if len(opts.Repair) > 0 {
			body, err = Repair(it.Failure, opts.Repair, opts.Validator)
		} else {
			body, err = Body(it.Failure)
		}
		switch {
		case errors.Is(err, ErrNothingToReplay):
			it.Skip = SkipMalformed
		case err != nil:
			return sum, err
		default:
			it.Msg = Message(it.Failure, body)
		}
	}

	limiter := opts.Limiter
	if limiter == nil {
		limiter = rate.NewLimiter(rate.Limit(opts.Rate), 1)
	}
	// Up to Window publishes are in flight at once; each is reported, in
	// the selection's order, once the stream has answered it.
	r := replayer{js: js, opts: &opts, items: items, sum: &sum, held: heldCommands{js: js, timeout: opts.PublishTimeout}}
	for i := range items {
		it := &items[i]
		if it.Skip == "" && !opts.DryRun {
			if err := limiter.Wait(ctx); err != nil {
				r.settle(ctx, 0)
				sum.NotAttempted = len(items) - i
				return sum, fmt.Errorf("replay interrupted: %w", err)
			}
			r.send(i)
		}
		r.queue = append(r.queue, i)
		r.settle(ctx, opts.Window-1)
		if ctx.Err() != nil && i+1 < len(items) {
			r.settle(ctx, 0)
			sum.NotAttempted = len(items) - i - 1
			return sum, fmt.Errorf("replay interrupted: %w", ctx.Err())
		}
	}
	r.settle(ctx, 0)
	return sum, nil
}

// replayer publishes a replay's items asynchronously and reports them in
// order.
type replayer struct {
	js    jetstream.JetStream
	opts  *Options
	items []Item
	sum   *Summary
	held  heldCommands
	// queue holds the indexes of the items not reported yet, in order;
	// inFlight counts those among them whose publish awaits its answer.
	queue    []int
	inFlight int
	futures  map[int]flight
}

// flight is a publish in flight.
type flight struct {
	ack jetstream.PubAckFuture
	at  time.Time
}

// send publishes item i without waiting for the stream's answer.
func (r *replayer) send(i int) {
	it := &r.items[i]
	f, err := r.js.PublishMsgAsync(it.Msg)
	if err != nil {
		it.Err = err
		return
	}
	if r.futures == nil {
		r.futures = map[int]flight{}
	}
	r.futures[i] = flight{ack: f, at: time.Now()}
	r.inFlight++
}

// settle reports the queue's items from its front: those answered
// already, and, while more than keep publishes are in flight (every
// one, with keep 0), those whose answer it waits for in turn.
func (r *replayer) settle(ctx context.Context, keep int) {
	for len(r.queue) > 0 {
		i := r.queue[0]
		if f, flying := r.futures[i]; flying && !r.await(ctx, i, f, r.inFlight > keep) {
			return
		}
		r.queue = r.queue[1:]
		r.report(i)
	}
}

// drainGrace bounds how long an interrupted replay waits for the answers
// to its publishes in flight.
const drainGrace = 2 * time.Second

// await notes the stream's answer to item i's publish, waiting for it
// when wait is set (at most PublishTimeout from the sending), and reports
// whether it has it.
func (r *replayer) await(ctx context.Context, i int, f flight, wait bool) bool {
	it := &r.items[i]
	if !wait {
		select {
		case it.Ack = <-f.ack.Ok():
		case it.Err = <-f.ack.Err():
		default:
			return false
		}
	} else {
		it.Ack, it.Err = r.answer(ctx, f)
	}
	delete(r.futures, i)
	r.inFlight--
	if it.Err == nil && it.Ack.Duplicate {
		it.Earlier = r.held.earlier(ctx, it.Ack, it.Msg)
		it.Refused = !it.Earlier.Same && (it.Earlier.Held || len(r.opts.Repair) > 0)
	}
	return true
}

// answer waits for the stream's answer to a publish, at most
// PublishTimeout from its sending. Interrupted, it waits a little more:
// what the stream stored is then reported sent, not failed; without an
// answer by then, the error is ctx's.
func (r *replayer) answer(ctx context.Context, f flight) (*jetstream.PubAck, error) {
	timer := time.NewTimer(max(time.Until(f.at.Add(r.opts.PublishTimeout)), 0))
	defer timer.Stop()
	done, interrupted := ctx.Done(), false
	for {
		select {
		case a := <-f.ack.Ok():
			return a, nil
		case err := <-f.ack.Err():
			if interrupted {
				return nil, ctx.Err()
			}
			return nil, err
		case <-timer.C:
			if interrupted {
				return nil, ctx.Err()
			}
			return nil, fmt.Errorf("publish: no answer within %s: %w", r.opts.PublishTimeout, context.DeadlineExceeded)
		case <-done:
			done, interrupted = nil, true
			timer.Reset(min(time.Until(f.at.Add(r.opts.PublishTimeout)), drainGrace))
		}
	}
}

// report counts item i and tells the caller.
func (r *replayer) report(i int) {
	it, sum := r.items[i], r.sum
	switch {
	case it.Skip != "":
		sum.Skipped[it.Skip]++
	case it.Err != nil:
		sum.PublishFailed++
	case it.Refused:
		sum.Refused++
	case it.Earlier != nil:
		sum.AlreadySent++
	default:
		sum.Replayed++
	}
	if r.opts.OnItem != nil {
		r.opts.OnItem(it)
	}
	if r.opts.Progress != nil {
		r.opts.Progress(i+1, *sum)
	}
}

// heldCommands reads, for replays the command stream dropped as
// duplicates, the command it stored before.
type heldCommands struct {
	js      jetstream.JetStream
	timeout time.Duration
	stream  jetstream.Stream
}

// earlier returns the command the stream stored before msg, which it
// dropped as a duplicate: where (the ack's sequence is the first one's),
// and, while the stream holds it, when and whether it is msg's body.
func (h *heldCommands) earlier(ctx context.Context, ack *jetstream.PubAck, msg *nats.Msg) *Earlier {
	e := &Earlier{Stream: ack.Stream, Seq: ack.Sequence}
	ctx, cancel := context.WithTimeout(ctx, h.timeout)
	defer cancel()
	if h.stream == nil || h.stream.CachedInfo().Config.Name != ack.Stream {
		s, err := h.js.Stream(ctx, ack.Stream)
		if err != nil {
			return e
		}
		h.stream = s
	}
	raw, err := h.stream.GetMsg(ctx, ack.Sequence)
	if err != nil || raw.Header.Get(contact.HeaderMsgID) != msg.Header.Get(contact.HeaderMsgID) {
		return e // settled since: a work queue keeps a command until then
	}
	e.Held, e.Time, e.Same = true, raw.Time, bytes.Equal(raw.Data, msg.Data)
	return e
}

// skip says why f is not to be replayed, or "" when it is. A repair is
// sent whether or not the failure is retryable: mending it is the point.
func skip(f *Failure, opts Options) Skip {
	switch {
	case f.CreatedAfter != nil && !opts.IncludeSuperseded:
		return SkipSupersededByCreated
	case f.FailedAfter != nil:
		return SkipSupersededByFailure
	case f.Data.Reason == contact.ReasonMalformed:
		return SkipMalformed
	case !f.Data.Retryable && !opts.All && len(opts.Repair) == 0:
		return SkipNotRetryable
	}
	return ""
}
