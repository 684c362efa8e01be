package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/contactrelay/contactrelay/internal/config"
	"github.com/contactrelay/contactrelay/internal/console"
	"github.com/contactrelay/contactrelay/internal/exit"
	"github.com/contactrelay/contactrelay/internal/natsconn"
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
	c, err := startConsole(ctx, cfg, log)
	if err != nil {
		return err
	}
	fmt.Fprintln(stdout, c.banner())
	return c.wait()
}

// runningConsole is a console being served.
type runningConsole struct {
	URL    string
	NoAuth bool
	done   chan error
}

func (c *runningConsole) banner() string {
	if c.NoAuth {
		return fmt.Sprintf("console: %s (no authentication: it listens on loopback only; set CONSOLE_USER and CONSOLE_PASSWORD to require a sign-in)", c.URL)
	}
	return fmt.Sprintf("console: %s (sign in as CONSOLE_USER)", c.URL)
}

// wait returns once the console has stopped.
func (c *runningConsole) wait() error { return <-c.done }

// startConsole connects to JetStream, listens on cfg.ConsoleAddr and
// serves the console until ctx is cancelled, then closes its connection. A
// configuration the console refuses (no authentication off loopback) or a
// taken address is a usage error (exit 2).
func startConsole(ctx context.Context, cfg config.Config, log *slog.Logger) (c *runningConsole, err error) {
	nc, js, err := natsconn.ConnectJetStream(cfg, "contactrelay-console")
	if err != nil {
		return nil, err
	}
	defer func() {
		if err != nil {
			nc.Close()
		}
	}()
	srv, err := console.New(console.Config{
		JS:       js,
		Log:      log,
		User:     cfg.ConsoleUser,
		Password: cfg.ConsolePassword,
		NoAuth:   cfg.ConsoleUser == "" && cfg.ConsolePassword == "",
		Addr:     cfg.ConsoleAddr,
	})
	if err != nil {
		return nil, &exit.Error{Code: 2, Err: fmt.Errorf("console: %w", err)}
	}
	ln, err := net.Listen("tcp", cfg.ConsoleAddr)
	if err != nil {
		return nil, &exit.Error{Code: 2, Err: fmt.Errorf("CONSOLE_ADDR %s: %w (set CONSOLE_ADDR to another address, 127.0.0.1:0 for any free port)", cfg.ConsoleAddr, err)}
	}
	c = &runningConsole{URL: "http://" + ln.Addr().String() + "/", NoAuth: cfg.ConsoleUser == "", done: make(chan error, 1)}
	rctx, cancel := context.WithCancel(ctx)
	hs := &http.Server{Handler: srv.Handler(), ReadHeaderTimeout: 10 * time.Second, IdleTimeout: 2 * time.Minute,
		// Requests end with the console: a replay's progress stream too.
		BaseContext: func(net.Listener) context.Context { return rctx }}
	ran := make(chan struct{})
	go func() {
		defer close(ran)
		_ = srv.Run(rctx)
	}()
	go func() {
		served := make(chan error, 1)
		go func() { served <- hs.Serve(ln) }()
		var err error
		select {
		case <-ctx.Done():
		case err = <-served:
		}
		cancel()
		sctx, scancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		_ = hs.Shutdown(sctx)
		scancel()
		<-ran
		nc.Close()
		if errors.Is(err, http.ErrServerClosed) {
			err = nil
		}
		c.done <- err
	}()
	log.Info("console started", "url", c.URL, "authentication", !c.NoAuth)
	return c, nil
}
