package console

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/contactrelay/contactrelay/internal/audit"
	"github.com/contactrelay/contactrelay/internal/config"
	"github.com/contactrelay/contactrelay/internal/exit"
	"github.com/contactrelay/contactrelay/internal/natsconn"
	"github.com/contactrelay/contactrelay/internal/provision"
)

// Running is a console being served, as Start serves it.
type Running struct {
	URL    string
	NoAuth bool
	done   chan error
}

// Banner is the line that says where the console is served and who may
// sign in.
func (c *Running) Banner() string {
	if c.NoAuth {
		return fmt.Sprintf("console: %s (no authentication: it listens on loopback only; set CONSOLE_USER and CONSOLE_PASSWORD to require a sign-in)", c.URL)
	}
	return fmt.Sprintf("console: %s (sign in with an account of CONSOLE_USER, CONSOLE_USERS_FILE or the proxy)", c.URL)
}

// ConfigFrom is the console's Config from the service's configuration,
// with the JetStream context and logger to use.
func ConfigFrom(cfg config.Config, js jetstream.JetStream, log *slog.Logger) Config {
	a := cfg.ConsoleAuth
	return Config{
		JS:                js,
		Log:               log,
		User:              cfg.ConsoleUser,
		Password:          cfg.ConsolePassword,
		UsersFile:         a.UsersFile,
		Operators:         a.Operators,
		ReadOnly:          a.ReadOnly,
		ProxyUserHeader:   a.ProxyUserHeader,
		ProxyGroupsHeader: a.ProxyGroupsHeader,
		TrustedProxies:    a.TrustedProxies,
		OperatorGroups:    a.OperatorGroups,
		SessionKeyFile:    a.SessionKeyFile,
		SessionIdle:       a.SessionIdle,
		SessionMax:        a.SessionMax,
		NoAuth:            cfg.ConsoleUser == "" && cfg.ConsolePassword == "" && a.UsersFile == "" && a.ProxyUserHeader == "",
		Addr:              cfg.ConsoleAddr,
		Audit:             &audit.Writer{JS: js},
	}
}

// Wait returns once the console has stopped, with the error that stopped
// it, if any.
func (c *Running) Wait() error { return <-c.done }

// Start connects to JetStream, listens on cfg.ConsoleAddr and serves the
// console until ctx is cancelled, then closes its connection; Wait tells
// when. A configuration the console refuses (no authentication off
// loopback) or a taken address is a usage error (exit 2).
func Start(ctx context.Context, cfg config.Config, log *slog.Logger) (c *Running, err error) {
	// Its NATS connection's news (disconnections, refusals) in its log.
	nc, err := natsconn.Connect(cfg, "contactrelay-console", log)
	if err != nil {
		return nil, err
	}
	defer func() {
		if err != nil {
			nc.Close()
		}
	}()
	js, err := natsconn.JetStream(nc, cfg)
	if err != nil {
		return nil, err
	}
	ccfg := ConfigFrom(cfg, js, log)
	if !ccfg.NoAuth {
		ccfg.Revocations, err = provision.EnsureConsoleSessions(ctx, js, 1, func(note string) { log.Info("console: " + note) })
		if err != nil {
			return nil, fmt.Errorf("console: %w (run 'consumer setup', or grant the console's NATS user the bucket)", err)
		}
	}
	srv, err := New(ccfg)
	if err != nil {
		return nil, &exit.Error{Code: 2, Err: fmt.Errorf("console: %w", err)}
	}
	ln, err := net.Listen("tcp", cfg.ConsoleAddr)
	if err != nil {
		return nil, &exit.Error{Code: 2, Err: fmt.Errorf("CONSOLE_ADDR %s: %w (set CONSOLE_ADDR to another address, 127.0.0.1:0 for any free port)", cfg.ConsoleAddr, err)}
	}
	c = &Running{URL: "http://" + ln.Addr().String() + "/", NoAuth: srv.cfg.NoAuth, done: make(chan error, 1)}
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
