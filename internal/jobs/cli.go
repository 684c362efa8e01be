package jobs

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/contactrelay/contactrelay/client"
	"github.com/contactrelay/contactrelay/internal/audit"
	"github.com/contactrelay/contactrelay/internal/exit"
	"github.com/contactrelay/contactrelay/internal/failstore"
	"github.com/contactrelay/contactrelay/internal/progress"
	"github.com/contactrelay/contactrelay/internal/provision"
	"github.com/contactrelay/contactrelay/internal/replay"
)

// CommandLine is a job the command line starts or resumes ('consumer
// replay', 'consumer failures discard').
type CommandLine struct {
	// Spec is the new job; Resume, when set, is the id of a job to take
	// over and finish instead, of Spec.Kind.
	Spec   Spec
	Resume string
	// Unmask shows emails and mobiles in full in what a replay prints.
	Unmask bool
}

// RunFromCommandLine starts (or resumes) a job, writes its audit entry
// before it acts, and runs it to its end in this process: a progress bar
// on stderr (on a terminal), a line per replayed failure on stdout, the
// job's id first and its summary last. Interrupted (ctx), the job is
// saved as stopped, to be resumed with --resume; killed, it is resumed
// once its lease has run out. Exit status: 1 when a publish failed or a
// replay was refused, or the job is held by another process or finished;
// 2 when the streams or the bucket do not exist.
func RunFromCommandLine(ctx context.Context, js jetstream.JetStream, c CommandLine, stdout, stderr io.Writer) error {
	if _, err := js.Stream(ctx, provision.CommandStream); errors.Is(err, jetstream.ErrStreamNotFound) {
		return &exit.Error{Code: 2, Err: client.ErrNoStreams}
	}
	st, err := OpenStore(ctx, js)
	if err != nil {
		return &exit.Error{Code: 2, Err: err}
	}
	line := progress.NewLine(stderr)
	var shown time.Time
	r := &Runner{JS: js, Store: st,
		OnItem: func(it replay.Item) {
			line.Clear()
			replay.WriteItem(stdout, stderr, it, false, false, c.Unmask)
		},
		Progress: func(j Job) {
			if now := time.Now(); now.Sub(shown) >= 100*time.Millisecond {
				shown = now
				line.Show(Bar(&j))
			}
		},
	}
	who, from := audit.CommandLine()
	var j *Job
	if c.Resume != "" {
		if j, err = st.Get(ctx, c.Resume); err == nil && j.Kind != c.Spec.Kind {
			return &exit.Error{Code: 2, Err: fmt.Errorf("job %s is a %s: resume it with 'consumer %s --resume %s'", j.ID, j.Kind, commandOf(j.Kind), j.ID)}
		}
		if err == nil {
			j, err = r.Take(ctx, c.Resume)
		}
		if err != nil {
			return resumeError(err)
		}
		if _, err := audit.WriteFromCommandLine(ctx, js, entry(j, fmt.Sprintf("resumes job %s at %d of %s", j.ID, j.Counts.Selected, total(j)))); err != nil {
			_, _ = st.Stop(ctx, j.ID)
			return err
		}
		fmt.Fprintf(stdout, "job %s: resuming the %s of %s (%s) at %d done, %s\n", j.ID, j.Kind, total(j), describe(j), j.Counts.Selected, pace(j.Rate))
	} else {
		c.Spec.User, c.Spec.From = who, from
		if j, err = r.Create(ctx, c.Spec); err != nil {
			if errors.Is(err, failstore.ErrNoStore) {
				return &exit.Error{Code: 2, Err: client.ErrNoStreams}
			}
			return err
		}
		if _, err := audit.WriteFromCommandLine(ctx, js, entry(j, "job "+j.ID)); err != nil {
			_, _ = st.Stop(ctx, j.ID)
			return err
		}
		fmt.Fprintf(stdout, "job %s: %s of %s (%s), %s; 'consumer jobs' shows it, '--resume %s' resumes it if stopped\n",
			j.ID, j.Kind, total(j), describe(j), pace(j.Rate), j.ID)
	}
	done, err := r.Run(ctx, j)
	line.Clear()
	if done == nil {
		done = j
	}
	switch {
	case errors.Is(err, ErrStopped), errors.Is(err, ErrLeaseLost), ctx.Err() != nil:
		fmt.Fprintf(stderr, "job %s %s at %d of %s; resume it with 'consumer %s --resume %s'\n",
			done.ID, map[bool]string{true: "was taken over by another process", false: "stopped"}[errors.Is(err, ErrLeaseLost)],
			done.Counts.Selected, total(done), commandOf(done.Kind), done.ID)
	}
	if done.Kind == KindDiscard {
		if err == nil || done.Counts.Discarded > 0 {
			slog.New(slog.NewTextHandler(stderr, nil)).Info("discarded open failures", "user", who, "filter", done.Described, "job", done.ID,
				"selected", done.Counts.Selected, "discarded", done.Counts.Discarded)
		}
		if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "discarded %s (%s); their contact.failed events stay in %s\n", replay.OpenFailures(done.Counts.Discarded), done.Described, provision.EventStream)
		return nil
	}
	return Summary(done).Conclude(stdout, err)
}

// resumeError gives a refused resume its exit status: 1 for a job that
// is held or finished, 2 for one that does not exist.
func resumeError(err error) error {
	var leased *LeasedError
	switch {
	case errors.As(err, &leased), errors.Is(err, ErrFinished):
		return &exit.Error{Code: 1, Err: err}
	case errors.Is(err, ErrNotFound):
		return &exit.Error{Code: 2, Err: fmt.Errorf("%w ('consumer jobs' lists them)", err)}
	}
	return err
}

// entry is the audit entry of a job's start or resume.
func entry(j *Job, detail string) audit.Entry {
	e := audit.Entry{Action: audit.ActionReplay, Filter: j.Described, Count: j.Total,
		Range: fmt.Sprintf("%s seq 1..%d", failstore.Stream, j.StartSeq), Detail: detail + ", " + pace(j.Rate)}
	if j.Kind == KindDiscard {
		e.Action = audit.ActionDiscard
	}
	return e
}

func commandOf(k Kind) string {
	if k == KindDiscard {
		return "failures discard"
	}
	return "replay"
}

func describe(j *Job) string {
	d := j.Described
	if d == "" {
		d = "every open failure"
	}
	if j.All {
		d += ", not retryable too"
	}
	return d
}

func total(j *Job) string {
	if j.Total > 0 {
		return replay.OpenFailures(j.Total)
	}
	return "the open failures selected"
}

func pace(rate float64) string {
	if rate <= 0 {
		return "as fast as the server answers"
	}
	return fmt.Sprintf("%g a second", rate)
}

// Summary returns a replay job's counts as a replay's summary.
func Summary(j *Job) replay.Summary {
	c := j.Counts
	s := replay.Summary{Selected: c.Selected, Replayed: c.Sent, AlreadySent: c.AlreadySent, Refused: c.Refused,
		PublishFailed: c.PublishFailed, Skipped: map[replay.Skip]int{}}
	for k, n := range c.Skipped {
		s.Skipped[replay.Skip(k)] = n
	}
	return s
}

// Bar is a job's progress as one line: a bar when its total is known,
// and its counts.
func Bar(j *Job) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s %s ", j.Kind, j.ID)
	if j.Total > 0 {
		const width = 20
		done := min(j.Counts.Selected, j.Total)
		n := done * width / j.Total
		fmt.Fprintf(&b, "[%s%s] %3d%% %d/%d", strings.Repeat("#", n), strings.Repeat("-", width-n), done*100/j.Total, done, j.Total)
	} else {
		fmt.Fprintf(&b, "%d done", j.Counts.Selected)
	}
	c := j.Counts
	if j.Kind == KindDiscard {
		fmt.Fprintf(&b, ": %d discarded, %d gone already", c.Discarded, c.SkippedTotal())
	} else {
		fmt.Fprintf(&b, ": %d sent, %d already sent, %d refused, %d skipped, %d failed to publish", c.Sent, c.AlreadySent, c.Refused, c.SkippedTotal(), c.PublishFailed)
	}
	return b.String()
}

// Print lists the jobs the bucket holds, newest first, as a table or,
// with asJSON, one JSON object a line ('consumer jobs').
func Print(ctx context.Context, js jetstream.JetStream, asJSON bool, w io.Writer) error {
	st, err := OpenStore(ctx, js)
	if err != nil {
		return &exit.Error{Code: 2, Err: err}
	}
	all, err := st.List(ctx)
	if err != nil {
		return err
	}
	if asJSON {
		enc := json.NewEncoder(w)
		for _, j := range all {
			if err := enc.Encode(j); err != nil {
				return err
			}
		}
		return nil
	}
	if len(all) == 0 {
		_, err := fmt.Fprintln(w, "no jobs")
		return err
	}
	now := time.Now()
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tKIND\tSTATE\tDONE\tSELECTED\tUSER\tCREATED\tOWNER")
	for _, j := range all {
		state := string(j.State)
		if j.State == Running && !j.Held(now) {
			state = "running, lease expired"
		}
		owner := ""
		if j.Held(now) {
			owner = j.Owner + " until " + j.LeaseUntil.UTC().Format(time.RFC3339)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", j.ID, j.Kind, state, strings.TrimPrefix(Bar(j), string(j.Kind)+" "+j.ID+" "),
			describe(j), j.User, j.Created.UTC().Format(time.RFC3339), owner)
	}
	return tw.Flush()
}

// StopFromCommandLine stops a running job ('consumer jobs stop'), with
// its audit entry first.
func StopFromCommandLine(ctx context.Context, js jetstream.JetStream, id string, stdout io.Writer) error {
	st, err := OpenStore(ctx, js)
	if err != nil {
		return &exit.Error{Code: 2, Err: err}
	}
	j, err := st.Get(ctx, id)
	if err != nil {
		return resumeError(err)
	}
	if _, err := audit.WriteFromCommandLine(ctx, js, audit.Entry{Action: audit.ActionCancelReplay, Filter: j.Described, Count: j.Total, Detail: fmt.Sprintf("stop %s job %s", j.Kind, j.ID)}); err != nil {
		return err
	}
	j, err = st.Stop(ctx, id)
	if err != nil {
		return resumeError(err)
	}
	fmt.Fprintf(stdout, "job %s stopped at %d of %s (its process stops within a second); resume it with 'consumer %s --resume %s'\n",
		j.ID, j.Counts.Selected, total(j), commandOf(j.Kind), j.ID)
	return nil
}
