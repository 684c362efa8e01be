package audit

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/user"
	"slices"
	"text/tabwriter"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// CommandLine returns who runs the command line and from where, for its
// entries: the operating system's user, and "cli@<host>".
func CommandLine() (who, from string) {
	who = "unknown"
	if u, err := user.Current(); err == nil {
		who = u.Username
	} else if n := os.Getenv("USER"); n != "" {
		who = n
	}
	host, err := os.Hostname()
	if err != nil {
		host = "unknown"
	}
	return who, "cli@" + host
}

// WriteFromCommandLine writes e as the command line's: its user and
// host, Source "cli". It is the one call a command-line action (replay,
// discard, repair, import, repair-import, CSV download) makes before it
// takes effect; an error wraps ErrNotWritten, and the action must not
// happen.
func WriteFromCommandLine(ctx context.Context, js jetstream.JetStream, e Entry) (uint64, error) {
	e.User, e.From = CommandLine()
	e.Source = "cli"
	return (&Writer{JS: js}).Write(ctx, e)
}

// Print lists the entries q selects, oldest first, as a table or, with
// asJSON, one JSON object a line ('consumer audit').
func Print(ctx context.Context, js jetstream.JetStream, q Query, asJSON bool, w io.Writer) error {
	p, err := List(ctx, js, q)
	if err != nil {
		return err
	}
	entries := slices.Clone(p.Entries)
	slices.Reverse(entries)
	if asJSON {
		enc := json.NewEncoder(w)
		for _, e := range entries {
			if err := enc.Encode(e); err != nil {
				return err
			}
		}
		return nil
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "TIME\tUSER\tFROM\tACTION\tCOUNT\tWHAT\tDETAIL")
	for _, e := range entries {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%d\t%s\t%s\n", e.Time.UTC().Format(time.RFC3339), e.User, e.From, e.Action, e.Count, dash(e.What()), dash(e.Detail))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if len(entries) == 0 {
		fmt.Fprintln(w, "no audit entry matches")
	}
	return nil
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
