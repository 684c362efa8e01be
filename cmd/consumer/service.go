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
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"go.opentelemetry.io/contrib/instrumentation/net/http/otelhttp"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"

	"github.com/contactrelay/contactrelay/internal/clients"
	"github.com/contactrelay/contactrelay/internal/handlers"
	"github.com/contactrelay/contactrelay/internal/health"
	"github.com/contactrelay/contactrelay/internal/metrics"
	"github.com/contactrelay/contactrelay/internal/stream"
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
	log := newLogger(stderr, cfg.LogLevel, cfg.LogFormat)
	return serveTraced(ctx, cfg, log, getenv, hooks{})
}

// serveTraced runs serve with the tracing the OTEL_* variables ask for.
func serveTraced(ctx context.Context, cfg Config, log *slog.Logger, getenv func(string) string, hk hooks) error {
	tp, shutdown, err := newTracerProvider(ctx, getenv)
	if err != nil {
		return &exitError{code: 2, err: err}
	}
	defer func() {
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := shutdown(sctx); err != nil {
			log.Warn("flushing traces failed", "error", err)
		}
	}()
	hk.tracerProvider = tp
	return serve(ctx, cfg, log, hk)
}

// hooks let dev mode and tests follow and shape the service's life. Nil
// fields are not used.
type hooks struct {
	// connected is called with the NATS connection once it is made.
	connected func(*nats.Conn)
	// started is called once the service is about to consume, with the
	// address of its HTTP server.
	started func(httpAddr string)
	// tracerProvider makes the service's spans; nil means none.
	tracerProvider trace.TracerProvider
}

// serve runs the service until ctx is cancelled.
func serve(ctx context.Context, cfg Config, log *slog.Logger, hk hooks) error {
	tp := hk.tracerProvider
	if tp == nil {
		tp = noop.NewTracerProvider()
	}
	propagator := propagation.NewCompositeTextMapPropagator(propagation.TraceContext{}, propagation.Baggage{})
	hc := clients.NewHTTPClient(cfg.Concurrency)
	if _, off := tp.(noop.TracerProvider); off {
		// No spans to make: carry the command's trace context on, only.
		hc.Transport = propagating{base: hc.Transport, propagator: propagator}
	} else {
		// Every provider request gets a client span and carries traceparent.
		hc.Transport = otelhttp.NewTransport(hc.Transport, otelhttp.WithTracerProvider(tp), otelhttp.WithPropagators(propagator))
	}
	// The metrics are made once the enabled providers are known. The
	// providers' own requests (PIK's token requests) are counted as they
	// are made, the first of them in checkCredentials, after met is set.
	var met *metrics.Metrics
	providers, disabled, err := buildProviders(cfg, hc, func(provider, op string, took time.Duration, err error) {
		met.ProviderCall(provider, op, took, err)
	})
	if err != nil {
		return &exitError{code: 2, err: err}
	}
	for name, why := range disabled {
		log.Info("provider disabled", "provider", name, "why", why)
	}
	if len(providers) == 0 {
		return &exitError{code: 2, err: errors.New("no provider is enabled: set INSTANTPAY_CLIENT_ID and INSTANTPAY_CLIENT_SECRET, or PIK_BASE_URL, PIK_APP_ID and PIK_APP_SECRET (or try 'consumer dev')")}
	}

	nc, err := connectNATS(cfg, "contactrelay", log)
	if err != nil {
		return err
	}
	defer nc.Close()
	if hk.connected != nil {
		hk.connected(nc)
	}
	perms := stream.NewPermissions(log)
	nc.SetErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) {
		if !perms.Observe(err) {
			log.Warn("NATS error", "error", err)
		}
	})
	js, err := newJetStream(nc, cfg)
	if err != nil {
		return err
	}
	if err := stream.Setup(ctx, js, stream.Topology{AckWait: cfg.AckWait}); err != nil {
		return err
	}
	store, err := stream.OpenRecords(ctx, js, handlers.DefaultStoreTimeout)
	if err != nil {
		return err
	}
	defer store.Close()
	tracker := health.NewProviders(keys(providers), nil)
	met = metrics.New(keys(providers))
	// The token request a credentials check makes is counted as it is made.
	checkCredentials(ctx, providers, tracker.ProviderCall, log)
	h, err := handlers.New(handlers.Config{
		Providers:            providers,
		KnownProviders:       knownProviders(),
		DefaultProvider:      cfg.DefaultProvider,
		Store:                store,
		Logger:               log,
		Source:               cfg.EventSource,
		MaxDeliver:           cfg.MaxDeliver,
		RetryInitialInterval: cfg.RetryInitial,
		RetryMaxInterval:     cfg.RetryMax,
		RetryMaxElapsed:      cfg.RetryMaxElapsed,
		CallTimeout:          cfg.ProviderTimeout,
		Protection:           cfg.Protection,
		Hooks: handlers.Hooks{
			ProviderCall: func(provider, op string, took time.Duration, err error) {
				tracker.ProviderCall(provider, op, took, err)
				met.ProviderCall(provider, op, took, err)
			},
			Retry:         met.Retry,
			CircuitChange: met.CircuitChange,
		},
		Tracer: tp.Tracer("github.com/contactrelay/contactrelay/internal/handlers"),
	})
	if err != nil {
		return err
	}
	runner := stream.NewRunner(js, h, stream.RunnerConfig{
		Records:        store,
		Concurrency:    cfg.Concurrency,
		Prefetch:       prefetch(cfg, providers),
		Permissions:    perms,
		AckWait:        cfg.AckWait,
		ShutdownGrace:  cfg.ShutdownGrace,
		Logger:         log,
		Hooks:          stream.Hooks{Received: met.Received, Settled: met.Settled},
		TracerProvider: tp,
		Propagator:     propagator,
	})
	watchCtx, stopWatch := context.WithCancel(ctx)
	defer stopWatch()
	go stream.WatchConsumer(watchCtx, js, 10*time.Second, met.ConsumerState)

	httpAddr := ""
	if cfg.HTTPAddr != "" {
		checks := []health.Check{
			{Name: "nats", Check: func() error {
				if st := nc.Status(); st != nats.CONNECTED {
					return fmt.Errorf("connection %s", strings.ToLower(st.String()))
				}
				return nil
			}},
			{Name: "consumer", Check: runner.Consuming},
			{Name: "permissions", Check: perms.Check},
		}
		mux := http.NewServeMux()
		mux.Handle("GET /metrics", met.Handler())
		mux.Handle("/", health.Handler(checks, tracker))
		srv, addr, err := startHTTP(cfg.HTTPAddr, mux, log)
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
	if hk.started != nil {
		hk.started(httpAddr)
	}
	err = runner.Run(ctx)
	log.Info("stopped")
	return err
}

// prefetch is how many commands the runner fetches ahead of its workers:
// CONCURRENCY, unless an enabled provider has a rate limit, which lets
// through no more than rate × ACK_WAIT/2 commands in half an ack wait; a
// command fetched beyond that would wait out its ack wait in the buffer
// and be delivered again.
func prefetch[P any](cfg Config, providers map[string]P) int {
	n := cfg.Concurrency
	for name := range providers {
		if r := cfg.Protection[name].RateLimit; r > 0 {
			n = min(n, max(1, int(r*cfg.AckWait.Seconds()/2)))
		}
	}
	return n
}

func keys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	return out
}

// startHTTP serves the health endpoints on addr.
func startHTTP(addr string, h http.Handler, log *slog.Logger) (*http.Server, string, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, "", &exitError{code: 2, err: fmt.Errorf("HTTP_ADDR %s: %w", addr, err)}
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 5 * time.Second}
	go func() {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error("HTTP server stopped", "error", err)
		}
	}()
	return srv, ln.Addr().String(), nil
}

// authenticator is a provider that can check its credentials up front.
type authenticator interface {
	Authenticate(ctx context.Context) error
}

// checkCredentials asks each provider that can to check its credentials, so
// that refused ones show in the log and in readiness before any command.
func checkCredentials(ctx context.Context, providers map[string]handlers.Provider, report func(provider, op string, took time.Duration, err error), log *slog.Logger) {
	for name, p := range providers {
		a, ok := p.(authenticator)
		if !ok {
			continue
		}
		actx, cancel := context.WithTimeout(ctx, 10*time.Second)
		start := time.Now()
		err := a.Authenticate(actx)
		cancel()
		report(name, "token", time.Since(start), err)
		if err != nil {
			log.Error("provider credentials check failed", "provider", name, "error", err)
		}
	}
}
