package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"strings"

	"github.com/contactrelay/contactrelay/internal/audit"
	"github.com/contactrelay/contactrelay/internal/natsconn"
	"github.com/contactrelay/contactrelay/internal/pause"
)

// pauseCommand is 'consumer pause' (resume false) and 'consumer resume':
// pause or resume a provider across every instance.
func pauseCommand(ctx context.Context, resume bool, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	name := "consumer pause"
	if resume {
		name = "consumer resume"
	}
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	var reason *string
	if !resume {
		reason = fs.String("reason", "", "why, for the other operators (shown in status, /readyz and the console)")
	}
	load := toolFlags(fs, getenv)
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		return usageErr(fs, fmt.Errorf("want one PROVIDER, got %d arguments", fs.NArg()))
	}
	cfg, err := load()
	if err != nil {
		return err
	}
	nc, js, err := natsconn.ConnectJetStream(cfg, "contactrelay-pause")
	if err != nil {
		return err
	}
	defer nc.Close()
	st, err := pause.Open(ctx, js)
	if err != nil {
		return err
	}
	st.Audit = func(ctx context.Context, action string, s pause.State) error {
		_, err := audit.WriteFromCommandLine(ctx, js, audit.PauseEntry(action, s.Provider, s.Reason))
		return err
	}
	c := pause.Change{Resume: resume, Provider: strings.ToLower(strings.TrimSpace(fs.Arg(0))), By: osUser()}
	if reason != nil {
		c.Reason = *reason
	}
	return st.Apply(ctx, c, stdout)
}
