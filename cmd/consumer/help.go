package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"slices"
	"strings"

	"github.com/contactrelay/contactrelay/internal/config"
	"github.com/contactrelay/contactrelay/internal/providers"
)

// usageError is a command line its command cannot run: a flag the command
// does not know, a bad flag value, an unexpected argument. It prints as
// the error and one line pointing to the command's -h (exit 2), never as
// the whole help.
type usageError struct {
	cmd string // "consumer replay"
	err error
}

func (e *usageError) Error() string {
	return fmt.Sprintf("%s: %v\nRun '%s -h' for its flags.", e.cmd, e.err, e.cmd)
}

func (e *usageError) Unwrap() error { return e.err }

// ExitCode is 2, a usage error's (exit.Code).
func (e *usageError) ExitCode() int { return 2 }

// usageErr returns err as a usage error of fs's command.
func usageErr(fs *flag.FlagSet, err error) error {
	return &usageError{cmd: fs.Name(), err: err}
}

// synopses are the first line of the help of the commands that take more
// than flags.
var synopses = map[string]string{
	"consumer pause":    "consumer pause [flags] PROVIDER   (instantpay or pik)",
	"consumer resume":   "consumer resume [flags] PROVIDER",
	"consumer import":   "consumer import [flags] FILE   (FILE: .csv, .ndjson or .jsonl; - for stdin, with --format)",
	"consumer failures": "consumer failures [flags]\n       consumer failures discard [flags]   (see 'consumer failures discard -h')",
	"consumer jobs":     "consumer jobs [flags]\n       consumer jobs stop [flags] ID",
}

// parseFlags parses a command's flags. On -h it prints the command's help
// (printHelp) and returns flag.ErrHelp (exit 0); on a bad flag, a usage
// error saying what was wrong in one line and where the help is (exit 2).
// The flag package itself prints nothing.
func parseFlags(fs *flag.FlagSet, args []string) error {
	out := fs.Output()
	fs.Usage = func() {}
	fs.SetOutput(io.Discard)
	err := fs.Parse(args)
	fs.SetOutput(out)
	switch {
	case err == nil:
		return nil
	case errors.Is(err, flag.ErrHelp):
		printHelp(out, fs)
		return err
	}
	return usageErr(fs, err)
}

// printHelp prints a command's flags in three groups: its own first, then
// the NATS connection's, then the service settings it takes as flags (all
// of them for 'run' and 'dev', which are the service; a few or none for
// the tools).
func printHelp(w io.Writer, fs *flag.FlagSet) {
	synopsis, ok := synopses[fs.Name()]
	if !ok {
		synopsis = fs.Name() + " [flags]"
	}
	fmt.Fprintf(w, "usage: %s\n", synopsis)
	var own, connection, service strings.Builder
	for _, s := range append(allSettings(), config.ConsoleSettings()...) { // in the settings' order: NATS_URL first
		f := fs.Lookup(s.Flag)
		if f == nil {
			continue
		}
		if !config.IsSettingFlag(f) {
			continue // a command's own flag of the same name (bench --concurrency)
		}
		if s.Connection() {
			writeFlag(&connection, f)
		} else {
			writeFlag(&service, f)
		}
	}
	fs.VisitAll(func(f *flag.Flag) {
		if !config.IsSettingFlag(f) {
			writeFlag(&own, f)
		}
	})
	for _, g := range []struct {
		title string
		flags *strings.Builder
	}{
		{"flags:", &own},
		{"connection flags (each overrides its environment variable):", &connection},
		{"service settings (each overrides its environment variable):", &service},
	} {
		if g.flags.Len() > 0 {
			fmt.Fprintf(w, "\n%s\n%s", g.title, g.flags.String())
		}
	}
}

// writeFlag writes one flag as flag.PrintDefaults does, with two dashes.
func writeFlag(b *strings.Builder, f *flag.Flag) {
	name, usage := flag.UnquoteUsage(f)
	fmt.Fprintf(b, "  --%s", f.Name)
	if name != "" {
		fmt.Fprintf(b, " %s", name)
	}
	b.WriteString("\n    \t")
	b.WriteString(strings.ReplaceAll(usage, "\n", "\n    \t"))
	switch f.DefValue {
	case "", "0", "false", "0s":
	default:
		fmt.Fprintf(b, " (default %s)", f.DefValue)
	}
	b.WriteString("\n")
}

// configFlags registers a flag for every setting on fs: the service's
// commands ('run', 'dev') take them all. The returned function builds the
// Config from the flags given, the environment and the defaults, in that
// order, and reports every bad value at once (a usage error: exit 2).
func configFlags(fs *flag.FlagSet, getenv func(string) string) func() (config.Config, error) {
	return settingFlagsWith(fs, getenv, func(config.Setting) bool { return true }, nil)
}

// toolFlags registers the NATS connection's flags on fs, and those of the
// settings named by their variables in also (a tool's few service
// settings, such as setup's ACK_WAIT). The Config is built as configFlags
// builds it: every other setting still comes from the environment.
func toolFlags(fs *flag.FlagSet, getenv func(string) string, also ...string) func() (config.Config, error) {
	return settingFlagsWith(fs, getenv, func(s config.Setting) bool { return s.Connection() || slices.Contains(also, s.Env) }, nil)
}

// settingFlagsWith registers a flag for each setting that flagged accepts,
// and for each of a command's own settings besides the service's
// (config.ConsoleSettings), and returns the Config's loader.
func settingFlagsWith(fs *flag.FlagSet, getenv func(string) string, flagged func(config.Setting) bool, extra []config.Setting) func() (config.Config, error) {
	return config.Flags(fs, getenv, providers.Settings(), flagged, extra)
}

// allSettings returns the service's variables and every provider's.
func allSettings() []config.Setting { return config.All(providers.Settings()) }
