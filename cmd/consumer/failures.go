package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/user"
	"slices"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/contactrelay/contactrelay/internal/audit"
	"github.com/contactrelay/contactrelay/internal/config"
	"github.com/contactrelay/contactrelay/internal/exit"
	"github.com/contactrelay/contactrelay/internal/failstore"
	"github.com/contactrelay/contactrelay/internal/natsconn"
	"github.com/contactrelay/contactrelay/internal/progress"
	"github.com/contactrelay/contactrelay/internal/providers"
	"github.com/contactrelay/contactrelay/internal/provision"
	"github.com/contactrelay/contactrelay/internal/replay"
)

// failuresCommand is 'consumer failures': list contact.failed events, or
// show one command's failure whole.
func failuresCommand(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	if len(args) > 0 && args[0] == "discard" {
		return discardCommand(ctx, args[1:], getenv, stdout, stderr)
	}
	fs := flag.NewFlagSet("consumer failures", flag.ContinueOnError)
	fs.SetOutput(stderr)
	filter := filterFlags(fs, 50)
	asJSON := fs.Bool("json", false, "print JSON lines, one failure each, instead of a table")
	unmask := fs.Bool("unmask", false, "show email addresses and mobile numbers in full")
	asCSV := fs.Bool("csv", false, "write the open failures as CSV, unmasked, for a spreadsheet (import --repair reads it back)")
	text := fs.String("text", "", "only the open failures whose name, email, mobile, companyName, a metadata value, commandId or message contains this text, ignoring case (a search reading back from the newest until --limit are found)")
	history := historyFlag(fs)
	load := toolFlags(fs, getenv)
	flt, cfg, err := parseToolFlags(fs, args, filter, load)
	if err != nil {
		return err
	}
	if *asCSV && (*asJSON || *history) {
		return usageErr(fs, errors.New("--csv writes the open failures: not with --json or --history"))
	}
	if *text != "" && *history {
		return usageErr(fs, errors.New("--text searches the open failures: it does not go with --history"))
	}
	nc, js, err := natsconn.ConnectJetStream(cfg, "contactrelay-failures")
	if err != nil {
		return err
	}
	defer nc.Close()
	var sel *replay.Selection
	if *text != "" {
		sel, err = searchFailures(ctx, js, flt, *text, stderr)
	} else {
		sel, err = scanFailures(ctx, js, flt, *history)
	}
	if err != nil {
		return err
	}

	switch {
	case *asCSV:
		// Personal data, unmasked, leaves the system: audited first.
		if _, err := audit.WriteFromCommandLine(ctx, js, replay.CSVAuditEntry(flt, sel)); err != nil {
			return err
		}
		if err := replay.WriteCSV(stdout, sel.Failures); err != nil {
			return err
		}
		slog.New(slog.NewTextHandler(stderr, nil)).Info("exported open failures as CSV, unmasked",
			"user", osUser(), "filter", flt.Flags(), "failures", len(sel.Failures))
		fmt.Fprintln(stderr, replay.MatchLine(sel))
	case *asJSON:
		if err := replay.WriteJSON(stdout, sel.Failures, *unmask); err != nil {
			return err
		}
		fmt.Fprintln(stderr, replay.MatchLine(sel))
	case flt.CommandID != "":
		if len(sel.Failures) == 0 {
			if sel.Open {
				fmt.Fprintf(stderr, "commandId %s has no open failure that matches (its failures, if any, were resolved or discarded: --history lists them all)\n", flt.CommandID)
			} else {
				fmt.Fprintf(stderr, "no contact.failed event of commandId %s matches (%d events read)\n", flt.CommandID, sel.Read)
			}
			return &exit.Error{Code: 1, Err: exit.ErrQuiet}
		}
		if err := replay.WriteDetail(stdout, sel.Failures, *unmask); err != nil {
			return err
		}
	default:
		if len(sel.Failures) > 0 {
			write := replay.WriteTable
			if sel.Open {
				write = replay.WriteOpenTable
			}
			if err := write(stdout, sel.Failures, *unmask); err != nil {
				return err
			}
			fmt.Fprintln(stdout)
		}
		fmt.Fprintln(stdout, replay.MatchLine(sel))
	}
	if sel.Unreadable > 0 {
		fmt.Fprintf(stderr, "warning: %d events in the stream were not readable contract events and were passed over\n", sel.Unreadable)
	}
	return nil
}

// filterFlags registers the flags that select failures, which 'consumer
// failures' and 'consumer replay' share. The returned function builds the
// filter once the flags are parsed, with durations counted back from now.
func filterFlags(fs *flag.FlagSet, defaultLimit int) func(now time.Time) (replay.Filter, error) {
	var since, until string
	var reasons, providerNames []string
	fs.StringVar(&since, "since", "", "failures at or after this time: RFC 3339, a date, or a duration back from now (2h, 3d)")
	fs.StringVar(&until, "until", "", "failures at or before this time, written as for --since")
	fs.Func("reason", "only failures of this reason: malformed, invalid, unroutable, rejected, exhausted, conflict, ambiguous (repeatable, or a comma list)",
		func(v string) error { reasons = append(reasons, v); return nil })
	fs.Func("provider", "only failures of this provider: instantpay, pik (repeatable, or a comma list)",
		func(v string) error { providerNames = append(providerNames, v); return nil })
	commandID := fs.String("command-id", "", "only the failures of this commandId")
	limit := fs.Int("limit", defaultLimit, "the most failures to select, newest first (0: all)")
	return func(now time.Time) (replay.Filter, error) {
		var errs []error
		flt := replay.Filter{CommandID: *commandID, Limit: *limit, Providers: replay.SplitList(providerNames)}
		known := providers.Names()
		for _, p := range flt.Providers {
			if !slices.Contains(known, p) {
				errs = append(errs, fmt.Errorf("--provider: unknown provider %q (the providers are %s)", p, strings.Join(known, ", ")))
			}
		}
		var err error
		if flt.Reasons, err = replay.ParseReasons(reasons); err != nil {
			errs = append(errs, fmt.Errorf("--reason: %w", err))
		}
		for _, t := range []struct {
			name, value string
			dst         *time.Time
		}{{"--since", since, &flt.Since}, {"--until", until, &flt.Until}} {
			if t.value == "" {
				continue
			}
			if *t.dst, err = replay.ParseTime(t.value, now); err != nil {
				errs = append(errs, fmt.Errorf("%s: %w", t.name, err))
			}
		}
		if len(errs) == 0 {
			if err := flt.Validate(); err != nil {
				errs = append(errs, err)
			}
		}
		return flt, errors.Join(errs...)
	}
}

// parseToolFlags parses the flags of a command that reads failures and
// builds its filter and configuration; usage errors exit with 2.
func parseToolFlags(fs *flag.FlagSet, args []string, filter func(time.Time) (replay.Filter, error), load func() (config.Config, error)) (replay.Filter, config.Config, error) {
	if err := parseFlags(fs, args); err != nil {
		return replay.Filter{}, config.Config{}, err
	}
	if fs.NArg() > 0 {
		return replay.Filter{}, config.Config{}, usageErr(fs, fmt.Errorf("unexpected argument %q", fs.Arg(0)))
	}
	flt, err := filter(time.Now())
	if err != nil {
		return replay.Filter{}, config.Config{}, usageErr(fs, err)
	}
	cfg, err := load()
	if err != nil {
		return replay.Filter{}, config.Config{}, err
	}
	return flt, cfg, nil
}

// historyFlag registers --history, which reads the event history instead
// of the open failures.
func historyFlag(fs *flag.FlagSet) *bool {
	return fs.Bool("history", false, "read every contact.failed event of the event history (an audit; slow on a long history), each marked with what superseded it, instead of the open failures")
}

// scanFailures reads the failures flt selects: the open failures, or with
// history every failure of the event history. A missing stream exits
// with 2.
func scanFailures(ctx context.Context, js jetstream.JetStream, flt replay.Filter, history bool) (*replay.Selection, error) {
	var sel *replay.Selection
	var err error
	if history {
		sel, err = replay.Scan(ctx, js, flt)
	} else {
		sel, err = replay.Open(ctx, js, flt)
	}
	if errors.Is(err, replay.ErrNoStream) || errors.Is(err, failstore.ErrNoStore) {
		return nil, &exit.Error{Code: 2, Err: errNoStreams}
	}
	if err != nil {
		return nil, fmt.Errorf("read failures: %w", err)
	}
	return sel, nil
}

// searchFailures finds the open failures that hold text, showing its
// progress on a terminal. A missing store exits with 2.
func searchFailures(ctx context.Context, js jetstream.JetStream, flt replay.Filter, text string, stderr io.Writer) (*replay.Selection, error) {
	line := progress.NewLine(stderr)
	sel, err := replay.Search(ctx, js, flt, text, func(read, held uint64) {
		line.Show(fmt.Sprintf("searched %d of %d open failures", read, held))
	})
	line.Clear()
	if errors.Is(err, failstore.ErrNoStore) {
		return nil, &exit.Error{Code: 2, Err: errNoStreams}
	}
	if err != nil {
		return nil, fmt.Errorf("search failures: %w", err)
	}
	return sel, nil
}

// discardCommand is 'consumer failures discard': remove open failures that
// will never be replayed. The failed events stay in the event history.
func discardCommand(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("consumer failures discard", flag.ContinueOnError)
	fs.SetOutput(stderr)
	filter := filterFlags(fs, 0)
	dryRun := fs.Bool("dry-run", false, "say how many open failures would be discarded, and discard none")
	all := fs.Bool("all", false, "allow a discard without a filter: every open failure")
	load := toolFlags(fs, getenv)
	flt, cfg, err := parseToolFlags(fs, args, filter, load)
	if err != nil {
		return err
	}
	described := flt.Flags()
	if described == "" && !*all {
		return &exit.Error{Code: 2, Err: errors.New("discard needs a filter (--command-id, --reason, --provider, --since, --until), or --all to discard every open failure")}
	}
	if described == "" {
		described = "--all"
	}
	nc, js, err := natsconn.ConnectJetStream(cfg, "contactrelay-failures-discard")
	if err != nil {
		return err
	}
	defer nc.Close()
	snap, err := failstore.Load(ctx, js, flt.Select())
	if errors.Is(err, failstore.ErrNoStore) {
		return &exit.Error{Code: 2, Err: errNoStreams}
	}
	if err != nil {
		return fmt.Errorf("read open failures: %w", err)
	}
	chosen := snap.Failures
	if flt.Limit > 0 && len(chosen) > flt.Limit {
		chosen = chosen[:flt.Limit]
	}
	if *dryRun {
		fmt.Fprintf(stdout, "would discard %s (%s); nothing was discarded\n", replay.OpenFailures(len(chosen)), described)
		return nil
	}
	ids := make([]string, 0, len(chosen))
	for _, f := range chosen {
		ids = append(ids, f.CommandID)
	}
	if len(ids) > 20 {
		ids = nil
	}
	if _, err := audit.WriteFromCommandLine(ctx, js, audit.Entry{Action: audit.ActionDiscard, CommandIDs: ids, Filter: described, Count: len(chosen)}); err != nil {
		return err
	}
	n, err := failstore.Discard(ctx, js, chosen)
	log := slog.New(slog.NewTextHandler(stderr, nil))
	log.Info("discarded open failures", "user", osUser(), "filter", described, "selected", len(chosen), "discarded", n)
	if err != nil {
		return fmt.Errorf("discard: %d of %d discarded: %w", n, len(chosen), err)
	}
	fmt.Fprintf(stdout, "discarded %s (%s); their contact.failed events stay in %s\n", replay.OpenFailures(n), described, provision.EventStream)
	return nil
}

// osUser names who runs the command, for logs of what it changed.
func osUser() string {
	if u, err := user.Current(); err == nil {
		return u.Username
	}
	if n := os.Getenv("USER"); n != "" {
		return n
	}
	return "unknown"
}
