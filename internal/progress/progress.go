// Package progress shows how far a long command is on a terminal: one
// line, rewritten as the work goes on, and nothing where the output is not
// a terminal.
package progress

import (
	"fmt"
	"io"
	"os"
)

// Line is one line on a terminal, rewritten as work goes on, and nothing
// elsewhere: with On false, Show and Clear write nothing. It is not safe
// for concurrent use.
type Line struct {
	W     io.Writer
	On    bool
	shown bool
}

// NewLine returns the progress line of w: on if w is a terminal.
func NewLine(w io.Writer) *Line { return &Line{W: w, On: IsTerminal(w)} }

// Show replaces the line with text.
func (p *Line) Show(text string) {
	if p.On {
		fmt.Fprintf(p.W, "\r\x1b[K%s", text)
		p.shown = true
	}
}

// Clear removes the line, if one is shown, so that other output can
// follow.
func (p *Line) Clear() {
	if p.shown {
		fmt.Fprint(p.W, "\r\x1b[K")
		p.shown = false
	}
}

// IsTerminal reports whether w is a terminal.
func IsTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}
