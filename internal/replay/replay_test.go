package replay

import (
	"bytes"
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/contactrelay/contactrelay/contact"
	"github.com/contactrelay/contactrelay/internal/provision"
)

// sent records the contact.create messages published on a server. The
// connection reads in order and puts each message in the channel as it
// reads it: once a flush returns, the channel holds every message the
// server routed before it, and every publish acknowledged before it was.
func sent(t *testing.T, l *eventLog) func() []*nats.Msg {
	t.Helper()
	var msgs []*nats.Msg
	nc := l.js.Conn()
	ch := make(chan *nats.Msg, 1024)
	sub, err := nc.ChanSubscribe(contact.SubjectCreate, ch)
	require.NoError(t, err)
	require.NoError(t, nc.Flush())
	t.Cleanup(func() { _ = sub.Unsubscribe() })
	return func() []*nats.Msg {
		require.NoError(t, nc.Flush())
		for {
			select {
			case m := <-ch:
				msgs = append(msgs, m)
			default:
				return append([]*nats.Msg(nil), msgs...)
			}
		}
	}
}

func TestReplaySelectsAndSkips(t *testing.T) {
	l := newEventLog(t, true)
	open := l.failed(t, "open", "", contact.ReasonExhausted)
	old := l.failed(t, "twice", "", contact.ReasonExhausted)
	newer := l.failed(t, "twice", old, contact.ReasonExhausted)
	done := l.failed(t, "done", "", contact.ReasonExhausted)
	l.created(t, "done", done)
	l.failed(t, "inv", "", contact.ReasonInvalid)
	bad := l.add(t, contact.SubjectFailed, "bad", "", contact.Failed{CommandID: "bad", Reason: contact.ReasonMalformed, CommandRaw: []byte("x")})
	got := sent(t, l)

	sel := l.scan(t, Filter{})
	var items []Item
	sum, err := Replay(context.Background(), l.js, sel.Failures, Options{Rate: 1000, OnItem: func(it Item) { items = append(items, it) }})
	require.NoError(t, err)
	assert.Equal(t, Summary{Selected: 6, Replayed: 2, Skipped: map[Skip]int{
		SkipSupersededByCreated: 1, SkipSupersededByFailure: 1, SkipNotRetryable: 1, SkipMalformed: 1,
	}}, sum)
	msgs := got()
	require.Len(t, msgs, 2, "only the newest open retryable failures are sent")
	gens := []string{msgs[0].Header.Get(contact.HeaderReplayOf), msgs[1].Header.Get(contact.HeaderReplayOf)}
	assert.ElementsMatch(t, []string{open, newer}, gens)
	for _, it := range items {
		if it.Failure.Event.ID == bad {
			assert.Equal(t, SkipMalformed, it.Skip)
		}
	}

	t.Run("all, and superseded", func(t *testing.T) {
		sum, err := Replay(context.Background(), l.js, sel.Failures, Options{Rate: 1000, All: true, IncludeSuperseded: true})
		require.NoError(t, err)
		assert.Equal(t, 2, sum.Replayed, "done and inv are stored")
		assert.Equal(t, 2, sum.AlreadySent, "open and twice were replayed within the window already, unchanged")
		assert.Zero(t, sum.Refused)
		assert.Equal(t, map[Skip]int{SkipSupersededByFailure: 1, SkipMalformed: 1}, sum.Skipped)
		assert.Len(t, got(), 6, "every message is sent; the stream drops the duplicates")
	})
}

func TestReplayDryRunSendsNothing(t *testing.T) {
	l := newEventLog(t, true)
	id := l.failed(t, "a", "", contact.ReasonExhausted)
	got := sent(t, l)
	var items []Item
	sum, err := Replay(context.Background(), l.js, l.scan(t, Filter{}).Failures, Options{DryRun: true, OnItem: func(it Item) { items = append(items, it) }})
	require.NoError(t, err)
	assert.Equal(t, 1, sum.Replayed)
	assert.True(t, sum.DryRun)
	assert.Empty(t, got(), "a dry run publishes nothing")
	require.Len(t, items, 1)
	require.NotNil(t, items[0].Msg, "but says what it would send")
	assert.Equal(t, "replay:"+id, items[0].Msg.Header.Get(contact.HeaderMsgID))
	assert.Nil(t, items[0].Ack)
}

func TestReplayCountsFailedPublishes(t *testing.T) {
	l := newEventLog(t, false) // no command stream: every publish fails
	l.failed(t, "a", "", contact.ReasonExhausted)
	l.failed(t, "b", "", contact.ReasonExhausted)
	var errs []error
	sum, err := Replay(context.Background(), l.js, l.scan(t, Filter{}).Failures, Options{
		PublishTimeout: time.Second,
		OnItem:         func(it Item) { errs = append(errs, it.Err) },
	})
	require.NoError(t, err, "a failed publish is counted, not returned")
	assert.Equal(t, 2, sum.PublishFailed, "the replay goes on after a failed publish")
	assert.Zero(t, sum.Replayed)
	for _, e := range errs {
		assert.Error(t, e)
	}
}

func TestReplayRate(t *testing.T) {
	l := newEventLog(t, true)
	for i := range 20 {
		l.failed(t, string(rune('a'+i)), "", contact.ReasonExhausted)
	}
	fs := l.scan(t, Filter{}).Failures
	start := time.Now()
	sum, err := Replay(context.Background(), l.js, fs, Options{Rate: 40})
	took := time.Since(start)
	require.NoError(t, err)
	assert.Equal(t, 20, sum.Replayed)
	// The first is sent at once, then one every 25ms: 475ms at least.
	assert.GreaterOrEqual(t, took, 450*time.Millisecond, "20 replays at 40 a second")
	assert.Less(t, took, 3*time.Second)
	t.Logf("20 replays at --rate 40 took %s", took)
}

func TestReplayInterrupted(t *testing.T) {
	l := newEventLog(t, true)
	for i := range 10 {
		l.failed(t, string(rune('a'+i)), "", contact.ReasonExhausted)
	}
	ctx, cancel := context.WithCancel(context.Background())
	n := 0
	// One publish at a time: nothing is sent after the third is answered.
	sum, err := Replay(ctx, l.js, l.scan(t, Filter{}).Failures, Options{Rate: 1000, Window: 1, OnItem: func(Item) {
		if n++; n == 3 {
			cancel()
		}
	}})
	require.ErrorIs(t, err, context.Canceled)
	assert.Equal(t, 3, sum.Replayed)
	assert.Equal(t, 7, sum.NotAttempted)
}

// gatedJS holds back the stream's answers to the publishes made through
// it until open of them have been made.
type gatedJS struct {
	jetstream.JetStream
	open int
	mu   sync.Mutex
	sent int
	gate chan struct{}
}

func (g *gatedJS) PublishMsgAsync(m *nats.Msg, opts ...jetstream.PublishOpt) (jetstream.PubAckFuture, error) {
	f, err := g.JetStream.PublishMsgAsync(m, opts...)
	if err != nil {
		return nil, err
	}
	g.mu.Lock()
	if g.sent++; g.sent == g.open {
		close(g.gate)
	}
	g.mu.Unlock()
	h := &heldFuture{PubAckFuture: f, ok: make(chan *jetstream.PubAck, 1), err: make(chan error, 1)}
	go func() {
		<-g.gate
		select {
		case a := <-f.Ok():
			h.ok <- a
		case e := <-f.Err():
			h.err <- e
		}
	}()
	return h, nil
}

func (g *gatedJS) published() int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.sent
}

type heldFuture struct {
	jetstream.PubAckFuture
	ok  chan *jetstream.PubAck
	err chan error
}

func (h *heldFuture) Ok() <-chan *jetstream.PubAck { return h.ok }
func (h *heldFuture) Err() <-chan error            { return h.err }

func TestReplayPipelinesPublishes(t *testing.T) {
	l := newEventLog(t, true)
	for i := range 10 {
		l.failed(t, string(rune('a'+i)), "", contact.ReasonExhausted)
	}
	got := sent(t, l)
	// No answer comes before the fourth publish: a replay that waited
	// for each answer before the next send would time out on the first.
	g := &gatedJS{JetStream: l.js, open: 4, gate: make(chan struct{})}
	var items []Item
	sum, err := Replay(context.Background(), g, l.scan(t, Filter{}).Failures, Options{
		Rate: 1e6, Window: 4, PublishTimeout: 5 * time.Second,
		OnItem: func(it Item) {
			assert.LessOrEqual(t, g.published()-len(items), 4, "at most Window publishes await their answer")
			items = append(items, it)
		},
	})
	require.NoError(t, err)
	assert.Equal(t, 10, sum.Replayed)
	assert.Zero(t, sum.PublishFailed)
	assert.Len(t, got(), 10)
	require.Len(t, items, 10)
	fs := l.scan(t, Filter{}).Failures
	for i, it := range items {
		assert.Equal(t, fs[i].CommandID(), it.Failure.CommandID(), "reported in the selection's order")
		require.NotNil(t, it.Ack)
	}
}

func TestReplayInterruptedWithPublishesInFlight(t *testing.T) {
	l := newEventLog(t, true)
	for i := range 10 {
		l.failed(t, string(rune('a'+i)), "", contact.ReasonExhausted)
	}
	got := sent(t, l)
	ctx, cancel := context.WithCancel(context.Background())
	n := 0
	// Window 4: when the third is reported, up to four more are sent;
	// those are reported by the stream's answer, the rest not attempted.
	sum, err := Replay(ctx, l.js, l.scan(t, Filter{}).Failures, Options{Rate: 1000, Window: 4, OnItem: func(it Item) {
		assert.NoError(t, it.Err, "a publish in flight when interrupted is reported by its answer")
		if n++; n == 3 {
			cancel()
		}
	}})
	require.ErrorIs(t, err, context.Canceled)
	stored := len(got())
	assert.Equal(t, stored, sum.Replayed, "every command stored is reported sent")
	assert.GreaterOrEqual(t, sum.Replayed, 3)
	assert.LessOrEqual(t, sum.Replayed, 7)
	assert.Equal(t, 10, sum.Replayed+sum.NotAttempted)
}

func TestReplayRepair(t *testing.T) {
	l := newEventLog(t, true)
	old := l.failed(t, "r", "", contact.ReasonInvalid)
	l.failed(t, "r", old, contact.ReasonInvalid)
	got := sent(t, l)
	fs := l.scan(t, Filter{CommandID: "r"}).Failures

	t.Run("refused, nothing sent", func(t *testing.T) {
		_, err := Replay(context.Background(), l.js, fs, Options{Repair: []Set{{Path: []string{"email"}, Value: "nope"}}})
		var rerr *RepairError
		require.ErrorAs(t, err, &rerr)
		assert.Equal(t, "email", rerr.Errors[0].Field)
		assert.Empty(t, got())
	})
	t.Run("the newest is sent, not retryable as it is", func(t *testing.T) {
		sum, err := Replay(context.Background(), l.js, fs, Options{Repair: []Set{{Path: []string{"name"}, Value: "Jane Roe"}}})
		require.NoError(t, err)
		assert.Equal(t, 1, sum.Replayed)
		assert.Equal(t, map[Skip]int{SkipSupersededByFailure: 1}, sum.Skipped)
		msgs := got()
		require.Len(t, msgs, 1)
		assert.Equal(t, fs[0].Event.ID, msgs[0].Header.Get(contact.HeaderReplayOf))
		assert.Contains(t, string(msgs[0].Data), `"name":"Jane Roe"`)
	})
	t.Run("a second repair of other content is refused", func(t *testing.T) {
		var it Item
		sum, err := Replay(context.Background(), l.js, fs, Options{Repair: []Set{{Path: []string{"name"}, Value: "Jane Other"}},
			OnItem: func(i Item) {
				if i.Skip == "" {
					it = i
				}
			}})
		require.NoError(t, err)
		assert.Equal(t, Summary{Selected: 2, Refused: 1, Skipped: map[Skip]int{SkipSupersededByFailure: 1}}, sum, "refused, not counted as replayed")
		require.NotNil(t, it.Earlier, "the stream dropped it as a duplicate")
		assert.True(t, it.Refused)
		assert.True(t, it.Earlier.Held)
		assert.False(t, it.Earlier.Same)
		assert.Equal(t, provision.CommandStream, it.Earlier.Stream)
		s, err := l.js.Stream(context.Background(), provision.CommandStream)
		require.NoError(t, err)
		stored, err := s.GetMsg(context.Background(), it.Earlier.Seq)
		require.NoError(t, err)
		assert.Contains(t, string(stored.Data), `"name":"Jane Roe"`, "the first repair is the one stored")
		assert.Equal(t, stored.Time, it.Earlier.Time, "when the first repair was stored")
		assert.Equal(t, fmt.Sprintf("CONTACT_COMMANDS seq %d, stored %s", it.Earlier.Seq, stored.Time.UTC().Format(time.RFC3339)), it.Earlier.String())
	})
	t.Run("the same repair again was already sent", func(t *testing.T) {
		sum, err := Replay(context.Background(), l.js, fs, Options{Repair: []Set{{Path: []string{"name"}, Value: "Jane Roe"}}})
		require.NoError(t, err)
		assert.Equal(t, Summary{Selected: 2, AlreadySent: 1, Skipped: map[Skip]int{SkipSupersededByFailure: 1}}, sum)
	})
	t.Run("once the first is settled, a repair cannot be compared and is refused; a replay was already sent", func(t *testing.T) {
		s, err := l.js.Stream(context.Background(), provision.CommandStream)
		require.NoError(t, err)
		info, err := s.Info(context.Background())
		require.NoError(t, err)
		require.NoError(t, s.Purge(context.Background()), "the service settled every command")
		var it Item
		sum, err := Replay(context.Background(), l.js, fs, Options{Repair: []Set{{Path: []string{"name"}, Value: "Jane Roe"}},
			OnItem: func(i Item) {
				if i.Skip == "" {
					it = i
				}
			}})
		require.NoError(t, err)
		assert.Equal(t, 1, sum.Refused, "it may have been another repair")
		require.NotNil(t, it.Earlier)
		assert.False(t, it.Earlier.Held)
		assert.LessOrEqual(t, it.Earlier.Seq, info.State.LastSeq, "the sequence the first was stored at")
		assert.Contains(t, it.Earlier.String(), "settled since")
		sum, err = Replay(context.Background(), l.js, fs, Options{All: true})
		require.NoError(t, err)
		assert.Equal(t, 1, sum.AlreadySent, "a replay of the failure was sent before: not counted as replayed")
	})
	t.Run("one commandId only", func(t *testing.T) {
		l.failed(t, "s", "", contact.ReasonInvalid)
		_, err := Replay(context.Background(), l.js, l.scan(t, Filter{}).Failures, Options{Repair: []Set{{Path: []string{"name"}, Value: "x"}}})
		assert.ErrorContains(t, err, "one commandId")
	})
}

func TestSummaryFormat(t *testing.T) {
	var b bytes.Buffer
	require.NoError(t, Summary{Selected: 7, Replayed: 2, AlreadySent: 1, Refused: 1, PublishFailed: 1,
		Skipped: map[Skip]int{SkipNotRetryable: 1, SkipSupersededByCreated: 1}}.Format(&b))
	assert.Equal(t, `7 selected: 2 replayed, 1 already sent, 1 refused, 2 skipped, 1 failed to publish
  skipped 1: not retryable (--all includes them; --set repairs one)
  skipped 1: superseded by a later contact.created (the contact exists; --include-superseded repeats its contact.created)
  already sent 1: the failure was replayed before, within the command stream's duplicate window; not stored again
  refused 1: a different command was sent for the failure before (another repair, or one since settled), within the command stream's duplicate window; not stored
`, b.String())
	b.Reset()
	require.NoError(t, Summary{Selected: 5, Replayed: 2, Skipped: map[Skip]int{SkipNotRetryable: 3}}.Format(&b))
	assert.Equal(t, "5 selected: 2 replayed, 3 skipped, 0 failed to publish\n  skipped 3: not retryable (--all includes them; --set repairs one)\n", b.String(),
		"without duplicates, as before")
	b.Reset()
	require.NoError(t, Summary{DryRun: true, Selected: 1, Replayed: 1}.Format(&b))
	assert.Equal(t, "dry run, nothing sent: 1 selected: 1 would be replayed, 0 skipped, 0 failed to publish\n", b.String())
}
