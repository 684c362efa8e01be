package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/contactrelay/contactrelay/internal/clients"
	"github.com/contactrelay/contactrelay/internal/handlers"
	"github.com/contactrelay/contactrelay/internal/stream"
)

// runCommand is 'consumer run': the service.
func runCommand(ctx context.Context, args []string, getenv func(string) string, stderr io.Writer) error {
	fs := flag.NewFlagSet("consumer run", flag.ContinueOnError)
	fs.SetOutput(stderr)
	load := configFlags(fs, getenv)
	if err := fs.Parse(args); err != nil {
		return &exitError{code: 2, err: err}
	}
	cfg, err := load()
	if err != nil {
		return &exitError{code: 2, err: fmt.Errorf("configuration:\n%w", err)}
	}
	log := newLogger(stderr, cfg.LogLevel, cfg.LogFormat)
	return serve(ctx, cfg, log, nil)
}

// serve runs the service until ctx is cancelled. started, if not nil, is
// called once the service consumes, with the address of its HTTP server.
func serve(ctx context.Context, cfg Config, log *slog.Logger, started func(httpAddr string)) error {
	providers, disabled, err := buildProviders(cfg, clients.NewHTTPClient(cfg.Concurrency))
	if err != nil {
		return err
	}
	for name, why := range disabled {
		log.Info("provider disabled", "provider", name, "why", why)
	}
	if len(providers) == 0 {
		return errors.New("no provider is enabled: set INSTANTPAY_CLIENT_ID and INSTANTPAY_CLIENT_SECRET, or PIK_BASE_URL, PIK_APP_ID and PIK_APP_SECRET (or try 'consumer dev')")
	}

	nc, err := connectNATS(cfg, "contactrelay", log)
	if err != nil {
		return err
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		return err
	}
	if err := stream.Setup(ctx, js, stream.Topology{AckWait: cfg.AckWait}); err != nil {
		return err
	}
	store, err := stream.OpenRecords(ctx, js)
	if err != nil {
		return err
	}
	h, err := handlers.New(handlers.Config{
		Providers:            providers,
		DefaultProvider:      cfg.DefaultProvider,
		Store:                store,
		Logger:               log,
		Source:               cfg.EventSource,
		MaxDeliver:           cfg.MaxDeliver,
		RetryInitialInterval: cfg.RetryInitial,
		RetryMaxInterval:     cfg.RetryMax,
		RetryMaxElapsed:      cfg.RetryMaxElapsed,
		CallTimeout:          cfg.ProviderTimeout,
	})
	if err != nil {
		return err
	}
	runner := stream.NewRunner(js, h, stream.RunnerConfig{
		Concurrency:   cfg.Concurrency,
		AckWait:       cfg.AckWait,
		ShutdownGrace: cfg.ShutdownGrace,
		Logger:        log,
	})

	httpAddr := ""
	if cfg.HTTPAddr != "" {
		srv, addr, err := startHealth(cfg.HTTPAddr, nc, log)
		if err != nil {
			return err
		}
		httpAddr = addr
		defer func() {
			sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			_ = srv.Shutdown(sctx)
		}()
	}
	log.Info("consuming", "stream", stream.CommandStream, "consumer", stream.Durable,
		"providers", fmt.Sprint(keys(providers)), "defaultProvider", cfg.DefaultProvider,
		"concurrency", cfg.Concurrency, "maxDeliver", cfg.MaxDeliver, "httpAddr", httpAddr)
	if started != nil {
		started(httpAddr)
	}
	err = runner.Run(ctx)
	log.Info("stopped")
	return err
}

func keys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	return out
}

// startHealth serves /healthz and /readyz on addr.
func startHealth(addr string, nc *nats.Conn, log *slog.Logger) (*http.Server, string, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, "", fmt.Errorf("HTTP_ADDR %s: %w", addr, err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, http.StatusOK, map[string]any{"status": "ok"})
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, _ *http.Request) {
		if st := nc.Status(); st != nats.CONNECTED {
			writeJSON(w, http.StatusServiceUnavailable, map[string]any{"status": "not ready", "nats": st.String()})
			return
		}
		writeJSON(w, http.StatusOK, map[string]any{"status": "ready", "nats": nats.CONNECTED.String()})
	})
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go func() {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error("HTTP server stopped", "error", err)
		}
	}()
	return srv, ln.Addr().String(), nil
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}
