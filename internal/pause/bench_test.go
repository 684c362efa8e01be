package pause_test

import (
	"context"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/contactrelay/contactrelay/internal/natstest"
	"github.com/contactrelay/contactrelay/internal/pause"
)

// BenchmarkPauseReachesInstances measures how long a pause takes from
// 'consumer pause' writing it to two watching instances (each on its own
// connection) both knowing it: the figure docs/OPERATIONS.md quotes.
func BenchmarkPauseReachesInstances(b *testing.B) {
	ctx := context.Background()
	srv := natstest.Start(b, nil)
	_, js := srv.Connect(b)
	kv, err := js.CreateOrUpdateKeyValue(ctx, pause.BucketConfig(1))
	require.NoError(b, err)
	st := &pause.Store{KV: kv}
	seen := make(chan bool, 16)
	for range 2 {
		_, ijs := srv.Connect(b)
		ikv, err := ijs.KeyValue(ctx, pause.Bucket)
		require.NoError(b, err)
		w, err := pause.Watch(ctx, ikv, slog.New(slog.NewTextHandler(io.Discard, nil)), func(_ pause.State, paused bool) { seen <- paused })
		require.NoError(b, err)
		b.Cleanup(w.Stop)
	}
	var worst time.Duration
	b.ResetTimer()
	for i := range b.N {
		start := time.Now()
		if i%2 == 0 {
			_, err = st.Pause(ctx, "pik", "bench", "bench")
		} else {
			err = st.Resume(ctx, "pik", "bench")
		}
		require.NoError(b, err)
		<-seen
		<-seen
		worst = max(worst, time.Since(start))
	}
	b.ReportMetric(float64(worst.Microseconds()), "worst-µs")
}
