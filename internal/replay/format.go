package replay

import (
	"cmp"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"regexp"
	"slices"
	"strings"
	"text/tabwriter"
	"time"
	"unicode"

	"github.com/contactrelay/contactrelay/contact"
	"github.com/contactrelay/contactrelay/internal/exit"
)

// The text below is written for the consumer command line (consumer
// failures, consumer replay), whose commands it suggests.

// maxMessage is the most characters of a message a table row shows.
const maxMessage = 64

// timeFormat is how times are shown: RFC 3339, in UTC, to the second.
const timeFormat = time.RFC3339

// WriteTable writes failures as an aligned table, one line each: time,
// commandId, provider, reason, retryable, what supersedes it, and the
// message on one line, shortened. Unless unmask, personal data is masked
// (MaskFailed).
func WriteTable(w io.Writer, failures []*Failure, unmask bool) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "TIME\tCOMMAND ID\tPROVIDER\tREASON\tRETRYABLE\tSUPERSEDED\tMESSAGE")
	for _, f := range failures {
		d := shown(f.Data, unmask)
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n",
			f.Event.Time.UTC().Format(timeFormat), oneLine(f.CommandID(), 0), orDash(d.Provider),
			d.Reason, yesNo(d.Retryable), supersededWord(f), oneLine(d.Message, maxMessage))
	}
	return tw.Flush()
}

// WriteOpenTable is WriteTable for open failures, which nothing
// supersedes: without that column.
func WriteOpenTable(w io.Writer, failures []*Failure, unmask bool) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "TIME\tCOMMAND ID\tPROVIDER\tREASON\tRETRYABLE\tMESSAGE")
	for _, f := range failures {
		d := shown(f.Data, unmask)
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n",
			f.Event.Time.UTC().Format(timeFormat), oneLine(f.CommandID(), 0), orDash(d.Provider),
			d.Reason, yesNo(d.Retryable), oneLine(d.Message, maxMessage))
	}
	return tw.Flush()
}

// MatchLine sums up a selection in one line, such as "37 failures match:
// exhausted 30, invalid 5, rejected 2; 3 superseded (by a later
// contact.created 3)".
func MatchLine(sel *Selection) string {
	what := "failure"
	if sel.Open {
		what = "open failure"
	}
	if sel.Matched == 0 {
		return "no " + what + "s match"
	}
	var b strings.Builder
	if sel.Matched == 1 {
		fmt.Fprintf(&b, "1 %s matches: ", what)
	} else {
		fmt.Fprintf(&b, "%d %ss match: ", sel.Matched, what)
	}
	rs := slices.Collect(maps.Keys(sel.ByReason))
	slices.SortFunc(rs, func(a, c contact.Reason) int {
		return cmp.Or(cmp.Compare(sel.ByReason[c], sel.ByReason[a]), cmp.Compare(a, c))
	})
	for i, r := range rs {
		if i > 0 {
			b.WriteString(", ")
		}
		fmt.Fprintf(&b, "%s %d", r, sel.ByReason[r])
	}
	if n := sel.SupersededByCreated + sel.SupersededByFailure; n > 0 {
		var parts []string
		if sel.SupersededByCreated > 0 {
			parts = append(parts, fmt.Sprintf("by a later contact.created %d", sel.SupersededByCreated))
		}
		if sel.SupersededByFailure > 0 {
			parts = append(parts, fmt.Sprintf("by a later failure %d", sel.SupersededByFailure))
		}
		fmt.Fprintf(&b, "; %d superseded (%s)", n, strings.Join(parts, ", "))
	}
	if len(sel.Failures) < sel.Matched {
		fmt.Fprintf(&b, "; the %d newest shown (--limit)", len(sel.Failures))
	}
	if sel.More {
		b.WriteString("; the search stopped at --limit: older ones may match too")
	}
	return b.String()
}

// WriteDetail writes the newest of failures whole: its fields, field
// errors, the provider's answer, what supersedes it, what to do next and
// its command pretty-printed, with personal data masked unless unmask
// (MaskFailed); then a line for each older failure.
func WriteDetail(w io.Writer, failures []*Failure, unmask bool) error {
	if len(failures) == 0 {
		return nil
	}
	f, d := failures[0], shown(failures[0].Data, unmask)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	row := func(k, format string, args ...any) {
		fmt.Fprintf(tw, "  %s\t"+format+"\n", append([]any{k}, args...)...)
	}
	fmt.Fprintf(tw, "contact.failed %s\n", f.Event.ID)
	row("time", "%s (%s sequence %d)", f.Event.Time.UTC().Format(timeFormat), cmp.Or(f.Stream, "stream"), f.Seq)
	row("commandId", "%s", f.CommandID())
	row("provider", "%s", orDash(d.Provider))
	if d.Retryable {
		row("reason", "%s (retryable)", d.Reason)
	} else {
		row("reason", "%s (not retryable)", d.Reason)
	}
	row("attempts", "%d (create calls in this generation)", d.Attempts)
	if d.ReplayOf != "" {
		row("replayOf", "%s", d.ReplayOf)
	}
	row("message", "%s", oneLine(d.Message, 0))
	if u := d.Upstream; u != nil {
		row("upstream", "%s", upstreamText(u))
	}
	for i, fe := range d.Errors {
		k := ""
		if i == 0 {
			k = "errors"
		}
		row(k, "%s (%s): %s", fe.Field, fe.Rule, fe.Message)
	}
	if len(d.Metadata) > 0 {
		var kv []string
		for _, k := range slices.Sorted(maps.Keys(d.Metadata)) {
			kv = append(kv, k+"="+d.Metadata[k])
		}
		row("metadata", "%s", strings.Join(kv, " "))
	}
	row("superseded", "%s", supersededText(f))
	row("next", "%s", nextStep(f))
	if err := tw.Flush(); err != nil {
		return err
	}
	if err := writeCommand(w, d, len(f.Data.CommandRaw)); err != nil {
		return err
	}
	if older := failures[1:]; len(older) > 0 {
		fmt.Fprintf(w, "\nolder failures of %s (%d):\n", f.CommandID(), len(older))
		tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
		for _, o := range older {
			fmt.Fprintf(tw, "  %s\t%s\t%s\t%s\n", o.Event.Time.UTC().Format(timeFormat), o.Event.ID, o.Data.Reason, oneLine(shown(o.Data, unmask).Message, maxMessage))
		}
		return tw.Flush()
	}
	return nil
}

// writeCommand writes the failure's command, indented, or its raw body
// (rawSize bytes before any masking), as d holds them.
func writeCommand(w io.Writer, d contact.Failed, rawSize int) error {
	switch {
	case len(d.Command) > 0:
		var v any
		if err := json.Unmarshal(d.Command, &v); err != nil {
			v = string(d.Command)
		}
		out, err := encodeJSON(v, "  ")
		if err != nil {
			return err
		}
		_, err = fmt.Fprintf(w, "  command:\n%s\n", indent(string(out), "    "))
		return err
	case len(d.CommandRaw) > 0:
		_, err := fmt.Fprintf(w, "  commandRaw (%d bytes): %s\n", rawSize, oneLine(string(d.CommandRaw), 200))
		return err
	}
	_, err := fmt.Fprintln(w, "  command:    (none)")
	return err
}

// jsonFailure is a failure as one line of JSON: the failed event's data
// with the event's id, time and stream sequence, and what supersedes it.
type jsonFailure struct {
	ID   string    `json:"id"`
	Time time.Time `json:"time"`
	// Seq is the sequence in Stream.
	Seq    uint64 `json:"seq"`
	Stream string `json:"stream,omitempty"`
	contact.Failed
	Superseded   bool     `json:"superseded"`
	CreatedAfter *Outcome `json:"createdAfter,omitempty"`
	FailedAfter  *Outcome `json:"failedAfter,omitempty"`
}

// WriteJSON writes failures as JSON lines, one object each: the failed
// event's data fields with id, time, seq, stream, superseded, createdAfter and
// failedAfter. Unless unmask, personal data is masked (MaskFailed).
func WriteJSON(w io.Writer, failures []*Failure, unmask bool) error {
	for _, f := range failures {
		jf := jsonFailure{ID: f.Event.ID, Time: f.Event.Time, Seq: f.Seq, Stream: f.Stream, Failed: shown(f.Data, unmask),
			Superseded: f.Superseded() != nil, CreatedAfter: f.CreatedAfter, FailedAfter: f.FailedAfter}
		line, err := encodeJSON(jf, "")
		if err != nil {
			return fmt.Errorf("encode failure %s: %w", f.Event.ID, err)
		}
		if _, err := fmt.Fprintf(w, "%s\n", line); err != nil {
			return err
		}
	}
	return nil
}

// Conclude writes the summary of a replay that ended with err (Format)
// and returns what the command line answers: err, else an error when a
// replay failed to publish, else exit 1 without a word when one was
// refused (another command holds the failure's generation; each refusal
// was said on stderr), else nil.
func (s Summary) Conclude(w io.Writer, err error) error {
	if ferr := s.Format(w); ferr != nil && err == nil {
		err = ferr
	}
	switch {
	case err != nil:
		return err
	case s.PublishFailed > 0:
		return fmt.Errorf("%d of %d replays failed to publish", s.PublishFailed, s.Replayed+s.AlreadySent+s.Refused+s.PublishFailed)
	case s.Refused > 0:
		return &exit.Error{Code: 1, Err: exit.ErrQuiet}
	}
	return nil
}

// Format writes the summary: what was selected, replayed, already sent
// or refused, skipped and why, and what failed.
func (s Summary) Format(w io.Writer) error {
	var b strings.Builder
	verb := "replayed"
	if s.DryRun {
		b.WriteString("dry run, nothing sent: ")
		verb = "would be replayed"
	}
	fmt.Fprintf(&b, "%d selected: %d %s", s.Selected, s.Replayed, verb)
	if s.AlreadySent > 0 {
		fmt.Fprintf(&b, ", %d already sent", s.AlreadySent)
	}
	if s.Refused > 0 {
		fmt.Fprintf(&b, ", %d refused", s.Refused)
	}
	fmt.Fprintf(&b, ", %d skipped, %d failed to publish", s.SkippedTotal(), s.PublishFailed)
	if s.NotAttempted > 0 {
		fmt.Fprintf(&b, ", %d not attempted (interrupted)", s.NotAttempted)
	}
	b.WriteString("\n")
	for _, k := range skipOrder {
		n := s.Skipped[k]
		if n == 0 {
			continue
		}
		fmt.Fprintf(&b, "  skipped %d: %s", n, k)
		switch k {
		case SkipNotRetryable:
			b.WriteString(" (--all includes them; --set repairs one)")
		case SkipSupersededByCreated:
			b.WriteString(" (the contact exists; --include-superseded repeats its contact.created)")
		case SkipSupersededByFailure:
			b.WriteString(" (only a command's newest failure is replayed)")
		}
		b.WriteString("\n")
	}
	if s.AlreadySent > 0 {
		fmt.Fprintf(&b, "  already sent %d: the failure was replayed before, within the command stream's duplicate window; not stored again\n", s.AlreadySent)
	}
	if s.Refused > 0 {
		fmt.Fprintf(&b, "  refused %d: a different command was sent for the failure before (another repair, or one since settled), within the command stream's duplicate window; not stored\n", s.Refused)
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// supersededWord is a table's word for what supersedes a failure.
func supersededWord(f *Failure) string {
	switch {
	case f.CreatedAfter != nil:
		return "by created"
	case f.FailedAfter != nil:
		return "by failure"
	}
	return "no"
}

// supersededText says in full what supersedes a failure.
func supersededText(f *Failure) string {
	switch o := f.Superseded(); {
	case o == nil:
		return "no: this is the command's newest outcome"
	case o.Type == contact.SubjectCreated:
		return fmt.Sprintf("by contact.created %s at %s: the contact exists", o.ID, o.Time.UTC().Format(timeFormat))
	default:
		return fmt.Sprintf("by a later failure %s at %s", o.ID, o.Time.UTC().Format(timeFormat))
	}
}

// nextStep suggests what to do about a failure.
func nextStep(f *Failure) string {
	id := ShellQuote(f.CommandID())
	switch d := f.Data; {
	case f.CreatedAfter != nil:
		return "nothing: the contact was created"
	case f.FailedAfter != nil:
		return "see the newer failure"
	case d.Reason == contact.ReasonMalformed:
		return "nothing to replay: publish a corrected command"
	case d.Reason == contact.ReasonConflict:
		return "nothing to replay: the commandId belongs to other content; publish this command under a new commandId"
	case d.Reason == contact.ReasonAmbiguous:
		return "check the provider for the contact; if it is there, nothing more is needed, else tell whoever runs contactrelay"
	case d.Retryable:
		return "consumer replay --command-id " + id
	case len(d.Errors) > 0:
		var sets []string
		for _, fe := range d.Errors {
			sets = append(sets, "--set "+ShellQuote(fe.Field+"=VALUE"))
		}
		return "consumer replay --command-id " + id + " " + strings.Join(slices.Compact(sets), " ")
	default:
		return "consumer replay --command-id " + id + " --set field=value (or --all to replay it unchanged)"
	}
}

// upstreamText describes a provider's last answer in one line.
func upstreamText(u *contact.Upstream) string {
	var parts []string
	if u.HTTPStatus != 0 {
		parts = append(parts, fmt.Sprintf("HTTP %d", u.HTTPStatus))
	}
	if u.Code != "" {
		parts = append(parts, "code "+u.Code)
	}
	s := strings.Join(parts, ", ")
	if u.Message != "" {
		s += ": " + oneLine(u.Message, 0)
	}
	if u.RequestID != "" {
		s += " (requestId " + u.RequestID + ")"
	}
	return s
}

// shown is a failure's data as the command line shows it: masked
// (MaskFailed) unless unmask.
func shown(d contact.Failed, unmask bool) contact.Failed {
	if unmask {
		return d
	}
	return MaskFailed(d)
}

// oneLine turns white space and control characters into single spaces and
// shortens s to max characters (no limit when max is 0).
func oneLine(s string, max int) string {
	s = strings.Join(strings.FieldsFunc(s, func(r rune) bool { return unicode.IsSpace(r) || unicode.IsControl(r) }), " ")
	if r := []rune(s); max > 0 && len(r) > max {
		return string(r[:max-1]) + "…"
	}
	return s
}

func indent(s, prefix string) string {
	return prefix + strings.ReplaceAll(s, "\n", "\n"+prefix)
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}

// plainWord is what a shell takes as it is.
var plainWord = regexp.MustCompile(`^[A-Za-z0-9_@%+=:,./-]+$`)

// ShellQuote quotes s for a POSIX shell where it needs it.
func ShellQuote(s string) string {
	if plainWord.MatchString(s) {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}
