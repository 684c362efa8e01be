// Package importer is the bulk import: it reads a CSV or NDJSON file a row
// at a time, checks each row with the service's rules, publishes a command
// for each through the public client (at most InFlight at once, at most
// Rate a second), sends nothing the service settled before, and with Wait
// follows every row to its outcome and writes them to a results file. It
// keeps little in memory per row: the rows' texts live in a spool file.
// 'consumer import' drives it (Run); its flags are Options.
package importer

import (
	"io"
	"time"

	"github.com/contactrelay/contactrelay/internal/exit"
	"github.com/contactrelay/contactrelay/internal/progress"
)

// Options are an import's settings: the flags of 'consumer import'
// (docs/CLI.md), checked by the command line before Run.
type Options struct {
	// File is the file to import; - for stdin. Format is csv or ndjson,
	// Encoding the file's text encoding (Encoding; "" is DefaultEncoding).
	File, Format, Encoding string
	// Batch names the import: a row without a commandId gets one derived
	// from it and the row's content.
	Batch string
	// Results, with Wait, is the CSV file each row's outcome is written to.
	Results string
	// Wait waits for every row's terminal event, at most Timeout after the
	// last publish.
	Wait    bool
	Timeout time.Duration
	// SendInvalid publishes rows that break the rules as they are.
	SendInvalid bool
	// Progress is how often progress is reported when stderr is not a
	// terminal.
	Progress time.Duration
	// Rate is the most commands published a second (0: no limit), and
	// InFlight the most publishes awaiting the stream's answer at once.
	Rate     float64
	InFlight int
	// Map renames CSV headers: header → field (a column the import knows,
	// or metadata.<key>; see MapField).
	Map map[string]string
	// IgnoreUnknownColumns leaves out the CSV columns the import does not
	// know; by default each goes into the command's metadata under its
	// header.
	IgnoreUnknownColumns bool
	// Provider is given to rows that name no provider.
	Provider string
	// Repair, instead of File, is a failures CSV to repair the open
	// failures of (RepairRun: Encoding, Wait, Timeout and Results apply);
	// DryRun then prints each row's diff and sends nothing.
	Repair string
	DryRun bool
}

// importOptions returns o under the names the import's code uses.
func (o Options) importOptions() importOptions {
	enc := o.Encoding
	if enc == "" {
		enc = DefaultEncoding
	}
	return importOptions{file: o.File, format: o.Format, encoding: enc, batch: o.Batch, results: o.Results,
		wait: o.Wait, sendInvalid: o.SendInvalid, timeout: o.Timeout, progress: o.Progress,
		rate: o.Rate, inFlight: o.InFlight,
		columns: columnOptions{maps: o.Map, ignoreUnknown: o.IgnoreUnknownColumns, provider: o.Provider}}
}

// DefaultEncoding is the text encoding of an import file that names none.
const DefaultEncoding = encodingUTF8

// Encoding returns the encoding an --encoding value names, case ignored:
// utf-8 (or utf8), or latin1 (or latin-1, iso-8859-1). ok is false for any
// other value.
func Encoding(name string) (encoding string, ok bool) { return importEncoding(name) }

// ResultHeader returns the header of the results file of an input whose
// own columns are inputColumns: line, those columns (one named like a
// result column written row.<name>), then commandId, status, provider,
// contactId, reason, message and fields.
func ResultHeader(inputColumns ...string) []string { return resultColumns(inputColumns) }

// exitError carries the exit code of an import that ends otherwise than
// with success or failure (exit.Error, under the import's name).
type exitError struct {
	code int
	err  error
}

func (e *exitError) Error() string { return e.err.Error() }
func (e *exitError) Unwrap() error { return e.err }

// ExitCode returns the exit code (exit.Code).
func (e *exitError) ExitCode() int { return e.code }

// errQuiet and exitInterrupted are exit.ErrQuiet and exit.Interrupted,
// under the import's names for them.
var errQuiet = exit.ErrQuiet

const exitInterrupted = exit.Interrupted

// isTerminal reports whether w (seen through a lockedWriter) is a terminal.
func isTerminal(w io.Writer) bool {
	if l, ok := w.(*lockedWriter); ok {
		w = l.w
	}
	return progress.IsTerminal(w)
}
