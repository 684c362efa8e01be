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
	"github.com/nats-io/nats.go/jetstream"
	"go.opentelemetry.io/contrib/instrumentation/net/http/otelhttp"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"

	"github.com/contactrelay/contactrelay/internal/clients"
	"github.com/contactrelay/contactrelay/internal/failstore"
	"github.com/contactrelay/contactrelay/internal/handlers"
	"github.com/contactrelay/contactrelay/internal/health"
	"github.com/contactrelay/contactrelay/internal/metrics"
	"github.com/contactrelay/contactrelay/internal/provision"
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
	tel := newTelemetry(hk.tracerProvider)
	// The metrics are made once the enabled providers are known. The
	// providers' own requests (PIK's token requests) are counted as they
	// are made, the first of them in checkCredentials, after tel.met is set.
	providers, err := enabledProviders(cfg, providerHTTPClient(cfg, tel), log, func(provider, op string, took time.Duration, err error) {
		tel.met.ProviderCall(provider, op, took, err)
	})
	if err != nil {
		return err
	}

	b, err := connectBroker(ctx, cfg, log, hk.connected)
	if err != nil {
		return err
	}
	defer b.close()
	tel.tracker = health.NewProviders(keys(providers), nil)
	tel.met = metrics.New(keys(providers))
	// The token request a credentials check makes is counted as it is made.
	checkCredentials(ctx, providers, tel.tracker.ProviderCall, log)
	h, err := newHandler(cfg, providers, b.store, log, tel)
	if err != nil {
		return err
	}
	runner := newRunner(cfg, b, h, prefetch(cfg, providers), log, tel)
	watchCtx, stopWatch := context.WithCancel(ctx)
	defer stopWatch()
	go provision.WatchConsumer(watchCtx, b.js, 10*time.Second, tel.met.ConsumerState)
	go failstore.Watch(watchCtx, b.js, 30*time.Second, func(counts map[[2]string]int, err error) {
		if err != nil {
			log.Warn("could not count the open failures", "error", err)
			return
		}
		tel.met.FailuresOpen(counts, knownProviders())
	})

	httpAddr, stopHTTP, err := serveOperations(cfg.HTTPAddr, b, runner, tel, log)
	if err != nil {
		return err
	}
	defer stopHTTP()
	log.Info("consuming", "stream", provision.CommandStream, "consumer", provision.Durable,
		"providers", fmt.Sprint(keys(providers)), "defaultProvider", cfg.DefaultProvider,
		"concurrency", cfg.Concurrency, "maxDeliver", cfg.MaxDeliver, "httpAddr", httpAddr)
	if hk.started != nil {
		hk.started(httpAddr)
	}
	err = runner.Run(ctx)
	log.Info("stopped")
	return err
}

// telemetry is what the service reports through: spans, the propagator
// that carries trace context to providers and events, the metrics, and the
// providers' health for readiness. met and tracker are set once the
// enabled providers are known.
type telemetry struct {
	tp         trace.TracerProvider
	propagator propagation.TextMapPropagator
	met        *metrics.Metrics
	tracker    *health.Providers
}

// newTelemetry returns the telemetry for tp; nil tp means no spans.
func newTelemetry(tp trace.TracerProvider) *telemetry {
	if tp == nil {
		tp = noop.NewTracerProvider()
	}
	return &telemetry{
		tp:         tp,
		propagator: propagation.NewCompositeTextMapPropagator(propagation.TraceContext{}, propagation.Baggage{}),
	}
}

// providerHTTPClient is the HTTP client the provider clients share: with
// spans, every request gets a client span and carries traceparent;
// without, it carries the command's trace context on, only.
func providerHTTPClient(cfg Config, tel *telemetry) *http.Client {
	hc := clients.NewHTTPClient(cfg.Concurrency)
	if _, off := tel.tp.(noop.TracerProvider); off {
		hc.Transport = propagating{base: hc.Transport, propagator: tel.propagator}
	} else {
		hc.Transport = otelhttp.NewTransport(hc.Transport, otelhttp.WithTracerProvider(tel.tp), otelhttp.WithPropagators(tel.propagator))
	}
	return hc
}

// enabledProviders builds the providers the configuration enables and logs
// the others; none enabled is a configuration error (exit 2).
func enabledProviders(cfg Config, hc *http.Client, log *slog.Logger, onRequest func(provider, op string, took time.Duration, err error)) (map[string]handlers.Provider, error) {
	providers, disabled, err := buildProviders(cfg, hc, onRequest)
	if err != nil {
		return nil, &exitError{code: 2, err: err}
	}
	for name, why := range disabled {
		log.Info("provider disabled", "provider", name, "why", why)
	}
	if len(providers) == 0 {
		return nil, &exitError{code: 2, err: errors.New("no provider is enabled: set INSTANTPAY_CLIENT_ID and INSTANTPAY_CLIENT_SECRET, or PIK_BASE_URL, PIK_APP_ID and PIK_APP_SECRET (or try 'consumer dev')")}
	}
	return providers, nil
}

// broker is the service's side of NATS: the connection, JetStream with the
// streams and the consumer set up, the watch on refused permissions, and
// the record store. close closes the store, then the connection.
type broker struct {
	nc       *nats.Conn
	js       jetstream.JetStream
	failures *failstore.Writer
	perms    *stream.Permissions
	store    *stream.Records
}

// topology returns the JetStream resources the configuration asks for,
// with replicas (0: one, or what an earlier setup made) and note told of
// what setup changed or could not change.
func topology(cfg Config, replicas int, note func(string)) provision.Topology {
	return provision.Topology{Replicas: replicas, AckWait: cfg.AckWait, EventMaxAge: cfg.EventMaxAge, RecordTTL: cfg.RecordTTL, Note: note}
}

// connectBroker connects to NATS, tells connected of the connection, and
// sets up the streams, the consumer and the record store.
func connectBroker(ctx context.Context, cfg Config, log *slog.Logger, connected func(*nats.Conn)) (*broker, error) {
	nc, err := connectNATS(cfg, "contactrelay", log)
	if err != nil {
		return nil, err
	}
	if connected != nil {
		connected(nc)
	}
	b := &broker{nc: nc, perms: stream.NewPermissions(log)}
	nc.SetErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) {
		if !b.perms.Observe(err) {
			log.Warn("NATS error", "error", err)
		}
	})
	fail := func(err error) (*broker, error) {
		nc.Close()
		return nil, err
	}
	if b.js, err = newJetStream(nc, cfg); err != nil {
		return fail(err)
	}
	if err := provision.Setup(ctx, b.js, topology(cfg, 0, func(note string) { log.Warn("setup: " + note) })); err != nil {
		return fail(err)
	}
	if b.store, err = stream.OpenRecords(ctx, b.js, handlers.DefaultStoreTimeout); err != nil {
		return fail(err)
	}
	b.store.TTL = cfg.RecordTTL
	if b.failures, err = failstore.OpenWriter(ctx, b.js); err != nil {
		b.store.Close()
		return fail(err)
	}
	if s, err := b.js.Stream(ctx, failstore.Stream); err == nil && !failstore.Rebuilt(s.CachedInfo()) {
		log.Warn("the open failures have not been built from the event history yet: run 'consumer setup' once; " +
			"until then 'consumer failures' lists only failures decided by this version")
	}
	return b, nil
}

func (b *broker) close() {
	b.store.Close()
	b.nc.Close()
}

// newHandler builds the handler that decides each command, reporting its
// provider calls, retries and circuit changes to tel.
func newHandler(cfg Config, providers map[string]handlers.Provider, store handlers.Store, log *slog.Logger, tel *telemetry) (*handlers.Handler, error) {
	return handlers.New(handlers.Config{
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
				tel.tracker.ProviderCall(provider, op, took, err)
				tel.met.ProviderCall(provider, op, took, err)
			},
			Retry:         tel.met.Retry,
			CircuitChange: tel.met.CircuitChange,
		},
		Tracer: tel.tp.Tracer("github.com/contactrelay/contactrelay/internal/handlers"),
	})
}

// newRunner builds the runner that consumes commands for h and carries its
// decisions out.
func newRunner(cfg Config, b *broker, h *handlers.Handler, prefetch int, log *slog.Logger, tel *telemetry) *stream.Runner {
	return stream.NewRunner(b.js, h, stream.RunnerConfig{
		Records:        b.store,
		Failures:       b.failures,
		Concurrency:    cfg.Concurrency,
		Prefetch:       prefetch,
		Permissions:    b.perms,
		AckWait:        cfg.AckWait,
		ShutdownGrace:  cfg.ShutdownGrace,
		Logger:         log,
		Hooks:          stream.Hooks{Received: tel.met.Received, Settled: tel.met.Settled},
		TracerProvider: tel.tp,
		Propagator:     tel.propagator,
	})
}

// serveOperations serves the metrics and the health endpoints on addr,
// unless addr is empty. It returns the address it listens on, or "", and
// stop, which shuts the server down.
func serveOperations(addr string, b *broker, runner *stream.Runner, tel *telemetry, log *slog.Logger) (httpAddr string, stop func(), err error) {
	if addr == "" {
		return "", func() {}, nil
	}
	checks := []health.Check{
		{Name: "nats", Check: func() error {
			if st := b.nc.Status(); st != nats.CONNECTED {
				return fmt.Errorf("connection %s", strings.ToLower(st.String()))
			}
			return nil
		}},
		{Name: "consumer", Check: runner.Consuming},
		{Name: "permissions", Check: b.perms.Check},
	}
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", tel.met.Handler())
	mux.Handle("/", health.Handler(checks, tel.tracker))
	srv, httpAddr, err := startHTTP(addr, mux, log)
	if err != nil {
		return "", nil, err
	}
	return httpAddr, func() {
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(sctx)
	}, nil
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
