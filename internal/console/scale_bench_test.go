package console

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/require"

	"github.com/contactrelay/contactrelay/contact"
	"github.com/contactrelay/contactrelay/internal/events"
	"github.com/contactrelay/contactrelay/internal/failstore"
	"github.com/contactrelay/contactrelay/internal/natstest"
	"github.com/contactrelay/contactrelay/internal/provision"
)

// BenchmarkConsoleAtScale reads the open failures into the console's
// index and times its pages. With CONSOLE_BENCH_URL it reads the store of
// the server there (filled by failstore's BenchmarkOpenFailuresAtScale,
// docs/PERFORMANCE.md); without, 100,000 open failures seeded here. It
// logs the load's time and the heap the index holds after a collection
// (the process's RSS, server aside, is measured on a 'consumer console'
// process: docs/PERFORMANCE.md):
//
//	CONSOLE_BENCH_URL=nats://127.0.0.1:14226 \
//	  go test -run '^$' -bench ConsoleAtScale -benchtime 20x -timeout 1h ./internal/console
func BenchmarkConsoleAtScale(b *testing.B) {
	var js jetstream.JetStream
	if url := os.Getenv("CONSOLE_BENCH_URL"); url != "" {
		nc, err := nats.Connect(url)
		require.NoError(b, err)
		b.Cleanup(nc.Close)
		js, err = jetstream.New(nc)
		require.NoError(b, err)
	} else {
		_, js = natstest.Start(b, nil).Connect(b)
		require.NoError(b, provision.Setup(context.Background(), js, provision.Topology{}))
		seed(b, js, 100_000, exhausted)
	}
	srv, err := New(Config{JS: js, NoAuth: true, Addr: "127.0.0.1:0"})
	require.NoError(b, err)
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	start := time.Now()
	v := srv.follow.Load(context.Background())
	took := time.Since(start)
	_, err, _ = v.State()
	require.NoError(b, err)
	runtime.GC()
	runtime.ReadMemStats(&after)
	b.Logf("read %d open failures into the index in %s; heap %.1f MB after a collection (%.1f MB before the read), index about %.1f MB",
		v.Open(), took.Round(time.Millisecond), float64(after.HeapAlloc)/1e6, float64(before.HeapAlloc)/1e6, float64(v.Bytes())/1e6)

	// Following: ten failures opened and five resolved (their
	// contact.created published) between two catch-ups, as the service
	// would; the view is kept, not read again.
	b.Run("follow", func(b *testing.B) {
		ctx := context.Background()
		w, err := failstore.OpenWriter(ctx, js)
		require.NoError(b, err)
		var opened []string
		n := 0
		for b.Loop() {
			b.StopTimer()
			for range 10 {
				id := fmt.Sprintf("follow-%d-%d", time.Now().UnixNano(), n)
				openFailure(b, w, id, n)
				opened = append(opened, id)
				n++
			}
			for range 5 {
				resolveFailure(b, js, w, opened[0])
				opened = opened[1:]
			}
			b.StartTimer()
			if got := srv.follow.Load(ctx); got != v {
				b.Fatal("the store was read again")
			}
		}
		b.StopTimer()
		for _, id := range opened {
			resolveFailure(b, js, w, id)
		}
		require.Same(b, v, srv.follow.Load(ctx))
	})

	web := httptest.NewServer(srv.Handler())
	b.Cleanup(web.Close)
	c := (&fixture{}).client(b)
	for _, page := range []struct{ name, path string }{
		{"first page", "/failures"},
		{"reason and provider", "/failures?reason=invalid&provider=instantpay"},
		{"time range", "/failures?since=2h&until=1h"},
		{"free text", "/failures?q=-09999"},
		{"grouped", "/failures?view=groups"},
		{"overview", "/"},
	} {
		b.Run(page.name, func(b *testing.B) {
			for b.Loop() {
				resp, body := get(b, c, web.URL+page.path)
				if resp.StatusCode != http.StatusOK || !strings.Contains(body, "open failure") {
					b.Fatalf("%s: %d", page.path, resp.StatusCode)
				}
			}
		})
	}
}

// openFailure opens a failure of the command id, as the service would
// (through failstore.Writer).
func openFailure(tb testing.TB, w *failstore.Writer, id string, i int) {
	tb.Helper()
	provider := "instantpay"
	if i%3 == 0 {
		provider = "pik"
	}
	f := contact.Failed{CommandID: id, Provider: provider, Reason: contact.ReasonExhausted, Retryable: true, Attempts: 2,
		Message: provider + " said no to p" + fmt.Sprint(i) + "@example.com", Command: json.RawMessage(`{"name":"x"}`)}
	ev, err := events.NewEvent("", contact.SubjectFailed, id, "", time.Now(), f)
	require.NoError(tb, err)
	e, err := failstore.NewEntry(&ev, ev.AppendJSON(nil), false)
	require.NoError(tb, err)
	require.NoError(tb, w.Open(context.Background(), e, nil))
}

// resolveFailure resolves the command id's failure and publishes its
// contact.created, as the service would.
func resolveFailure(tb testing.TB, js jetstream.JetStream, w *failstore.Writer, id string) {
	tb.Helper()
	ctx := context.Background()
	require.NoError(tb, w.Resolve(ctx, id, nil))
	ev, err := events.NewEvent("", contact.SubjectCreated, id, "", time.Now(), contact.Created{CommandID: id, Provider: "pik", ContactID: "c"})
	require.NoError(tb, err)
	_, err = js.PublishMsg(ctx, &nats.Msg{Subject: contact.SubjectCreated, Data: ev.AppendJSON(nil)})
	require.NoError(tb, err)
}
