package replay

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/contactrelay/contactrelay/client"
	"github.com/contactrelay/contactrelay/internal/audit"
	"github.com/contactrelay/contactrelay/internal/exit"
	"github.com/contactrelay/contactrelay/internal/failstore"
	"github.com/contactrelay/contactrelay/internal/progress"
	"github.com/contactrelay/contactrelay/internal/provision"
)

// ShowOptions are 'consumer failures”s: which failures, and how to show
// them.
type ShowOptions struct {
	Filter Filter
	// History reads every failure of the event history instead of the
	// open ones; Text searches the open ones (see Search).
	History bool
	Text    string
	// Contains searches Text as a substring at once, without asking the
	// exact-value index first (see Find).
	Contains bool
	// CSV writes the open failures as a spreadsheet, unmasked and
	// audited first; JSON one object a line; otherwise a table, or one
	// command's failures whole. Unmask shows personal data in full.
	CSV, JSON, Unmask bool
}

// Show is 'consumer failures': it selects the failures o asks for and
// writes them on stdout, what it matched and its warnings on stderr. A
// missing stream exits 2; a commandId with no failure exits 1.
func Show(ctx context.Context, js jetstream.JetStream, o ShowOptions, stdout, stderr io.Writer) error {
	flt := o.Filter
	var sel *Selection
	var err error
	if o.Text != "" {
		sel, err = searchWithProgress(ctx, js, flt, o.Text, o.Contains, stderr)
	} else {
		sel, err = Select(ctx, js, flt, o.History)
	}
	if err != nil {
		return err
	}
	switch {
	case o.CSV:
		// Personal data, unmasked, leaves the system: audited first.
		if _, err := audit.WriteFromCommandLine(ctx, js, CSVAuditEntry(flt, sel)); err != nil {
			return err
		}
		if err := WriteCSV(stdout, sel.Failures); err != nil {
			return err
		}
		who, _ := audit.CommandLine()
		slog.New(slog.NewTextHandler(stderr, nil)).Info("exported open failures as CSV, unmasked",
			"user", who, "filter", flt.Flags(), "failures", len(sel.Failures))
		fmt.Fprintln(stderr, MatchLine(sel))
	case o.JSON:
		if err := WriteJSON(stdout, sel.Failures, o.Unmask); err != nil {
			return err
		}
		fmt.Fprintln(stderr, MatchLine(sel))
	case flt.CommandID != "":
		if len(sel.Failures) == 0 {
			if sel.Open {
				fmt.Fprintf(stderr, "commandId %s has no open failure that matches (its failures, if any, were resolved or discarded: --history lists them all)\n", flt.CommandID)
			} else {
				fmt.Fprintf(stderr, "no contact.failed event of commandId %s matches (%d events read)\n", flt.CommandID, sel.Read)
			}
			return &exit.Error{Code: 1, Err: exit.ErrQuiet}
		}
		if err := WriteDetail(stdout, sel.Failures, o.Unmask); err != nil {
			return err
		}
	default:
		if len(sel.Failures) > 0 {
			write := WriteTable
			if sel.Open {
				write = WriteOpenTable
			}
			if err := write(stdout, sel.Failures, o.Unmask); err != nil {
				return err
			}
			fmt.Fprintln(stdout)
		}
		fmt.Fprintln(stdout, MatchLine(sel))
	}
	if sel.Unreadable > 0 {
		fmt.Fprintf(stderr, "warning: %d events in the stream were not readable contract events and were passed over\n", sel.Unreadable)
	}
	return nil
}

// Select reads the failures flt selects: the open failures, or with
// history every failure of the event history. A missing stream exits
// with 2.
func Select(ctx context.Context, js jetstream.JetStream, flt Filter, history bool) (*Selection, error) {
	var sel *Selection
	var err error
	if history {
		sel, err = Scan(ctx, js, flt)
	} else {
		sel, err = Open(ctx, js, flt)
	}
	if errors.Is(err, ErrNoStream) || errors.Is(err, failstore.ErrNoStore) {
		return nil, &exit.Error{Code: 2, Err: client.ErrNoStreams}
	}
	if err != nil {
		return nil, fmt.Errorf("read failures: %w", err)
	}
	return sel, nil
}

// searchWithProgress finds the open failures that hold text (Find),
// showing a scan's progress on a terminal and saying on stderr which way
// it was answered. A missing store exits with 2.
func searchWithProgress(ctx context.Context, js jetstream.JetStream, flt Filter, text string, contains bool, stderr io.Writer) (*Selection, error) {
	line := progress.NewLine(stderr)
	found, err := Find(ctx, js, flt, text, contains, func(read, held uint64) {
		line.Show(fmt.Sprintf("searched %d of %d open failures", read, held))
	})
	line.Clear()
	if errors.Is(err, failstore.ErrNoStore) {
		return nil, &exit.Error{Code: 2, Err: client.ErrNoStreams}
	}
	if err != nil {
		return nil, fmt.Errorf("search failures: %w", err)
	}
	fmt.Fprintln(stderr, found.Note())
	return found.Selection, nil
}

// DiscardOpen is 'consumer failures discard' once its filter is checked:
// it removes the open failures flt selects (described: the filter as its
// flags, for the log and the audit trail), audited first, or with dryRun
// says how many it would. The failed events stay in the event history.
func DiscardOpen(ctx context.Context, js jetstream.JetStream, flt Filter, described string, dryRun bool, stdout, stderr io.Writer) error {
	snap, err := failstore.Load(ctx, js, flt.Select())
	if errors.Is(err, failstore.ErrNoStore) {
		return &exit.Error{Code: 2, Err: client.ErrNoStreams}
	}
	if err != nil {
		return fmt.Errorf("read open failures: %w", err)
	}
	chosen := snap.Failures
	if flt.Limit > 0 && len(chosen) > flt.Limit {
		chosen = chosen[:flt.Limit]
	}
	if dryRun {
		fmt.Fprintf(stdout, "would discard %s (%s); nothing was discarded\n", OpenFailures(len(chosen)), described)
		return nil
	}
	var ids []string // a bulk discard's filter and count say what
	if len(chosen) <= 20 {
		for _, f := range chosen {
			ids = append(ids, f.CommandID)
		}
	}
	if _, err := audit.WriteFromCommandLine(ctx, js, audit.Entry{Action: audit.ActionDiscard, CommandIDs: ids, Filter: described, Count: len(chosen)}); err != nil {
		return err
	}
	n, err := failstore.Discard(ctx, js, chosen)
	who, _ := audit.CommandLine()
	slog.New(slog.NewTextHandler(stderr, nil)).Info("discarded open failures", "user", who, "filter", described, "selected", len(chosen), "discarded", n)
	if err != nil {
		return fmt.Errorf("discard: %d of %d discarded: %w", n, len(chosen), err)
	}
	fmt.Fprintf(stdout, "discarded %s (%s); their contact.failed events stay in %s\n", OpenFailures(n), described, provision.EventStream)
	return nil
}
