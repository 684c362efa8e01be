package main

import (
	"context"
	"flag"
	"fmt"
	"io"

	"github.com/contactrelay/contactrelay/internal/natsconn"
	"github.com/contactrelay/contactrelay/internal/status"
)

// statusCommand is 'consumer status': what waits, what each instance has
// in flight, its circuits, and the pauses.
func statusCommand(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("consumer status", flag.ContinueOnError)
	fs.SetOutput(stderr)
	asJSON := fs.Bool("json", false, "print the snapshot as JSON")
	wait := fs.Duration("wait", status.DefaultWait, "how long to wait for the instances' answers")
	load := toolFlags(fs, getenv)
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usageErr(fs, fmt.Errorf("unexpected argument %q", fs.Arg(0)))
	}
	cfg, err := load()
	if err != nil {
		return err
	}
	nc, js, err := natsconn.ConnectJetStream(cfg, "contactrelay-status")
	if err != nil {
		return err
	}
	defer nc.Close()
	s := status.Gather(ctx, js, *wait)
	if *asJSON {
		return status.WriteJSON(stdout, s)
	}
	return status.WriteText(stdout, s, 5)
}
