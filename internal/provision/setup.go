// Package provision sets up contactrelay's JetStream resources and checks
// the service's right to use them: it names the streams, the durable
// consumer and the record bucket, creates or migrates them (Setup, with
// the store of open failures), reports the consumer's backlog
// (WatchConsumer), and probes which of the subjects the service publishes
// to the server lets through (CheckPublish), storing nothing. It runs
// before and beside the consume loop of package stream, which binds to
// what it set up; it never consumes a command.
package provision

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/contactrelay/contactrelay/contact"
	"github.com/contactrelay/contactrelay/internal/audit"
	"github.com/contactrelay/contactrelay/internal/failstore"
	"github.com/contactrelay/contactrelay/internal/pause"
	"github.com/contactrelay/contactrelay/record"
)

// age writes a stream's age limit.
func age(d time.Duration) string {
	if d == 0 {
		return "ever"
	}
	return d.String()
}

// Names of the contract's JetStream resources; the streams' and the
// bucket's are defined in the public packages contact and record, which
// publishers and readers import.
const (
	CommandStream = contact.CommandStream
	EventStream   = contact.EventStream
	Durable       = "contact-consumer"
	RecordBucket  = record.Bucket

	// DuplicateWindow is both streams' de-duplication window.
	DuplicateWindow = 2 * time.Minute
)

// Topology describes the JetStream resources to create. The zero value
// gives a single replica and the contract's defaults.
type Topology struct {
	// Replicas of the streams and the bucket. Default 1.
	Replicas int
	// AckWait of the durable consumer. Default 30s.
	AckWait time.Duration
	// MaxAckPending of the durable consumer, across all instances.
	// Default 10000.
	MaxAckPending int
	// EventMaxAge is how long the event stream keeps events; zero keeps
	// them for ever.
	EventMaxAge time.Duration
	// RecordTTL is how long a record lives after the write that settled
	// it (Records writes an unsettled one without a TTL); zero
	// keeps records for ever. Records are written with it (Records.TTL);
	// Setup lets the bucket take per-key TTLs.
	RecordTTL time.Duration
	// AuditMaxAge is how long the audit stream keeps entries; zero:
	// audit.DefaultMaxAge.
	AuditMaxAge time.Duration
	// Note, when set, is told in a sentence of each change Setup made to
	// an existing resource, and of each it could not make.
	Note func(string)
}

func (t *Topology) note(format string, args ...any) {
	if t.Note != nil {
		t.Note(fmt.Sprintf(format, args...))
	}
}

func (t *Topology) setDefaults() {
	if t.Replicas == 0 {
		t.Replicas = 1
	}
	if t.AckWait == 0 {
		t.AckWait = 30 * time.Second
	}
	if t.MaxAckPending == 0 {
		t.MaxAckPending = 10000
	}
}

// ConsumerConfig returns the durable consumer's configuration. It has no
// delivery limit: the handler counts deliveries itself (MAX_DELIVER), so
// that a command whose last delivery died with its process is delivered
// once more and settled as exhausted instead of being dropped silently.
func (t Topology) ConsumerConfig() jetstream.ConsumerConfig {
	t.setDefaults()
	return jetstream.ConsumerConfig{
		Durable:       Durable,
		Description:   "contactrelay: creates contacts at payment providers",
		DeliverPolicy: jetstream.DeliverAllPolicy,
		AckPolicy:     jetstream.AckExplicitPolicy,
		AckWait:       t.AckWait,
		MaxDeliver:    -1,
		FilterSubject: contact.SubjectCreate,
		MaxAckPending: t.MaxAckPending,
		ReplayPolicy:  jetstream.ReplayInstantPolicy,
	}
}

// RecordMarkerTTL is how long the record bucket keeps the marker a
// record leaves when its TTL expires.
const RecordMarkerTTL = time.Minute

// Setup creates or updates the streams, the durable consumer, the record
// bucket and the store of open failures. It is idempotent: run twice, it
// changes nothing the second time. An existing stream keeps subjects and
// limits of its own; it only gains the contract's subjects if it lacks
// them, and takes the lifecycle settings (the event stream's age limit,
// the bucket's per-key TTLs). The command stream's work-queue retention
// (a command stays until it is settled, whatever its age, and goes once it
// is) can only be chosen when the stream is created: an existing stream
// with another retention keeps it, and Note says so with what to do.
func Setup(ctx context.Context, js jetstream.JetStream, t Topology) error {
	t.setDefaults()
	streams := []jetstream.StreamConfig{
		{
			Name:        CommandStream,
			Description: "contact.create commands, each kept until it is settled",
			Subjects:    []string{contact.SubjectCreate},
			Storage:     jetstream.FileStorage,
			Retention:   jetstream.WorkQueuePolicy,
			Duplicates:  DuplicateWindow,
			Replicas:    t.Replicas,
		},
		{
			Name:        EventStream,
			Description: "contact.created and contact.failed events",
			Subjects:    []string{contact.SubjectCreated, contact.SubjectFailed},
			Storage:     jetstream.FileStorage,
			Retention:   jetstream.LimitsPolicy,
			MaxAge:      t.EventMaxAge,
			Duplicates:  DuplicateWindow,
			Replicas:    t.Replicas,
		},
		failstore.StreamConfig(t.Replicas),
		failstore.IndexStreamConfig(t.Replicas),
		audit.StreamConfig(t.Replicas, t.AuditMaxAge),
	}
	for _, cfg := range streams {
		if err := ensureStream(ctx, js, cfg, &t); err != nil {
			return err
		}
	}
	if _, err := js.CreateOrUpdateConsumer(ctx, CommandStream, t.ConsumerConfig()); err != nil {
		return fmt.Errorf("create consumer %s: %w", Durable, err)
	}
	// Keep a bucket's replicas if an earlier setup made more: 'run' must
	// not undo 'setup --replicas 3'.
	replicas := t.Replicas
	var had *jetstream.StreamConfig // the bucket's stream, if it exists
	if s, err := js.Stream(ctx, "KV_"+RecordBucket); err == nil {
		had = &s.CachedInfo().Config
		replicas = max(replicas, had.Replicas)
	}
	if _, err := js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{
		Bucket:      RecordBucket,
		Description: "contactrelay idempotency records, by commandId",
		History:     1,
		Storage:     jetstream.FileStorage,
		Replicas:    replicas,
		// Per-key TTLs (RECORD_TTL); an expired record leaves a marker
		// for this long.
		LimitMarkerTTL: RecordMarkerTTL,
	}); err != nil {
		return fmt.Errorf("create bucket %s: %w", RecordBucket, err)
	}
	if had != nil {
		t.noteBucket(*had)
	}
	if _, err := EnsureConsoleSessions(ctx, js, t.Replicas, nil); err != nil {
		return err
	}
	if err := ensurePauses(ctx, js, t.Replicas); err != nil {
		return err
	}
	if err := EnsureJobs(ctx, js, t.Replicas, nil); err != nil {
		return err
	}
	if err := markRebuilt(ctx, js); err != nil {
		return err
	}
	return markIndexed(ctx, js)
}

// noteBucket says what Setup changed in an existing record bucket, whose
// stream's configuration was had.
func (t *Topology) noteBucket(had jetstream.StreamConfig) {
	switch {
	case !had.AllowMsgTTL && t.RecordTTL > 0:
		t.note("%s: per-key TTLs switched on: a record now expires RECORD_TTL (%s) after the write that settled it; "+
			"records written before keep no TTL", RecordBucket, t.RecordTTL)
	case !had.AllowMsgTTL:
		t.note("%s: per-key TTLs switched on (RECORD_TTL is 0: records are kept for ever)", RecordBucket)
	}
	if had.MaxAge != 0 {
		t.note("%s: age limit removed (was %s): records expire by RECORD_TTL only, never while a create call's outcome is unknown",
			RecordBucket, had.MaxAge)
	}
}

// markRebuilt marks a store of open failures that needs no building from
// the event history: the event stream is empty. A store created beside an
// older deployment's history is left unmarked, for 'consumer setup' to
// build (failstore.Rebuild).
func markRebuilt(ctx context.Context, js jetstream.JetStream) error {
	fs, err := js.Stream(ctx, failstore.Stream)
	if err != nil {
		return fmt.Errorf("look up stream %s: %w", failstore.Stream, err)
	}
	if failstore.Rebuilt(fs.CachedInfo()) {
		return nil
	}
	es, err := js.Stream(ctx, EventStream)
	if err != nil {
		return fmt.Errorf("look up stream %s: %w", EventStream, err)
	}
	if es.CachedInfo().State.Msgs > 0 {
		return nil
	}
	cfg := fs.CachedInfo().Config
	if cfg.Metadata == nil {
		cfg.Metadata = map[string]string{}
	}
	cfg.Metadata[failstore.MetadataRebuilt] = "0"
	if _, err := js.UpdateStream(ctx, cfg); err != nil {
		return fmt.Errorf("update stream %s: %w", failstore.Stream, err)
	}
	return nil
}

// ensureStream creates a stream, or adds the contract's subjects and
// duplicate window to an existing one that lacks them, and sets its age
// limit.
func ensureStream(ctx context.Context, js jetstream.JetStream, want jetstream.StreamConfig, t *Topology) error {
	s, err := js.Stream(ctx, want.Name)
	if errors.Is(err, jetstream.ErrStreamNotFound) {
		if _, err := js.CreateStream(ctx, want); err != nil {
			return fmt.Errorf("create stream %s: %w", want.Name, err)
		}
		return nil
	}
	if err != nil {
		return fmt.Errorf("look up stream %s: %w", want.Name, err)
	}
	have := s.CachedInfo().Config
	changed := false
	for _, subj := range want.Subjects {
		if !slices.Contains(have.Subjects, subj) {
			have.Subjects = append(have.Subjects, subj)
			changed = true
		}
	}
	if have.Duplicates < want.Duplicates {
		have.Duplicates = want.Duplicates
		changed = true
	}
	if have.Replicas < want.Replicas {
		have.Replicas = want.Replicas
		changed = true
	}
	if want.Name == audit.Stream && have.MaxAge != want.MaxAge {
		t.note("%s: keeps the audit trail for %s (was %s): AUDIT_MAX_AGE", want.Name, age(want.MaxAge), age(have.MaxAge))
		have.MaxAge = want.MaxAge
		changed = true
	}
	if want.Name == EventStream && have.MaxAge != want.MaxAge {
		t.note("%s: keeps events for %s (was %s): EVENT_MAX_AGE", want.Name, age(want.MaxAge), age(have.MaxAge))
		have.MaxAge = want.MaxAge
		changed = true
	}
	if want.Retention == jetstream.WorkQueuePolicy && have.Retention != want.Retention {
		t.note("%s keeps its %s retention: NATS cannot change a live stream's retention to work-queue. "+
			"Settled commands are not removed, so the stream grows with every command. To move it: stop the publishers, "+
			"wait until consumer %s has nothing pending or unacknowledged (nats consumer info %s %s), "+
			"stop every 'consumer run' (a running service stops with an error when its stream is deleted), "+
			"delete the stream (nats stream rm %s), run 'consumer setup' again, start the service, and restart the publishers",
			want.Name, have.Retention, Durable, want.Name, Durable, want.Name)
	}
	if !changed {
		return nil
	}
	if _, err := js.UpdateStream(ctx, have); err != nil {
		return fmt.Errorf("update stream %s: %w", want.Name, err)
	}
	return nil
}

// WatchConsumer reads the durable consumer's state every period until ctx
// is done and reports its backlog: pending (not yet delivered) and
// ack-pending (delivered, not yet acknowledged), the figures KEDA's NATS
// JetStream scaler sums as lag. A failed read is reported as err.
func WatchConsumer(ctx context.Context, js jetstream.JetStream, period time.Duration, report func(pending, ackPending uint64, err error)) {
	t := time.NewTicker(period)
	defer t.Stop()
	for {
		rctx, cancel := context.WithTimeout(ctx, period)
		info, err := readConsumerInfo(rctx, js)
		cancel()
		if ctx.Err() != nil {
			return
		}
		if err != nil {
			report(0, 0, err)
		} else {
			report(info.NumPending, uint64(info.NumAckPending), nil)
		}
		select {
		case <-t.C:
		case <-ctx.Done():
			return
		}
	}
}

func readConsumerInfo(ctx context.Context, js jetstream.JetStream) (*jetstream.ConsumerInfo, error) {
	c, err := js.Consumer(ctx, CommandStream, Durable)
	if err != nil {
		return nil, err
	}
	return c.Info(ctx)
}

// ensurePauses creates the bucket of pauses (package pause), keeping the
// replicas of an existing one if it has more.
func ensurePauses(ctx context.Context, js jetstream.JetStream, replicas int) error {
	if s, err := js.Stream(ctx, "KV_"+pause.Bucket); err == nil {
		replicas = max(replicas, s.CachedInfo().Config.Replicas)
	}
	if _, err := js.CreateOrUpdateKeyValue(ctx, pause.BucketConfig(replicas)); err != nil {
		return fmt.Errorf("create bucket %s: %w", pause.Bucket, err)
	}
	return nil
}
