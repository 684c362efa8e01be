package client_test

import (
	"context"
	"log/slog"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/contactrelay/contactrelay/internal/clients/instantpay"
	"github.com/contactrelay/contactrelay/internal/handlers"
	"github.com/contactrelay/contactrelay/internal/natstest"
	"github.com/contactrelay/contactrelay/internal/provision"
	"github.com/contactrelay/contactrelay/internal/sandbox"
	"github.com/contactrelay/contactrelay/internal/stream"
)

// world is an embedded JetStream server with the streams set up, and an
// InstantPay sandbox.
type world struct {
	srv  *natstest.Server
	js   jetstream.JetStream
	ipay *sandbox.InstantPay
	url  string
}

// newWorld starts a JetStream server and sets up the service's streams,
// without the service.
func newWorld(tb testing.TB) *world {
	tb.Helper()
	return newWorldWith(tb, nil, "", "")
}

// newWorldWith is newWorld with the server's options changed by change,
// the service connecting as user ("": none).
func newWorldWith(tb testing.TB, change func(*server.Options), user, password string) *world {
	tb.Helper()
	srv := natstest.Start(tb, change)
	url := srv.ClientURL()
	if user != "" {
		url = srv.URL(user, password)
	}
	nc, err := nats.Connect(url, nats.MaxReconnects(-1), nats.ReconnectWait(50*time.Millisecond))
	if err != nil {
		tb.Fatalf("connect: %v", err)
	}
	tb.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		tb.Fatalf("jetstream: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := provision.Setup(ctx, js, provision.Topology{}); err != nil {
		tb.Fatalf("setup: %v", err)
	}
	ipay := sandbox.NewInstantPay(sandbox.InstantPayConfig{ClientID: "id", ClientSecret: "secret"})
	hs := httptest.NewServer(ipay)
	tb.Cleanup(func() { ipay.Close(); hs.Close() })
	return &world{srv: srv, js: js, ipay: ipay, url: hs.URL}
}

// startService runs the service (InstantPay only, the default provider)
// on w until stop is called or the test ends.
func (w *world) startService(tb testing.TB) (stop func()) {
	tb.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	store, err := stream.OpenRecords(ctx, w.js, handlers.DefaultStoreTimeout)
	if err != nil {
		tb.Fatalf("records: %v", err)
	}
	ip, err := instantpay.New(instantpay.Config{BaseURL: w.url, ClientID: "id", ClientSecret: "secret", Timeout: time.Second})
	if err != nil {
		tb.Fatalf("instantpay: %v", err)
	}
	log := slog.New(slog.DiscardHandler)
	h, err := handlers.New(handlers.Config{
		Providers:            map[string]handlers.Provider{instantpay.Name: ip},
		KnownProviders:       []string{instantpay.Name, "pik"},
		DefaultProvider:      instantpay.Name,
		Store:                store,
		Logger:               log,
		MaxDeliver:           3,
		RetryInitialInterval: 5 * time.Millisecond,
		RetryMaxInterval:     20 * time.Millisecond,
		RetryMaxElapsed:      100 * time.Millisecond,
		CallTimeout:          time.Second,
	})
	if err != nil {
		tb.Fatalf("handler: %v", err)
	}
	r := stream.NewRunner(w.js, h, stream.RunnerConfig{Records: store, Concurrency: 8, Logger: log, AckWait: 5 * time.Second, ShutdownGrace: 5 * time.Second})
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }()
	stopped := false
	stop = func() {
		if stopped {
			return
		}
		stopped = true
		cancel()
		if err := <-done; err != nil {
			tb.Errorf("service: %v", err)
		}
		store.Close()
	}
	tb.Cleanup(stop)
	return stop
}
