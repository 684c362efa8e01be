package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/contactrelay/contactrelay/internal/events"
	"github.com/contactrelay/contactrelay/internal/failstore"
	"github.com/contactrelay/contactrelay/internal/handlers"
	"github.com/contactrelay/contactrelay/internal/provision"
	"github.com/contactrelay/contactrelay/internal/stream"
)

// maxReplicas is the most replicas JetStream gives a stream.
const maxReplicas = 5

// setupCommand is 'consumer setup': create or update the JetStream
// resources, then exit.
func setupCommand(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("consumer setup", flag.ContinueOnError)
	fs.SetOutput(stderr)
	replicas := fs.Int("replicas", 1, fmt.Sprintf("replicas of the streams and the record bucket, 1 to %d", maxReplicas))
	rebuild := fs.Bool("rebuild-failures", false, "build the open failures from the event history again, even if done before (failures discarded since come back)")
	load := toolFlags(fs, getenv, "ACK_WAIT", "EVENT_MAX_AGE", "RECORD_TTL")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usageErr(fs, fmt.Errorf("unexpected argument %q", fs.Arg(0)))
	}
	cfg, err := load()
	if *replicas < 1 || *replicas > maxReplicas {
		// Reported with the configuration's errors, if any, all at once.
		rerr := fmt.Errorf("--replicas must be from 1 to %d (JetStream's most), not %d", maxReplicas, *replicas)
		if err != nil {
			rerr = fmt.Errorf("%w\n%w", err, rerr)
		}
		return &exitError{code: 2, err: rerr}
	}
	if err != nil {
		return err
	}
	nc, err := connectNATS(cfg, "contactrelay-setup", slog.New(slog.DiscardHandler))
	if err != nil {
		return err
	}
	defer nc.Close()
	js, err := newJetStream(nc, cfg)
	if err != nil {
		return err
	}
	if err := provision.Setup(ctx, js, topology(cfg, *replicas, func(note string) { fmt.Fprintln(stdout, "note: "+note) })); err != nil {
		return err
	}
	if err := rebuildFailures(ctx, js, *rebuild, stdout, stderr); err != nil {
		return err
	}
	// The service publishes with the same credentials: say now what the
	// server will refuse it, rather than when commands cannot settle.
	if err := provision.CheckPublish(ctx, nc, provision.PublishSubjects()); err != nil {
		return fmt.Errorf("streams, consumer and bucket are ready, but the service could not publish all it must: %w "+
			"(grant these credentials publish permission to %s, %s, $KV.%s.> and %s)",
			err, events.SubjectCreated, events.SubjectFailed, provision.RecordBucket, failstore.Subjects)
	}
	fmt.Fprintf(stdout, "ready: streams %s, %s and %s, consumer %s, bucket %s (replicas %d)\n",
		provision.CommandStream, provision.EventStream, failstore.Stream, provision.Durable, provision.RecordBucket, *replicas)
	return nil
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
	progress := &progressLine{w: stderr, on: isTerminal(stderr)}
	st, err := failstore.Rebuild(ctx, js, provision.EventStream, func(commandID, eventID string) failstore.Check {
		return stream.NewestFailureCheck(records, handlers.RecordKey(commandID), eventID)
	}, func(read, total uint64) {
		progress.show(fmt.Sprintf("read %d of %d events", read, total))
	})
	progress.clear()
	if err != nil {
		return fmt.Errorf("build the open failures: %w", err)
	}
	fmt.Fprintf(stdout, "open failures: %d events read in %s; %d commands and conflicts failed last, %d open (the others' records hold a newer outcome)\n",
		st.Read, st.Took.Round(time.Millisecond), st.Open, st.Opened)
	return nil
}
