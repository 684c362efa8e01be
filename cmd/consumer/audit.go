package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/contactrelay/contactrelay/internal/audit"
	"github.com/contactrelay/contactrelay/internal/exit"
	"github.com/contactrelay/contactrelay/internal/natsconn"
	"github.com/contactrelay/contactrelay/internal/replay"
)

// auditCommand is 'consumer audit': list the audit trail.
func auditCommand(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("consumer audit", flag.ContinueOnError)
	fs.SetOutput(stderr)
	asJSON := fs.Bool("json", false, "one JSON object a line instead of a table")
	who := fs.String("user", "", "only the entries of this user")
	action := fs.String("action", "", "only this action: "+strings.Join(audit.Actions, ", "))
	commandID := fs.String("command-id", "", "only the entries naming this commandId")
	since := fs.String("since", "", "entries at or after this time: RFC 3339, a date, or a duration back from now (2h, 3d)")
	load := toolFlags(fs, getenv)
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usageErr(fs, fmt.Errorf("unexpected argument %q", fs.Arg(0)))
	}
	q := audit.Query{User: *who, Action: *action, CommandID: *commandID}
	var errs []error
	if q.Action != "" && !slices.Contains(audit.Actions, q.Action) {
		errs = append(errs, fmt.Errorf("--action must be one of %s, not %q", strings.Join(audit.Actions, ", "), q.Action))
	}
	if *since != "" {
		t, err := replay.ParseTime(*since, time.Now())
		if err != nil {
			errs = append(errs, fmt.Errorf("--since: %w", err))
		}
		q.Since = t
	}
	cfg, err := load()
	if err != nil {
		errs = append(errs, err)
	}
	if len(errs) > 0 {
		return &exit.Error{Code: 2, Err: errors.Join(errs...)}
	}
	nc, js, err := natsconn.ConnectJetStream(cfg, "contactrelay-audit")
	if err != nil {
		return err
	}
	defer nc.Close()
	err = audit.Print(ctx, js, q, *asJSON, stdout)
	if errors.Is(err, jetstream.ErrStreamNotFound) {
		return &exit.Error{Code: 2, Err: errNoStreams}
	}
	return err
}
