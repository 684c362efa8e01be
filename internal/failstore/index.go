package failstore

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/contactrelay/contactrelay/contact"
)

// Select chooses open failures. The server filters by Reasons, Providers
// and CommandID (from the subjects); the rest is matched on the headers.
// Its zero value selects every open failure.
type Select struct {
	Reasons   []contact.Reason
	Providers []string
	CommandID string
	// Since and Until bound the failure's time, inclusive; zero means
	// unbounded.
	Since, Until time.Time
	// Text, when not empty, is looked for in the message and the
	// commandId, ignoring case.
	Text string
	// Conflicts selects conflicts' entries only (true) or none of them
	// (false), when set.
	Conflicts *bool
}

// filterSubjects returns the subjects the server filters by.
func (q Select) filterSubjects() []string {
	reasons := []string{"*"}
	if len(q.Reasons) > 0 {
		reasons = reasons[:0]
		for _, r := range q.Reasons {
			reasons = append(reasons, ReasonToken(r))
		}
	}
	providers := []string{"*"}
	if len(q.Providers) > 0 {
		providers = providers[:0]
		for _, p := range q.Providers {
			providers = append(providers, ProviderToken(p))
		}
	}
	tails := []string{">"}
	if q.CommandID != "" {
		k := Key(q.CommandID)
		tails = []string{k, k + ".*"}
	}
	if len(reasons) == 1 && reasons[0] == "*" && len(providers) == 1 && providers[0] == "*" && tails[0] == ">" {
		return []string{Subjects}
	}
	var out []string
	for _, r := range reasons {
		for _, p := range providers {
			for _, t := range tails {
				s := SubjectPrefix + r + "." + p + "." + t
				if !slices.Contains(out, s) {
					out = append(out, s)
				}
			}
		}
	}
	return out
}

// match reports whether s passes the parts of q the server does not
// filter by.
func (q Select) match(s *Summary) bool {
	switch {
	case q.CommandID != "" && s.CommandID != q.CommandID:
		return false
	case !q.Since.IsZero() && s.Time.Before(q.Since):
		return false
	case !q.Until.IsZero() && s.Time.After(q.Until):
		return false
	case q.Conflicts != nil && *q.Conflicts != s.Conflict:
		return false
	case q.Text != "" && !containsFold(s.Message, q.Text) && !containsFold(s.CommandID, q.Text):
		return false
	}
	return true
}

func containsFold(s, sub string) bool {
	return strings.Contains(strings.ToLower(s), strings.ToLower(sub))
}

// Snapshot is the open failures a Load found, newest first.
type Snapshot struct {
	// Failures are the selected open failures, newest first (by time,
	// then by sequence).
	Failures []Summary
	// Read counts the entries read (the server's filter passed them);
	// LastSeq is the store's last sequence when the load began.
	Read    int
	LastSeq uint64
	// At is when the load began.
	At time.Time
	// Version is the store's version when the load began.
	Version Version
}

// Version tells whether the store changed: every write raises LastSeq and
// every removal lowers Msgs without raising it, so an equal Version means
// the same open failures (Created tells a store made again).
type Version struct {
	Created time.Time
	LastSeq uint64
	Msgs    uint64
}

func versionOf(info *jetstream.StreamInfo) Version {
	return Version{Created: info.Created, LastSeq: info.State.LastSeq, Msgs: info.State.Msgs}
}

// CurrentVersion returns the store's version, ErrNoStore when there is no
// store: one request, for a reader that reloads only when it changed.
func CurrentVersion(ctx context.Context, js jetstream.JetStream) (Version, error) {
	s, err := js.Stream(ctx, Stream)
	if errors.Is(err, jetstream.ErrStreamNotFound) {
		return Version{}, ErrNoStore
	}
	if err != nil {
		return Version{}, fmt.Errorf("look up stream %s: %w", Stream, err)
	}
	return versionOf(s.CachedInfo()), nil
}

// IdleTimeout is how long a read (ReadUpTo) waits for the next message
// before it asks the server whether any is left.
const IdleTimeout = 5 * time.Second

// Load reads the headers of the open failures q selects, up to the
// store's last sequence when it begins. It costs what is open (and
// selected by subject), not the event history; bodies are fetched by Get
// for what is shown. It returns ErrNoStore when the store does not exist.
func Load(ctx context.Context, js jetstream.JetStream, q Select) (*Snapshot, error) {
	snap := &Snapshot{At: time.Now()}
	s, err := js.Stream(ctx, Stream)
	if errors.Is(err, jetstream.ErrStreamNotFound) {
		return nil, ErrNoStore
	}
	if err != nil {
		return nil, fmt.Errorf("look up stream %s: %w", Stream, err)
	}
	state := s.CachedInfo().State
	snap.LastSeq = state.LastSeq
	snap.Version = versionOf(s.CachedInfo())
	if state.Msgs == 0 {
		return snap, nil
	}
	if q.CommandID != "" {
		// One command's entries: found by the server's subject index,
		// with no consumer, whose making would count the whole store.
		if err := loadCommand(ctx, js, q, snap); err != nil {
			return nil, err
		}
		sortNewestFirst(snap.Failures)
		return snap, nil
	}
	err = ReadUpTo(ctx, s, jetstream.OrderedConsumerConfig{
		FilterSubjects: q.filterSubjects(),
		DeliverPolicy:  jetstream.DeliverAllPolicy,
		HeadersOnly:    true,
	}, snap.LastSeq, func(msg jetstream.Msg, seq uint64) {
		snap.Read++
		sum := summarize(seq, msg.Subject(), msg.Headers())
		if q.match(&sum) {
			snap.Failures = append(snap.Failures, sum)
		}
	})
	if err != nil {
		return nil, err
	}
	snap.Failures = newestPerCommand(snap.Failures)
	sortNewestFirst(snap.Failures)
	return snap, nil
}

// loadCommand reads the entries of q's command, its own and its
// conflicts', up to the store's last sequence when the load began, with
// direct gets of the next entry on the command's subjects: a few
// milliseconds each at a million open, where a consumer filtered by the
// command costs seconds to make.
func loadCommand(ctx context.Context, js jetstream.JetStream, q Select, snap *Snapshot) error {
	key := Key(q.CommandID)
	for _, filter := range []string{SubjectPrefix + "*.*." + key, SubjectPrefix + "*.*." + key + ".*"} {
		var own []Summary
		for seq := uint64(1); seq <= snap.LastSeq; {
			m, err := nextDirect(ctx, js, Stream, seq, filter)
			if err != nil {
				return err
			}
			if m == nil || m.seq > snap.LastSeq {
				break
			}
			snap.Read++
			sum := summarize(m.seq, m.subject, m.header)
			sum.Size = len(m.data)
			if q.selects(&sum) {
				own = append(own, sum)
			}
			seq = m.seq + 1
		}
		snap.Failures = append(snap.Failures, newestPerCommand(own)...)
	}
	return nil
}

// newestPerCommand keeps one entry per command (conflicts aside), its
// latest stored: a command has two only while a writer is between storing
// the newer and purging the older.
func newestPerCommand(fs []Summary) []Summary {
	at := make(map[string]int, len(fs))
	out := fs[:0]
	for _, f := range fs {
		if f.Conflict {
			out = append(out, f)
			continue
		}
		if i, ok := at[f.CommandID]; ok {
			if f.Seq > out[i].Seq {
				out[i] = f
			}
			continue
		}
		at[f.CommandID] = len(out)
		out = append(out, f)
	}
	return out
}

func sortNewestFirst(fs []Summary) {
	slices.SortFunc(fs, func(a, b Summary) int {
		if c := b.Time.Compare(a.Time); c != 0 {
			return c
		}
		return cmp.Compare(b.Seq, a.Seq)
	})
}

// commandSubjectDots counts the dots of a command's own entry's subject;
// a conflict's has one more.
var commandSubjectDots = strings.Count(Subject("r", "p", "x"), ".")

// summarize reads an entry's headers.
func summarize(seq uint64, subject string, h nats.Header) Summary {
	s := Summary{
		Seq:       seq,
		Subject:   subject,
		CommandID: h.Get(HeaderCommandID),
		EventID:   h.Get(HeaderEventID),
		Reason:    contact.Reason(h.Get(HeaderReason)),
		Provider:  h.Get(HeaderProvider),
		Message:   h.Get(HeaderMessage),
		ReplayOf:  h.Get(HeaderReplayOf),
	}
	s.Time, _ = time.Parse(time.RFC3339Nano, h.Get(HeaderTime))
	s.Attempts, _ = strconv.Atoi(h.Get(HeaderAttempts))
	s.Retryable = h.Get(HeaderRetryable) == "true"
	s.Size, _ = strconv.Atoi(h.Get(nats.MsgSize))
	s.Conflict = strings.Count(subject, ".") > commandSubjectDots
	return s
}

// Counts counts the snapshot's failures by reason and by provider, and by
// both (key reason+"\x00"+provider).
func (snap *Snapshot) Counts() (byReason, byProvider map[string]int, byBoth map[[2]string]int) {
	byReason, byProvider, byBoth = map[string]int{}, map[string]int{}, map[[2]string]int{}
	for i := range snap.Failures {
		f := &snap.Failures[i]
		byReason[string(f.Reason)]++
		byProvider[f.Provider]++
		byBoth[[2]string{string(f.Reason), f.Provider}]++
	}
	return byReason, byProvider, byBoth
}

// Group is the open failures that share a reason, provider and message.
type Group struct {
	Reason   contact.Reason
	Provider string
	Message  string
	Count    int
	// Newest and Oldest are the times of its newest and oldest failure.
	Newest, Oldest time.Time
}

// Groups folds the snapshot's failures into groups of one reason,
// provider and message, the largest first, so that ten thousand failures
// of one outage read as one line.
func (snap *Snapshot) Groups() []Group {
	idx := map[[3]string]int{}
	var out []Group
	for i := range snap.Failures {
		f := &snap.Failures[i]
		k := [3]string{string(f.Reason), f.Provider, f.Message}
		j, ok := idx[k]
		if !ok {
			j = len(out)
			idx[k] = j
			out = append(out, Group{Reason: f.Reason, Provider: f.Provider, Message: f.Message, Newest: f.Time, Oldest: f.Time})
		}
		g := &out[j]
		g.Count++
		if f.Time.After(g.Newest) {
			g.Newest = f.Time
		}
		if f.Time.Before(g.Oldest) {
			g.Oldest = f.Time
		}
	}
	slices.SortStableFunc(out, func(a, b Group) int {
		if c := cmp.Compare(b.Count, a.Count); c != 0 {
			return c
		}
		return b.Newest.Compare(a.Newest)
	})
	return out
}

// Failure is a whole open failure: its summary and its failed event.
type Failure struct {
	Summary
	Event contact.Event
	Data  contact.Failed
}

// getInFlight bounds the direct gets Get has in flight: a page of 10,000
// entries costs a few round trips' time, not 10,000 of them.
var getInFlight = 16

// Get fetches the whole entries of the given summaries, in their order;
// an entry removed since its summary was read is left out. It keeps up to
// getInFlight reads in flight.
func Get(ctx context.Context, js jetstream.JetStream, sums []Summary) ([]*Failure, error) {
	if len(sums) == 0 {
		return nil, nil
	}
	s, err := js.Stream(ctx, Stream)
	if errors.Is(err, jetstream.ErrStreamNotFound) {
		return nil, ErrNoStore
	}
	if err != nil {
		return nil, fmt.Errorf("look up stream %s: %w", Stream, err)
	}
	got := make([]*Failure, len(sums))
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(getInFlight)
	for i, sum := range sums {
		g.Go(func() error {
			f, err := getOne(gctx, s, sum)
			got[i] = f
			return err
		})
	}
	if err := g.Wait(); err != nil {
		return nil, err
	}
	out := got[:0]
	for _, f := range got {
		if f != nil {
			out = append(out, f)
		}
	}
	return out, nil
}

// getOne fetches one entry whole; nil when it was removed.
func getOne(ctx context.Context, s jetstream.Stream, sum Summary) (*Failure, error) {
	raw, err := s.GetMsg(ctx, sum.Seq)
	if errors.Is(err, jetstream.ErrMsgNotFound) || isNotFound(err) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read open failure %d: %w", sum.Seq, err)
	}
	f := &Failure{Summary: sum}
	if err := json.Unmarshal(raw.Data, &f.Event); err != nil {
		return nil, fmt.Errorf("read open failure %d: %w", sum.Seq, err)
	}
	if err := json.Unmarshal(f.Event.Data, &f.Data); err != nil {
		return nil, fmt.Errorf("read open failure %d: %w", sum.Seq, err)
	}
	return f, nil
}

// Watch reports the open failures' counts by reason and provider every
// period until ctx is done, or the error of a count. It counts them again
// only when the store has changed (its Version): an unchanged store costs
// one request, and the counts reported before are reported again. The
// counts come from the server (CountByBoth, for the known providers), so
// that a million open failures cost what a few dozen requests cost.
func Watch(ctx context.Context, js jetstream.JetStream, period time.Duration, known []string, report func(byBoth map[[2]string]int, err error)) {
	t := time.NewTicker(period)
	defer t.Stop()
	var (
		last    map[[2]string]int
		lastVer Version
	)
	for {
		lctx, cancel := context.WithTimeout(ctx, period)
		var counts map[[2]string]int
		ver, err := CurrentVersion(lctx, js)
		if err == nil && (last == nil || ver != lastVer) {
			counts, err = CountByBoth(lctx, js, known)
		}
		cancel()
		if ctx.Err() != nil {
			return
		}
		switch {
		case err != nil:
			last = nil
			report(nil, err)
		case counts != nil:
			last, lastVer = counts, ver
			report(last, nil)
		default:
			report(last, nil)
		}
		select {
		case <-t.C:
		case <-ctx.Done():
			return
		}
	}
}

// Summarize reads an entry's headers, as Load does: for a reader that
// follows the store with a consumer of its own.
func Summarize(seq uint64, subject string, h nats.Header) Summary {
	return summarize(seq, subject, h)
}
