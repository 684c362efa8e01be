package openfailures

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/contactrelay/contactrelay/contact"
	"github.com/contactrelay/contactrelay/internal/failstore"
	"github.com/contactrelay/contactrelay/internal/provision"
)

// View is the console's index of the open failures and how it follows the
// store. A Follower loads it once, reading every entry's headers, and then
// keeps it in step with what changes, never reading it all again unless
// it finds it disagrees with the store:
//
//   - opens and replacements: the entries stored since the last sequence
//     read (an ordered consumer on the store from there, headers only);
//     a command's newer entry closes its older one;
//   - resolutions: the contact.created events published since the last
//     one read (an ordered consumer on CONTACT_EVENTS, filtered to
//     contact.created): each closes its command's own entry;
//   - the console's own discards, closed as they are made.
//
// What no feed tells (a discard by the CLI or another console, an entry
// its writer deleted again) shows as a count that disagrees with the
// store's (its message count, once every entry up to its last sequence
// is read): the console then waits a moment for an event in flight and,
// if the store still disagrees, reads it all again once, serving the
// index it has meanwhile (not sooner than twice a read's time after the
// last read: a store that keeps disagreeing is not read without end).
// So does a console whose event feed lost events it had not read yet
// (the stream's age limit), at once.
//
// Its methods are safe for concurrent use: they read it under mu's read
// lock; only the Follower's Load changes it.
type View struct {
	mu  sync.RWMutex
	idx *index
	// ready says the first load ended: before, pages are answered from
	// the store (failstore.LoadPage) and loading tells how far it got.
	ready bool
	// err is why the last load or catch-up failed (failstore.ErrNoStore:
	// the store does not exist yet).
	err error
	// took is how long the last full load took; at when it began;
	// checked when the view was last found in step with the store.
	took        time.Duration
	at, checked time.Time

	// Only the Follower's Load uses these.
	created time.Time // the store's creation
	lastSeq uint64    // the store's entries are read up to here
	evNext  uint64    // the next CONTACT_EVENTS sequence to read; 0: none
	// loaded counts the entries read by the load under way, out of
	// loading.
	loaded  atomic.Int64
	loading atomic.Int64
}

// Follower keeps a View of the open failures in step with the store
// (failstore) and the contact.created events. Build it with NewFollower
// and call Load from one loop (the console's Run): each call brings the
// view in step; Current and Forget are safe for concurrent use.
type Follower struct {
	js   jetstream.JetStream
	log  *slog.Logger
	view atomic.Pointer[View]
}

// NewFollower returns a Follower that reads the store through js and logs
// its full reads to log (not nil).
func NewFollower(js jetstream.JetStream, log *slog.Logger) *Follower {
	return &Follower{js: js, log: log}
}

// Current returns the latest view of the open failures, nil before the
// first Load.
func (f *Follower) Current() *View { return f.view.Load() }

// settleWait is how long a catch-up waits, when the counts disagree, for
// the contact.created event of a resolution it saw the store make.
var settleWait = 250 * time.Millisecond

// Load brings the view in step with the store: the first time, and when
// the view disagrees with the store, by reading every entry; otherwise by
// what changed since (catchUp). It returns the view, which says in State
// why it may be out of date. Only one loop (and tests) call it.
func (f *Follower) Load(ctx context.Context) *View {
	v := f.view.Load()
	if v != nil && v.ready {
		err := f.catchUp(ctx, v)
		if errors.Is(err, errCountsDiffer) && time.Since(v.at) < 3*v.took {
			// Read less than twice a read's time ago: read again later,
			// following meanwhile, rather than read without end.
			err = nil
		}
		if err == nil || !errors.Is(err, errOutOfStep) {
			v.mu.Lock()
			v.err = err
			if err == nil {
				v.checked = time.Now()
			}
			v.mu.Unlock()
			return v
		}
		f.log.Info("console: reading the open failures again", "why", err)
	}
	return f.loadAll(ctx)
}

// errOutOfStep says the view disagrees with the store; errCountsDiffer
// that its count differs from the store's.
var (
	errOutOfStep    = errors.New("the console's index disagrees with the store")
	errCountsDiffer = fmt.Errorf("%w: the counts differ", errOutOfStep)
)

// loadAll reads every open failure into a new view, and swaps it in once
// read; on an error it keeps the last good view and says why.
func (f *Follower) loadAll(ctx context.Context) *View {
	start := time.Now()
	old := f.view.Load()
	nv := &View{idx: newIndex(), at: start}
	if old == nil {
		f.view.Store(nv) // pages say it is loading, and how far
	}
	fail := func(err error) *View {
		if errors.Is(err, context.Canceled) {
			return nv
		}
		cur := f.view.Load()
		cur.mu.Lock()
		cur.err = err
		cur.mu.Unlock()
		return cur
	}
	js := f.js
	// The event feed starts where the store's read begins: a resolution
	// of an entry read is then among the events read after.
	if es, err := js.Stream(ctx, provision.EventStream); err == nil {
		nv.evNext = es.CachedInfo().State.LastSeq + 1
	}
	s, err := js.Stream(ctx, failstore.Stream)
	if errors.Is(err, jetstream.ErrStreamNotFound) {
		return fail(failstore.ErrNoStore)
	}
	if err != nil {
		return fail(fmt.Errorf("look up stream %s: %w", failstore.Stream, err))
	}
	info := s.CachedInfo()
	nv.mu.Lock()
	nv.created, nv.lastSeq = info.Created, info.State.LastSeq
	nv.mu.Unlock()
	nv.loading.Store(int64(info.State.Msgs))
	nv.idx.sized(int(info.State.Msgs))
	if info.State.Msgs > 0 {
		err = failstore.ReadUpTo(ctx, s, jetstream.OrderedConsumerConfig{
			FilterSubjects: []string{failstore.Subjects},
			DeliverPolicy:  jetstream.DeliverAllPolicy,
			HeadersOnly:    true,
		}, nv.lastSeq, func(msg jetstream.Msg, seq uint64) {
			sum := failstore.Summarize(seq, msg.Subject(), msg.Headers())
			nv.idx.add(&sum)
			nv.loaded.Add(1)
		})
		if err != nil {
			return fail(err)
		}
	}
	nv.mu.Lock()
	nv.ready = true
	nv.mu.Unlock()
	if err := f.catchUp(ctx, nv); err != nil && !errors.Is(err, errOutOfStep) {
		return fail(err)
	}
	nv.mu.Lock()
	nv.took = time.Since(start)
	nv.checked = time.Now()
	open, size, took := nv.idx.live, nv.idx.bytes(), nv.took
	nv.mu.Unlock()
	f.view.Store(nv)
	f.log.Info("console: open failures read", "open", open, "took", took.Round(time.Millisecond).String(), "indexBytes", size)
	return nv
}

// catchUp applies what changed in the store since the view last read it,
// and checks the view's count against the store's: errOutOfStep when
// they still disagree after a moment's wait for events in flight.
func (f *Follower) catchUp(ctx context.Context, v *View) error {
	js := f.js
	s, err := js.Stream(ctx, failstore.Stream)
	if errors.Is(err, jetstream.ErrStreamNotFound) {
		return failstore.ErrNoStore
	}
	if err != nil {
		return fmt.Errorf("look up stream %s: %w", failstore.Stream, err)
	}
	info := s.CachedInfo()
	if !info.Created.Equal(v.created) {
		return fmt.Errorf("%w: the store was made again", errOutOfStep)
	}
	mismatched := false
	for range 4 {
		if last := info.State.LastSeq; last > v.lastSeq {
			if err := f.readNew(ctx, s, v, last); err != nil {
				return err
			}
		}
		if err := f.readResolved(ctx, v); err != nil {
			return err
		}
		if info, err = s.Info(ctx); err != nil {
			return fmt.Errorf("look up stream %s: %w", failstore.Stream, err)
		}
		if info.State.LastSeq != v.lastSeq {
			continue // more was stored meanwhile: read it, and check again
		}
		v.mu.RLock()
		live := v.idx.live
		v.mu.RUnlock()
		if uint64(live) == info.State.Msgs {
			return nil
		}
		if mismatched {
			return fmt.Errorf("%w: it holds %d open failures, the store %d", errCountsDiffer, live, info.State.Msgs)
		}
		// A resolution's event may be on its way: wait a moment for it.
		mismatched = true
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(settleWait):
		}
	}
	return nil // the store kept changing: the next catch-up checks again
}

// readNew reads the entries stored after the view's last sequence, up to
// last, headers only, into the view.
func (f *Follower) readNew(ctx context.Context, s jetstream.Stream, v *View, last uint64) error {
	var batch []failstore.Summary
	flush := func() {
		v.mu.Lock()
		for i := range batch {
			v.idx.add(&batch[i])
		}
		v.mu.Unlock()
		batch = batch[:0]
	}
	var err error
	if last-v.lastSeq <= fewGets {
		// A few: one direct get each, no consumer (whose making costs
		// 0.2 s at a million entries).
		for seq := v.lastSeq + 1; seq <= last; {
			var sum *failstore.Summary
			if sum, err = failstore.NextEntry(ctx, f.js, seq); err != nil || sum == nil || sum.Seq > last {
				break
			}
			batch = append(batch, *sum)
			seq = sum.Seq + 1
		}
		flush()
		if err != nil {
			return err
		}
		v.mu.Lock()
		v.lastSeq = last
		v.mu.Unlock()
		return nil
	}
	err = failstore.ReadUpTo(ctx, s, jetstream.OrderedConsumerConfig{
		FilterSubjects: []string{failstore.Subjects},
		DeliverPolicy:  jetstream.DeliverByStartSequencePolicy,
		OptStartSeq:    v.lastSeq + 1,
		HeadersOnly:    true,
	}, last, func(msg jetstream.Msg, seq uint64) {
		batch = append(batch, failstore.Summarize(seq, msg.Subject(), msg.Headers()))
		if len(batch) == 1000 {
			flush()
		}
	})
	flush()
	if err != nil {
		return err
	}
	v.mu.Lock()
	v.lastSeq = last
	v.mu.Unlock()
	return nil
}

// readResolved reads the contact.created events published since the
// view's last one and closes their commands' own entries.
func (f *Follower) readResolved(ctx context.Context, v *View) error {
	if v.evNext == 0 {
		es, err := f.js.Stream(ctx, provision.EventStream)
		if err != nil {
			return nil // no event stream (yet): the count check catches up
		}
		v.evNext = es.CachedInfo().State.LastSeq + 1
		return nil
	}
	es, err := f.js.Stream(ctx, provision.EventStream)
	if err != nil {
		return nil
	}
	state := es.CachedInfo().State
	if state.LastSeq < v.evNext {
		return nil
	}
	if state.FirstSeq > v.evNext {
		return fmt.Errorf("%w: the events after %d are gone from %s", errOutOfStep, v.evNext-1, provision.EventStream)
	}
	var ids []string
	if state.LastSeq-v.evNext < fewGets {
		// A few: one get of the next contact.created each.
		for seq := v.evNext; seq <= state.LastSeq; {
			m, err := es.GetMsg(ctx, seq, jetstream.WithGetMsgSubject(contact.SubjectCreated))
			if errors.Is(err, jetstream.ErrMsgNotFound) {
				break
			}
			if err != nil {
				return fmt.Errorf("read %s: %w", provision.EventStream, err)
			}
			if m.Sequence > state.LastSeq {
				break
			}
			if id := createdCommand(m.Data); id != "" {
				ids = append(ids, id)
			}
			seq = m.Sequence + 1
		}
		v.evNext = state.LastSeq + 1
		f.closeCommands(v, ids)
		return nil
	}
	err = failstore.ReadUpTo(ctx, es, jetstream.OrderedConsumerConfig{
		FilterSubjects: []string{contact.SubjectCreated},
		DeliverPolicy:  jetstream.DeliverByStartSequencePolicy,
		OptStartSeq:    v.evNext,
	}, state.LastSeq, func(msg jetstream.Msg, _ uint64) {
		if id := createdCommand(msg.Data()); id != "" {
			ids = append(ids, id)
		}
	})
	if err != nil {
		return err
	}
	v.evNext = state.LastSeq + 1
	f.closeCommands(v, ids)
	return nil
}

// fewGets is how many new messages a catch-up reads with a get each
// rather than with a consumer (tests set it to 0 to follow with
// consumers).
var fewGets uint64 = 1000

// createdCommand returns the commandId a contact.created event is of (its
// CloudEvents subject).
func createdCommand(body []byte) string {
	var ev struct {
		Subject string `json:"subject"`
	}
	if json.Unmarshal(body, &ev) != nil {
		return ""
	}
	return ev.Subject
}

// closeCommands closes the own entries of commands resolved.
func (f *Follower) closeCommands(v *View, ids []string) {
	if len(ids) == 0 {
		return
	}
	v.mu.Lock()
	for _, id := range ids {
		v.idx.closeCommand(id)
	}
	v.mu.Unlock()
}

// Forget closes failures the console discarded.
func (f *Follower) Forget(sums []failstore.Summary) {
	v := f.view.Load()
	if v == nil || !v.ready {
		return
	}
	v.mu.Lock()
	for _, s := range sums {
		v.idx.closeSeq(s.Seq)
	}
	v.mu.Unlock()
}

// State is what every page says of the view: when it was read, why it
// may be out of date, and whether the first load ended (before, it holds
// nothing yet: Progress says how far the load got).
func (v *View) State() (loaded time.Time, err error, ready bool) {
	v.mu.RLock()
	defer v.mu.RUnlock()
	loaded = v.at
	if v.checked.After(loaded) {
		loaded = v.checked
	}
	return loaded, v.err, v.ready
}

// Progress says how many entries the first load has read, out of how
// many.
func (v *View) Progress() (read, of int64) {
	return v.loaded.Load(), v.loading.Load()
}

// Open is how many open failures the view holds.
func (v *View) Open() int {
	v.mu.RLock()
	defer v.mu.RUnlock()
	return v.idx.live
}

// UpTo is the store's last sequence the view has read.
func (v *View) UpTo() uint64 {
	v.mu.RLock()
	defer v.mu.RUnlock()
	return v.lastSeq
}

// Selected returns the open failures q selects, newest first; text, when
// not nil, is what a text search found for q.Text, in place of the view's
// own match.
func (v *View) Selected(q *Query, text map[uint64]bool) []failstore.Summary {
	v.mu.RLock()
	defer v.mu.RUnlock()
	x := v.idx
	var out []failstore.Summary
	if len(q.Seqs) > 0 {
		seqs := slices.Clone(q.Seqs)
		slices.Sort(seqs)
		for _, seq := range slices.Compact(seqs) {
			if i := x.find(seq); i >= 0 && x.entries[i].flags&flagClosed == 0 && (q.UpTo == 0 || seq <= q.UpTo) {
				out = append(out, x.summary(&x.entries[i]))
			}
		}
		slices.Reverse(out)
		return out
	}
	x.each(x.compile(q, text), func(e *openEntry) bool {
		out = append(out, x.summary(e))
		return true
	})
	return out
}

// Page returns the open failures q selects from the lo-th to before the
// hi-th (newest first), and how many it selects in all.
func (v *View) Page(q *Query, text map[uint64]bool, lo, hi int) (rows []failstore.Summary, matched int) {
	v.mu.RLock()
	defer v.mu.RUnlock()
	x := v.idx
	x.each(x.compile(q, text), func(e *openEntry) bool {
		if matched >= lo && matched < hi {
			rows = append(rows, x.summary(e))
		}
		matched++
		return true
	})
	return rows, matched
}

// Tally counts the open failures q selects without listing them: in
// all, by reason, and those a replay would leave out as not retryable;
// First holds the newest of them, at most n.
func (v *View) Tally(q *Query, text map[uint64]bool, n int) (t Tally) {
	v.mu.RLock()
	defer v.mu.RUnlock()
	x := v.idx
	t.ByReason = map[string]int{}
	x.each(x.compile(q, text), func(e *openEntry) bool {
		if len(t.First) < n {
			t.First = append(t.First, x.summary(e))
		}
		t.N++
		reason := x.reasons.strs[e.reason]
		t.ByReason[reason]++
		switch {
		case reason == string(contact.ReasonMalformed):
			t.Malformed++
		case e.flags&flagRetryable == 0:
			t.NotRetryable++
		}
		return true
	})
	return t
}

// Tally is what View.Tally counts: Malformed those a replay cannot send,
// NotRetryable the others it leaves out unless asked to send them too.
type Tally struct {
	N            int
	ByReason     map[string]int
	Malformed    int
	NotRetryable int
	First        []failstore.Summary
}

// Groups folds the open failures q selects into groups, the largest
// first, and says how many they hold.
func (v *View) Groups(q *Query, text map[uint64]bool) ([]failstore.Group, int) {
	v.mu.RLock()
	defer v.mu.RUnlock()
	gs := v.idx.groupsOf(v.idx.compile(q, text))
	n := 0
	for _, g := range gs {
		n += g.Count
	}
	return gs, n
}

// Providers are the providers of open failures, besides known.
func (v *View) Providers(known []string) []string {
	v.mu.RLock()
	defer v.mu.RUnlock()
	_, byProvider := v.idx.counts()
	out := known
	for _, p := range v.idx.providers.strs {
		if p != "" && byProvider[p] > 0 && !slices.Contains(out, p) {
			out = append(out, p)
		}
	}
	return out
}

// Overview is what View.Overview counts of every open failure, at one
// moment.
type Overview struct {
	Open                 int
	ByReason, ByProvider map[string]int
	// Groups are every group, the largest first.
	Groups []failstore.Group
	// Hours counts the failures by the hour they failed in, over the 24
	// hours from the start asked for; Older those that failed before.
	Hours [24]int
	Older int
}

// Overview counts the open failures in all, by reason, by provider, by
// group and by the hour they failed in over the 24 hours from start.
func (v *View) Overview(start time.Time) Overview {
	v.mu.RLock()
	defer v.mu.RUnlock()
	x := v.idx
	o := Overview{Open: x.live, Groups: x.groupsOf(x.compile(&Query{}, nil))}
	o.ByReason, o.ByProvider = x.counts()
	o.Hours, o.Older = x.hourly(start)
	return o
}

// Bytes estimates the memory the view's index holds.
func (v *View) Bytes() int {
	v.mu.RLock()
	defer v.mu.RUnlock()
	return v.idx.bytes()
}
