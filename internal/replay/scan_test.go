package replay

import (
	"context"
	"encoding/json"
	"sync"
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

// eventLog is an event stream that a test writes events into.
type eventLog struct {
	js jetstream.JetStream
	at time.Time // the time of the next event; each one is a second later
}

// newEventLog starts a JetStream server with the contract's streams; with
// commands false, without the command stream.
func newEventLog(t *testing.T, commands bool) *eventLog {
	t.Helper()
	_, js := natstest.Start(t, nil).Connect(t)
	ctx := context.Background()
	if commands {
		require.NoError(t, provision.Setup(ctx, js, provision.Topology{}))
	} else {
		_, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: provision.EventStream,
			Subjects: []string{contact.SubjectCreated, contact.SubjectFailed}, Duplicates: provision.DuplicateWindow})
		require.NoError(t, err)
	}
	// In the past: a scan from a time starts at the stream's own clock.
	return &eventLog{js: js, at: time.Now().UTC().Add(-time.Hour).Truncate(time.Second)}
}

// failed stores a contact.failed event of commandID in generation gen and
// returns its id.
func (l *eventLog) failed(t *testing.T, commandID, gen string, reason contact.Reason) string {
	t.Helper()
	return l.add(t, contact.SubjectFailed, commandID, gen, contact.Failed{
		CommandID: commandID, Provider: "instantpay", Reason: reason, Retryable: reason.Retryable(),
		Message: "failed: " + string(reason), ReplayOf: gen,
		Command: json.RawMessage(`{"commandId":"` + commandID + `","name":"Jane","email":"jane@example.com","mobile":"9876543210","tagId":"65a1b2c3d4e5f6a7b8c9d0e1"}`),
	})
}

// created stores a contact.created event of commandID in generation gen.
func (l *eventLog) created(t *testing.T, commandID, gen string) string {
	t.Helper()
	return l.add(t, contact.SubjectCreated, commandID, gen, contact.Created{CommandID: commandID, Provider: "instantpay", ContactID: "x", ReplayOf: gen})
}

func (l *eventLog) add(t *testing.T, typ, commandID, gen string, data any) string {
	t.Helper()
	ev, err := events.NewEvent("", typ, commandID, gen, l.at, data)
	require.NoError(t, err)
	l.at = l.at.Add(time.Second)
	l.publish(t, typ, ev)
	return ev.ID
}

// publish stores ev as it is, with no de-duplication: as after the window.
func (l *eventLog) publish(t *testing.T, subject string, ev any) {
	t.Helper()
	body, err := json.Marshal(ev)
	require.NoError(t, err)
	_, err = l.js.PublishMsg(context.Background(), &nats.Msg{Subject: subject, Data: body})
	require.NoError(t, err)
}

func (l *eventLog) scan(t *testing.T, flt Filter) *Selection {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	sel, err := Scan(ctx, l.js, flt)
	require.NoError(t, err)
	return sel
}

func commandIDs(fs []*Failure) []string {
	out := make([]string, len(fs))
	for i, f := range fs {
		out[i] = f.CommandID()
	}
	return out
}

func TestScanSupersedes(t *testing.T) {
	l := newEventLog(t, true)
	a1 := l.failed(t, "a", "", contact.ReasonExhausted) // replayed, failed again, replayed, created
	a2 := l.failed(t, "a", a1, contact.ReasonExhausted)
	b1 := l.failed(t, "b", "", contact.ReasonInvalid) // open
	c1 := l.failed(t, "c", "", contact.ReasonExhausted)
	cCreated := l.created(t, "c", c1)
	aCreated := l.created(t, "a", a2)
	l.created(t, "d", "") // no failure at all
	notAnEvent := &nats.Msg{Subject: contact.SubjectFailed, Data: []byte("{")}
	_, err := l.js.PublishMsg(context.Background(), notAnEvent)
	require.NoError(t, err)

	sel := l.scan(t, Filter{})
	assert.Equal(t, []string{"c", "b", "a", "a"}, commandIDs(sel.Failures), "newest first")
	byID := map[string]*Failure{}
	for _, f := range sel.Failures {
		byID[f.Event.ID] = f
	}
	require.NotNil(t, byID[a1].FailedAfter)
	assert.Equal(t, a2, byID[a1].FailedAfter.ID, "a1 is superseded by the later failure a2")
	assert.Equal(t, aCreated, byID[a1].CreatedAfter.ID, "and by the created after it")
	assert.Equal(t, aCreated, byID[a1].Superseded().ID, "a created wins")
	assert.Nil(t, byID[a2].FailedAfter)
	assert.Equal(t, aCreated, byID[a2].CreatedAfter.ID)
	assert.Equal(t, cCreated, byID[c1].CreatedAfter.ID)
	assert.Nil(t, byID[b1].Superseded(), "b's failure is its newest outcome")
	assert.Equal(t, 4, sel.Matched)
	assert.Equal(t, 3, sel.SupersededByCreated)
	assert.Equal(t, map[contact.Reason]int{contact.ReasonExhausted: 3, contact.ReasonInvalid: 1}, sel.ByReason)
	assert.Equal(t, 8, sel.Read)
	assert.Equal(t, 1, sel.Unreadable, "an unreadable event is counted and passed over")
}

func TestScanFilters(t *testing.T) {
	l := newEventLog(t, true)
	start := l.at
	for i, r := range []contact.Reason{contact.ReasonExhausted, contact.ReasonInvalid, contact.ReasonRejected, contact.ReasonExhausted, contact.ReasonExhausted} {
		l.failed(t, string(rune('a'+i)), "", r) // a..e, a second apart
	}
	tests := []struct {
		name string
		flt  Filter
		want []string
	}{
		{"all", Filter{}, []string{"e", "d", "c", "b", "a"}},
		{"reason", Filter{Reasons: []contact.Reason{contact.ReasonExhausted}}, []string{"e", "d", "a"}},
		{"reasons", Filter{Reasons: []contact.Reason{contact.ReasonInvalid, contact.ReasonRejected}}, []string{"c", "b"}},
		{"provider", Filter{Providers: []string{"instantpay"}}, []string{"e", "d", "c", "b", "a"}},
		{"other provider", Filter{Providers: []string{"pik"}}, []string{}},
		{"command id", Filter{CommandID: "c"}, []string{"c"}},
		{"since", Filter{Since: start.Add(3 * time.Second)}, []string{"e", "d"}},
		{"until", Filter{Until: start.Add(time.Second)}, []string{"b", "a"}},
		{"since and until", Filter{Since: start.Add(time.Second), Until: start.Add(2 * time.Second)}, []string{"c", "b"}},
		{"limit", Filter{Limit: 2}, []string{"e", "d"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			sel := l.scan(t, tt.flt)
			assert.Equal(t, tt.want, append([]string{}, commandIDs(sel.Failures)...))
		})
	}
	sel := l.scan(t, Filter{Limit: 2})
	assert.Equal(t, 5, sel.Matched, "the match count ignores the limit")
}

func TestScanSinceAfterTheLastEventReturnsAtOnce(t *testing.T) {
	l := newEventLog(t, true)
	l.failed(t, "a", "", contact.ReasonExhausted)
	start := time.Now()
	sel := l.scan(t, Filter{Since: time.Now().Add(time.Hour)})
	assert.Empty(t, sel.Failures)
	assert.Less(t, time.Since(start), failstore.IdleTimeout, "no wait for events that will not come")
}

func TestScanCountsAFailureStoredTwiceOnce(t *testing.T) {
	l := newEventLog(t, true)
	id := l.failed(t, "a", "", contact.ReasonExhausted)
	raw, err := l.js.Stream(context.Background(), provision.EventStream)
	require.NoError(t, err)
	first, err := raw.GetMsg(context.Background(), 1)
	require.NoError(t, err)
	// Stored again under the same id, as after the duplicate window.
	_, err = l.js.PublishMsg(context.Background(), &nats.Msg{Subject: contact.SubjectFailed, Data: first.Data})
	require.NoError(t, err)

	sel := l.scan(t, Filter{})
	require.Len(t, sel.Failures, 1)
	assert.Equal(t, id, sel.Failures[0].Event.ID)
	assert.Nil(t, sel.Failures[0].FailedAfter, "a failure does not supersede itself")
	assert.Equal(t, uint64(1), sel.Failures[0].Seq, "counted at its first sequence")
}

func TestScanStopsAtTheLastSequenceAtStart(t *testing.T) {
	l := newEventLog(t, true)
	for i := range 300 {
		l.failed(t, "n-"+string(rune('A'+i%26))+string(rune('a'+i/26)), "", contact.ReasonExhausted)
	}
	// Events keep coming while the scan reads.
	ctx, cancel := context.WithCancel(context.Background())
	done, flowing := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(done)
		var once sync.Once
		for ctx.Err() == nil {
			ev, _ := events.NewEvent("", contact.SubjectCreated, "late", "", time.Now(), contact.Created{CommandID: "late"})
			body, _ := json.Marshal(ev)
			if _, err := l.js.PublishMsg(ctx, &nats.Msg{Subject: contact.SubjectCreated, Data: body}); err == nil {
				once.Do(func() { close(flowing) })
			}
		}
	}()
	defer func() { cancel(); <-done }()
	select {
	case <-flowing:
	case <-time.After(10 * time.Second):
		t.Fatal("no late event was stored")
	}
	sel := l.scan(t, Filter{})
	assert.Equal(t, 300, sel.Matched)
}

func TestScanWithoutStream(t *testing.T) {
	_, js := natstest.Start(t, nil).Connect(t)
	_, err := Scan(context.Background(), js, Filter{})
	assert.ErrorIs(t, err, ErrNoStream)
}

func TestScanEmptyStream(t *testing.T) {
	l := newEventLog(t, true)
	sel := l.scan(t, Filter{})
	assert.Zero(t, sel.Matched)
	assert.Equal(t, "no failures match", MatchLine(sel))
}
