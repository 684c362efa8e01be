package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/contactrelay/contactrelay/internal/stream"
)

// setupCommand is 'consumer setup': create or update the JetStream
// resources, then exit.
func setupCommand(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("consumer setup", flag.ContinueOnError)
	fs.SetOutput(stderr)
	replicas := fs.Int("replicas", 1, "replicas of the streams and the record bucket")
	load := configFlags(fs, getenv)
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	cfg, err := load()
	if err != nil {
		return err
	}
	nc, err := connectNATS(cfg, "contactrelay-setup", slog.New(slog.DiscardHandler))
	if err != nil {
		return err
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		return err
	}
	if err := stream.Setup(ctx, js, stream.Topology{Replicas: *replicas, AckWait: cfg.AckWait}); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "ready: streams %s and %s, consumer %s, bucket %s (replicas %d)\n",
		stream.CommandStream, stream.EventStream, stream.Durable, stream.RecordBucket, *replicas)
	return nil
}
