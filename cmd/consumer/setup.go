package main

import (
	"context"
	"flag"
	"fmt"
	"io"

	"github.com/contactrelay/contactrelay/internal/exit"
	"github.com/contactrelay/contactrelay/internal/service"
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
	noCheck := fs.Bool("no-publish-check", false, "do not check that these credentials may publish and subscribe to what the service does (setup run as an operator, not as the service)")
	load := toolFlags(fs, getenv, "ACK_WAIT", "EVENT_MAX_AGE", "RECORD_TTL", "AUDIT_MAX_AGE")
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
		return &exit.Error{Code: 2, Err: rerr}
	}
	if err != nil {
		return err
	}
	return service.Setup(ctx, cfg, service.SetupOptions{Replicas: *replicas, RebuildFailures: *rebuild, NoPublishCheck: *noCheck}, stdout, stderr)
}
