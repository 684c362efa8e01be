package pause_test

import (
	"bytes"
	"context"
	"log/slog"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/contactrelay/contactrelay/internal/exit"
	"github.com/contactrelay/contactrelay/internal/natstest"
	"github.com/contactrelay/contactrelay/internal/pause"
)

func TestPauseIsWatchedAndSurvivesANewWatcher(t *testing.T) {
	ctx := context.Background()
	srv := natstest.Start(t, nil)
	_, js := srv.Connect(t)
	kv, err := js.CreateOrUpdateKeyValue(ctx, pause.BucketConfig(1))
	require.NoError(t, err)
	var audited []string
	st := &pause.Store{KV: kv, Audit: func(_ context.Context, action string, s pause.State) error {
		audited = append(audited, action+" "+s.Provider+" by "+s.By)
		return nil
	}}

	changes := make(chan bool, 4)
	w, err := pause.Watch(ctx, kv, slog.New(slog.DiscardHandler), func(s pause.State, paused bool) {
		assert.Equal(t, "pik", s.Provider)
		changes <- paused
	})
	require.NoError(t, err)
	defer w.Stop()
	assert.False(t, w.Paused("pik"))

	var out bytes.Buffer
	require.NoError(t, st.Apply(ctx, pause.Change{Provider: "pik", Reason: "maintenance", By: "ana"}, &out))
	assert.Contains(t, out.String(), "pik paused")
	select {
	case p := <-changes:
		assert.True(t, p, "the watcher is told of the pause")
	case <-time.After(5 * time.Second):
		t.Fatal("the pause never reached the watcher")
	}
	assert.True(t, w.Paused("pik"))
	assert.False(t, w.Paused("instantpay"))
	require.Len(t, w.Pauses(), 1)
	assert.Equal(t, "maintenance", w.Pauses()[0].Reason)

	// A watcher started later (an instance restarted) knows the pause
	// before Watch returns.
	later, err := pause.Watch(ctx, kv, slog.New(slog.DiscardHandler), nil)
	require.NoError(t, err)
	defer later.Stop()
	assert.True(t, later.Paused("pik"), "a new watcher reads the pause before it returns")

	require.NoError(t, st.Apply(ctx, pause.Change{Resume: true, Provider: "pik", By: "bo"}, &out))
	select {
	case p := <-changes:
		assert.False(t, p, "the watcher is told of the resume")
	case <-time.After(5 * time.Second):
		t.Fatal("the resume never reached the watcher")
	}
	assert.False(t, w.Paused("pik"))
	assert.Equal(t, []string{"pause pik by ana", "resume pik by bo"}, audited, "each change is audited, in order")

	out.Reset()
	require.NoError(t, st.Apply(ctx, pause.Change{Resume: true, Provider: "pik"}, &out))
	assert.Contains(t, out.String(), "pik was not paused")
	err = st.Apply(ctx, pause.Change{Provider: "paypal"}, &out)
	assert.Equal(t, 2, exit.Code(err), "an unknown provider is a usage error: %v", err)
}

func TestHoldsCountPerMessage(t *testing.T) {
	ctx := context.Background()
	srv := natstest.Start(t, nil)
	_, js := srv.Connect(t)
	kv, err := js.CreateOrUpdateKeyValue(ctx, pause.BucketConfig(1))
	require.NoError(t, err)
	h := &pause.Holds{KV: kv}
	n, err := h.Count(ctx, "S", 7)
	require.NoError(t, err)
	assert.Zero(t, n)
	for want := 1; want <= 3; want++ {
		n, err = h.Add(ctx, "S", 7)
		require.NoError(t, err)
		assert.Equal(t, want, n)
	}
	n, err = h.Count(ctx, "S", 8)
	require.NoError(t, err)
	assert.Zero(t, n, "counted per message")
	require.NoError(t, h.Forget(ctx, "S", 7))
	n, err = h.Count(ctx, "S", 7)
	require.NoError(t, err)
	assert.Zero(t, n, "forgotten once settled")
	n, err = h.Add(ctx, "S", 7)
	require.NoError(t, err)
	assert.Equal(t, 1, n, "counted afresh after being forgotten")
}

// TestPauseReasonIsBounded: a reason of any length (a form, a flag) is
// cut so that the state always fits a message.
func TestPauseReasonIsBounded(t *testing.T) {
	ctx := context.Background()
	srv := natstest.Start(t, nil)
	_, js := srv.Connect(t)
	kv, err := js.CreateOrUpdateKeyValue(ctx, pause.BucketConfig(1))
	require.NoError(t, err)
	st := &pause.Store{KV: kv}
	_, err = st.Pause(ctx, "pik", strings.Repeat("é", 2<<20), "ana")
	require.NoError(t, err, "a 2 MiB reason still pauses")
	s, ok, err := st.Get(ctx, "pik")
	require.NoError(t, err)
	require.True(t, ok)
	assert.Equal(t, 501, utf8.RuneCountInString(s.Reason), "500 runes and the mark of the cut")
	assert.True(t, strings.HasSuffix(s.Reason, "…"))
}
