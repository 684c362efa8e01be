package stream

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/contactrelay/contactrelay/internal/events"
	"github.com/contactrelay/contactrelay/internal/failstore"
	"github.com/contactrelay/contactrelay/internal/handlers"
)

// probeStream is the stream a permission probe expects to be stored in:
// none has this name (a stream name may not hold a '.'), so JetStream
// refuses every probe with an error answer, storing nothing.
const probeStream = "contactrelay.permission-probe"

// probeTimeout bounds one permission probe.
const probeTimeout = 2 * time.Second

// PublishSubjects returns the subjects the service publishes to: the two
// event subjects and its record bucket's, with a key of the kind it
// writes (the key-value API publishes a put to "$KV.<bucket>.<key>").
func PublishSubjects() []string {
	return []string{events.SubjectCreated, events.SubjectFailed, recordSubject(handlers.RecordKey("contactrelay-permission-check")),
		failstore.Subject(events.ReasonExhausted, "", "contactrelay-permission-check")}
}

// recordSubject is the subject a write of the record under key is
// published to.
func recordSubject(key string) string { return "$KV." + RecordBucket + "." + key }

// PublishRefusedError lists the subjects the server refuses this
// connection's publishes to. It is ErrPublishRefused.
type PublishRefusedError struct {
	Subjects []string
}

func (e *PublishRefusedError) Error() string {
	return "the NATS server refuses these credentials' publishes (permissions violation) to: " + strings.Join(e.Subjects, ", ")
}

// Is reports ErrPublishRefused.
func (e *PublishRefusedError) Is(target error) bool { return target == ErrPublishRefused }

// CheckPublish asks the server, for each subject, whether nc may publish
// to it, storing nothing: it publishes a request to the subject with the
// header Nats-Expected-Stream naming a stream that does not exist.
// Whatever the subject, an answer means the publish was let through (the
// stream refuses to store it; with no stream, "no responders"); a
// publish the server refuses for want of permission is dropped, and
// reported on the connection's error callback. CheckPublish returns a
// *PublishRefusedError listing the refused subjects, in order, or an
// error naming the subjects that got no answer for another reason (the
// server unreachable, say).
//
// The violation is read from the connection's last error (nc.LastError),
// which nats.go sets before it calls the error callback, so an error
// handler of the caller's keeps working; the subjects are therefore
// probed one after the other, each within probeTimeout (a few
// milliseconds, allowed or refused).
func CheckPublish(ctx context.Context, nc *nats.Conn, subjects []string) error {
	var refused []string
	var other []error
	// One at a time: the connection keeps only its last error.
	for _, subject := range subjects {
		switch err := probe(ctx, nc, subject); {
		case err == nil:
		case errors.Is(err, ErrPublishRefused):
			refused = append(refused, subject)
		default:
			other = append(other, fmt.Errorf("check publish to %s: %w", subject, err))
		}
	}
	if len(refused) > 0 {
		other = append([]error{&PublishRefusedError{Subjects: refused}}, other...)
	}
	return errors.Join(other...)
}

// probe publishes one probe to subject: nil when the server let it
// through, ErrPublishRefused when it reported a permissions violation for
// the subject. The server answers a publish in order: a violation is
// known once a flush returns, and a refused subject costs no wait.
func probe(ctx context.Context, nc *nats.Conn, subject string) error {
	ctx, cancel := context.WithTimeout(ctx, probeTimeout)
	defer cancel()
	sub, err := nc.SubscribeSync(nc.NewInbox())
	if err != nil {
		return err
	}
	defer func() { _ = sub.Unsubscribe() }()
	msg := nats.NewMsg(subject)
	msg.Reply = sub.Subject
	msg.Header.Set(nats.ExpectedStreamHdr, probeStream)
	before := nc.LastError()
	refused := func() bool {
		last := nc.LastError()
		if last == before || !errors.Is(last, nats.ErrPermissionViolation) {
			return false // no new violation
		}
		s, ok := refusedSubject(last.Error())
		return ok && s == subject
	}
	if err := nc.PublishMsg(msg); err != nil {
		return err
	}
	if err := nc.FlushWithContext(ctx); err != nil {
		return err
	}
	if refused() {
		return ErrPublishRefused
	}
	// Any answer, an error from JetStream or "no responders", means the
	// publish was let through.
	if _, err := sub.NextMsgWithContext(ctx); err != nil && !errors.Is(err, nats.ErrNoResponders) {
		if refused() {
			return ErrPublishRefused
		}
		return err
	}
	return nil
}

// checkRefused probes the subjects p holds refused (every one at start),
// and clears each the server lets through again.
func (p *Permissions) checkRefused(ctx context.Context, nc *nats.Conn, subjects []string) {
	for _, subject := range subjects {
		switch err := probe(ctx, nc, subject); {
		case err == nil:
			p.Succeeded(subject)
		case errors.Is(err, ErrPublishRefused):
			p.refuse(subject)
		}
	}
}

// dueProbes returns the refused subjects whose next probe is due, and
// marks them tried.
func (p *Permissions) dueProbes() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	now := p.now()
	var due []string
	for subject, r := range p.refused {
		if now.Sub(r.lastTry) >= r.wait {
			r.lastTry = now
			r.wait = min(2*r.wait, p.probeEvery)
			due = append(due, subject)
		}
	}
	slices.Sort(due)
	return due
}

// checkAll checks every subject in subjects at once, and logs those the
// server refuses, in one line.
func (p *Permissions) checkAll(ctx context.Context, nc *nats.Conn, subjects []string) {
	err := CheckPublish(ctx, nc, subjects)
	var refused *PublishRefusedError
	if errors.As(err, &refused) {
		for _, s := range refused.Subjects {
			p.refuse(s)
		}
		p.log.Error("permissions check: the NATS server refuses this service's publishes to subjects it needs: grant the permission; "+
			"commands whose outcome goes there are kept and handed back, backing off, until it is granted",
			"subjects", strings.Join(refused.Subjects, ", "))
	}
	if err != nil && !errors.Is(err, ErrPublishRefused) && ctx.Err() == nil {
		p.log.Warn("permissions check incomplete", "error", err)
	}
}

// probeRefused probes the refused subjects until ctx is done: a second
// after the refusal, the wait doubling up to probeEvery.
func (p *Permissions) probeRefused(ctx context.Context, nc *nats.Conn) {
	tick := time.NewTicker(p.tick)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
			p.checkRefused(ctx, nc, p.dueProbes())
		}
	}
}
