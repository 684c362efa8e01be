package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/user"
	"slices"
	"strings"
	"time"

	"github.com/contactrelay/contactrelay/internal/config"
	"github.com/contactrelay/contactrelay/internal/exit"
	"github.com/contactrelay/contactrelay/internal/jobs"
	"github.com/contactrelay/contactrelay/internal/natsconn"
	"github.com/contactrelay/contactrelay/internal/providers"
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
	text := fs.String("text", "", "only the open failures whose name, email, mobile, companyName, a metadata value or commandId is this value (the exact-value index, ignoring case and spacing), or, when none is, whose fields or message contain it (a search reading back from the newest until --limit are found)")
	contains := fs.Bool("contains", false, "with --text: search for the text as a substring at once, without asking the exact-value index first")
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
	if *contains && *text == "" {
		return usageErr(fs, errors.New("--contains goes with --text"))
	}
	nc, js, err := natsconn.ConnectJetStream(cfg, "contactrelay-failures")
	if err != nil {
		return err
	}
	defer nc.Close()
	return replay.Show(ctx, js, replay.ShowOptions{Filter: flt, History: *history, Text: *text, Contains: *contains, CSV: *asCSV, JSON: *asJSON, Unmask: *unmask}, stdout, stderr)
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

// discardCommand is 'consumer failures discard': remove open failures that
// will never be replayed. The failed events stay in the event history.
func discardCommand(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("consumer failures discard", flag.ContinueOnError)
	fs.SetOutput(stderr)
	filter := filterFlags(fs, 0)
	dryRun := fs.Bool("dry-run", false, "say how many open failures would be discarded, and discard none")
	all := fs.Bool("all", false, "allow a discard without a filter: every open failure")
	rate := fs.Float64("rate", 0, "the most open failures discarded per second (0: as fast as the server answers)")
	resume := fs.String("resume", "", "resume the stopped or interrupted discard job of this ID (its own filter and rate; no other flag)")
	load := toolFlags(fs, getenv)
	flt, cfg, err := parseToolFlags(fs, args, filter, load)
	if err != nil {
		return err
	}
	if *resume != "" && flagsGiven(fs) > 1 || *rate < 0 {
		return usageErr(fs, errors.New("--resume takes no other flag, and --rate is 0 or more"))
	}
	described := flt.Flags()
	if described == "" && !*all && *resume == "" {
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
	if *resume != "" || !*dryRun && flt.CommandID == "" {
		return jobs.RunFromCommandLine(ctx, js, jobs.CommandLine{Resume: *resume, Spec: jobs.Spec{
			Kind: jobs.KindDiscard, Filter: flt, Described: described, Rate: *rate}}, stdout, stderr)
	}
	return replay.DiscardOpen(ctx, js, flt, described, *dryRun, stdout, stderr)
}

// flagsGiven counts the flags given on fs's command line, the
// connection flags (--nats-…) aside.
func flagsGiven(fs *flag.FlagSet) int {
	n := 0
	fs.Visit(func(f *flag.Flag) { n += map[bool]int{false: 1}[strings.HasPrefix(f.Name, "nats-")] })
	return n
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
