package service

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/contactrelay/contactrelay/contact"
	"github.com/contactrelay/contactrelay/internal/audit"
	"github.com/contactrelay/contactrelay/internal/config"
	"github.com/contactrelay/contactrelay/internal/failstore"
	"github.com/contactrelay/contactrelay/internal/handlers"
	"github.com/contactrelay/contactrelay/internal/natsconn"
	"github.com/contactrelay/contactrelay/internal/pause"
	"github.com/contactrelay/contactrelay/internal/progress"
	"github.com/contactrelay/contactrelay/internal/provision"
	"github.com/contactrelay/contactrelay/internal/stream"
	"github.com/contactrelay/contactrelay/record"
)

// Setup creates or updates the JetStream resources the service needs (the
// streams, the consumer and the record bucket, with opts.Replicas), builds
// the open failures from the event history if that was never done (or
// again, with opts.RebuildFailures), and checks that the credentials may
// publish all the service publishes (unless opts.NoPublishCheck). It says
// what it did on stdout, and shows its progress on stderr when that is a
// terminal. It connects as "contactrelay-setup" and closes its connection
// before it returns.
func Setup(ctx context.Context, cfg config.Config, opts SetupOptions, stdout, stderr io.Writer) error {
	replicas := max(opts.Replicas, 1)
	nc, err := natsconn.Connect(cfg, "contactrelay-setup", slog.New(slog.DiscardHandler))
	if err != nil {
		return err
	}
	defer nc.Close()
	js, err := natsconn.JetStream(nc, cfg)
	if err != nil {
		return err
	}
	if err := provision.Setup(ctx, js, Topology(cfg, replicas, func(note string) { fmt.Fprintln(stdout, "note: "+note) })); err != nil {
		return err
	}
	if err := rebuildFailures(ctx, js, opts.RebuildFailures, stdout, stderr); err != nil {
		return err
	}
	if err := indexFailures(ctx, js, stdout, stderr); err != nil {
		return err
	}
	// The service publishes with the same credentials: say now what the
	// server will refuse it, rather than when commands cannot settle.
	if opts.NoPublishCheck {
		fmt.Fprintln(stdout, "note: not checked whether these credentials may publish and subscribe to what the service does (--no-publish-check); the service checks its publishes at start")
	} else {
		if err := provision.CheckPublish(ctx, nc, provision.PublishSubjects()); err != nil {
			return fmt.Errorf("streams, consumer and bucket are ready, but the service could not publish all it must: %w "+
				"(grant these credentials publish permission to %s, %s, $KV.%s.>, $KV.%s.>, %s and %s)",
				err, contact.SubjectCreated, contact.SubjectFailed, provision.RecordBucket, pause.Bucket, failstore.Subjects, failstore.IndexSubjects)
		}
		if err := provision.CheckSubscribe(ctx, nc, provision.SubscribeSubjects()); err != nil {
			return fmt.Errorf("streams, consumer and bucket are ready, but the service could not answer status requests: %w "+
				"(grant these credentials subscribe permission to %s, and allow_responses)", err, provision.StatusSubject)
		}
	}
	fmt.Fprintf(stdout, "ready: streams %s, %s, %s, %s and %s, consumer %s, buckets %s, %s, %s and %s (replicas %d)\n",
		provision.CommandStream, provision.EventStream, failstore.Stream, failstore.IndexStream, audit.Stream, provision.Durable, provision.RecordBucket, provision.ConsoleSessionBucket, pause.Bucket, provision.JobBucket, replicas)
	return nil
}

// SetupOptions are what Setup is asked for beyond the configuration. The
// zero value asks for one replica, no forced rebuild, and the publish
// check.
type SetupOptions struct {
	// Replicas of the streams and buckets; 0 is 1.
	Replicas int
	// RebuildFailures builds the open failures from the event history
	// again, even if that was done before.
	RebuildFailures bool
	// NoPublishCheck skips checking that the credentials may publish what
	// the service publishes: for a setup run with credentials that are
	// not the service's (an operator's, where NATS users have roles).
	NoPublishCheck bool
}

// rebuildFailures builds the open failures from the event history, once:
// a deployment upgraded from a version without the store has its failures
// in the history only. It is idempotent, and checks each failure against
// its command's record as the service does, so that it may run while the
// service does.
func rebuildFailures(ctx context.Context, js jetstream.JetStream, force bool, stdout, stderr io.Writer) error {
	s, err := js.Stream(ctx, failstore.Stream)
	if err != nil {
		return fmt.Errorf("look up stream %s: %w", failstore.Stream, err)
	}
	if failstore.Rebuilt(s.CachedInfo()) && !force {
		return nil
	}
	records, err := stream.OpenRecords(ctx, js, handlers.DefaultStoreTimeout)
	if err != nil {
		return err
	}
	defer records.Close()
	fmt.Fprintf(stdout, "building the open failures from the event history (%s)\n", provision.EventStream)
	line := progress.NewLine(stderr)
	st, err := failstore.Rebuild(ctx, js, provision.EventStream, func(commandID, eventID string) failstore.Check {
		return stream.NewestFailureCheck(records, record.Key(commandID), eventID)
	}, func(read, total uint64) {
		line.Show(fmt.Sprintf("read %d of %d events", read, total))
	})
	line.Clear()
	if err != nil {
		return fmt.Errorf("build the open failures: %w", err)
	}
	fmt.Fprintf(stdout, "open failures: %d events read in %s; %d commands and conflicts failed last, %d open (the others' records hold a newer outcome)\n",
		st.Read, st.Took.Round(time.Millisecond), st.Open, st.Opened)
	return nil
}

// indexFailures builds the exact-value index of the open failures once: a
// store older than the index has its failures unindexed (the migration,
// provision.IndexFailures). It says what it did, and shows its progress.
func indexFailures(ctx context.Context, js jetstream.JetStream, stdout, stderr io.Writer) error {
	line := progress.NewLine(stderr)
	st, ran, err := provision.IndexFailures(ctx, js, func(done, total uint64) {
		line.Show(fmt.Sprintf("indexed the open failures up to sequence %d of %d", done, total))
	})
	line.Clear()
	if err != nil {
		return err
	}
	if ran {
		fmt.Fprintf(stdout, "indexed the open failures in %s: %d failures, %d index entries (%s)\n",
			failstore.IndexStream, st.Failures, st.Writes, st.Took.Round(time.Millisecond))
	}
	return nil
}
