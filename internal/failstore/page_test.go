package failstore_test

import (
	"context"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/contactrelay/contactrelay/contact"
	"github.com/contactrelay/contactrelay/internal/events"
	"github.com/contactrelay/contactrelay/internal/failstore"
	"github.com/contactrelay/contactrelay/internal/natstest"
)

// fillWorld opens n failures through the writer, every fifth of them
// replaced by a newer failure and every seventh resolved afterwards, and
// returns the commandIds left open, newest first.
func fillWorld(t *testing.T, wd *world, n int) []string {
	t.Helper()
	var order []string
	open := map[string]bool{}
	for i := range n {
		o := outcome{commandID: fmt.Sprintf("p-%04d", i), failed: true, reason: contact.ReasonExhausted}
		if i%4 == 0 {
			o.reason = contact.ReasonInvalid
		}
		wd.record(t, o)
		wd.change(t, o)
		order = append(order, o.commandID)
		open[o.commandID] = true
		if i%5 == 0 && i > 0 { // an older command fails again: it is newest now
			again := outcome{commandID: fmt.Sprintf("p-%04d", i-3), generation: "g2", failed: true, reason: contact.ReasonRejected}
			wd.record(t, again)
			wd.change(t, again)
			order = append(order, again.commandID)
			open[again.commandID] = true
		}
		if i%7 == 0 && i > 0 {
			done := outcome{commandID: fmt.Sprintf("p-%04d", i-1), generation: "g3"}
			wd.record(t, done)
			wd.change(t, done)
			open[done.commandID] = false
		}
	}
	var newest []string
	seen := map[string]bool{}
	for i := len(order) - 1; i >= 0; i-- {
		id := order[i]
		if open[id] && !seen[id] {
			seen[id] = true
			newest = append(newest, id)
		}
	}
	return newest
}

// A page reads the entries above it, not the store: its first page of 20
// out of hundreds reads a bounded window, and the pages, followed by
// their cursors, list every open failure once, newest first by the order
// of the writes (replaced failures at the time they failed again,
// resolved ones gone).
func TestLoadPageReadsOnlyThePage(t *testing.T) {
	wd := newWorld(t)
	ctx := context.Background()
	want := fillWorld(t, wd, 400)

	page, err := failstore.LoadPage(ctx, wd.js, failstore.Select{}, 20, 0)
	require.NoError(t, err)
	require.Len(t, page.Failures, 20)
	assert.LessOrEqual(t, page.Read, 20*2+16, "the first page read a window above it, not the %d entries", len(want))
	assert.NotZero(t, page.Next)

	var got []string
	var before uint64
	for {
		page, err := failstore.LoadPage(ctx, wd.js, failstore.Select{}, 20, before)
		require.NoError(t, err)
		for _, f := range page.Failures {
			got = append(got, f.CommandID)
		}
		if page.Next == 0 {
			break
		}
		before = page.Next
	}
	assert.Equal(t, want, got, "every open failure once, newest first")

	// A selection the server filters reads only its own entries.
	page, err = failstore.LoadPage(ctx, wd.js, failstore.Select{Reasons: []contact.Reason{contact.ReasonRejected}}, 5, 0)
	require.NoError(t, err)
	require.Len(t, page.Failures, 5)
	for _, f := range page.Failures {
		assert.Equal(t, contact.ReasonRejected, f.Reason)
	}
	// One matched on the headers reads back until the page is full.
	page, err = failstore.LoadPage(ctx, wd.js, failstore.Select{Text: "P-001"}, 20, 0)
	require.NoError(t, err)
	var ids []string
	for _, f := range page.Failures {
		ids = append(ids, f.CommandID)
	}
	assert.ElementsMatch(t, []string{"p-0010", "p-0011", "p-0012", "p-0014", "p-0015", "p-0016", "p-0017", "p-0018", "p-0019"}, ids)
	assert.Zero(t, page.Next)
}

// Counts come from the server, and agree with what a load reads.
func TestCountAgreesWithLoad(t *testing.T) {
	wd := newWorld(t)
	ctx := context.Background()
	fillWorld(t, wd, 120)
	for _, q := range []failstore.Select{
		{},
		{Reasons: []contact.Reason{contact.ReasonInvalid, contact.ReasonRejected}},
		{Providers: []string{"pik"}},
		{Providers: []string{"instantpay"}},
		{CommandID: "p-0007"},
		{CommandID: "p-0006"},
	} {
		snap, err := failstore.Load(ctx, wd.js, q)
		require.NoError(t, err)
		want := map[contact.Reason]int{}
		for _, f := range snap.Failures {
			want[f.Reason]++
		}
		got, err := failstore.Count(ctx, wd.js, q)
		require.NoError(t, err)
		assert.Equal(t, want, got, "%+v", q)
	}
	_, err := failstore.Count(ctx, wd.js, failstore.Select{Text: "x"})
	assert.Error(t, err, "a text needs the entries read")
}

// A rebuilt store holds its entries in the order of the history, so that
// its pages are newest first.
func TestRebuildStoresInTheOrderOfTheHistory(t *testing.T) {
	srv := natstest.Start(t, nil)
	_, js := srv.Connect(t)
	ctx := context.Background()
	_, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: "HISTORY", Subjects: []string{contact.SubjectCreated, contact.SubjectFailed}})
	require.NoError(t, err)
	_, err = js.CreateStream(ctx, failstore.StreamConfig(1))
	require.NoError(t, err)
	var want []string
	at := time.Now().Add(-time.Hour)
	for i := range 60 {
		id := fmt.Sprintf("h-%02d", i)
		f := contact.Failed{CommandID: id, Provider: "pik", Reason: contact.ReasonExhausted, Message: "down"}
		ev, err := events.NewEvent("", contact.SubjectFailed, id, "", at.Add(time.Duration(i)*time.Second), f)
		require.NoError(t, err)
		_, err = js.Publish(ctx, contact.SubjectFailed, ev.AppendJSON(nil))
		require.NoError(t, err)
		want = append([]string{id}, want...)
	}
	_, err = failstore.Rebuild(ctx, js, "HISTORY", nil, nil)
	require.NoError(t, err)
	page, err := failstore.LoadPage(ctx, js, failstore.Select{}, 100, 0)
	require.NoError(t, err)
	var got []string
	for _, f := range page.Failures {
		got = append(got, f.CommandID)
	}
	assert.Equal(t, want, got)
}

// The counts by reason and provider come from the server too, a provider
// that is none of the known ones counted as other.
func TestCountByBothAgreesWithLoad(t *testing.T) {
	wd := newWorld(t)
	ctx := context.Background()
	fillWorld(t, wd, 60)
	for i, p := range []string{"acme", "", "instantpay", "Odd.Name"} {
		f := contact.Failed{CommandID: fmt.Sprintf("x-%d", i), Provider: p, Reason: contact.ReasonUnroutable, Message: "no route"}
		ev, err := events.NewEvent("", contact.SubjectFailed, f.CommandID, "", time.Now(), f)
		require.NoError(t, err)
		e, err := failstore.NewEntry(&ev, ev.AppendJSON(nil), false)
		require.NoError(t, err)
		require.NoError(t, wd.w.Open(ctx, e, nil))
	}
	known := []string{"pik", "instantpay"}
	snap, err := failstore.Load(ctx, wd.js, failstore.Select{})
	require.NoError(t, err)
	_, _, both := snap.Counts()
	want := map[[2]string]int{}
	for k, n := range both {
		if k[1] != "" && k[1] != "pik" && k[1] != "instantpay" {
			k[1] = failstore.OtherProvider
		}
		want[k] += n
	}
	got, err := failstore.CountByBoth(ctx, wd.js, known)
	require.NoError(t, err)
	assert.Equal(t, want, got)
	assert.Equal(t, 2, got[[2]string{"unroutable", failstore.OtherProvider}])
}

// A run of removed entries above the page (the newest failures resolved)
// costs a few gets, not a read of the run.
func TestLoadPageSkipsRemovedEntries(t *testing.T) {
	wd := newWorld(t)
	ctx := context.Background()
	want := fillWorld(t, wd, 200)
	for i, id := range want[:120] {
		done := outcome{commandID: id, generation: fmt.Sprintf("ok-%d", i)}
		wd.record(t, done)
		wd.change(t, done)
	}
	page, err := failstore.LoadPage(ctx, wd.js, failstore.Select{}, 20, 0)
	require.NoError(t, err)
	var got []string
	for _, f := range page.Failures {
		got = append(got, f.CommandID)
	}
	assert.Equal(t, want[120:140], got)
	assert.LessOrEqual(t, page.Read, 20*2+16, "the removed entries were not read")
}

// Reading a page, counting and reading one command's failures make no
// consumer but the counting ones (whose making has the server count what
// is pending over the whole store: seconds at a million entries).
func TestPagesAndCommandsMakeNoConsumer(t *testing.T) {
	wd := newWorld(t)
	ctx := context.Background()
	fillWorld(t, wd, 40)
	var creates atomic.Int32
	js, err := jetstream.New(wd.js.Conn(), jetstream.WithClientTrace(&jetstream.ClientTrace{
		RequestSent: func(subj string, _ []byte) {
			if strings.Contains(subj, ".CONSUMER.CREATE.") {
				creates.Add(1)
			}
		},
	}))
	require.NoError(t, err)
	page, err := failstore.LoadPage(ctx, js, failstore.Select{}, 10, 0)
	require.NoError(t, err)
	require.Len(t, page.Failures, 10)
	snap, err := failstore.Load(ctx, js, failstore.Select{CommandID: "p-0007"})
	require.NoError(t, err)
	require.Len(t, snap.Failures, 1)
	assert.Equal(t, "p-0007", snap.Failures[0].CommandID)
	assert.Zero(t, creates.Load(), "no consumer made")
	_, err = failstore.Count(ctx, js, failstore.Select{Reasons: []contact.Reason{contact.ReasonInvalid}})
	require.NoError(t, err)
	assert.EqualValues(t, 1, creates.Load(), "one pending count")
}
