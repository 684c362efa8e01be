// Command consumer is contactrelay: it consumes contact.create commands from
// NATS JetStream, creates the contacts at InstantPay or PIK, and publishes
// contact.created or contact.failed events. docs/CLI.md documents its commands and flags.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime/debug"
	"syscall"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/contactrelay/contactrelay/internal/exit"
)

func main() {
	defaultGC(os.Args[1:])
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Getenv, os.Stdin, os.Stdout, os.Stderr)
	stop()
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			os.Exit(0) // -h printed the flags
		}
		var ue *usageError
		switch {
		case errors.As(err, &ue):
			fmt.Fprintln(os.Stderr, err) // it names its command
		case !errors.Is(err, exit.ErrQuiet):
			fmt.Fprintln(os.Stderr, "consumer:", err)
		}
		os.Exit(exitCode(err))
	}
}

// defaultGC sets the collector's target for the command's heap, unless
// GOGC does. The service's is small and made of short-lived garbage:
// collecting it half as often (200) costs a few MiB and saves about a
// tenth of the CPU per command (docs/PERFORMANCE.md). The console's (its
// index of the open failures) and the importer's (a slot per row) are
// mostly long-lived, and 200 would let them grow to three times that.
func defaultGC(args []string) {
	switch {
	case os.Getenv("GOGC") != "":
	case len(args) > 0 && (args[0] == "console" || args[0] == "import"):
		debug.SetGCPercent(100)
	default:
		debug.SetGCPercent(200)
	}
}

// The exit codes of every command (docs/CLI.md, "Exit codes"):
//
//	0   success; 'run' and 'dev' stopped by a signal
//	1   the work failed: a contact.failed outcome, a command named by
//	    --command-id with no failure, a replay that failed to publish or a
//	    refused repair, setup refused by the server, the service stopped
//	    by an error
//	2   usage or configuration error, NATS unreachable or refusing us,
//	    the streams missing, no outcome within publish's --timeout
//	130 a one-shot command (setup, publish, failures, replay) interrupted
//	    (exit.Interrupted)
//
// The library code behind a command gives its errors their code as an
// *exit.Error; a usage error exits with 2.
func exitCode(err error) int { return exit.Code(err) }

const usage = `usage: consumer <command> [flags]

commands:
  run       run the service (the default)
  dev       run NATS, sandbox providers and the service in one process
  setup     create or update the streams, the consumer and the record bucket
  publish   publish one contact.create command (--wait for its outcome)
  import    publish a command for each row of a CSV or NDJSON file (--wait --results for outcomes)
  failures  list open failures, or show one whole (discard: remove them; --history: every failure)
  replay    re-publish failed commands (--dry-run first; --set repairs one; a bulk replay runs as a job)
  jobs      list the bulk replay and discard jobs (stop: stop one; --resume ID resumes it)
  audit     list the audit trail: who replayed, repaired, discarded, unmasked or imported what
  status    what waits, what each instance has in flight, circuits and pauses
  pause     pause a provider on every instance: its commands are held, none exhausted
  resume    resume a paused provider
  console   serve the web console for failures and replay (CONSOLE_ADDR, default 127.0.0.1:8081)
  bench     measure throughput and latency against a bare-loop floor
  version   print the version

Run 'consumer <command> -h' for a command's flags.
`

// run is the whole program: it parses args and runs a command until ctx is
// cancelled. Tests call it as main does.
func run(ctx context.Context, args []string, getenv func(string) string, stdin io.Reader, stdout, stderr io.Writer) error {
	cmd := "run"
	if len(args) > 0 {
		switch a := args[0]; {
		case a == "--version" || a == "-version" || a == "-h" || a == "--help" || a == "-help":
			cmd, args = a, args[1:]
		case a != "" && a[0] != '-':
			cmd, args = a, args[1:]
		}
	}
	err := runSubcommand(ctx, cmd, args, getenv, stdin, stdout, stderr)
	if err != nil && ctx.Err() != nil && exitCode(err) != exit.Interrupted && oneShot[cmd] {
		// Whatever went wrong next, it went wrong because we were stopped.
		msg := fmt.Sprintf("interrupted: %s did not finish", cmd)
		if !errors.Is(err, exit.ErrQuiet) {
			msg += " (" + err.Error() + ")"
		}
		return &exit.Error{Code: exit.Interrupted, Err: errors.New(msg)}
	}
	return explainNoJetStream(err)
}

// explainNoJetStream turns the error of a JetStream request that no server
// answered into what it means: the server runs without JetStream, or the
// account has none (exit 2, like any NATS problem).
func explainNoJetStream(err error) error {
	if err == nil || !(errors.Is(err, nats.ErrNoResponders) || errors.Is(err, jetstream.ErrJetStreamNotEnabled) ||
		errors.Is(err, jetstream.ErrJetStreamNotEnabledForAccount)) {
		return err
	}
	return &exit.Error{Code: 2, Err: fmt.Errorf("%w: JetStream is not enabled on this NATS server, or not for this account: "+
		"start the server with JetStream (nats-server -js), give the account JetStream, set NATS_JS_DOMAIN on a leaf node, or try 'consumer dev'", err)}
}

// oneShot are the commands that do a piece of work and exit: an interrupt
// leaves it undone (exit 130). 'run' and 'dev' are stopped by a signal as
// a matter of course (exit 0).
var oneShot = map[string]bool{"setup": true, "publish": true, "import": true, "failures": true, "replay": true, "audit": true, "pause": true, "resume": true, "jobs": true}

func runSubcommand(ctx context.Context, cmd string, args []string, getenv func(string) string, stdin io.Reader, stdout, stderr io.Writer) error {
	switch cmd {
	case "run":
		return runCommand(ctx, args, getenv, stderr)
	case "dev":
		return devCommand(ctx, args, getenv, stdout, stderr)
	case "setup":
		return setupCommand(ctx, args, getenv, stdout, stderr)
	case "publish":
		return publishCommand(ctx, args, getenv, stdin, stdout, stderr)
	case "import":
		return importCommand(ctx, args, getenv, stdin, stdout, stderr)
	case "failures":
		return failuresCommand(ctx, args, getenv, stdout, stderr)
	case "replay":
		return replayCommand(ctx, args, getenv, stdout, stderr)
	case "jobs":
		return jobsCommand(ctx, args, getenv, stdout, stderr)
	case "audit":
		return auditCommand(ctx, args, getenv, stdout, stderr)
	case "status":
		return statusCommand(ctx, args, getenv, stdout, stderr)
	case "pause", "resume":
		return pauseCommand(ctx, cmd == "resume", args, getenv, stdout, stderr)
	case "console":
		return consoleCommand(ctx, args, getenv, stdout, stderr)
	case "bench":
		return benchCommand(ctx, args, stdout, stderr)
	case "bench-worker":
		return benchWorkerCommand(ctx, args, stdin, stdout, stderr)
	case "version", "--version", "-version":
		fmt.Fprintln(stdout, "consumer", version())
		return nil
	case "help", "-h", "--help", "-help":
		fmt.Fprint(stdout, usage)
		return nil
	}
	fmt.Fprint(stderr, usage)
	return &exit.Error{Code: 2, Err: fmt.Errorf("unknown command %q", cmd)}
}

// Set at build time, e.g. by the Dockerfile, with
// -ldflags "-X main.buildVersion=v1.2.3 -X main.commit=abc123"; when empty,
// the build info's module version and VCS revision are used.
var buildVersion, commit string

// version returns the module version and VCS revision the binary was built
// from, as far as the build recorded them.
func version() string {
	v, rev := buildVersion, commit
	if info, ok := debug.ReadBuildInfo(); ok {
		if v == "" {
			v = info.Main.Version
		}
		for _, s := range info.Settings {
			if s.Key == "vcs.revision" && rev == "" {
				rev = s.Value
			}
		}
	}
	if v == "" {
		v = "unknown"
	}
	if rev != "" {
		v += " " + rev
	}
	return v
}
