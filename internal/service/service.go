// Package service assembles and runs what 'consumer run' runs: the
// provider clients the configuration enables, the NATS connection with
// the streams, the consumer and the record bucket set up, the handler
// and the runner that consumes commands, and the HTTP server of the
// health and metrics endpoints. 'consumer dev', 'consumer bench' and the
// tests run it too.
//
// New builds what needs no I/O; Run connects, consumes until its context
// is cancelled, and closes everything it opened before it returns.
package service

import (
	"context"
	"errors"
	"fmt"
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

	"github.com/contactrelay/contactrelay/contact"
	"github.com/contactrelay/contactrelay/internal/clients"
	"github.com/contactrelay/contactrelay/internal/config"
	"github.com/contactrelay/contactrelay/internal/exit"
	"github.com/contactrelay/contactrelay/internal/failstore"
	"github.com/contactrelay/contactrelay/internal/handlers"
	"github.com/contactrelay/contactrelay/internal/health"
	"github.com/contactrelay/contactrelay/internal/metrics"
	"github.com/contactrelay/contactrelay/internal/natsconn"
	"github.com/contactrelay/contactrelay/internal/pause"
	"github.com/contactrelay/contactrelay/internal/providers"
	"github.com/contactrelay/contactrelay/internal/provision"
	"github.com/contactrelay/contactrelay/internal/status"
	"github.com/contactrelay/contactrelay/internal/stream"
)

// Serve runs the service as 'consumer run' does, until ctx is cancelled:
// with the tracing the OTEL_* variables getenv gives ask for (see
// NewTracerProvider; version names the build in the spans' resource),
// whose spans not yet sent it flushes before it returns. hooks.TracerProvider
// is set by Serve.
func Serve(ctx context.Context, cfg config.Config, log *slog.Logger, getenv func(string) string, version string, hooks Hooks) error {
	tp, shutdown, err := NewTracerProvider(ctx, getenv, version)
	if err != nil {
		return &exit.Error{Code: 2, Err: err}
	}
	defer func() {
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := shutdown(sctx); err != nil {
			log.Warn("flushing traces failed", "error", err)
		}
	}()
	hooks.TracerProvider = tp
	s, err := New(cfg, log, hooks)
	if err != nil {
		return err
	}
	return s.Run(ctx)
}

// Hooks let dev mode and tests follow and shape the service's life. Nil
// fields are not used.
type Hooks struct {
	// Connected is called with the NATS connection once it is made.
	Connected func(*nats.Conn)
	// Started is called once the service is about to consume, with the
	// address of its HTTP server ("" for none).
	Started func(httpAddr string)
	// TracerProvider makes the service's spans; nil means none.
	TracerProvider trace.TracerProvider
}

// Service is the service, built and ready to run. It is not safe for
// concurrent use: Run is called once.
type Service struct {
	cfg       config.Config
	log       *slog.Logger
	hooks     Hooks
	tel       *telemetry
	providers map[string]handlers.Provider
}

// New builds the service for cfg, logging to log: the telemetry and the
// providers the configuration enables (it logs the disabled ones). None
// enabled is a configuration error (exit 2). New makes no connection.
func New(cfg config.Config, log *slog.Logger, hooks Hooks) (*Service, error) {
	tel := newTelemetry(hooks.TracerProvider)
	// The metrics are made once the enabled providers are known. The
	// providers' own requests (PIK's token requests) are counted as they
	// are made, the first of them in checkCredentials, after tel.met is set.
	enabled, err := enabledProviders(cfg, providerHTTPClient(cfg, tel), log, func(provider, op string, took time.Duration, err error) {
		tel.met.ProviderCall(provider, op, took, err)
	})
	if err != nil {
		return nil, err
	}
	return &Service{cfg: cfg, log: log, hooks: hooks, tel: tel, providers: enabled}, nil
}

// Run connects to NATS, sets up the streams, the consumer and the record
// store, serves the HTTP endpoints and consumes commands until ctx is
// cancelled; then it finishes the commands in flight (within
// SHUTDOWN_GRACE) and closes the server, the store and the connection
// before it returns.
func (s *Service) Run(ctx context.Context) error {
	cfg, log, hk, tel, enabled := s.cfg, s.log, s.hooks, s.tel, s.providers
	b, err := connectBroker(ctx, cfg, log, hk.Connected)
	if err != nil {
		return err
	}
	defer b.close()
	tel.tracker = health.NewProviders(keys(enabled), nil)
	tel.met = metrics.New(keys(enabled))
	// The token request a credentials check makes is counted as it is made.
	checkCredentials(ctx, enabled, tel.tracker.ProviderCall, log)
	// Every pause is known before the first command is taken.
	pauses, err := pause.Watch(ctx, b.pauses, log, func(st pause.State, paused bool) { tel.met.Paused(st.Provider, paused) })
	if err != nil {
		return err
	}
	defer pauses.Stop()
	// What this instance is doing, for 'consumer status' and the console.
	tel.status = status.NewTracker(keys(enabled), pauses.Pauses)
	statusSub, err := status.Serve(b.nc, tel.status)
	if err != nil {
		return err
	}
	defer func() { _ = statusSub.Unsubscribe() }()
	h, err := newHandler(cfg, enabled, b.store, pauses.Paused, log, tel)
	if err != nil {
		return err
	}
	runner := newRunner(cfg, b, h, prefetch(cfg, enabled), log, tel)
	watchCtx, stopWatch := context.WithCancel(ctx)
	defer stopWatch()
	go provision.WatchConsumer(watchCtx, b.js, 10*time.Second, tel.met.ConsumerState)
	go failstore.Watch(watchCtx, b.js, 30*time.Second, providers.Names(), func(counts map[[2]string]int, err error) {
		if err != nil {
			log.Warn("could not count the open failures", "error", err)
			return
		}
		tel.met.FailuresOpen(counts, providers.Names())
	})

	httpAddr, stopHTTP, err := serveOperations(cfg.HTTPAddr, b, runner, tel, log,
		health.Detail{Name: "pauses", Value: func() any { return pauses.Pauses() }})
	if err != nil {
		return err
	}
	defer stopHTTP()
	log.Info("consuming", "stream", provision.CommandStream, "consumer", provision.Durable,
		"providers", fmt.Sprint(keys(enabled)), "defaultProvider", cfg.DefaultProvider,
		"concurrency", cfg.Concurrency, "maxDeliver", cfg.MaxDeliver, "httpAddr", httpAddr)
	if hk.Started != nil {
		hk.Started(httpAddr)
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
	status     *status.Tracker
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
func providerHTTPClient(cfg config.Config, tel *telemetry) *http.Client {
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
func enabledProviders(cfg config.Config, hc *http.Client, log *slog.Logger, onRequest func(provider, op string, took time.Duration, err error)) (map[string]handlers.Provider, error) {
	enabled, disabled, err := providers.Build(cfg, hc, onRequest)
	if err != nil {
		return nil, &exit.Error{Code: 2, Err: err}
	}
	for name, why := range disabled {
		log.Info("provider disabled", "provider", name, "why", why)
	}
	if len(enabled) == 0 {
		return nil, &exit.Error{Code: 2, Err: errors.New("no provider is enabled: set INSTANTPAY_CLIENT_ID and INSTANTPAY_CLIENT_SECRET, or PIK_BASE_URL, PIK_APP_ID and PIK_APP_SECRET (or try 'consumer dev')")}
	}
	return enabled, nil
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
	pauses   jetstream.KeyValue // the bucket of pauses and held counts
}

// Topology returns the JetStream resources the configuration asks for,
// with replicas (0: one, or what an earlier setup made) and note told of
// what setup changed or could not change.
func Topology(cfg config.Config, replicas int, note func(string)) provision.Topology {
	return provision.Topology{Replicas: replicas, AckWait: cfg.AckWait, EventMaxAge: cfg.EventMaxAge, RecordTTL: cfg.RecordTTL, AuditMaxAge: cfg.AuditMaxAge, Note: note}
}

// connectBroker connects to NATS, tells connected of the connection, and
// sets up the streams, the consumer and the record store.
func connectBroker(ctx context.Context, cfg config.Config, log *slog.Logger, connected func(*nats.Conn)) (*broker, error) {
	nc, err := natsconn.Connect(cfg, "contactrelay", log)
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
	if b.js, err = natsconn.JetStream(nc, cfg); err != nil {
		return fail(err)
	}
	if err := provision.Setup(ctx, b.js, Topology(cfg, 0, func(note string) { log.Warn("setup: " + note) })); err != nil {
		return fail(err)
	}
	if b.store, err = stream.OpenRecords(ctx, b.js, handlers.DefaultStoreTimeout); err != nil {
		return fail(err)
	}
	b.store.TTL = cfg.RecordTTL
	if b.pauses, err = b.js.KeyValue(ctx, pause.Bucket); err != nil {
		b.store.Close()
		return fail(fmt.Errorf("bucket %s: %w", pause.Bucket, err))
	}
	if b.failures, err = failstore.OpenWriter(ctx, b.js); err != nil {
		b.store.Close()
		return fail(err)
	}
	if s, err := b.js.Stream(ctx, failstore.Stream); err == nil && !failstore.Rebuilt(s.CachedInfo()) {
		log.Warn("the open failures have not been built from the event history yet: run 'consumer setup' once; " +
			"until then 'consumer failures' lists only failures decided by this version")
	}
	if s, err := b.js.Stream(ctx, failstore.IndexStream); err == nil && !failstore.IndexBuilt(s.CachedInfo()) {
		log.Warn("the open failures are not all in the exact-value index " + failstore.IndexStream + " yet: run 'consumer setup' once; " +
			"until then 'consumer failures --text' and the console's text filter search by scanning")
	}
	return b, nil
}

func (b *broker) close() {
	b.store.Close()
	b.nc.Close()
}

// newHandler builds the handler that decides each command, reporting its
// provider calls, retries and circuit changes to tel.
func newHandler(cfg config.Config, enabled map[string]handlers.Provider, store handlers.Store, paused func(string) bool, log *slog.Logger, tel *telemetry) (*handlers.Handler, error) {
	return handlers.New(handlers.Config{
		Paused:               paused,
		PauseDelay:           cfg.PauseHoldDelay,
		Providers:            enabled,
		KnownProviders:       providers.Names(),
		DefaultProvider:      cfg.DefaultProvider,
		Store:                store,
		Logger:               log,
		Source:               cfg.EventSource,
		MaxDeliver:           cfg.MaxDeliver,
		RetryInitialInterval: cfg.RetryInitial,
		RetryMaxInterval:     cfg.RetryMax,
		RetryMaxElapsed:      cfg.RetryMaxElapsed,
		CallTimeout:          cfg.ProviderTimeout,
		Protection:           protection(cfg.Protection),
		Hooks: handlers.Hooks{
			ProviderCall: func(provider, op string, took time.Duration, err error) {
				tel.tracker.ProviderCall(provider, op, took, err)
				tel.met.ProviderCall(provider, op, took, err)
			},
			Retry: tel.met.Retry,
			CircuitChange: func(provider, from, to string) {
				tel.met.CircuitChange(provider, from, to)
				tel.status.CircuitChange(provider, from, to)
			},
			Routed: func(m handlers.Message, commandID, provider string) {
				tel.status.Routed(m.Sequence, commandID, provider)
			},
			Attempted: func(m handlers.Message, op string, at time.Time, class string) {
				tel.status.Attempted(m.Sequence, op, at, class)
			},
			Retrying: func(m handlers.Message, next time.Time) { tel.status.Retrying(m.Sequence, next) },
		},
		Tracer: tel.tp.Tracer("github.com/contactrelay/contactrelay/internal/handlers"),
	})
}

// protection returns the handler's protection of each provider, as
// configured.
func protection(cfg map[string]config.Protection) map[string]handlers.Protection {
	out := make(map[string]handlers.Protection, len(cfg))
	for name, p := range cfg {
		out[name] = handlers.Protection(p)
	}
	return out
}

// newRunner builds the runner that consumes commands for h and carries its
// decisions out.
func newRunner(cfg config.Config, b *broker, h *handlers.Handler, prefetch int, log *slog.Logger, tel *telemetry) *stream.Runner {
	return stream.NewRunner(b.js, h, stream.RunnerConfig{
		Records:       b.store,
		Failures:      b.failures,
		Holds:         &pause.Holds{KV: b.pauses},
		Concurrency:   cfg.Concurrency,
		Prefetch:      prefetch,
		Permissions:   b.perms,
		AckWait:       cfg.AckWait,
		ShutdownGrace: cfg.ShutdownGrace,
		Logger:        log,
		Hooks: stream.Hooks{Received: tel.met.Received, Settled: func(m handlers.Message, dec handlers.Decision, took time.Duration, err error) {
			tel.status.Settled(m.Sequence)
			if dec.Event != nil && err == nil {
				tel.status.Outcome(dec.Event.Type == contact.SubjectCreated)
			}
			tel.met.Settled(m, dec, took, err)
		}},
		TracerProvider: tel.tp,
		Propagator:     tel.propagator,
	})
}

// serveOperations serves the metrics and the health endpoints on addr,
// unless addr is empty. It returns the address it listens on, or "", and
// stop, which shuts the server down.
func serveOperations(addr string, b *broker, runner *stream.Runner, tel *telemetry, log *slog.Logger, details ...health.Detail) (httpAddr string, stop func(), err error) {
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
	mux.Handle("/", health.Handler(checks, tel.tracker, details...))
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
func prefetch[P any](cfg config.Config, enabled map[string]P) int {
	n := cfg.Concurrency
	for name := range enabled {
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
		return nil, "", &exit.Error{Code: 2, Err: fmt.Errorf("HTTP_ADDR %s: %w", addr, err)}
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
func checkCredentials(ctx context.Context, enabled map[string]handlers.Provider, report func(provider, op string, took time.Duration, err error), log *slog.Logger) {
	for name, p := range enabled {
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
