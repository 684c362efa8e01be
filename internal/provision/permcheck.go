package provision

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/contactrelay/contactrelay/contact"
	"github.com/contactrelay/contactrelay/internal/failstore"
	"github.com/contactrelay/contactrelay/internal/pause"
	"github.com/contactrelay/contactrelay/record"
)

// ProbeStream is the stream a permission probe expects to be stored in
// (its Nats-Expected-Stream header): none has this name (a stream name may
// not hold a '.'), so JetStream refuses every probe with an error answer,
// storing nothing.
const ProbeStream = "contactrelay.permission-probe"

// probeTimeout bounds one permission probe.
const probeTimeout = 2 * time.Second

// StatusSubject is where service instances answer status requests
// (package status, which names it Subject).
const StatusSubject = "contactrelay.status"

// PublishSubjects returns the subjects the service publishes to: the two
// event subjects, its record bucket's, the open failures' and their
// index's, and the pauses' (a held command's count), each with a key of
// the kind it writes (the key-value API publishes a put to
// "$KV.<bucket>.<key>").
func PublishSubjects() []string {
	return []string{contact.SubjectCreated, contact.SubjectFailed, recordSubject(record.Key("contactrelay-permission-check")),
		failstore.Subject(contact.ReasonExhausted, "", "contactrelay-permission-check"),
		failstore.IndexSubjectPrefix + "permission-check." + record.Key("contactrelay-permission-check"),
		pause.HeldSubject(CommandStream, 0)}
}

// SubscribeSubjects returns the subjects the service subscribes to beyond
// its replies: the status requests it answers.
func SubscribeSubjects() []string { return []string{StatusSubject} }

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

// ErrPublishRefused reports a publish to a subject the server refuses to
// this service's credentials.
var ErrPublishRefused = errors.New("the server refuses this service's publishes to the subject (permissions violation)")

// SubscribeRefusedError lists the subjects the server refuses this
// connection's subscriptions to. It is ErrSubscribeRefused.
type SubscribeRefusedError struct {
	Subjects []string
}

func (e *SubscribeRefusedError) Error() string {
	return "the NATS server refuses these credentials' subscriptions (permissions violation) to: " + strings.Join(e.Subjects, ", ")
}

// Is reports ErrSubscribeRefused.
func (e *SubscribeRefusedError) Is(target error) bool { return target == ErrSubscribeRefused }

// ErrSubscribeRefused reports a subscription the server refuses to this
// service's credentials.
var ErrSubscribeRefused = errors.New("the server refuses this service's subscription to the subject (permissions violation)")

// CheckSubscribe asks the server, for each subject, whether nc may
// subscribe to it: it subscribes, flushes (the server answers in order,
// so a refusal is known when the flush returns) and unsubscribes. It
// returns a *SubscribeRefusedError listing the refused subjects, in
// order, or an error naming the subjects it could not check. As
// CheckPublish, it reads the violation from the connection's last error,
// one subject at a time, leaving the caller's error handler as it is.
func CheckSubscribe(ctx context.Context, nc *nats.Conn, subjects []string) error {
	var refused []string
	var other []error
	for _, subject := range subjects {
		switch err := probeSubscribe(ctx, nc, subject); {
		case err == nil:
		case errors.Is(err, ErrSubscribeRefused):
			refused = append(refused, subject)
		default:
			other = append(other, fmt.Errorf("check subscribe to %s: %w", subject, err))
		}
	}
	if len(refused) > 0 {
		other = append([]error{&SubscribeRefusedError{Subjects: refused}}, other...)
	}
	return errors.Join(other...)
}

// probeSubscribe subscribes to subject and back: nil when the server let
// the subscription be, ErrSubscribeRefused when it reported a permissions
// violation for it.
func probeSubscribe(ctx context.Context, nc *nats.Conn, subject string) error {
	ctx, cancel := context.WithTimeout(ctx, probeTimeout)
	defer cancel()
	before := nc.LastError()
	sub, err := nc.SubscribeSync(subject)
	if err != nil {
		return err
	}
	defer func() { _ = sub.Unsubscribe() }()
	if err := nc.FlushWithContext(ctx); err != nil {
		return err
	}
	if last := nc.LastError(); last != before && errors.Is(last, nats.ErrPermissionViolation) &&
		strings.Contains(last.Error(), "Subscription to "+strconv.Quote(subject)) {
		return ErrSubscribeRefused
	}
	return nil
}

// RefusedSubject returns the subject of a publish permissions violation
// that nats.go reported (on the connection's error callback, or as its
// last error); ok is false for any other error. nats.go reports the
// subject only in the error's text, which the server writes as
// `Permissions Violation for Publish to %q` (Go quoting) and nats.go
// passes on after "nats: permissions violation: ". The words are matched
// whatever their case, in place: lowering the whole text could change its
// length (a subject may hold any character) and misplace the subject.
func RefusedSubject(err error) (subject string, ok bool) {
	if !errors.Is(err, nats.ErrPermissionViolation) {
		return "", false
	}
	const marker = "publish to "
	text := err.Error()
	for i := 0; i+len(marker) <= len(text); i++ {
		if !strings.EqualFold(text[i:i+len(marker)], marker) {
			continue
		}
		rest := strings.TrimSpace(text[i+len(marker):])
		subject, err := strconv.Unquote(rest)
		if err != nil {
			subject = strings.Trim(rest, `"`)
		}
		return subject, subject != ""
	}
	return "", false
}

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
	msg.Header.Set(nats.ExpectedStreamHdr, ProbeStream)
	before := nc.LastError()
	refused := func() bool {
		last := nc.LastError()
		if last == before {
			return false // no new violation
		}
		s, ok := RefusedSubject(last)
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
