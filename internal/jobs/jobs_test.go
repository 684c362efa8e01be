package jobs_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/sync/errgroup"

	"github.com/contactrelay/contactrelay/contact"
	"github.com/contactrelay/contactrelay/internal/events"
	"github.com/contactrelay/contactrelay/internal/failstore"
	"github.com/contactrelay/contactrelay/internal/fakeclock"
	"github.com/contactrelay/contactrelay/internal/jobs"
	"github.com/contactrelay/contactrelay/internal/natstest"
	"github.com/contactrelay/contactrelay/internal/provision"
	"github.com/contactrelay/contactrelay/internal/replay"
)

// setup starts a server with the service's streams and buckets.
func setup(t *testing.T) jetstream.JetStream {
	t.Helper()
	srv := natstest.Start(t, nil)
	_, js := srv.Connect(t)
	require.NoError(t, provision.Setup(context.Background(), js, provision.Topology{}))
	return js
}

// failure returns the entry of a failure of commandId id in generation
// gen ("" for the original command) and its event id.
func failure(t testing.TB, id, gen string) (*failstore.Entry, string) {
	t.Helper()
	cmd := fmt.Sprintf(`{"commandId":%q,"name":"Customer","email":"%s@example.com","mobile":"+919876543210","tagId":"tag-1","provider":"instantpay"}`, id, id)
	f := contact.Failed{CommandID: id, Provider: "instantpay", Reason: contact.ReasonExhausted, Retryable: true, Attempts: 5,
		Message: "instantpay kept failing: 503", Command: json.RawMessage(cmd), ReplayOf: gen}
	ev, err := events.NewEvent("", contact.SubjectFailed, id, gen, time.Now(), f)
	require.NoError(t, err)
	e, err := failstore.NewEntry(&ev, ev.AppendJSON(nil), false)
	require.NoError(t, err)
	return e, ev.ID
}

// fill opens n failures through the store's own writer: commandIds
// prefix-0 .. prefix-(n-1), returned with their failed events' ids.
func fill(t *testing.T, js jetstream.JetStream, prefix string, n int) map[string]string {
	t.Helper()
	ctx := context.Background()
	w, err := failstore.OpenWriter(ctx, js)
	require.NoError(t, err)
	ids := map[string]string{}
	var mu sync.Mutex
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(32)
	for i := range n {
		id := fmt.Sprintf("%s-%d", prefix, i)
		e, evID := failure(t, id, "")
		mu.Lock()
		ids[id] = evID
		mu.Unlock()
		g.Go(func() error { return w.Open(gctx, e, nil) })
	}
	require.NoError(t, g.Wait())
	return ids
}

// replayed returns, per Nats-Msg-Id, how many commands the command stream
// holds.
func replayed(t *testing.T, js jetstream.JetStream) map[string]int {
	t.Helper()
	ctx := context.Background()
	s, err := js.Stream(ctx, provision.CommandStream)
	require.NoError(t, err)
	info, err := s.Info(ctx)
	require.NoError(t, err)
	out := map[string]int{}
	for seq := info.State.FirstSeq; seq <= info.State.LastSeq && info.State.Msgs > 0; seq++ {
		msg, err := s.GetMsg(ctx, seq)
		require.NoError(t, err)
		out[msg.Header.Get(contact.HeaderMsgID)]++
	}
	return out
}

func newRunner(t *testing.T, js jetstream.JetStream, owner string) *jobs.Runner {
	t.Helper()
	st, err := jobs.OpenStore(context.Background(), js)
	require.NoError(t, err)
	return &jobs.Runner{JS: js, Store: st, Owner: owner, PageSize: 50}
}

// TestReplayJobResumesExactlyOnce: a replay job stopped half-way, and
// set back to a save before what it sent last (a process killed between
// sending and saving), is taken over by another process and finished:
// each failure is replayed exactly once, the re-sent ones counted as
// already sent.
func TestReplayJobResumesExactlyOnce(t *testing.T) {
	js := setup(t)
	ids := fill(t, js, "r", 1000)
	ctx := context.Background()

	a := newRunner(t, js, "a")
	actx, stop := context.WithCancel(ctx)
	defer stop()
	var snaps []jobs.Job
	a.Progress = func(j jobs.Job) {
		snaps = append(snaps, j)
		if j.Counts.Selected >= 500 {
			stop()
		}
	}
	j, err := a.Create(ctx, jobs.Spec{Kind: jobs.KindReplay, Described: "--all", Rate: 100000, User: "tester"})
	require.NoError(t, err)
	assert.Equal(t, 1000, j.Total, "counted by the server when it started")
	half, err := a.Run(actx, j)
	require.ErrorIs(t, err, context.Canceled)
	assert.Equal(t, jobs.Stopped, half.State)
	assert.Empty(t, half.Owner, "a cancelled run lets go of the job")
	require.GreaterOrEqual(t, half.Counts.Selected, 500)
	require.Less(t, half.Counts.Selected, 1000, "stopped half-way")

	// A crash loses what was sent since the last save: go back 100.
	var back jobs.Job
	for _, s := range snaps {
		if s.Counts.Selected == half.Counts.Selected-100 {
			back = s
		}
	}
	require.NotZero(t, back.ID)
	st, err := jobs.OpenStore(ctx, js)
	require.NoError(t, err)
	rewind(t, js, back)

	b := newRunner(t, js, "b")
	taken, err := b.Take(ctx, j.ID)
	require.NoError(t, err)
	assert.Equal(t, back.Cursor, taken.Cursor, "it resumes from the cursor saved")
	done, err := b.Run(ctx, taken)
	require.NoError(t, err)
	assert.Equal(t, jobs.Done, done.State)
	assert.Equal(t, 1000, done.Counts.Selected)
	assert.Equal(t, 100, done.Counts.AlreadySent, "the re-sent ones are dropped by the stream")
	assert.Equal(t, 900, done.Counts.Sent)

	got := replayed(t, js)
	assert.Len(t, got, 1000, "one replay per failure")
	for id, ev := range ids {
		assert.Equal(t, 1, got[replay.MsgIDPrefix+ev], "replays of %s", id)
	}
	saved, err := st.Get(ctx, j.ID)
	require.NoError(t, err)
	assert.Equal(t, jobs.Done, saved.State)
	assert.Empty(t, saved.Owner)
}

// rewind writes j over the job's entry as a process that died holding it
// would have left it: running, its lease run out.
func rewind(t *testing.T, js jetstream.JetStream, j jobs.Job) {
	t.Helper()
	kv, err := js.KeyValue(context.Background(), provision.JobBucket)
	require.NoError(t, err)
	j.State, j.Owner, j.LeaseUntil = jobs.Running, "dead", time.Now().Add(-time.Second)
	b, err := json.Marshal(j)
	require.NoError(t, err)
	_, err = kv.Put(context.Background(), j.ID, b)
	require.NoError(t, err)
}

// TestLease: a job held by a live lease cannot be taken; once the lease
// runs out it can, and the old owner then sends nothing.
func TestLease(t *testing.T) {
	js := setup(t)
	fill(t, js, "l", 20)
	ctx := context.Background()
	clock := fakeclock.New(time.Now())
	a, b := newRunner(t, js, "a"), newRunner(t, js, "b")
	a.Store.Now, b.Store.Now = clock.Now, clock.Now

	j, err := a.Create(ctx, jobs.Spec{Kind: jobs.KindReplay, Rate: 1000})
	require.NoError(t, err)
	_, err = b.Take(ctx, j.ID)
	var leased *jobs.LeasedError
	require.ErrorAs(t, err, &leased, "a running job's lease is held")
	assert.Equal(t, "a", leased.Owner)

	stopped, err := b.Store.Stop(ctx, j.ID)
	require.NoError(t, err)
	assert.Equal(t, jobs.Stopped, stopped.State)
	_, err = b.Take(ctx, j.ID)
	require.ErrorAs(t, err, &leased, "stopped, but its owner has not let go yet")

	clock.Advance(jobs.DefaultLease + time.Second)
	taken, err := b.Take(ctx, j.ID)
	require.NoError(t, err, "the lease ran out")
	assert.Equal(t, "b", taken.Owner)

	_, err = a.Run(ctx, j)
	require.ErrorIs(t, err, jobs.ErrLeaseLost)
	assert.Empty(t, replayed(t, js), "the old owner sent nothing")

	done, err := b.Run(ctx, taken)
	require.NoError(t, err)
	assert.Equal(t, 20, done.Counts.Sent)
	_, err = a.Take(ctx, j.ID)
	require.ErrorIs(t, err, jobs.ErrFinished)
}

// TestStop: a running job stopped from elsewhere ends, saving where it
// was, and resumes from there.
func TestStop(t *testing.T) {
	js := setup(t)
	fill(t, js, "s", 100)
	ctx := context.Background()
	a := newRunner(t, js, "a")
	j, err := a.Create(ctx, jobs.Spec{Kind: jobs.KindReplay, Rate: 200})
	require.NoError(t, err)
	reached := make(chan struct{})
	var once sync.Once
	a.Progress = func(j jobs.Job) {
		if j.Counts.Selected >= 10 {
			once.Do(func() { close(reached) })
		}
	}
	type result struct {
		j   *jobs.Job
		err error
	}
	ran := make(chan result, 1)
	go func() {
		j, err := a.Run(ctx, j)
		ran <- result{j, err}
	}()
	<-reached
	_, err = a.Store.Stop(ctx, j.ID)
	require.NoError(t, err)
	res := <-ran
	require.ErrorIs(t, res.err, jobs.ErrStopped)

	saved, err := a.Store.Get(ctx, j.ID)
	require.NoError(t, err)
	assert.Equal(t, jobs.Stopped, saved.State)
	assert.Empty(t, saved.Owner, "the owner let go")
	assert.Less(t, saved.Counts.Selected, 100)
	assert.Equal(t, res.j.Cursor, saved.Cursor, "its progress saved")

	b := newRunner(t, js, "b")
	taken, err := b.Take(ctx, j.ID)
	require.NoError(t, err, "a stopped job is taken at once")
	done, err := b.Run(ctx, taken)
	require.NoError(t, err)
	assert.Equal(t, 100, done.Counts.Sent+done.Counts.AlreadySent)
	assert.Len(t, replayed(t, js), 100)

	list, err := b.Store.List(ctx)
	require.NoError(t, err)
	require.Len(t, list, 1)
	assert.Equal(t, jobs.Done, list[0].State)
}

// TestFailedAgainIsNotReplayedTwice: a failure that fails again while the
// job runs is stored anew, above where the job started, and the job does
// not replay it again.
func TestFailedAgainIsNotReplayedTwice(t *testing.T) {
	js := setup(t)
	ids := fill(t, js, "f", 100)
	ctx := context.Background()
	w, err := failstore.OpenWriter(ctx, js)
	require.NoError(t, err)
	a := newRunner(t, js, "a")
	var again string
	var first string
	a.OnItem = func(it replay.Item) {
		if first == "" {
			// The first replayed command fails again at once.
			first = it.Failure.CommandID()
			e, evID := failure(t, first, ids[first])
			require.NoError(t, w.Open(ctx, e, nil))
			again = evID
		}
	}
	j, err := a.Create(ctx, jobs.Spec{Kind: jobs.KindReplay, Rate: 100000})
	require.NoError(t, err)
	done, err := a.Run(ctx, j)
	require.NoError(t, err)
	assert.Equal(t, 100, done.Counts.Sent)
	got := replayed(t, js)
	assert.Len(t, got, 100)
	assert.Zero(t, got[replay.MsgIDPrefix+again], "the new failure of %s is not replayed by the job", first)
	assert.Equal(t, 1, got[replay.MsgIDPrefix+ids[first]])
	assert.Greater(t, openSeq(t, js, first), done.StartSeq, "it is stored above where the job started")
}

// openSeq returns the sequence of a command's open failure.
func openSeq(t *testing.T, js jetstream.JetStream, id string) uint64 {
	t.Helper()
	page, err := failstore.LoadPage(context.Background(), js, failstore.Select{}, 1, 0)
	require.NoError(t, err)
	require.Len(t, page.Failures, 1)
	require.Equal(t, id, page.Failures[0].CommandID)
	return page.Failures[0].Seq
}

// TestDiscardJobResumes: a discard job stopped half-way resumes in
// another process and discards every failure once.
func TestDiscardJobResumes(t *testing.T) {
	js := setup(t)
	fill(t, js, "d", 500)
	ctx := context.Background()
	a := newRunner(t, js, "a")
	actx, stop := context.WithCancel(ctx)
	defer stop()
	a.Progress = func(j jobs.Job) {
		if j.Counts.Selected >= 250 {
			stop()
		}
	}
	j, err := a.Create(ctx, jobs.Spec{Kind: jobs.KindDiscard, Described: "--all"})
	require.NoError(t, err)
	half, err := a.Run(actx, j)
	require.ErrorIs(t, err, context.Canceled)
	require.Less(t, half.Counts.Discarded, 500)
	rewind(t, js, *half)

	b := newRunner(t, js, "b")
	taken, err := b.Take(ctx, j.ID)
	require.NoError(t, err)
	done, err := b.Run(ctx, taken)
	require.NoError(t, err)
	assert.Equal(t, 500, done.Counts.Discarded)
	assert.Zero(t, done.Counts.SkippedTotal())
	s, err := js.Stream(ctx, failstore.Stream)
	require.NoError(t, err)
	info, err := s.Info(ctx)
	require.NoError(t, err)
	assert.Zero(t, info.State.Msgs, "every open failure discarded")
}

// TestPrune: a job that finished more than a week ago is pruned by the
// next one's creation; a stopped one stays.
func TestPrune(t *testing.T) {
	js := setup(t)
	fill(t, js, "p", 3)
	ctx := context.Background()
	clock := fakeclock.New(time.Now())
	a := newRunner(t, js, "a")
	a.Store.Now = clock.Now
	old, err := a.Create(ctx, jobs.Spec{Kind: jobs.KindReplay, Rate: 1000, Filter: replay.Filter{Limit: 1}})
	require.NoError(t, err)
	_, err = a.Run(ctx, old)
	require.NoError(t, err)
	kept, err := a.Create(ctx, jobs.Spec{Kind: jobs.KindReplay, Rate: 1000})
	require.NoError(t, err)
	_, err = a.Store.Stop(ctx, kept.ID)
	require.NoError(t, err)

	clock.Advance(jobs.Keep + time.Hour)
	_, err = a.Create(ctx, jobs.Spec{Kind: jobs.KindDiscard})
	require.NoError(t, err)
	_, err = a.Store.Get(ctx, old.ID)
	assert.True(t, errors.Is(err, jobs.ErrNotFound), "the finished job is pruned: %v", err)
	_, err = a.Store.Get(ctx, kept.ID)
	assert.NoError(t, err, "the stopped job stays")
	_, err = a.Store.Get(ctx, "../x")
	assert.True(t, errors.Is(err, jobs.ErrNotFound))
	assert.False(t, strings.Contains(kept.ID, "."))
}
