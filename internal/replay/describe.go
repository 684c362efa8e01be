package replay

import (
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	"github.com/contactrelay/contactrelay/contact"
)

// WriteItem tells what became of one selected failure: replayed, already
// sent or (in a dry run) what would be sent on stdout; failed publishes
// and refusals (of a repair, with repair set) on stderr. Skipped ones are
// shown in a dry run only; the summary counts them. With unmask, a dry run
// shows the command's personal data in full.
func WriteItem(stdout, stderr io.Writer, it Item, dryRun, repair, unmask bool) {
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
			body = MaskCommand(body)
		}
		fmt.Fprintf(stdout, "would replay %s to %s\n  %s: %s\n  %s: %s\n  %s\n", what, it.Msg.Subject,
			contact.HeaderMsgID, it.Msg.Header.Get(contact.HeaderMsgID),
			contact.HeaderReplayOf, it.Msg.Header.Get(contact.HeaderReplayOf), body)
	case it.Err != nil:
		fmt.Fprintf(stderr, "failed to publish %s: %v\n", what, it.Err)
	case it.Refused && repair:
		fmt.Fprintf(stderr, "repair of %s refused, nothing was sent: failure %s %s, and that command's outcome stands; the stream dropped this one as a duplicate\n",
			f.CommandID(), f.Event.ID, it.Earlier.What())
	case it.Refused:
		fmt.Fprintf(stderr, "not replayed %s: it %s, and that command's outcome stands; the stream dropped this one as a duplicate\n",
			what, it.Earlier.What())
	case it.Earlier != nil:
		fmt.Fprintf(stdout, "already sent %s: it %s; the stream dropped this one as a duplicate\n", what, it.Earlier.What())
	default:
		fmt.Fprintf(stdout, "replayed %s as %s seq %d\n", what, it.Ack.Stream, it.Ack.Sequence)
	}
}

// OpenFailures counts open failures in words: "1 open failure", "2 open
// failures".
func OpenFailures(n int) string {
	if n == 1 {
		return "1 open failure"
	}
	return fmt.Sprintf("%d open failures", n)
}

// Flags writes the filter as the flags of 'consumer failures' that select
// it ("" for none): for the log of a discard, and to tell a filtered
// discard from an unfiltered one.
func (flt Filter) Flags() string {
	var parts []string
	add := func(name, value string) {
		if value != "" {
			parts = append(parts, "--"+name+"="+value)
		}
	}
	add("command-id", flt.CommandID)
	var reasons []string
	for _, r := range flt.Reasons {
		reasons = append(reasons, string(r))
	}
	add("reason", strings.Join(reasons, ","))
	add("provider", strings.Join(flt.Providers, ","))
	if !flt.Since.IsZero() {
		add("since", flt.Since.UTC().Format(time.RFC3339))
	}
	if !flt.Until.IsZero() {
		add("until", flt.Until.UTC().Format(time.RFC3339))
	}
	if flt.Limit > 0 {
		add("limit", strconv.Itoa(flt.Limit))
	}
	return strings.Join(parts, " ")
}
