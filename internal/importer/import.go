package importer

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/time/rate"

	"github.com/contactrelay/contactrelay/client"
	"github.com/contactrelay/contactrelay/internal/audit"
	"github.com/contactrelay/contactrelay/internal/config"
	"github.com/contactrelay/contactrelay/internal/natsconn"
	"github.com/contactrelay/contactrelay/internal/provision"
	"github.com/contactrelay/contactrelay/internal/sheet"
)

// importOptions are import's flags.
type importOptions struct {
	file, format, batch, results string
	encoding                     string // encodingUTF8 or encodingLatin1
	wait, sendInvalid            bool
	timeout, progress            time.Duration
	rate                         float64
	inFlight                     int
	columns                      columnOptions
}

// maxInvalidShown bounds the invalid rows named on stderr; the results
// file has them all.
const maxInvalidShown = 50

// Run is 'consumer import FILE': it publishes a command for each row of a
// CSV or NDJSON file (o.File, or stdin for -), each checked with the
// service's rules first, and with o.Wait writes every row's outcome to
// o.Results. It reports invalid rows and progress on stderr and its
// summary on stdout, and returns the import's exit status (an error with
// ExitCode: 1 when a row failed or was invalid, 2 when one has no
// outcome or the import could not run, 130 when interrupted). With
// o.Repair it is RepairRun.
func Run(ctx context.Context, o Options, cfg config.Config, stdin io.Reader, stdout, stderr io.Writer) error {
	if o.Repair != "" {
		return RepairRun(ctx, RepairOptions{File: o.Repair, Encoding: o.Encoding, DryRun: o.DryRun, Wait: o.Wait, Timeout: o.Timeout, Results: o.Results},
			cfg, stdin, stdout, stderr)
	}
	opts := o.importOptions()
	var err error
	in := stdin
	if opts.file != "-" {
		f, err := os.Open(opts.file)
		if err != nil {
			return &exitError{code: 2, err: err}
		}
		defer f.Close()
		in = f
	}
	in = decodeInput(in, opts.encoding)
	var (
		rows    rowReader
		columns []string // the CSV's header, for the results
	)
	if opts.format == "csv" {
		c, err := newCSVRows(in, opts.batch, opts.columns)
		if err != nil {
			return &exitError{code: 2, err: fmt.Errorf("%s: %w", opts.file, err)}
		}
		c.noteColumns(stderr)
		columns = c.names
		if !c.hasID && opts.batch == "" {
			return &exitError{code: 2, err: fmt.Errorf("%s has no commandId column: give --batch NAME to derive each row's from the batch's name and the row's content, so that running the import again creates nothing twice", opts.file)}
		}
		rows = c
	} else {
		rows = newNDJSONRows(in, opts.batch, opts.columns.provider)
	}
	var results *os.File
	if opts.results != "" {
		// Before anything is sent: a results file that cannot be written
		// is a usage error.
		if results, err = os.Create(opts.results); err != nil {
			return &exitError{code: 2, err: fmt.Errorf("--results: %w", err)}
		}
		defer results.Close()
	}

	nc, js, err := natsconn.ConnectCommands(ctx, cfg)
	if err != nil {
		return err
	}
	defer nc.Close()
	c := client.New(js, client.Config{DefaultProvider: cfg.DefaultProvider})
	if err := c.CheckStreams(ctx); err != nil {
		return &exitError{code: 2, err: err}
	}
	// The audit trail says who imported what before anything is sent.
	if _, err := audit.WriteFromCommandLine(ctx, js, audit.Entry{Action: audit.ActionImport, Detail: importDetail(opts)}); err != nil {
		return err
	}
	sp, err := newSpool()
	if err != nil {
		return err
	}
	defer sp.close()
	// The progress line and the invalid rows' lines come from two
	// goroutines.
	imp := &importRun{opts: opts, c: c, t: newImportTracker(sp), stderr: &lockedWriter{w: stderr}, start: time.Now()}
	imp.t.setColumns(columns, opts.format != "csv")
	if opts.wait {
		// Outcomes from now on; those older are read only when a row
		// turns out to be a duplicate (see lookBack).
		w, err := c.Watch(ctx, imp.start)
		if err != nil {
			return &exitError{code: 2, err: err}
		}
		defer w.Stop()
		imp.changed = make(chan struct{}, 1)
		imp.watch(ctx, w)
		defer imp.stopLookBack()
	}
	stopProgress := imp.showProgress(ctx)
	runErr := imp.publishAll(ctx, rows)
	if runErr == nil && opts.wait {
		runErr = imp.awaitOutcomes(ctx)
	}
	stopProgress()
	if runErr != nil && !errors.Is(runErr, errTimedOut) {
		if ctx.Err() != nil {
			imp.writeResults(results, "interrupted before its outcome came")
			return &exitError{code: exitInterrupted, err: fmt.Errorf("interrupted: the rows published so far have their outcome later (run the same import again to resume): %w", runErr)}
		}
		imp.writeResults(results, "the import stopped before its outcome came")
		return runErr
	}
	pending := "no outcome within --timeout"
	if !opts.wait {
		pending = ""
	}
	if err := imp.writeResults(results, pending); err != nil {
		return err
	}
	return imp.summary(stdout)
}

// alreadySettled reports whether the service has an outcome for the
// command body holds, for this content, and then gives it to the row: a
// command settled before (an earlier run of the import, or another
// publisher) is not sent again. A record that cannot be read (the
// bucket's read permission, for one) is said once, and every command is
// then sent, for the service to answer from its record.
func (imp *importRun) alreadySettled(ctx context.Context, first int32, body []byte) bool {
	if imp.noRecords.Load() {
		return false
	}
	o, ok, err := imp.c.Settled(ctx, body)
	if err != nil {
		if ctx.Err() == nil && imp.noRecords.CompareAndSwap(false, true) {
			fmt.Fprintf(imp.stderr, "import: outcomes recorded before cannot be read (%v): every row is sent, and the service answers those it settled before from its record\n", err)
		}
		return false
	}
	if !ok {
		return false
	}
	if err := imp.t.settledBefore(first, o); err != nil {
		fmt.Fprintf(imp.stderr, "import: %v: sent again\n", err)
		return false
	}
	return true
}

// errTimedOut: --timeout passed with outcomes still to come.
var errTimedOut = errors.New("timed out")

// importRun is one import under way.
type importRun struct {
	opts   importOptions
	c      *client.Client
	t      *importTracker
	stderr io.Writer
	start  time.Time
	shown  int // invalid rows named on stderr
	// noRecords is set once the service's records cannot be read.
	noRecords atomic.Bool

	mu       sync.Mutex
	doneAt   time.Time // when the last row was published
	watchErr error
	changed  chan struct{} // a signal: an outcome came
	lookOnce sync.Once
	look     *client.Watch
}

// lookBack reads, besides what is new, the outcomes stored from before any
// row's command could have been stored, as far back as a duplicate's
// answer could reach: once, when the stream first says a row's command was
// a duplicate, so that a first import reads no old events at all.
func (imp *importRun) lookBack(ctx context.Context) {
	imp.lookOnce.Do(func() {
		w, err := imp.c.Watch(ctx, imp.start.Add(-2*provision.DuplicateWindow))
		imp.mu.Lock()
		defer imp.mu.Unlock()
		if err != nil {
			imp.watchErr = err
			return
		}
		imp.look = w
		imp.watch(ctx, w)
	})
}

func (imp *importRun) stopLookBack() {
	imp.mu.Lock()
	w := imp.look
	imp.mu.Unlock()
	if w != nil {
		w.Stop()
	}
}

// watch reads outcomes into the tracker until ctx ends or w stops.
func (imp *importRun) watch(ctx context.Context, w *client.Watch) {
	go func() {
		for {
			ev, _, err := w.Next(ctx)
			if err == nil {
				err = imp.t.observe(ev)
			}
			if err != nil {
				imp.mu.Lock()
				imp.watchErr = err
				imp.mu.Unlock()
				imp.signal()
				return
			}
			imp.signal()
		}
	}()
}

func (imp *importRun) signal() {
	select {
	case imp.changed <- struct{}{}:
	default:
	}
}

// publishAll reads every row, checks it and publishes its command with at
// most --in-flight publishes under way, at most --rate a second.
func (imp *importRun) publishAll(ctx context.Context, rows rowReader) error {
	type job struct {
		first int32
		id    string
		body  []byte
	}
	jobs := make(chan job, imp.opts.inFlight)
	var (
		wg       sync.WaitGroup
		fatalMu  sync.Mutex
		fatalErr error
	)
	fatal := func(err error) {
		fatalMu.Lock()
		if fatalErr == nil {
			fatalErr = err
		}
		fatalMu.Unlock()
	}
	pctx, cancel := context.WithCancel(ctx)
	defer cancel()
	for range imp.opts.inFlight {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := range jobs {
				if imp.alreadySettled(pctx, j.first, j.body) {
					continue
				}
				ack, err := imp.c.PublishMessage(pctx, client.Message{Body: j.body})
				if ack.Duplicate && imp.opts.wait {
					imp.lookBack(ctx)
				}
				if errors.Is(err, client.ErrNoStreams) {
					fatal(&exitError{code: 2, err: err})
					cancel()
				}
				if err := imp.t.acked(j.id, j.first, ack, err); err != nil {
					fatal(err)
					cancel()
				}
			}
		}()
	}
	var limiter *rate.Limiter
	if imp.opts.rate > 0 {
		limiter = rate.NewLimiter(rate.Limit(imp.opts.rate), 1)
	}
	readErr := func() error {
		for {
			row, err := rows.next()
			if errors.Is(err, io.EOF) {
				return nil
			}
			if errors.Is(err, errNeedBatch) {
				return &exitError{code: 2, err: fmt.Errorf("%s line %d %w", imp.opts.file, row.line, err)}
			}
			if err != nil {
				return &exitError{code: 2, err: fmt.Errorf("%s: %w", imp.opts.file, err)}
			}
			reason, message, fields := imp.check(row)
			first := int32(imp.t.counts().read)
			publish, err := imp.t.add(row, reason, message, fields)
			if err != nil {
				return err
			}
			if !publish {
				continue
			}
			if limiter != nil {
				if err := limiter.Wait(pctx); err != nil {
					return err
				}
			}
			select {
			case jobs <- job{first: first, id: row.commandID, body: row.body}:
			case <-pctx.Done():
				return pctx.Err()
			}
		}
	}()
	close(jobs)
	wg.Wait()
	imp.mu.Lock()
	imp.doneAt = time.Now()
	imp.mu.Unlock()
	if fatalErr != nil {
		return fatalErr
	}
	if readErr == nil && ctx.Err() != nil {
		return ctx.Err()
	}
	return readErr
}

// check applies the service's rules to a row: it returns the reason,
// message and broken fields of a row not to be published, or "".
func (imp *importRun) check(row importRow) (reason, message, fields string) {
	switch {
	case row.broken != "":
		reason, message = "invalid", row.broken
	default:
		err := imp.c.ValidateJSON(row.body)
		var ie *client.InvalidError
		if !errors.As(err, &ie) {
			return "", "", ""
		}
		reason, message, fields = string(ie.Reason), oneLine(ie.Message), sheet.Fields(ie.Errors)
	}
	send := imp.opts.sendInvalid && !row.unreadable
	if imp.shown < maxInvalidShown {
		what := "not published"
		if send {
			what = "published as it is (--send-invalid)"
		}
		fmt.Fprintf(imp.stderr, "line %d: %s, %s: %s\n", row.line, reason, what, message)
	} else if imp.shown == maxInvalidShown {
		fmt.Fprintln(imp.stderr, "… more invalid rows: the results file lists them all")
	}
	imp.shown++
	if send {
		return "", "", ""
	}
	return reason, message, fields
}

// oneLine writes a validation message (a first line, then a rule a line)
// on one line: "the command breaks 2 rules: a: …; b: …".
func oneLine(msg string) string {
	first, rest, _ := strings.Cut(msg, "\n")
	if rest == "" {
		return first
	}
	lines := strings.Split(rest, "\n")
	for i, l := range lines {
		lines[i] = strings.TrimSpace(l)
	}
	return first + " " + strings.Join(lines, "; ")
}

// awaitOutcomes waits until every published row has its outcome, or
// --timeout after the last publish.
func (imp *importRun) awaitOutcomes(ctx context.Context) error {
	deadline := time.NewTimer(imp.opts.timeout)
	defer deadline.Stop()
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	for {
		if imp.t.counts().open == 0 {
			return nil
		}
		imp.mu.Lock()
		werr := imp.watchErr
		imp.mu.Unlock()
		if werr != nil {
			return fmt.Errorf("reading the outcomes: %w", werr)
		}
		select {
		case <-imp.changed:
		case <-tick.C:
			imp.t.forget(time.Now().Add(-2 * provision.DuplicateWindow))
		case <-deadline.C:
			return errTimedOut
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// showProgress reports on stderr: on a terminal, a line rewritten a few
// times a second; otherwise a line every --progress. stop ends it.
func (imp *importRun) showProgress(ctx context.Context) (stop func()) {
	every, tty := imp.opts.progress, isTerminal(imp.stderr)
	if tty {
		every = 250 * time.Millisecond
	}
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		t := time.NewTicker(every)
		defer t.Stop()
		shown := false
		for {
			select {
			case <-t.C:
				shown = true
				if tty {
					fmt.Fprintf(imp.stderr, "\r%s\x1b[K", imp.progressLine())
				} else {
					fmt.Fprintln(imp.stderr, imp.progressLine())
				}
			case <-done:
				if tty && shown { // the last figures, on a line of their own
					fmt.Fprintf(imp.stderr, "\r%s\x1b[K\n", imp.progressLine())
				}
				return
			case <-ctx.Done():
				return
			}
		}
	}()
	return func() { close(done); wg.Wait() }
}

// progressLine says how far the import is: rows published, settled
// (created and failed), invalid, the rate and the time left.
func (imp *importRun) progressLine() string {
	n := imp.t.counts()
	elapsed := time.Since(imp.start)
	settled := n.created + n.failed
	done, todo := n.published, n.read-n.invalid // publishing
	if imp.opts.wait {
		done = settled // waiting
	}
	perSecond := float64(done) / max(elapsed.Seconds(), 0.001)
	eta := "?"
	imp.mu.Lock()
	reading := imp.doneAt.IsZero()
	imp.mu.Unlock()
	if !reading && perSecond > 0 {
		eta = (time.Duration(float64(todo-done)/perSecond) * time.Second).Round(time.Second).String()
	}
	return fmt.Sprintf("import: %d rows read, %d published, %d settled (%d created, %d failed), %d invalid, %.0f rows/s, ETA %s",
		n.read, n.published, settled, n.created, n.failed, n.invalid, perSecond, eta)
}

// writeResults writes the results file, if one was asked for.
func (imp *importRun) writeResults(f *os.File, pendingMessage string) error {
	if f == nil {
		return nil
	}
	if err := imp.t.writeResults(f, pendingMessage); err != nil {
		return fmt.Errorf("--results: %w", err)
	}
	return f.Sync()
}

// summary prints what the import did and returns its exit: 0 when every
// row was created (or, without --wait, published), 1 when any failed or
// was invalid, 2 when any has no outcome.
func (imp *importRun) summary(stdout io.Writer) error {
	n := imp.t.counts()
	took := time.Since(imp.start).Round(time.Millisecond)
	before := ""
	if n.known > 0 {
		before = fmt.Sprintf("; %d commands settled before, not sent again", n.known)
	}
	if imp.opts.wait {
		fmt.Fprintf(stdout, "imported %s: %d rows: %d created, %d failed, %d invalid, %d pending%s (%s)\n",
			imp.opts.file, n.read, n.created, n.failed, n.invalid, n.open+n.unsent, before, took)
	} else {
		fmt.Fprintf(stdout, "imported %s: %d rows: %d published, %d invalid, %d not published%s (%s); their outcomes come as events (--wait waits for them)\n",
			imp.opts.file, n.read, n.published, n.invalid, n.unsent, before, took)
	}
	if imp.opts.results != "" {
		fmt.Fprintf(stdout, "results: %s\n", imp.opts.results)
	}
	pending := n.unsent
	if imp.opts.wait {
		pending += n.open
	}
	switch {
	case n.failed > 0 || n.invalid > 0:
		return &exitError{code: 1, err: errQuiet}
	case pending > 0:
		return &exitError{code: 2, err: errQuiet}
	}
	return nil
}

// lockedWriter serialises writes to w.
type lockedWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

// importDetail names an import for its audit entry: the file and the
// batch.
func importDetail(o importOptions) string {
	d := "file " + o.file
	if o.file == "-" {
		d = "standard input"
	}
	if o.batch != "" {
		d += ", batch " + o.batch
	}
	return d
}
