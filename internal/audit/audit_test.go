package audit

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/contactrelay/contactrelay/internal/fakeclock"
	"github.com/contactrelay/contactrelay/internal/natstest"
)

func TestWriteAndListNewestFirstFilteredAndPaged(t *testing.T) {
	ns := natstest.Start(t, nil)
	_, js := ns.Connect(t)
	ctx := context.Background()
	_, err := js.CreateStream(ctx, StreamConfig(1, 0))
	require.NoError(t, err)
	clock := fakeclock.New(time.Date(2026, 12, 7, 9, 0, 0, 0, time.UTC))
	w := &Writer{JS: js, Now: clock.Now}

	for i := range 10 {
		clock.Advance(time.Minute)
		e := Entry{User: []string{"ana", "vic"}[i%2], From: "203.0.113.9", Source: "console", Action: []string{ActionReplay, ActionDiscard}[i%2],
			CommandIDs: []string{fmt.Sprintf("cmd-%d", i)}, Count: 1}
		seq, err := w.Write(ctx, e)
		require.NoError(t, err)
		assert.EqualValues(t, i+1, seq, "entries are in order")
	}
	_, err = w.Write(ctx, Entry{Action: "delete everything"})
	assert.ErrorIs(t, err, ErrNotWritten, "an unknown action is refused")

	p, err := List(ctx, js, Query{})
	require.NoError(t, err)
	require.Len(t, p.Entries, 10)
	assert.Equal(t, "cmd-9", p.Entries[0].CommandIDs[0], "newest first")
	assert.Equal(t, time.Date(2026, 12, 7, 9, 10, 0, 0, time.UTC), p.Entries[0].Time)
	assert.Equal(t, "203.0.113.9", p.Entries[0].From)
	assert.Zero(t, p.Next)

	p, err = List(ctx, js, Query{Action: ActionDiscard, Limit: 2})
	require.NoError(t, err)
	require.Len(t, p.Entries, 2)
	assert.Equal(t, []string{"cmd-9"}, p.Entries[0].CommandIDs)
	assert.Equal(t, []string{"cmd-7"}, p.Entries[1].CommandIDs)
	p, err = List(ctx, js, Query{Action: ActionDiscard, Limit: 2, Before: p.Next})
	require.NoError(t, err)
	assert.Equal(t, []string{"cmd-5"}, p.Entries[0].CommandIDs, "the next page goes on where the first ended")

	p, err = List(ctx, js, Query{User: "ana"})
	require.NoError(t, err)
	assert.Len(t, p.Entries, 5)
	p, err = List(ctx, js, Query{CommandID: "cmd-4"})
	require.NoError(t, err)
	require.Len(t, p.Entries, 1)
	assert.Equal(t, ActionReplay, p.Entries[0].Action)
	p, err = List(ctx, js, Query{Since: time.Date(2026, 12, 7, 9, 8, 0, 0, time.UTC)})
	require.NoError(t, err)
	assert.Len(t, p.Entries, 3, "since 9:08: the entries of 9:08, 9:09 and 9:10")
}

func TestWriteFailsWithoutTheStream(t *testing.T) {
	ns := natstest.Start(t, nil)
	_, js := ns.Connect(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	_, err := (&Writer{JS: js}).Write(ctx, Entry{Action: ActionDiscard, User: "ana"})
	assert.ErrorIs(t, err, ErrNotWritten)
}

func TestListStopsAtMaxScan(t *testing.T) {
	ns := natstest.Start(t, nil)
	_, js := ns.Connect(t)
	ctx := context.Background()
	_, err := js.CreateStream(ctx, StreamConfig(1, 0))
	require.NoError(t, err)
	w := &Writer{JS: js}
	for i := range 10 {
		_, err := w.Write(ctx, Entry{User: "ana", Action: ActionUnmask, CommandIDs: []string{fmt.Sprint("c", i%2)}})
		require.NoError(t, err)
	}
	p, err := List(ctx, js, Query{CommandID: "c0", MaxScan: 4})
	require.NoError(t, err)
	assert.Len(t, p.Entries, 2, "two of the four entries read name c0")
	assert.True(t, p.Partial)
	assert.EqualValues(t, 7, p.Next, "the next page starts below the fourth read")
}
