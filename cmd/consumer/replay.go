package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/contactrelay/contactrelay/internal/audit"
	"github.com/contactrelay/contactrelay/internal/exit"
	"github.com/contactrelay/contactrelay/internal/jobs"
	"github.com/contactrelay/contactrelay/internal/natsconn"
	"github.com/contactrelay/contactrelay/internal/progress"
	"github.com/contactrelay/contactrelay/internal/provision"
	"github.com/contactrelay/contactrelay/internal/replay"
)

// replayCommand is 'consumer replay': re-publish failed commands, or
// repair one and re-publish it.
func replayCommand(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("consumer replay", flag.ContinueOnError)
	fs.SetOutput(stderr)
	filter := filterFlags(fs, 0)
	var (
		all        = fs.Bool("all", false, "replay failures that are not retryable too (invalid, rejected, unroutable)")
		superseded = fs.Bool("include-superseded", false, "replay failures superseded by a later contact.created too (the consumer repeats contact.created from its record)")
		dryRun     = fs.Bool("dry-run", false, "print what would be sent, and send nothing")
		ratePerSec = fs.Float64("rate", 20, "the most commands sent per second")
		unmask     = fs.Bool("unmask", false, "show email addresses and mobile numbers in full in --dry-run output")
		sets       []replay.Set
		history    = historyFlag(fs)
		resume     = fs.String("resume", "", "resume the stopped or interrupted replay job of this ID (its own filter and rate; no other flag)")
	)
	fs.Func("set", "with --command-id: change a field of the command before replaying it, field=value (pik.firstName=Jane for nested fields; repeatable)",
		func(v string) error {
			s, err := replay.ParseSet(v)
			if err == nil {
				err = replay.CheckSetPath(s)
			}
			sets = append(sets, s)
			return err
		})
	load := toolFlags(fs, getenv)
	flt, cfg, err := parseToolFlags(fs, args, filter, load)
	if err != nil {
		return err
	}
	switch {
	case len(sets) > 0 && flt.CommandID == "":
		return usageErr(fs, errors.New("--set repairs one command: give its --command-id"))
	case *ratePerSec <= 0:
		return usageErr(fs, fmt.Errorf("--rate must be more than 0, not %g", *ratePerSec))
	case *resume != "" && flagsGiven(fs) > 1:
		return usageErr(fs, errors.New("--resume continues the job with its own filter and rate: give no other flag"))
	}

	nc, js, err := natsconn.ConnectJetStream(cfg, "contactrelay-replay")
	if err != nil {
		return err
	}
	defer nc.Close()
	if *resume != "" || !*dryRun && !*history && flt.CommandID == "" && len(sets) == 0 {
		return jobs.RunFromCommandLine(ctx, js, jobs.CommandLine{Resume: *resume, Unmask: *unmask, Spec: jobs.Spec{
			Kind: jobs.KindReplay, Filter: flt, Described: flt.Flags(), All: *all, Rate: *ratePerSec}}, stdout, stderr)
	}
	if !*dryRun {
		if _, err := js.Stream(ctx, provision.CommandStream); errors.Is(err, jetstream.ErrStreamNotFound) {
			return &exit.Error{Code: 2, Err: errNoStreams}
		}
	}
	sel, err := replay.Select(ctx, js, flt, *history)
	if err != nil {
		return err
	}
	fmt.Fprintln(stdout, replay.MatchLine(sel))
	if flt.CommandID != "" && len(sel.Failures) == 0 {
		// As with 'consumer failures --command-id': the command asked
		// about has no failure to replay.
		what := "nothing to replay"
		if len(sets) > 0 {
			what = "nothing to repair"
		}
		fmt.Fprintf(stderr, "%s: no contact.failed event of commandId %s matches\n", what, flt.CommandID)
		return &exit.Error{Code: 1, Err: exit.ErrQuiet}
	}

	if !*dryRun && len(sel.Failures) > 0 {
		if _, err := audit.WriteFromCommandLine(ctx, js, replay.AuditEntry(flt, sel, sets)); err != nil {
			return err
		}
	}
	line := progress.NewLine(stderr)
	sum, err := replay.Replay(ctx, js, sel.Failures, replay.Options{
		All:               *all,
		IncludeSuperseded: *superseded,
		Repair:            sets,
		Rate:              *ratePerSec,
		DryRun:            *dryRun,
		OnItem: func(it replay.Item) {
			line.Clear()
			replay.WriteItem(stdout, stderr, it, *dryRun, len(sets) > 0, *unmask)
		},
		Progress: func(done int, s replay.Summary) {
			line.Show(fmt.Sprintf("replay: %d/%d done, %d replayed, %d already sent, %d refused, %d skipped, %d failed to publish",
				done, s.Selected, s.Replayed, s.AlreadySent, s.Refused, s.SkippedTotal(), s.PublishFailed))
		},
	})
	line.Clear()
	var rerr *replay.RepairError
	if errors.As(err, &rerr) {
		fmt.Fprintln(stderr, rerr.Error())
		return &exit.Error{Code: 1, Err: exit.ErrQuiet}
	}
	return sum.Conclude(stdout, err)
}
