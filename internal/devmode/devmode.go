// Package devmode runs contactrelay on one machine with nothing else
// installed, as 'consumer dev' does: an embedded JetStream server (one per
// data folder, locked), sandbox stand-ins of both providers behind
// loopback HTTP servers, the console, and the service, with a banner that
// says how to try it.
package devmode

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"time"

	"github.com/nats-io/nats-server/v2/server"

	"github.com/contactrelay/contactrelay/internal/config"
	"github.com/contactrelay/contactrelay/internal/console"
	"github.com/contactrelay/contactrelay/internal/exit"
	"github.com/contactrelay/contactrelay/internal/sandbox"
	"github.com/contactrelay/contactrelay/internal/service"
)

// Credentials of the sandbox providers in dev mode; they open nothing real.
const (
	devIPayClientID     = "sandbox-client-id"
	devIPayClientSecret = "sandbox-client-secret"
	devPIKAppID         = "sandbox-app-id"
	devPIKAppSecret     = "sandbox-app-secret"
	// devPIKTokenTTL is short so that dev mode exercises token refresh.
	devPIKTokenTTL = 2 * time.Minute
)

// Default returns dev mode's default of the setting env where the
// environment sets nothing ("" for none): readable logs, and retries short
// enough that a failure shows, and can be replayed, within a minute rather
// than half an hour.
func Default(env string) string {
	return map[string]string{
		"LOG_FORMAT":         "text",
		"DEFAULT_PROVIDER":   "instantpay",
		"HTTP_ADDR":          "127.0.0.1:8080",
		"MAX_DELIVER":        "3",
		"RETRY_MAX_ELAPSED":  "5s",
		"RETRY_MAX_INTERVAL": "2s",
		"CIRCUIT_OPEN_FOR":   "5s",
	}[env]
}

// Options are dev mode's own settings, besides the service's configuration.
type Options struct {
	// NATSPort is the embedded server's port on 127.0.0.1; 0: any free port.
	NATSPort int
	// DataDir is the folder of the embedded server's JetStream store; one
	// dev mode at a time uses it.
	DataDir string
	// Getenv gives the OTEL_* variables of the service's tracing, and
	// Version names the build in its spans (see service.Serve).
	Getenv  func(string) string
	Version string
	// Stdout hears the banner once the service consumes.
	Stdout io.Writer
}

// Run runs dev mode until ctx is cancelled: it locks opts.DataDir, checks
// that the ports it needs are free (each taken one, like a locked data
// folder, is a usage error: exit 2), starts the embedded server, the
// sandboxes and the console (cfg.ConsoleAddr, unless empty), and runs the
// service on them with cfg, whose NATS and provider settings it replaces.
// It stops and closes all of them before it returns.
func Run(ctx context.Context, cfg config.Config, log *slog.Logger, opts Options) error {
	// One embedded server per data folder, and no waiting to find out that
	// a port is taken: each is a usage error, said at once.
	if err := os.MkdirAll(opts.DataDir, 0o755); err != nil {
		return &exit.Error{Code: 2, Err: fmt.Errorf("--data-dir: %w", err)}
	}
	unlock, err := lockDataDir(opts.DataDir)
	if err != nil {
		return &exit.Error{Code: 2, Err: err}
	}
	defer unlock()
	if opts.NATSPort != 0 {
		if err := portFree(fmt.Sprintf("127.0.0.1:%d", opts.NATSPort)); err != nil {
			return &exit.Error{Code: 2, Err: fmt.Errorf("the NATS port 127.0.0.1:%d is taken (%w): another 'consumer dev' or NATS server? Give this one another --nats-port and another --data-dir (two servers cannot share one)",
				opts.NATSPort, err)}
		}
	}
	if cfg.HTTPAddr != "" {
		if err := portFree(cfg.HTTPAddr); err != nil {
			return &exit.Error{Code: 2, Err: fmt.Errorf("HTTP_ADDR %s is taken (%w): set HTTP_ADDR to another address, 127.0.0.1:0 for any free port, or off", cfg.HTTPAddr, err)}
		}
	}
	if cfg.ConsoleAddr != "" {
		if err := portFree(cfg.ConsoleAddr); err != nil {
			return &exit.Error{Code: 2, Err: fmt.Errorf("CONSOLE_ADDR %s is taken (%w): set CONSOLE_ADDR to another address, 127.0.0.1:0 for any free port, or off", cfg.ConsoleAddr, err)}
		}
	}

	ns, err := startNATS(opts.NATSPort, opts.DataDir)
	if err != nil {
		return err
	}
	defer func() {
		ns.Shutdown()
		ns.WaitForShutdown()
	}()

	ipay := sandbox.NewInstantPay(sandbox.InstantPayConfig{ClientID: devIPayClientID, ClientSecret: devIPayClientSecret})
	defer ipay.Close()
	ipayURL, stopIPay, err := serveLoopback(ipay)
	if err != nil {
		return err
	}
	defer stopIPay()
	pikBox := sandbox.NewPIK(sandbox.PIKConfig{AppID: devPIKAppID, AppSecret: devPIKAppSecret, TokenTTL: devPIKTokenTTL})
	defer pikBox.Close()
	pikURL, stopPIK, err := serveLoopback(pikBox)
	if err != nil {
		return err
	}
	defer stopPIK()

	// Whatever the environment says, dev mode talks to the sandboxes only.
	cfg.NATSURL = ns.ClientURL()
	cfg.NATSCreds, cfg.NATSNKey, cfg.NATSTLSCA, cfg.NATSTLSCert, cfg.NATSTLSKey = "", "", "", "", ""
	ip, pk := cfg.Providers["instantpay"], cfg.Providers["pik"]
	ip["INSTANTPAY_BASE_URL"], ip["INSTANTPAY_CLIENT_ID"], ip["INSTANTPAY_CLIENT_SECRET"] = ipayURL, devIPayClientID, devIPayClientSecret
	pk["PIK_BASE_URL"], pk["PIK_APP_ID"], pk["PIK_APP_SECRET"] = pikURL, devPIKAppID, devPIKAppSecret

	consoleLine := "off (CONSOLE_ADDR=off)"
	if cfg.ConsoleAddr != "" {
		ctx, stopConsole := context.WithCancel(ctx)
		defer stopConsole()
		c, err := console.Start(ctx, cfg, log)
		if err != nil {
			return err
		}
		defer func() { stopConsole(); _ = c.Wait() }()
		consoleLine = c.URL
		if c.NoAuth {
			consoleLine += "   (no authentication: loopback only)"
		}
	}

	abs, _ := filepath.Abs(opts.DataDir)
	return service.Serve(ctx, cfg, log, opts.Getenv, opts.Version, service.Hooks{Started: func(httpAddr string) {
		printDevBanner(opts.Stdout, cfg, abs, ipayURL, pikURL, httpAddr, consoleLine, ns.Addr().(*net.TCPAddr).Port)
	}})
}

// startNATS starts an embedded JetStream server on 127.0.0.1:port (any
// free port for 0).
func startNATS(port int, dataDir string) (*server.Server, error) {
	if port == 0 {
		port = server.RANDOM_PORT
	}
	ns, err := server.NewServer(&server.Options{
		ServerName: "contactrelay-dev",
		Host:       "127.0.0.1",
		Port:       port,
		JetStream:  true,
		StoreDir:   dataDir,
		NoSigs:     true,
	})
	if err != nil {
		return nil, fmt.Errorf("embedded NATS: %w", err)
	}
	go ns.Start()
	if !ns.ReadyForConnections(10 * time.Second) {
		ns.Shutdown()
		return nil, fmt.Errorf("embedded NATS did not start on 127.0.0.1:%d within 10s", port)
	}
	return ns, nil
}

// portFree reports whether addr can be listened on now.
func portFree(addr string) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		var opErr *net.OpError
		if errors.As(err, &opErr) {
			err = opErr.Err
		}
		return err
	}
	return ln.Close()
}

// serveLoopback serves h on a free loopback port.
func serveLoopback(h http.Handler) (url string, stop func(), err error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", nil, err
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 5 * time.Second}
	go func() {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			fmt.Fprintln(os.Stderr, "sandbox server:", err)
		}
	}()
	return "http://" + ln.Addr().String(), func() { _ = srv.Close() }, nil
}

func printDevBanner(w io.Writer, cfg config.Config, dataDir, ipayURL, pikURL, httpAddr, consoleURL string, natsPort int) {
	natsFlag := ""
	if natsPort != 4222 {
		natsFlag = fmt.Sprintf(" --nats-url nats://127.0.0.1:%d", natsPort)
	}
	health := fmt.Sprintf("http://%s/readyz, /metrics", httpAddr)
	if httpAddr == "" {
		health = "off (--http-addr off)"
	}
	fmt.Fprintf(w, `
contactrelay dev mode: SANDBOX providers, no real contact is created.

  NATS JetStream       %s   (data in %s)
  InstantPay sandbox   %s
  PIK sandbox          %s   (tokens expire every %s)
  health, metrics      %s
  console              %s
  default provider     %s
  retries              MAX_DELIVER=%d, RETRY_MAX_ELAPSED=%s (dev mode's short defaults)

Publish from another terminal (with the binary built by go build -o bin/consumer ./cmd/consumer),
and see the outcome:

  bin/consumer publish%s --wait --name "Jane Doe" --email jane@example.com \
      --mobile +919876543210 --tag-id 65a1b2c3d4e5f6a7b8c9d0e1
  bin/consumer publish%s --wait --provider pik --name "Ravi Kumar" \
      --email ravi@example.com --mobile 9876543210 --tag-id vip
  echo '{"name":"","email":"not-an-email","mobile":"12"}' | bin/consumer publish%s --wait --file -

Make a sandbox fail, see the failures (in the console, or below), heal it and replay them:

  curl -X POST %s/_sandbox/down        # every call answers 503
  bin/consumer failures%s       # after about %s
  curl -X DELETE %s/_sandbox/down
  bin/consumer replay%s
  curl %s/_sandbox/contacts            # what the sandbox holds

Stop with Ctrl-C.
`, cfg.NATSURL, dataDir, ipayURL, pikURL, devPIKTokenTTL, health, consoleURL, cfg.DefaultProvider, cfg.MaxDeliver, cfg.RetryMaxElapsed,
		natsFlag, natsFlag, natsFlag, ipayURL, natsFlag, exhaustAfter(cfg), ipayURL, natsFlag, ipayURL)
}

// exhaustAfter estimates how long a command keeps failing before it is
// exhausted: every delivery's retry budget and the delays between them.
func exhaustAfter(cfg config.Config) time.Duration {
	return time.Duration(cfg.MaxDeliver)*cfg.RetryMaxElapsed + time.Duration(cfg.MaxDeliver-1)*cfg.RetryMax
}
