// Package sheet writes and reads the CSV files the project hands to
// people, who open them in a spreadsheet: every CSV the project writes
// goes through Writer, which writes a cell a spreadsheet would execute
// inert (OWASP's CSV-injection rule), and Unguard undoes that when such a
// file is read back (consumer import --repair).
package sheet

import (
	"encoding/csv"
	"io"
	"slices"
	"strings"

	"github.com/contactrelay/contactrelay/contact"
)

// Fields is the cell that names the broken fields of errs (the results'
// and the failures CSV's fields column): each field once, in order,
// space-separated ("mobile tagId").
func Fields(errs []contact.FieldError) string {
	var names []string
	for _, fe := range errs {
		if !slices.Contains(names, fe.Field) {
			names = append(names, fe.Field)
		}
	}
	return strings.Join(names, " ")
}

// Guard returns s as a cell a spreadsheet shows as text: a value starting
// with =, +, -, @, a tab or a carriage return (which a spreadsheet may run
// as a formula) gets a leading apostrophe, and so does a value starting
// with an apostrophe, so that Unguard(Guard(s)) is s for every s.
func Guard(s string) string {
	if needsGuard(s) || (s != "" && s[0] == '\'') {
		return "'" + s
	}
	return s
}

// Unguard undoes Guard: a leading apostrophe before what Guard guards (or
// before another apostrophe) is removed. Any other value, one a person
// wrote starting with an apostrophe included, is returned as it is.
func Unguard(s string) string {
	if len(s) >= 2 && s[0] == '\'' && (needsGuard(s[1:]) || s[1] == '\'') {
		return s[1:]
	}
	return s
}

func needsGuard(s string) bool {
	if s == "" {
		return false
	}
	switch s[0] {
	case '=', '+', '-', '@', '\t', '\r':
		return true
	}
	return false
}

// Writer writes CSV records with every cell guarded (Guard). It is a
// csv.Writer otherwise: call Flush, then Error, at the end. Not safe for
// concurrent use.
type Writer struct {
	w   *csv.Writer
	rec []string
}

// NewWriter returns a Writer writing to w.
func NewWriter(w io.Writer) *Writer { return &Writer{w: csv.NewWriter(w)} }

// Write writes one record, its cells guarded; rec is not changed.
func (w *Writer) Write(rec []string) error {
	w.rec = w.rec[:0]
	for _, cell := range rec {
		w.rec = append(w.rec, Guard(cell))
	}
	return w.w.Write(w.rec)
}

// Flush writes what is buffered; Error reports any error of a Write or
// Flush.
func (w *Writer) Flush()       { w.w.Flush() }
func (w *Writer) Error() error { return w.w.Error() }
