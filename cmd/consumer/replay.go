package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/contactrelay/contactrelay/internal/events"
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
	}

	nc, js, err := connectJetStream(cfg, "contactrelay-replay")
	if err != nil {
		return err
	}
	defer nc.Close()
	if !*dryRun {
		if _, err := js.Stream(ctx, provision.CommandStream); errors.Is(err, jetstream.ErrStreamNotFound) {
			return &exitError{code: 2, err: errNoStreams}
		}
	}
	sel, err := scanFailures(ctx, js, flt, *history)
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
		return &exitError{code: 1, err: errQuiet}
	}

	progress := &progressLine{w: stderr, on: isTerminal(stderr)}
	sum, err := replay.Replay(ctx, js, sel.Failures, replay.Options{
		All:               *all,
		IncludeSuperseded: *superseded,
		Repair:            sets,
		Rate:              *ratePerSec,
		DryRun:            *dryRun,
		OnItem: func(it replay.Item) {
			progress.clear()
			printItem(stdout, stderr, it, *dryRun, *unmask)
		},
		Progress: func(done int, s replay.Summary) {
			progress.show(fmt.Sprintf("replay: %d/%d done, %d replayed, %d skipped, %d failed to publish",
				done, s.Selected, s.Replayed, s.SkippedTotal(), s.PublishFailed))
		},
	})
	progress.clear()
	var rerr *replay.RepairError
	if errors.As(err, &rerr) {
		fmt.Fprintln(stderr, rerr.Error())
		return &exitError{code: 1, err: errQuiet}
	}
	if ferr := sum.Format(stdout); ferr != nil && err == nil {
		err = ferr
	}
	if err != nil {
		return err
	}
	if sum.PublishFailed > 0 {
		return fmt.Errorf("%d of %d replays failed to publish", sum.PublishFailed, sum.Replayed+sum.PublishFailed)
	}
	return nil
}

// printItem tells what became of one selected failure: replayed or (in a
// dry run) what would be sent on stdout, failed publishes on stderr.
// Skipped ones are shown in a dry run only; the summary counts them.
func printItem(stdout, stderr io.Writer, it replay.Item, dryRun, unmask bool) {
	f := it.Failure
	what := fmt.Sprintf("%s (failure %s, %s)", f.CommandID(), f.Event.ID, f.Data.Reason)
	switch {
	case it.Skip != "":
		if dryRun {
			fmt.Fprintf(stdout, "would skip %s: %s\n", what, it.Skip)
		}
	case dryRun:
		body := it.Msg.Data
		if !unmask {
			body = replay.MaskCommand(body)
		}
		fmt.Fprintf(stdout, "would replay %s to %s\n  %s: %s\n  %s: %s\n  %s\n", what, it.Msg.Subject,
			events.HeaderMsgID, it.Msg.Header.Get(events.HeaderMsgID),
			events.HeaderReplayOf, it.Msg.Header.Get(events.HeaderReplayOf), body)
	case it.Err != nil:
		fmt.Fprintf(stderr, "failed to publish %s: %v\n", what, it.Err)
	case it.Ack.Duplicate:
		fmt.Fprintf(stdout, "replayed %s: dropped by the stream as a duplicate of a replay within its window\n", what)
	default:
		fmt.Fprintf(stdout, "replayed %s as %s seq %d\n", what, it.Ack.Stream, it.Ack.Sequence)
	}
}

// progressLine is one line on a terminal, rewritten as work goes on, and
// nothing elsewhere.
type progressLine struct {
	w     io.Writer
	on    bool
	shown bool
}

func (p *progressLine) show(text string) {
	if p.on {
		fmt.Fprintf(p.w, "\r\x1b[K%s", text)
		p.shown = true
	}
}

func (p *progressLine) clear() {
	if p.shown {
		fmt.Fprint(p.w, "\r\x1b[K")
		p.shown = false
	}
}

// isTerminal reports whether w is a terminal.
func isTerminal(w io.Writer) bool {
	if l, ok := w.(*lockedWriter); ok {
		w = l.w
	}
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}
