package failstore_test

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"reflect"
	"runtime"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/contactrelay/contactrelay/contact"
	"github.com/contactrelay/contactrelay/internal/events"
	"github.com/contactrelay/contactrelay/internal/failstore"
	"github.com/contactrelay/contactrelay/internal/natstest"
	"github.com/contactrelay/contactrelay/internal/provision"
	"github.com/contactrelay/contactrelay/internal/stream"
	"github.com/contactrelay/contactrelay/record"
)

// world is a server with the contract's resources, a record store and an
// open-failure writer, as one instance of the service has them.
type world struct {
	js      jetstream.JetStream
	records *stream.Records
	w       *failstore.Writer
}

func newWorld(t *testing.T) *world {
	t.Helper()
	srv := natstest.Start(t, nil)
	_, js := srv.Connect(t)
	ctx := context.Background()
	require.NoError(t, provision.Setup(ctx, js, provision.Topology{}))
	records, err := stream.OpenRecords(ctx, js, 5*time.Second)
	require.NoError(t, err)
	t.Cleanup(records.Close)
	w, err := failstore.OpenWriter(ctx, js)
	require.NoError(t, err)
	return &world{js: js, records: records, w: w}
}

// outcome is one generation's outcome of a command, as a decision records
// it and then makes its change to the open failures.
type outcome struct {
	commandID, generation string
	failed                bool
	reason                contact.Reason
}

func (o outcome) event(t *testing.T) (*contact.Event, []byte) {
	t.Helper()
	typ := contact.SubjectCreated
	var data any = contact.Created{CommandID: o.commandID, Provider: "instantpay", ContactID: "c1"}
	if o.failed {
		typ = contact.SubjectFailed
		data = contact.Failed{CommandID: o.commandID, Provider: "pik", Reason: o.reason, Message: "failed in " + o.generation,
			Retryable: o.reason.Retryable(), ReplayOf: o.generation, Command: json.RawMessage(`{"name":"A"}`)}
	}
	ev, err := events.NewEvent("", typ, o.commandID, o.generation, time.Now(), data)
	require.NoError(t, err)
	return &ev, ev.AppendJSON(nil)
}

// record adds o's generation to the command's record as its newest
// outcome, compare-and-set, as the runner records a decision.
func (wd *world) record(t *testing.T, o outcome) {
	t.Helper()
	ctx := context.Background()
	key := record.Key(o.commandID)
	for {
		val, rev, err := wd.records.Get(ctx, key)
		require.NoError(t, err)
		rec := record.Record{Version: record.Version, CommandID: o.commandID}
		if rev > 0 {
			require.NoError(t, json.Unmarshal(val, &rec))
		}
		if rec.Generations == nil {
			rec.Generations = map[string]*record.Generation{}
		}
		rec.Order++
		ev, _ := o.event(t)
		enc, err := json.Marshal(ev)
		require.NoError(t, err)
		g := &record.Generation{Outcome: enc, Order: rec.Order}
		if o.failed {
			g.Reason, g.Provider = o.reason, "pik"
		}
		rec.Generations[o.generation] = g
		val, err = json.Marshal(rec)
		require.NoError(t, err)
		if _, ok, err := wd.records.Put(ctx, key, val, rev, true); err == nil && ok {
			return
		}
	}
}

// change makes o's change to the open failures, as the runner does after
// recording it: open the failure, or resolve the command's.
func (wd *world) change(t *testing.T, o outcome) {
	t.Helper()
	ctx := context.Background()
	key := record.Key(o.commandID)
	ev, body := o.event(t)
	if o.failed {
		e, err := failstore.NewEntry(ev, body, false)
		require.NoError(t, err)
		require.NoError(t, wd.w.Open(ctx, e, stream.NewestFailureCheck(wd.records, key, ev.ID)))
		return
	}
	require.NoError(t, wd.w.Resolve(ctx, o.commandID, stream.NewestCreatedCheck(wd.records, key)))
}

// newest returns the command's newest recorded outcome, as a redelivery
// would repeat it.
func (wd *world) newest(t *testing.T, commandID string) (outcome, bool) {
	t.Helper()
	val, rev, err := wd.records.Get(context.Background(), record.Key(commandID))
	require.NoError(t, err)
	if rev == 0 {
		return outcome{}, false
	}
	id, gen, created, ok := record.NewestOutcome(val)
	if !ok {
		return outcome{}, false
	}
	var rec record.Record
	require.NoError(t, json.Unmarshal(val, &rec))
	return outcome{commandID: id, generation: gen, failed: !created, reason: rec.Generations[gen].Reason}, true
}

// assertOpenSet checks the store against the records: exactly one entry
// per command whose newest recorded outcome is a failure, that failure's,
// and none for any other command.
func (wd *world) assertOpenSet(t *testing.T, commands []string) {
	t.Helper()
	ctx := context.Background()
	want := map[string]string{} // commandId → event id of its open failure
	for _, id := range commands {
		if o, ok := wd.newest(t, id); ok && o.failed {
			ev, _ := o.event(t)
			want[id] = ev.ID
		}
	}
	// Read every entry, duplicates included: Load would hide a second one.
	s, err := wd.js.Stream(ctx, failstore.Stream)
	require.NoError(t, err)
	info, err := s.Info(ctx, jetstream.WithSubjectFilter(failstore.Subjects))
	require.NoError(t, err)
	got := map[string]string{}
	for subject, n := range info.State.Subjects {
		require.EqualValues(t, 1, n, "one message per subject")
		raw, err := s.GetLastMsgForSubject(ctx, subject)
		require.NoError(t, err)
		id := raw.Header.Get(failstore.HeaderCommandID)
		_, dup := got[id]
		require.False(t, dup, "two entries for %s", id)
		got[id] = raw.Header.Get(failstore.HeaderEventID)
	}
	assert.Equal(t, want, got, "the open set is the commands whose newest outcome is a failure")
	snap, err := failstore.Load(ctx, wd.js, failstore.Select{})
	require.NoError(t, err)
	assert.Len(t, snap.Failures, len(want), "Load lists them all")
	// Every open failure's command holds the name "A": the exact-value
	// index finds each of them, and nothing else.
	found, err := failstore.Lookup(ctx, wd.js, " a ", failstore.Select{}, 0)
	require.NoError(t, err)
	byIndex := map[string]string{}
	for _, f := range found.Failures {
		byIndex[f.CommandID] = f.EventID
	}
	assert.Equal(t, want, byIndex, "the index finds exactly the open failures")
}

// Instances racing on the same commands, pausing between every step of
// their writes, with deliveries that die between recording and changing
// the store (redelivered afterwards): the open set ends up exactly the
// commands whose newest outcome is a failure.
func TestOpenSetFollowsNewestOutcomeUnderRaces(t *testing.T) {
	wd := newWorld(t)
	// Between steps, a writer sometimes yields a while, so that the
	// others' requests (each a round trip to the server) land there.
	failstore.SetPause(wd.w, func() {
		for range rand.IntN(3) * rand.IntN(64) {
			runtime.Gosched()
		}
	})
	commands := []string{"cmd-a", "cmd-b", "cmd-c", "cmd-d", "cmd-e"}
	reasons := []contact.Reason{contact.ReasonExhausted, contact.ReasonRejected, contact.ReasonInvalid}
	var (
		mu      sync.Mutex
		crashed []outcome // recorded, but the store was not changed
		wg      sync.WaitGroup
	)
	for inst := range 4 {
		wg.Go(func() {
			for i := range 40 {
				o := outcome{
					commandID:  commands[rand.IntN(len(commands))],
					generation: fmt.Sprintf("replay-%d-%d", inst, i),
					failed:     rand.IntN(2) == 0,
					reason:     reasons[rand.IntN(len(reasons))],
				}
				wd.record(t, o)
				if rand.IntN(8) == 0 {
					mu.Lock()
					crashed = append(crashed, o)
					mu.Unlock()
					continue
				}
				wd.change(t, o)
			}
		})
	}
	wg.Wait()
	// Redeliveries: each crashed delivery is decided again from the record,
	// which repeats its generation's outcome only if it is still the
	// newest (else a newer decision made the change).
	for _, o := range crashed {
		if n, ok := wd.newest(t, o.commandID); ok && n.generation == o.generation {
			wd.change(t, n)
		}
	}
	wd.assertOpenSet(t, commands)
}

// A crash between any two steps: after the record (nothing in the store),
// after storing the entry (before its check), after the check (before the
// purge). Each leaves the store to be repaired by the redelivery, and the
// open set is right after it.
func TestOpenSetAfterACrashAtEachStep(t *testing.T) {
	wd := newWorld(t)
	ctx := context.Background()
	first := outcome{commandID: "crash", generation: "", failed: true, reason: contact.ReasonExhausted}
	wd.record(t, first)
	wd.change(t, first)
	wd.assertOpenSet(t, []string{"crash"})

	// The replay fails again: crash after its record write. The store
	// still shows the first failure until the redelivery.
	second := outcome{commandID: "crash", generation: "replay-1", failed: true, reason: contact.ReasonRejected}
	wd.record(t, second)
	wd.change(t, second) // the redelivery
	wd.assertOpenSet(t, []string{"crash"})

	// Crash after storing the entry, before the check and the purge: two
	// entries on different subjects; Load shows the newest only; the
	// redelivery settles it.
	third := outcome{commandID: "crash", generation: "replay-2", failed: true, reason: contact.ReasonInvalid}
	wd.record(t, third)
	ev, body := third.event(t)
	e, err := failstore.NewEntry(ev, body, false)
	require.NoError(t, err)
	_, err = wd.js.PublishMsg(ctx, e.Msg)
	require.NoError(t, err)
	snap, err := failstore.Load(ctx, wd.js, failstore.Select{CommandID: "crash"})
	require.NoError(t, err)
	require.Len(t, snap.Failures, 1, "a listing shows one failure per command meanwhile")
	assert.Equal(t, ev.ID, snap.Failures[0].EventID, "the newest stored")
	wd.change(t, third)
	wd.assertOpenSet(t, []string{"crash"})

	// The created replay crashes before resolving: the redelivery
	// resolves.
	created := outcome{commandID: "crash", generation: "replay-3"}
	wd.record(t, created)
	wd.change(t, created)
	wd.assertOpenSet(t, []string{"crash"})

	// An old generation's failure repeated now (a late redelivery whose
	// decision did not see the created) is deleted again by its check.
	wd.change(t, first)
	wd.assertOpenSet(t, []string{"crash"})
}

// Filters by reason and provider are the server's, by subject; text and
// time are matched on the headers; groups fold one outage into one line.
func TestLoadFiltersAndGroups(t *testing.T) {
	wd := newWorld(t)
	ctx := context.Background()
	for i := range 30 {
		o := outcome{commandID: fmt.Sprintf("f-%02d", i), failed: true, reason: contact.ReasonExhausted}
		if i%3 == 0 {
			o.reason = contact.ReasonInvalid
		}
		wd.record(t, o)
		wd.change(t, o)
	}
	snap, err := failstore.Load(ctx, wd.js, failstore.Select{})
	require.NoError(t, err)
	require.Len(t, snap.Failures, 30)
	assert.Equal(t, "f-29", snap.Failures[0].CommandID, "newest first")

	snap, err = failstore.Load(ctx, wd.js, failstore.Select{Reasons: []contact.Reason{contact.ReasonInvalid}})
	require.NoError(t, err)
	assert.Len(t, snap.Failures, 10)
	assert.Equal(t, 10, snap.Read, "the server filtered by reason: only those were read")

	snap, err = failstore.Load(ctx, wd.js, failstore.Select{Providers: []string{"instantpay"}})
	require.NoError(t, err)
	assert.Empty(t, snap.Failures)

	snap, err = failstore.Load(ctx, wd.js, failstore.Select{CommandID: "f-07"})
	require.NoError(t, err)
	require.Len(t, snap.Failures, 1)
	assert.Equal(t, 1, snap.Read)

	snap, err = failstore.Load(ctx, wd.js, failstore.Select{Text: "FAILED IN"})
	require.NoError(t, err)
	assert.Len(t, snap.Failures, 30)
	groups := snap.Groups()
	require.Len(t, groups, 2)
	assert.Equal(t, 20, groups[0].Count)
	assert.Equal(t, contact.ReasonExhausted, groups[0].Reason)

	got, err := failstore.Get(ctx, wd.js, snap.Failures[:2])
	require.NoError(t, err)
	require.Len(t, got, 2)
	assert.JSONEq(t, `{"name":"A"}`, string(got[0].Data.Command), "the whole failed event, command included")

	n, err := failstore.Discard(ctx, wd.js, snap.Failures[:5])
	require.NoError(t, err)
	assert.Equal(t, 5, n)
	n, err = failstore.Discard(ctx, wd.js, snap.Failures[:5])
	require.NoError(t, err)
	assert.Zero(t, n, "discarded already")
	snap, err = failstore.Load(ctx, wd.js, failstore.Select{})
	require.NoError(t, err)
	assert.Len(t, snap.Failures, 25)
}

// Hostile names cannot add or split subject tokens.
func TestSubjectsHoldTheirShape(t *testing.T) {
	for _, p := range []string{"", "pik", "a.b", "*", ">", "x y", "PIK", string(make([]byte, 40))} {
		s := failstore.Subject(contact.ReasonExhausted, p, "id.with.dots *>")
		assert.Equal(t, failstore.Subject(contact.ReasonExhausted, "p", "id.with.dots *>")[:len("contactrelay.failures.exhausted.")], s[:len("contactrelay.failures.exhausted.")])
		assert.NotContains(t, s, " ")
		assert.NotContains(t, s, "*")
		assert.NotContains(t, s, ">")
		assert.Equal(t, 5, countDots(s), "subject %q", s)
	}
}

func countDots(s string) int {
	n := 0
	for i := range len(s) {
		if s[i] == '.' {
			n++
		}
	}
	return n
}

// pauseAt has w stop at its n-th step (1: after storing or noting the
// last sequence, 2: after the check), reporting there on at and going on
// once go is closed.
func pauseAt(w *failstore.Writer, n int) (at, resume chan struct{}) {
	at, resume = make(chan struct{}), make(chan struct{})
	steps := 0
	failstore.SetPause(w, func() {
		if steps++; steps == n {
			close(at)
			<-resume
		}
	})
	return at, resume
}

// A resolution whose check passed purges only what was stored before it
// read the record: a newer failure recorded and stored between its check
// and its purge stays open.
func TestResolveKeepsAFailureStoredAfterItsCheck(t *testing.T) {
	wd := newWorld(t)
	ctx := context.Background()
	first := outcome{commandID: "r", failed: true, reason: contact.ReasonExhausted}
	wd.record(t, first)
	wd.change(t, first)
	created := outcome{commandID: "r", generation: "replay-1"}
	wd.record(t, created)

	late, err := failstore.OpenWriter(ctx, wd.js)
	require.NoError(t, err)
	at, resume := pauseAt(late, 2)
	done := make(chan error, 1)
	go func() { done <- late.Resolve(ctx, "r", stream.NewestCreatedCheck(wd.records, record.Key("r"))) }()
	<-at // checked: the contact.created is the newest outcome
	newer := outcome{commandID: "r", generation: "replay-2", failed: true, reason: contact.ReasonRejected}
	wd.record(t, newer)
	wd.change(t, newer)
	close(resume)
	require.NoError(t, <-done)
	wd.assertOpenSet(t, []string{"r"})
}

// An opened failure whose check passed purges only entries stored before
// its own: a newer failure stored between its check and its purge stays.
func TestOpenKeepsANewerFailureStoredAfterItsCheck(t *testing.T) {
	wd := newWorld(t)
	ctx := context.Background()
	older := outcome{commandID: "o", failed: true, reason: contact.ReasonExhausted}
	wd.record(t, older)

	late, err := failstore.OpenWriter(ctx, wd.js)
	require.NoError(t, err)
	at, resume := pauseAt(late, 2)
	ev, body := older.event(t)
	e, err := failstore.NewEntry(ev, body, false)
	require.NoError(t, err)
	done := make(chan error, 1)
	go func() {
		done <- late.Open(ctx, e, stream.NewestFailureCheck(wd.records, record.Key("o"), ev.ID))
	}()
	<-at // stored and checked: still the newest
	newer := outcome{commandID: "o", generation: "replay-1", failed: true, reason: contact.ReasonRejected}
	wd.record(t, newer)
	wd.change(t, newer)
	close(resume)
	require.NoError(t, <-done)
	wd.assertOpenSet(t, []string{"o"})
}

// The version changes with every change to the open failures (a failure
// opened, replaced, resolved, discarded) and only then, so a reader that
// reloads on a new version misses nothing.
func TestVersionChangesWithEveryChange(t *testing.T) {
	wd := newWorld(t)
	ctx := context.Background()
	version := func() failstore.Version {
		t.Helper()
		v, err := failstore.CurrentVersion(ctx, wd.js)
		require.NoError(t, err)
		return v
	}
	seen := map[failstore.Version]string{}
	step := func(what string, do func()) {
		t.Helper()
		do()
		v := version()
		if earlier, ok := seen[v]; ok {
			t.Fatalf("after %s the version %+v is the one after %s", what, v, earlier)
		}
		seen[v] = what
		assert.Equal(t, v, version(), "unchanged while nothing changes")
		snap, err := failstore.Load(ctx, wd.js, failstore.Select{})
		require.NoError(t, err)
		assert.Equal(t, v, snap.Version, "a load carries the version it read")
	}
	step("nothing", func() {})
	for _, o := range []outcome{
		{commandID: "v-1", generation: "", failed: true, reason: contact.ReasonExhausted},
		{commandID: "v-2", generation: "", failed: true, reason: contact.ReasonInvalid},
		{commandID: "v-1", generation: "r1", failed: true, reason: contact.ReasonRejected}, // replaces v-1's
		{commandID: "v-1", generation: "r2"},                                               // resolves it
	} {
		step(fmt.Sprintf("%+v", o), func() { wd.record(t, o); wd.change(t, o) })
	}
	step("a discard", func() {
		snap, err := failstore.Load(ctx, wd.js, failstore.Select{})
		require.NoError(t, err)
		require.Len(t, snap.Failures, 1)
		n, err := failstore.Discard(ctx, wd.js, snap.Failures)
		require.NoError(t, err)
		require.Equal(t, 1, n)
	})
	assert.Zero(t, version().Msgs, "nothing open at the end")
}

// Watch reports the counts by reason and provider, reads the store again
// only when it changed, and follows each change.
func TestWatchReloadsOnlyAChangedStore(t *testing.T) {
	wd := newWorld(t)
	o := outcome{commandID: "w-1", failed: true, reason: contact.ReasonExhausted}
	wd.record(t, o)
	wd.change(t, o)

	ctx, cancel := context.WithCancel(context.Background())
	type report struct {
		counts map[[2]string]int
		err    error
	}
	reports := make(chan report)
	done := make(chan struct{})
	go func() {
		defer close(done)
		// Each load may take up to the period: 200ms is ample for one
		// entry, but a loaded machine can still miss it, so a failed load
		// only starts the comparison again.
		failstore.Watch(ctx, wd.js, 200*time.Millisecond, []string{"pik", "instantpay"}, func(c map[[2]string]int, err error) {
			select {
			case reports <- report{c, err}:
			case <-ctx.Done():
			}
		})
	}()
	t.Cleanup(func() { cancel(); <-done })
	deadline := time.Now().Add(60 * time.Second)
	// next returns the counts of the next report, and whether the report
	// before it was a good one too.
	var lastGood bool
	next := func() (map[[2]string]int, bool) {
		t.Helper()
		for {
			require.True(t, time.Now().Before(deadline), "Watch did not report as expected in time")
			select {
			case r := <-reports:
				if r.err != nil {
					t.Logf("a load failed (tolerated): %v", r.err)
					lastGood = false
					continue
				}
				after := lastGood
				lastGood = true
				return r.counts, after
			case <-time.After(30 * time.Second):
				t.Fatal("no report from Watch")
			}
		}
	}
	first, _ := next()
	assert.Equal(t, map[[2]string]int{{"exhausted", "pik"}: 1}, first)
	for {
		second, successive := next()
		if successive {
			assert.Equal(t, reflect.ValueOf(first).Pointer(), reflect.ValueOf(second).Pointer(), "an unchanged store is not read again")
			break
		}
		first = second
	}

	resolved := outcome{commandID: "w-1", generation: "r1"}
	wd.record(t, resolved)
	wd.change(t, resolved)
	for counts, _ := next(); len(counts) != 0; counts, _ = next() {
		require.Equal(t, first, counts, "the old counts until the change is seen")
	}
}

// Get returns the entries in the order asked, several reads in flight,
// and leaves out those removed since they were listed.
func TestGetKeepsOrderAndSkipsRemoved(t *testing.T) {
	wd := newWorld(t)
	ctx := context.Background()
	for i := range 60 {
		o := outcome{commandID: fmt.Sprintf("g-%02d", i), failed: true, reason: contact.ReasonExhausted}
		wd.record(t, o)
		wd.change(t, o)
	}
	snap, err := failstore.Load(ctx, wd.js, failstore.Select{})
	require.NoError(t, err)
	require.Len(t, snap.Failures, 60)
	asked := slices.Clone(snap.Failures)
	slices.Reverse(asked) // oldest first: not the store's order either way
	var gone []failstore.Summary
	for i := 0; i < len(asked); i += 3 {
		gone = append(gone, asked[i])
	}
	n, err := failstore.Discard(ctx, wd.js, gone)
	require.NoError(t, err)
	require.Equal(t, 20, n)

	got, err := failstore.Get(ctx, wd.js, asked)
	require.NoError(t, err)
	var want, have []string
	for i, s := range asked {
		if i%3 != 0 {
			want = append(want, s.CommandID)
		}
	}
	for _, f := range got {
		have = append(have, f.CommandID)
		assert.Equal(t, f.CommandID, f.Data.CommandID, "each entry whole, its own")
	}
	assert.Equal(t, want, have)
}
