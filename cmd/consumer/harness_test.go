package main

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"io"
	"log/slog"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/require"

	"github.com/contactrelay/contactrelay/internal/events"
	"github.com/contactrelay/contactrelay/internal/natstest"
	"github.com/contactrelay/contactrelay/internal/sandbox"
	"github.com/contactrelay/contactrelay/internal/stream"
)

// testEnv is one test's world: a JetStream server and both sandbox
// providers behind real HTTP servers.
type testEnv struct {
	nats *natstest.Server
	nc   *nats.Conn
	js   jetstream.JetStream
	ipay *sandbox.InstantPay
	pik  *sandbox.PIK
	vars map[string]string // the environment the service sees
}

func newTestEnv(t *testing.T) *testEnv {
	t.Helper()
	e := &testEnv{nats: natstest.Start(t, nil)}
	e.nc, e.js = e.nats.Connect(t)
	e.ipay = sandbox.NewInstantPay(sandbox.InstantPayConfig{ClientID: "id", ClientSecret: "secret"})
	ipaySrv := httptest.NewServer(e.ipay)
	t.Cleanup(func() { e.ipay.Close(); ipaySrv.Close() })
	e.pik = sandbox.NewPIK(sandbox.PIKConfig{AppID: "app", AppSecret: "app-secret", TokenTTL: time.Minute})
	pikSrv := httptest.NewServer(e.pik)
	t.Cleanup(func() { e.pik.Close(); pikSrv.Close() })
	e.vars = map[string]string{
		"NATS_URL":                 e.nats.ClientURL(),
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
	}
	return e
}

func (e *testEnv) getenv(k string) string { return e.vars[k] }

func (e *testEnv) config(t testing.TB) Config {
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

// service is a running instance of the service.
type service struct {
	httpAddr string
	logs     *syncBuffer
	stop     func()
}

// start runs the service until the test ends or stop is called.
func (e *testEnv) start(t *testing.T) *service {
	t.Helper()
	cfg := e.config(t)
	logs := &syncBuffer{}
	log := newLogger(io.MultiWriter(logs, testWriter{t}), slog.LevelDebug, "json") // the service's own, masking included
	ctx, cancel := context.WithCancel(context.Background())
	ready := make(chan string, 1)
	done := make(chan error, 1)
	go func() { done <- serve(ctx, cfg, log, func(addr string) { ready <- addr }) }()
	s := &service{logs: logs}
	select {
	case s.httpAddr = <-ready:
	case err := <-done:
		cancel()
		t.Fatalf("service did not start: %v", err)
	case <-time.After(10 * time.Second):
		cancel()
		t.Fatal("service did not start in time")
	}
	var once sync.Once
	s.stop = func() {
		once.Do(func() {
			cancel()
			select {
			case err := <-done:
				require.NoError(t, err, "the service stops cleanly")
			case <-time.After(30 * time.Second):
				t.Error("service did not stop")
			}
		})
	}
	t.Cleanup(s.stop)
	return s
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
	msg := nats.NewMsg(events.SubjectCreate)
	msg.Data = []byte(body)
	for i := 0; i+1 < len(hdr); i += 2 {
		msg.Header.Set(hdr[i], hdr[i+1])
	}
	_, err := e.js.PublishMsg(context.Background(), msg)
	require.NoError(t, err)
}

// events returns every event in the event stream, in order.
func (e *testEnv) events(t testing.TB) []events.Event {
	t.Helper()
	ctx := context.Background()
	s, err := e.js.Stream(ctx, stream.EventStream)
	if err != nil {
		return nil
	}
	info, err := s.Info(ctx)
	require.NoError(t, err)
	var out []events.Event
	for seq := info.State.FirstSeq; info.State.Msgs > 0 && seq <= info.State.LastSeq; seq++ {
		raw, err := s.GetMsg(ctx, seq)
		require.NoError(t, err)
		var ev events.Event
		require.NoError(t, json.Unmarshal(raw.Data, &ev))
		out = append(out, ev)
	}
	return out
}

// awaitEvents waits until the event stream holds n events, and returns them.
func (e *testEnv) awaitEvents(t testing.TB, n int, within time.Duration) []events.Event {
	t.Helper()
	var evs []events.Event
	deadline := time.Now().Add(within)
	for time.Now().Before(deadline) {
		if evs = e.events(t); len(evs) >= n {
			return evs
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("want %d events within %s, have %d", n, within, len(evs))
	return nil
}

// byCommand indexes events by commandId.
func byCommand(evs []events.Event) map[string][]events.Event {
	out := map[string][]events.Event{}
	for _, ev := range evs {
		out[ev.Subject] = append(out[ev.Subject], ev)
	}
	return out
}

func data[T any](t testing.TB, ev events.Event) T {
	t.Helper()
	var d T
	require.NoError(t, json.Unmarshal(ev.Data, &d))
	return d
}
