package main

import (
	"context"
	"flag"
	"fmt"
	"io"

	"github.com/contactrelay/contactrelay/internal/jobs"
	"github.com/contactrelay/contactrelay/internal/natsconn"
)

// jobsCommand is 'consumer jobs': list the bulk replay and discard jobs,
// or stop one ('consumer jobs stop ID').
func jobsCommand(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	stop := len(args) > 0 && args[0] == "stop"
	fs := flag.NewFlagSet("consumer jobs", flag.ContinueOnError)
	var asJSON *bool
	if stop {
		fs, args = flag.NewFlagSet("consumer jobs stop", flag.ContinueOnError), args[1:]
	} else {
		asJSON = fs.Bool("json", false, "print JSON lines, one job each, instead of a table")
	}
	fs.SetOutput(stderr)
	load := toolFlags(fs, getenv)
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if want := map[bool]int{true: 1}[stop]; fs.NArg() != want {
		return usageErr(fs, fmt.Errorf("want %d arguments (stop takes the job's ID), got %d", want, fs.NArg()))
	}
	cfg, err := load()
	if err != nil {
		return err
	}
	nc, js, err := natsconn.ConnectJetStream(cfg, "contactrelay-jobs")
	if err != nil {
		return err
	}
	defer nc.Close()
	if stop {
		return jobs.StopFromCommandLine(ctx, js, fs.Arg(0), stdout)
	}
	return jobs.Print(ctx, js, *asJSON, stdout)
}
