package failstore_test

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/require"
	"golang.org/x/sync/errgroup"

	"github.com/contactrelay/contactrelay/contact"
	"github.com/contactrelay/contactrelay/internal/events"
	"github.com/contactrelay/contactrelay/internal/failstore"
	"github.com/contactrelay/contactrelay/internal/natstest"
)

// BenchmarkOpenFailuresAtScale fills a store with FAILSTORE_BENCH_OPEN
// open failures (default 20,000) through the store's own writer, as the
// service writes it: every tenth command fails twice (its older entry
// purged), and a tenth more commands are opened and then resolved. It
// then times what the failure tooling asks of it: the newest page of 20,
// the counts by reason of everything, of one reason and of one provider,
// and by reason and provider (the service's metric), all from the server. With FAILSTORE_BENCH_URL it fills (once: a store that
// holds enough already is kept) the server there, so that the CLI and
// the console can be measured against it afterwards (docs/PERFORMANCE.md):
//
//	FAILSTORE_BENCH_OPEN=1000000 FAILSTORE_BENCH_URL=nats://127.0.0.1:4222 \
//	  go test -run '^$' -bench OpenFailuresAtScale -benchtime 20x -timeout 2h ./internal/failstore
func BenchmarkOpenFailuresAtScale(b *testing.B) {
	n := 20000
	if v := os.Getenv("FAILSTORE_BENCH_OPEN"); v != "" {
		var err error
		n, err = strconv.Atoi(v)
		require.NoError(b, err)
	}
	var js jetstream.JetStream
	if url := os.Getenv("FAILSTORE_BENCH_URL"); url != "" {
		nc, err := nats.Connect(url)
		require.NoError(b, err)
		b.Cleanup(nc.Close)
		js, err = jetstream.New(nc)
		require.NoError(b, err)
	} else {
		srv := natstest.Start(b, nil)
		_, js = srv.Connect(b)
	}
	ctx := context.Background()
	s, err := js.CreateOrUpdateStream(ctx, failstore.StreamConfig(1))
	require.NoError(b, err)
	indexed := os.Getenv("FAILSTORE_BENCH_NOINDEX") == ""
	if indexed {
		// Created, not updated: an update without it would drop the
		// index's metadata (built).
		idx, err := js.Stream(ctx, failstore.IndexStream)
		if err != nil {
			idx, err = js.CreateStream(ctx, failstore.IndexStreamConfig(1))
		}
		require.NoError(b, err)
		if s.CachedInfo().State.Msgs == 0 && !failstore.IndexBuilt(idx.CachedInfo()) {
			require.NoError(b, failstore.MarkIndexBuilt(ctx, js))
		}
	}
	if held := s.CachedInfo().State.Msgs; held < uint64(n) {
		fillStore(b, js, n)
	}
	if idx, err := js.Stream(ctx, failstore.IndexStream); indexed && err == nil && !failstore.IndexBuilt(idx.CachedInfo()) {
		// A store filled without the index: the migration indexes it.
		st, err := failstore.IndexAll(ctx, js, nil)
		require.NoError(b, err)
		b.Logf("indexed %d open failures (%d index writes) in %s", st.Failures, st.Writes, st.Took.Round(time.Millisecond))
	}
	info, err := s.Info(ctx)
	require.NoError(b, err)
	b.Logf("store: %d open failures, %d bytes, sequences %d..%d", info.State.Msgs, info.State.Bytes, info.State.FirstSeq, info.State.LastSeq)
	if indexed {
		idx, err := js.Stream(ctx, failstore.IndexStream)
		require.NoError(b, err)
		ii, err := idx.Info(ctx)
		require.NoError(b, err)
		open := float64(info.State.Msgs)
		b.Logf("index: %d entries, %d bytes (%.0f bytes and %.2f entries per open failure), %d writes in all",
			ii.State.Msgs, ii.State.Bytes, float64(ii.State.Bytes)/open, float64(ii.State.Msgs)/open, ii.State.LastSeq)
	}

	b.Run("page-20", func(b *testing.B) {
		for b.Loop() {
			page, err := failstore.LoadPage(ctx, js, failstore.Select{}, 20, 0)
			require.NoError(b, err)
			require.Len(b, page.Failures, 20)
		}
	})
	b.Run("page-20-whole", func(b *testing.B) {
		for b.Loop() {
			page, err := failstore.LoadPage(ctx, js, failstore.Select{}, 20, 0)
			require.NoError(b, err)
			got, err := failstore.Get(ctx, js, page.Failures)
			require.NoError(b, err)
			require.Len(b, got, 20)
		}
	})
	b.Run("count-all", func(b *testing.B) {
		for b.Loop() {
			_, err := failstore.Count(ctx, js, failstore.Select{})
			require.NoError(b, err)
		}
	})
	b.Run("count-reason", func(b *testing.B) {
		for b.Loop() {
			c, err := failstore.Count(ctx, js, failstore.Select{Reasons: []contact.Reason{contact.ReasonInvalid}})
			require.NoError(b, err)
			require.NotZero(b, c[contact.ReasonInvalid])
		}
	})
	b.Run("count-by-both", func(b *testing.B) {
		for b.Loop() {
			_, err := failstore.CountByBoth(ctx, js, []string{"instantpay", "pik"})
			require.NoError(b, err)
		}
	})
	if indexed {
		lookup := func(b *testing.B, value func(i int) string, want int) {
			k := 0
			for b.Loop() {
				k++
				i := (k * 7919) % n // spread over the store, resolved commands aside
				found, err := failstore.Lookup(ctx, js, value(i), failstore.Select{}, 20)
				require.NoError(b, err)
				require.Len(b, found.Failures, min(want, 20), "lookup of %q", value(i))
			}
		}
		b.Run("lookup-email", func(b *testing.B) {
			lookup(b, func(i int) string { return fmt.Sprintf("Customer%d@Example.com", i) }, 1)
		})
		b.Run("lookup-metadata", func(b *testing.B) {
			lookup(b, func(i int) string { return fmt.Sprintf("crm-%d", i) }, 1)
		})
		b.Run("lookup-mobile-spaced", func(b *testing.B) {
			// A mobile is shared by the commands n/100,000 apart.
			lookup(b, func(i int) string { return fmt.Sprintf("+91 98765 %05d", i%100000) }, max(1, n/100000))
		})
	}
	b.Run("count-provider", func(b *testing.B) {
		for b.Loop() {
			_, err := failstore.Count(ctx, js, failstore.Select{Providers: []string{"pik"}})
			require.NoError(b, err)
		}
	})
}

// fillStore writes n open failures through the writer, with replaced and
// resolved entries among them, reporting its rate.
func fillStore(b *testing.B, js jetstream.JetStream, n int) {
	b.Helper()
	ctx := context.Background()
	w, err := failstore.OpenWriter(ctx, js)
	require.NoError(b, err)
	start := time.Now()
	base := start.Add(-24 * time.Hour)
	var done atomic.Int64
	entry := func(i, generation int, reason contact.Reason) *failstore.Entry {
		id := fmt.Sprintf("bench-%07d", i)
		provider := "instantpay"
		if i%3 == 0 {
			provider = "pik"
		}
		cmd := fmt.Sprintf(`{"commandId":%q,"name":"Customer %d","email":"customer%d@example.com","mobile":"+9198765%05d","tagId":"tag-1","companyName":"Company %d","provider":%q,"metadata":{"crmId":"CRM-%d"}}`,
			id, i, i, i%100000, i%5000, provider, i)
		f := contact.Failed{CommandID: id, Provider: provider, Reason: reason, Retryable: reason.Retryable(), Attempts: 5,
			Message: provider + " kept failing: 503 Service Unavailable", Command: json.RawMessage(cmd)}
		if generation > 0 {
			f.ReplayOf = fmt.Sprintf("gen-%d", generation)
		}
		ev, err := events.NewEvent("", contact.SubjectFailed, id, f.ReplayOf, base.Add(time.Duration(i)*50*time.Millisecond), f)
		require.NoError(b, err)
		e, err := failstore.NewEntry(&ev, ev.AppendJSON(nil), false)
		require.NoError(b, err)
		return e
	}
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(64)
	extra := n / 10
	for i := range n + extra {
		g.Go(func() error {
			reason := contact.ReasonExhausted
			if i%4 == 0 {
				reason = contact.ReasonInvalid
			}
			if err := w.Open(gctx, entry(i, 0, reason), nil); err != nil {
				return err
			}
			switch {
			case i >= n: // opened, then resolved
				if err := w.Resolve(gctx, fmt.Sprintf("bench-%07d", i), nil); err != nil {
					return err
				}
			case i%10 == 0: // failed again: the older entry is purged
				if err := w.Open(gctx, entry(i, 2, contact.ReasonRejected), nil); err != nil {
					return err
				}
			}
			if d := done.Add(1); d%50000 == 0 {
				b.Logf("filled %d of %d in %s", d, n+extra, time.Since(start).Round(time.Second))
			}
			return nil
		})
	}
	require.NoError(b, g.Wait())
	b.Logf("filled %d open failures (%d writes) in %s", n, n+extra+n/10+extra, time.Since(start).Round(time.Second))
}
