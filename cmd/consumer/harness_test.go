package main

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/otel/trace"

	"github.com/contactrelay/contactrelay/contact"
	"github.com/contactrelay/contactrelay/internal/config"
	"github.com/contactrelay/contactrelay/internal/natstest"
	"github.com/contactrelay/contactrelay/internal/provision"
	"github.com/contactrelay/contactrelay/internal/sandbox"
	"github.com/contactrelay/contactrelay/internal/service"
)

// testEnv is one test's world: a JetStream server (or a cluster of them)
// and both sandbox providers behind real HTTP servers.
type testEnv struct {
	nats    *natstest.Server  // nil with a cluster
	cluster *natstest.Cluster // nil with one server
	nc      *nats.Conn
	js      jetstream.JetStream
	ipay    *sandbox.InstantPay
	pik     *sandbox.PIK
	// ipayCalls counts the requests InstantPay is answering at once.
	ipayCalls inFlight
	// tracerProvider, if set, makes the service's spans.
	tracerProvider trace.TracerProvider
	// quietLogs keeps the services' logs out of the test's log unless the
	// test fails, for tests that process thousands of commands.
	quietLogs bool
	vars      map[string]string // the environment the service sees
}

func newTestEnv(t *testing.T, ipay ...func(*sandbox.InstantPayConfig)) *testEnv {
	t.Helper()
	srv := natstest.Start(t, nil)
	e := newTestEnvOn(t, srv.ClientURL(), srv.Connect, ipay...)
	e.nats = srv
	return e
}

// newClusterTestEnv is newTestEnv on a JetStream cluster of n servers; the
// service's NATS_URL lists them all.
func newClusterTestEnv(t *testing.T, n int) *testEnv {
	t.Helper()
	c := natstest.StartCluster(t, n)
	e := newTestEnvOn(t, c.ClientURLs(), c.Connect)
	e.cluster = c
	return e
}

// newTestEnvOn is newTestEnv on the given servers; ipay, if given, shapes
// the InstantPay sandbox's configuration.
func newTestEnvOn(t *testing.T, natsURL string, connect func(testing.TB) (*nats.Conn, jetstream.JetStream), ipay ...func(*sandbox.InstantPayConfig)) *testEnv {
	t.Helper()
	e := &testEnv{}
	e.nc, e.js = connect(t)
	ipayCfg := sandbox.InstantPayConfig{ClientID: "id", ClientSecret: "secret"}
	for _, change := range ipay {
		change(&ipayCfg)
	}
	e.ipay = sandbox.NewInstantPay(ipayCfg)
	ipaySrv := httptest.NewServer(e.ipayCalls.wrap(e.ipay))
	t.Cleanup(func() { e.ipay.Close(); ipaySrv.Close() })
	e.pik = sandbox.NewPIK(sandbox.PIKConfig{AppID: "app", AppSecret: "app-secret", TokenTTL: time.Minute})
	pikSrv := httptest.NewServer(e.pik)
	t.Cleanup(func() { e.pik.Close(); pikSrv.Close() })
	e.vars = map[string]string{
		"NATS_URL":                 natsURL,
		"INSTANTPAY_BASE_URL":      ipaySrv.URL,
		"INSTANTPAY_CLIENT_ID":     "id",
		"INSTANTPAY_CLIENT_SECRET": "secret",
		"PIK_BASE_URL":             pikSrv.URL,
		"PIK_APP_ID":               "app",
		"PIK_APP_SECRET":           "app-secret",
		"DEFAULT_PROVIDER":         "instantpay",
		"HTTP_ADDR":                "127.0.0.1:0",
		"CONCURRENCY":              "8",
		"MAX_DELIVER":              "3",
		"RETRY_INITIAL_INTERVAL":   "5ms",
		"RETRY_MAX_INTERVAL":       "20ms",
		"RETRY_MAX_ELAPSED":        "100ms",
		"PROVIDER_TIMEOUT":         "500ms",
		"SHUTDOWN_GRACE":           "10s",
		"LOG_LEVEL":                "debug",
		"CIRCUIT_OPEN_FOR":         "200ms",
	}
	return e
}

func (e *testEnv) getenv(k string) string { return e.vars[k] }

func (e *testEnv) config(t testing.TB) config.Config {
	t.Helper()
	fs := flag.NewFlagSet("test", flag.ContinueOnError)
	load := configFlags(fs, e.getenv)
	require.NoError(t, fs.Parse(nil))
	cfg, err := load()
	require.NoError(t, err)
	return cfg
}

// syncBuffer is a bytes.Buffer safe for the logger's concurrent writes.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// instance is a running instance of the service.
type instance struct {
	httpAddr string
	logs     *syncBuffer
	nc       *nats.Conn
	stop     func()
	cancel   context.CancelFunc
	finished chan struct{} // closed when serve returned
	err      error         // what serve returned
	killed   bool
}

// kill stops the service as a crash would, as far as the broker and the
// record can tell: its connection drops at once, nothing more is acked,
// published or recorded. Provider calls in flight still reach the
// provider, as they would have before a real crash.
func (s *instance) kill(t *testing.T) {
	t.Helper()
	s.killed = true
	s.nc.Close()
	s.cancel()
	select {
	case <-s.finished:
	case <-time.After(30 * time.Second):
		t.Error("killed service did not return")
	}
}

// start runs the service until the test ends or stop is called.
func (e *testEnv) start(t *testing.T) *instance {
	t.Helper()
	cfg := e.config(t)
	logs := &syncBuffer{}
	var out io.Writer = io.MultiWriter(logs, testWriter{t})
	if e.quietLogs {
		out = logs
		t.Cleanup(func() {
			if t.Failed() {
				t.Log("the service's last log lines:\n" + tail(logs.String(), 200))
			}
		})
	}
	log := config.NewLogger(out, slog.LevelDebug, "json") // the service's own, masking included
	ctx, cancel := context.WithCancel(context.Background())
	ready := make(chan string, 1)
	s := &instance{logs: logs, cancel: cancel, finished: make(chan struct{})}
	conn := make(chan *nats.Conn, 1)
	go func() {
		defer close(s.finished)
		svc, err := service.New(cfg, log, service.Hooks{
			Connected:      func(nc *nats.Conn) { conn <- nc },
			Started:        func(addr string) { ready <- addr },
			TracerProvider: e.tracerProvider,
		})
		if err != nil {
			s.err = err
			return
		}
		s.err = svc.Run(ctx)
	}()
	select {
	case s.httpAddr = <-ready:
		s.nc = <-conn
	case <-s.finished:
		cancel()
		t.Fatalf("service did not start: %v", s.err)
	case <-time.After(10 * time.Second):
		cancel()
		t.Fatal("service did not start in time")
	}
	s.stop = func() {
		cancel()
		select {
		case <-s.finished:
			if !s.killed {
				require.NoError(t, s.err, "the service stops cleanly")
			}
		case <-time.After(30 * time.Second):
			t.Error("service did not stop")
		}
	}
	t.Cleanup(s.stop)
	return s
}

// tail returns the last n lines of s.
func tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	return strings.Join(lines[max(0, len(lines)-n):], "\n")
}

// testWriter sends log lines to the test's log, shown on failure.
type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Helper()
	w.t.Log(string(bytes.TrimRight(p, "\n")))
	return len(p), nil
}

// publish publishes a command body, with optional headers.
func (e *testEnv) publish(t testing.TB, body string, hdr ...string) {
	t.Helper()
	msg := nats.NewMsg(contact.SubjectCreate)
	msg.Data = []byte(body)
	for i := 0; i+1 < len(hdr); i += 2 {
		msg.Header.Set(hdr[i], hdr[i+1])
	}
	_, err := e.js.PublishMsg(context.Background(), msg)
	require.NoError(t, err)
}

// events returns every event in the event stream, in order.
func (e *testEnv) events(t testing.TB) []contact.Event {
	t.Helper()
	ctx := context.Background()
	s, err := e.js.Stream(ctx, provision.EventStream)
	if err != nil {
		return nil
	}
	info, err := s.Info(ctx)
	require.NoError(t, err)
	var out []contact.Event
	for seq := info.State.FirstSeq; info.State.Msgs > 0 && seq <= info.State.LastSeq; seq++ {
		raw, err := s.GetMsg(ctx, seq)
		require.NoError(t, err)
		var ev contact.Event
		require.NoError(t, json.Unmarshal(raw.Data, &ev))
		out = append(out, ev)
	}
	return out
}

// awaitEvents waits until the event stream holds n events, and returns them.
func (e *testEnv) awaitEvents(t testing.TB, n int, within time.Duration) []contact.Event {
	t.Helper()
	var evs []contact.Event
	require.EventuallyWithT(t, func(c *assert.CollectT) {
		evs = e.events(t)
		assert.GreaterOrEqual(c, len(evs), n, "events in the stream")
	}, within, 20*time.Millisecond)
	return evs
}

// settle waits until the durable consumer has nothing left to deliver nor
// to be acknowledged, then stops svc, which finishes what it still holds,
// and returns the events: no more can come.
func (e *testEnv) settle(t *testing.T, svc *instance, within time.Duration) []contact.Event {
	t.Helper()
	require.EventuallyWithT(t, func(c *assert.CollectT) {
		_, pending, ackPending, err := consumerProgress(context.Background(), e.js)
		require.NoError(c, err)
		assert.Zero(c, pending, "commands left to deliver")
		assert.Zero(c, ackPending, "commands delivered and not yet acknowledged")
	}, within, 20*time.Millisecond)
	svc.stop()
	return e.events(t)
}

// byCommand indexes events by commandId.
func byCommand(evs []contact.Event) map[string][]contact.Event {
	out := map[string][]contact.Event{}
	for _, ev := range evs {
		out[ev.Subject] = append(out[ev.Subject], ev)
	}
	return out
}

func data[T any](t testing.TB, ev contact.Event) T {
	t.Helper()
	var d T
	require.NoError(t, json.Unmarshal(ev.Data, &d))
	return d
}

// inFlight measures how many requests a handler answers at once.
type inFlight struct {
	now, peak atomic.Int32
	// seen, if set before the service starts, sees every request.
	seen func(*http.Request)
}

func (f *inFlight) wrap(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if f.seen != nil && !strings.HasPrefix(r.URL.Path, "/_sandbox") {
			f.seen(r)
		}
		n := f.now.Add(1)
		defer f.now.Add(-1)
		for {
			p := f.peak.Load()
			if n <= p || f.peak.CompareAndSwap(p, n) {
				break
			}
		}
		h.ServeHTTP(w, r)
	})
}

// watchPublishes records every event published, including those the
// stream drops as duplicates, through a core NATS subscription.
func (e *testEnv) watchPublishes(t testing.TB) func() []contact.Event {
	t.Helper()
	var (
		mu  sync.Mutex
		got []contact.Event
	)
	sub, err := e.nc.Subscribe("contact.*", func(m *nats.Msg) {
		if m.Subject == contact.SubjectCreate {
			return
		}
		var ev contact.Event
		if json.Unmarshal(m.Data, &ev) == nil {
			mu.Lock()
			got = append(got, ev)
			mu.Unlock()
		}
	})
	require.NoError(t, err)
	require.NoError(t, e.nc.Flush())
	t.Cleanup(func() { _ = sub.Unsubscribe() })
	return func() []contact.Event {
		mu.Lock()
		defer mu.Unlock()
		return append([]contact.Event(nil), got...)
	}
}

// assertExactlyOnce checks the service's guarantee for the given
// commandIds: each has exactly one terminal event in the stream.
func assertExactlyOnce(t testing.TB, evs []contact.Event, ids []string) {
	t.Helper()
	by := byCommand(evs)
	for _, id := range ids {
		assert.Len(t, by[id], 1, "%s has exactly one terminal outcome", id)
	}
	assert.Len(t, evs, len(ids), "no other events")
}
