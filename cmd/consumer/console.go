package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"

	"github.com/contactrelay/contactrelay/internal/config"
	"github.com/contactrelay/contactrelay/internal/console"
	"github.com/contactrelay/contactrelay/internal/exit"
)

// consoleCommand is 'consumer console': the web console for failures and
// replay, until a signal stops it.
func consoleCommand(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("consumer console", flag.ContinueOnError)
	fs.SetOutput(stderr)
	load := settingFlagsWith(fs, getenv, func(s config.Setting) bool { return s.Connection() || s.Env == "LOG_LEVEL" || s.Env == "LOG_FORMAT" }, config.ConsoleSettings())
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return &exit.Error{Code: 2, Err: fmt.Errorf("unexpected argument %q (see %s -h)", fs.Arg(0), fs.Name())}
	}
	cfg, err := load()
	if err != nil {
		return err
	}
	if cfg.ConsoleAddr == "" {
		return &exit.Error{Code: 2, Err: errors.New("CONSOLE_ADDR is off: the console needs an address to serve on")}
	}
	log := config.NewLogger(stderr, cfg.LogLevel, cfg.LogFormat)
	c, err := console.Start(ctx, cfg, log)
	if err != nil {
		return err
	}
	fmt.Fprintln(stdout, c.Banner())
	return c.Wait()
}
