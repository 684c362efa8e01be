package main

import (
	"context"
	"flag"
	"fmt"
	"io"

	"github.com/contactrelay/contactrelay/internal/config"
	"github.com/contactrelay/contactrelay/internal/devmode"
	"github.com/contactrelay/contactrelay/internal/exit"
)

// devCommand is 'consumer dev': an embedded JetStream server, sandbox
// stand-ins of both providers and the service, in one process.
func devCommand(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("consumer dev", flag.ContinueOnError)
	fs.SetOutput(stderr)
	natsPort := fs.Int("nats-port", 4222, "port of the embedded NATS server, on 127.0.0.1 (0: any free port)")
	dataDir := fs.String("data-dir", "./data", "folder of the embedded server's JetStream store (one 'consumer dev' at a time)")
	load := settingFlagsWith(fs, func(k string) string {
		if v := getenv(k); v != "" {
			return v
		}
		return devmode.Default(k)
	}, func(config.Setting) bool { return true }, config.ConsoleSettings())
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usageErr(fs, fmt.Errorf("unexpected argument %q", fs.Arg(0)))
	}
	cfg, err := load()
	if *natsPort < 0 || *natsPort > 65535 {
		perr := fmt.Errorf("--nats-port must be from 0 (any free port) to 65535, not %d", *natsPort)
		if err != nil {
			perr = fmt.Errorf("%w\n%w", err, perr)
		}
		return &exit.Error{Code: 2, Err: perr}
	}
	if err != nil {
		return err
	}
	log := config.NewLogger(stderr, cfg.LogLevel, cfg.LogFormat)
	return devmode.Run(ctx, cfg, log, devmode.Options{NATSPort: *natsPort, DataDir: *dataDir, Getenv: getenv, Version: version(), Stdout: stdout})
}
