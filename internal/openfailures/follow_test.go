package openfailures

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/contactrelay/contactrelay/contact"
	"github.com/contactrelay/contactrelay/internal/events"
	"github.com/contactrelay/contactrelay/internal/failstore"
	"github.com/contactrelay/contactrelay/internal/natstest"
	"github.com/contactrelay/contactrelay/internal/provision"
)

// follower is a Follower of a store written as the service writes it:
// through failstore.Writer, with contact.created events published after a
// resolution.
type follower struct {
	js  jetstream.JetStream
	w   *failstore.Writer
	fol *Follower
}

func newFollower(t *testing.T) *follower {
	t.Helper()
	ns := natstest.Start(t, nil)
	_, js := ns.Connect(t)
	ctx := context.Background()
	require.NoError(t, provision.Setup(ctx, js, provision.Topology{}))
	w, err := failstore.OpenWriter(ctx, js)
	require.NoError(t, err)
	return &follower{js: js, w: w, fol: newTestFollower(js)}
}

func newTestFollower(js jetstream.JetStream) *Follower {
	return NewFollower(js, slog.New(slog.DiscardHandler))
}

// fail opens a failure of command i with reason r, as the service would.
func (fl *follower) fail(t testing.TB, i int, r contact.Reason) {
	t.Helper()
	fl.openAs(t, fmt.Sprintf("cmd-%06d", i), i, r)
}

func (fl *follower) openAs(t testing.TB, id string, i int, r contact.Reason) {
	t.Helper()
	provider := "instantpay"
	if i%3 == 0 {
		provider = "pik"
	}
	f := contact.Failed{CommandID: id, Provider: provider, Reason: r, Retryable: r.Retryable(), Attempts: 2,
		Message: provider + " said no to p" + fmt.Sprint(i) + "@example.com", Command: json.RawMessage(`{"name":"x"}`)}
	ev, err := events.NewEvent("", contact.SubjectFailed, id, "", time.Now(), f)
	require.NoError(t, err)
	e, err := failstore.NewEntry(&ev, ev.AppendJSON(nil), false)
	require.NoError(t, err)
	require.NoError(t, fl.w.Open(context.Background(), e, nil))
}

// resolve resolves command i's failure and publishes its contact.created.
func (fl *follower) resolve(t testing.TB, i int) {
	t.Helper()
	fl.resolveID(t, fmt.Sprintf("cmd-%06d", i))
}

func (fl *follower) resolveID(t testing.TB, id string) {
	t.Helper()
	ctx := context.Background()
	require.NoError(t, fl.w.Resolve(ctx, id, nil))
	ev, err := events.NewEvent("", contact.SubjectCreated, id, "", time.Now(), contact.Created{CommandID: id, Provider: "pik", ContactID: "c"})
	require.NoError(t, err)
	_, err = fl.js.PublishMsg(ctx, &nats.Msg{Subject: contact.SubjectCreated, Data: ev.AppendJSON(nil)})
	require.NoError(t, err)
}

// agree brings fol's view in step and checks its counts by reason equal
// the server's (failstore.Count), and returns the view.
func agree(t *testing.T, js jetstream.JetStream, fol *Follower, step string) *View {
	t.Helper()
	v := fol.Load(context.Background())
	require.NoError(t, v.err, step)
	want, err := failstore.Count(context.Background(), js, failstore.Select{})
	require.NoError(t, err, step)
	v.mu.RLock()
	got, _ := v.idx.counts()
	v.mu.RUnlock()
	wantByName := map[string]int{}
	total := 0
	for r, n := range want {
		wantByName[string(r)] = n
		total += n
	}
	assert.Equal(t, wantByName, got, "%s: the counts by reason are the store's", step)
	assert.Equal(t, total, v.Open(), "%s: as many open as the store holds", step)
	return v
}

// The view's counts stay exact as failures open, are replaced, resolve
// and are discarded, without reading the store again: each step is read
// from the store's new entries and the contact.created events, or told
// (Forget). A discard no feed tells (the CLI's) is found by the count
// check, which reads the store again once.
func TestIndexFollowsTheStore(t *testing.T) {
	t.Run("by gets", testIndexFollowsTheStore)
	t.Run("by consumers", func(t *testing.T) {
		defer func(n uint64) { fewGets = n }(fewGets)
		fewGets = 0
		testIndexFollowsTheStore(t)
	})
}

func testIndexFollowsTheStore(t *testing.T) {
	fl := newFollower(t)
	ctx := context.Background()
	for i := range 30 {
		fl.fail(t, i, contact.ReasonExhausted)
	}
	first := agree(t, fl.js, fl.fol, "opened 30")

	for i := range 5 {
		fl.fail(t, i, contact.ReasonRejected) // failed again: replaces
	}
	fl.fail(t, 30, contact.ReasonInvalid)
	v := agree(t, fl.js, fl.fol, "replaced 5, opened 1")
	assert.Same(t, first, v, "followed, not read again")

	for i := 5; i < 15; i++ {
		fl.resolve(t, i)
	}
	v = agree(t, fl.js, fl.fol, "resolved 10")
	assert.Same(t, first, v, "followed, not read again")
	assert.Equal(t, 21, v.Open())

	// A conflict beside cmd-000020's own failure, stored twice (its
	// subject keeps the newer); the command's resolution leaves it open.
	cf := contact.Failed{CommandID: "cmd-000020", Provider: "pik", Reason: contact.ReasonConflict, Message: "other content"}
	ev, err := events.NewEvent("", contact.SubjectFailed, "cmd-000020", "", time.Now(), cf)
	require.NoError(t, err)
	for range 2 {
		e, err := failstore.NewEntry(&ev, ev.AppendJSON(nil), true)
		require.NoError(t, err)
		require.NoError(t, fl.w.Open(ctx, e, nil))
	}
	v = agree(t, fl.js, fl.fol, "a conflict stored twice")
	assert.Equal(t, 22, v.Open())
	fl.resolve(t, 20)
	v = agree(t, fl.js, fl.fol, "the command of the conflict resolved")
	assert.Same(t, first, v, "followed, not read again")
	assert.Equal(t, 1, len(v.Selected(&Query{Reasons: []string{"conflict"}}, nil)), "the conflict stays")

	// A discard the view is told of, as the console tells it of its own
	// (TestConsoleDiscardIsFollowed in package console).
	sums := v.Selected(&Query{Reasons: []string{"rejected"}}, nil)
	require.Len(t, sums, 5)
	n, err := failstore.Discard(ctx, fl.js, sums)
	require.NoError(t, err)
	require.Equal(t, 5, n)
	fl.fol.Forget(sums)
	v = agree(t, fl.js, fl.fol, "the console discarded 5")
	assert.Same(t, first, v, "its own discards are not read again")

	// A discard elsewhere (the CLI): no feed tells it.
	sums = fl.fol.Current().Selected(&Query{Reasons: []string{"invalid"}}, nil)
	require.Len(t, sums, 1)
	n, err = failstore.Discard(ctx, fl.js, sums)
	require.NoError(t, err)
	require.Equal(t, 1, n)
	v = agree(t, fl.js, fl.fol, "the CLI discarded 1")
	assert.NotSame(t, first, v, "the count check found it, and the store was read again")
	assert.Equal(t, 15, v.Open())

	// A console that starts now agrees too.
	agree(t, fl.js, newTestFollower(fl.js), "a restarted console")
}

// A console that fell behind the event stream (the events after its last
// read are gone) reads the store again once, and agrees.
func TestIndexThatFellBehindReadsAgain(t *testing.T) {
	t.Run("by gets", testIndexThatFellBehindReadsAgain)
	t.Run("by consumers", func(t *testing.T) {
		defer func(n uint64) { fewGets = n }(fewGets)
		fewGets = 0
		testIndexThatFellBehindReadsAgain(t)
	})
}

func testIndexThatFellBehindReadsAgain(t *testing.T) {
	fl := newFollower(t)
	ctx := context.Background()
	for i := range 10 {
		fl.fail(t, i, contact.ReasonExhausted)
	}
	first := agree(t, fl.js, fl.fol, "opened 10")
	for i := range 4 {
		fl.resolve(t, i)
	}
	es, err := fl.js.Stream(ctx, provision.EventStream)
	require.NoError(t, err)
	require.NoError(t, es.Purge(ctx), "the events are gone before the console read them")
	v := agree(t, fl.js, fl.fol, "resolved 4, events lost")
	assert.NotSame(t, first, v, "read again")
	assert.Equal(t, 6, v.Open())
}

// The index keeps no string per failure beyond its commandId, and its
// entries are 32 bytes.
func TestIndexIsCompact(t *testing.T) {
	x := newIndex()
	for i := range 5000 {
		s := failstore.Summary{Seq: uint64(i + 1), Subject: failstore.Subject(contact.ReasonExhausted, "pik", fmt.Sprintf("cmd-%06d", i)),
			CommandID: fmt.Sprintf("cmd-%06d", i), Reason: contact.ReasonExhausted, Provider: "pik", Time: time.Now(),
			Message: "PIK kept failing: 503 Service Unavailable"}
		x.add(&s)
	}
	assert.Equal(t, 1, len(x.messages.strs), "one message, interned")
	assert.Equal(t, 5000*len("cmd-000000"), len(x.cmds), "the commandIds, packed")
	for i := range 2000 {
		require.True(t, x.closeSeq(uint64(i+1)))
	}
	assert.Equal(t, 3000, x.live)
	byReason, byProvider := x.counts()
	assert.Equal(t, map[string]int{"exhausted": 3000}, byReason, "counts kept as entries close")
	assert.Equal(t, map[string]int{"pik": 3000}, byProvider)
	assert.Equal(t, 3750, len(x.entries), "closed entries are dropped once they are a quarter")
	assert.Equal(t, 3750*len("cmd-000000"), len(x.cmds))
	for _, e := range x.entries[:10] {
		assert.Equal(t, fmt.Sprintf("cmd-%06d", e.seq-1), x.commandID(&e), "the commandIds follow the compaction")
	}
}

// The index's table of own entries agrees with a map through random
// opens, replacements, resolutions and discards, across its growth and
// the compactions that move every entry.
func TestIndexTableAgreesWithAMap(t *testing.T) {
	x := newIndex()
	want := map[string]uint64{} // commandId -> its open entry's sequence
	rnd := uint64(1)
	next := func(n int) int {
		rnd ^= rnd << 13
		rnd ^= rnd >> 7
		rnd ^= rnd << 17
		return int(rnd % uint64(n))
	}
	var seq uint64
	for step := range 60000 {
		id := fmt.Sprintf("c-%d", next(3000))
		switch op := next(10); {
		case op < 6: // opened, or failed again
			seq++
			s := failstore.Summary{Seq: seq, Subject: failstore.Subject(contact.ReasonExhausted, "pik", id), CommandID: id,
				Reason: contact.ReasonExhausted, Provider: "pik", Message: "m"}
			x.add(&s)
			want[id] = seq
		case op < 8: // resolved
			_, open := want[id]
			require.Equal(t, open, x.closeCommand(id), "step %d: resolving %s", step, id)
			delete(want, id)
		default: // discarded by sequence
			if s, ok := want[id]; ok {
				require.True(t, x.closeSeq(s), "step %d: discarding %s", step, id)
				delete(want, id)
			}
		}
	}
	require.Equal(t, len(want), x.live)
	require.Equal(t, len(want), x.own.n)
	for id, s := range want {
		i := x.own.find(x, id)
		require.GreaterOrEqual(t, i, 0, "%s is found", id)
		require.Equal(t, s, x.entries[x.own.pos[i]-1].seq, "%s: its newest entry", id)
	}
}

// A store that disagrees with the index is read again no sooner than
// twice a read's time after the last read.
func TestIndexReadsAgainNoSoonerThanTwiceAReadsTime(t *testing.T) {
	fl := newFollower(t)
	ctx := context.Background()
	for i := range 5 {
		fl.fail(t, i, contact.ReasonExhausted)
	}
	first := agree(t, fl.js, fl.fol, "opened 5")
	n, err := failstore.Discard(ctx, fl.js, first.Selected(&Query{}, nil)[:1])
	require.NoError(t, err)
	require.Equal(t, 1, n)

	first.mu.Lock()
	first.took = time.Hour // as if a read took an hour
	first.mu.Unlock()
	v := fl.fol.Load(ctx)
	assert.Same(t, first, v, "not read again so soon")
	assert.NoError(t, v.err)
	assert.Equal(t, 5, v.Open(), "the discard elsewhere is not seen yet")

	first.mu.Lock()
	first.took = 0
	first.mu.Unlock()
	agree(t, fl.js, fl.fol, "read again")
}
