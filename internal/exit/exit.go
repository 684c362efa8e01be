// Package exit carries the exit status of a command line through the
// library code that decides it. The library packages behind the
// subcommands (config, the service, the console, dev mode, the import)
// know when an error is the operator's to fix (a configuration, an
// unreachable NATS, a taken port: exit 2) or when their output already
// said what happened; cmd/consumer turns that into the process's exit
// code, and documents the codes (cmd/consumer/main.go).
package exit

import "errors"

// Interrupted is the exit code of a one-shot command stopped by a signal
// before it finished.
const Interrupted = 130

// ErrQuiet ends a command whose output already said what happened: it is
// not printed again.
var ErrQuiet = errors.New("")

// Error is an error with the exit code of the command it ends.
type Error struct {
	Code int
	Err  error
}

func (e *Error) Error() string { return e.Err.Error() }

// Unwrap returns the error the exit code was given to.
func (e *Error) Unwrap() error { return e.Err }

// ExitCode returns the exit code; every error with this method gives its
// command's exit code (Code reads it).
func (e *Error) ExitCode() int { return e.Code }

// Code returns the exit code err asks for: that of the first error in its
// chain with an ExitCode method, or 1.
func Code(err error) int {
	var c interface{ ExitCode() int }
	if errors.As(err, &c) {
		return c.ExitCode()
	}
	return 1
}
