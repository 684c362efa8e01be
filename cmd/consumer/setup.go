package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"

	"github.com/contactrelay/contactrelay/internal/events"
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
	load := configFlags(fs, getenv)
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return &exitError{code: 2, err: fmt.Errorf("unexpected argument %q (see %s -h)", fs.Arg(0), fs.Name())}
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
	if err := stream.Setup(ctx, js, stream.Topology{Replicas: *replicas, AckWait: cfg.AckWait}); err != nil {
		return err
	}
	// The service publishes with the same credentials: say now what the
	// server will refuse it, rather than when commands cannot settle.
	if err := stream.CheckPublish(ctx, nc, stream.PublishSubjects()); err != nil {
		return fmt.Errorf("streams, consumer and bucket are ready, but the service could not publish all it must: %w "+
			"(grant these credentials publish permission to %s, %s and $KV.%s.>)",
			err, events.SubjectCreated, events.SubjectFailed, stream.RecordBucket)
	}
	fmt.Fprintf(stdout, "ready: streams %s and %s, consumer %s, bucket %s (replicas %d)\n",
		stream.CommandStream, stream.EventStream, stream.Durable, stream.RecordBucket, *replicas)
	return nil
}
