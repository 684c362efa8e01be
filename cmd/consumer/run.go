package main

import (
	"context"
	"flag"
	"io"

	"github.com/contactrelay/contactrelay/internal/config"
	"github.com/contactrelay/contactrelay/internal/service"
)

// runCommand is 'consumer run': the service.
func runCommand(ctx context.Context, args []string, getenv func(string) string, stderr io.Writer) error {
	fs := flag.NewFlagSet("consumer run", flag.ContinueOnError)
	fs.SetOutput(stderr)
	load := configFlags(fs, getenv)
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	cfg, err := load()
	if err != nil {
		return err
	}
	log := config.NewLogger(stderr, cfg.LogLevel, cfg.LogFormat)
	return service.Serve(ctx, cfg, log, getenv, version(), service.Hooks{})
}
