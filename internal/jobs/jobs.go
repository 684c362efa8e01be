// Package jobs runs bulk replays and discards of open failures as jobs
// whose state lives in NATS, in the key-value bucket CONTACT_JOBS
// (provision.JobBucket), so that a job survives the process that runs it:
// another process (a re-run of the command, a console replica) takes it
// over and resumes where it stopped.
//
// A job covers what its filter selected when it started: it notes the
// store's last sequence then (StartSeq) and walks the store of open
// failures (package failstore) down from there, newest first, one page at
// a time (failstore.LoadPage, bounded memory: one page), at its rate. A
// failure that fails again meanwhile is stored anew, above StartSeq, and
// is not replayed again. After each message, at most every SaveEvery,
// and after each page, the job saves its cursor (the sequence reached)
// and counts; after a crash, what was sent since the last save is sent
// again on resume, and the command stream drops it as a duplicate (every
// replay of a failure has the Nats-Msg-Id "replay:<failed event id>"),
// counting it as already sent.
//
// One process runs a job at a time: its owner holds a lease, renewed with
// every save (and by a heartbeat between sends), each write a
// compare-and-set on the entry's revision. A process takes a job only when
// it is stopped or its owner's lease has expired; an owner whose write
// loses the race learns that the job was stopped (and saves its progress
// as stopped) or taken over (and stops writing).
//
// A finished job's entry (done or failed) is pruned a week after it
// finished (Keep), by the next job created; a stopped one stays until it
// is resumed to its end.
package jobs

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/contactrelay/contactrelay/internal/provision"
	"github.com/contactrelay/contactrelay/internal/replay"
)

// Kind is what a job does to each failure it selects.
type Kind string

// The kinds of job.
const (
	KindReplay  Kind = "replay"
	KindDiscard Kind = "discard"
)

// State is where a job is.
type State string

// The states of a job. A running job whose owner's lease has expired is
// one whose process died: any process may take it over.
const (
	Running State = "running"
	Stopped State = "stopped"
	Done    State = "done"
	Failed  State = "failed"
)

// MaxProblems bounds Job.Problems.
const MaxProblems = 20

// Keep is how long a finished job's entry is kept before it is pruned.
const Keep = 7 * 24 * time.Hour

// Counts are what a job did, across every process that ran it.
type Counts struct {
	// Selected counts the failures the job reached.
	Selected int `json:"selected"`
	// Sent counts the replays the command stream stored; AlreadySent
	// those it dropped because the same command was sent for the failure
	// before; Refused those it dropped because another was
	// (replay.Summary).
	Sent        int `json:"sent"`
	AlreadySent int `json:"alreadySent"`
	Refused     int `json:"refused"`
	// Discarded counts the open failures a discard removed; a failure
	// gone already (resolved meanwhile, or removed before a restart) is
	// counted under Skipped as "gone".
	Discarded int `json:"discarded"`
	// Skipped counts the failures left alone, by why.
	Skipped map[string]int `json:"skipped,omitempty"`
	// PublishFailed counts the replays whose publish failed.
	PublishFailed int `json:"publishFailed"`
}

// SkippedTotal returns how many failures were skipped.
func (c Counts) SkippedTotal() int {
	n := 0
	for _, v := range c.Skipped {
		n += v
	}
	return n
}

// SkipGone is why a discard skips a failure no longer stored.
const SkipGone = "gone already"

// Job is one bulk replay or discard, as its entry holds it.
type Job struct {
	ID   string `json:"id"`
	Kind Kind   `json:"kind"`
	// Filter selects the failures (its Limit bounds how many); Described
	// says it as flags or as the console's words.
	Filter    replay.Filter `json:"filter"`
	Described string        `json:"described"`
	// All replays failures that are not retryable too.
	All bool `json:"all,omitempty"`
	// Rate is the most failures a second (0: as fast as the server
	// answers, discards only).
	Rate float64 `json:"rate"`
	// StartSeq is the store's last sequence when the job started: it
	// covers the entries at or below it.
	StartSeq uint64 `json:"startSeq"`
	// Cursor is the sequence reached: what is left is below it.
	Cursor uint64 `json:"cursor"`
	// Total is how many the filter selected when the job started, counted
	// by the server; 0 when the server cannot count the filter (--since,
	// --until).
	Total  int    `json:"total,omitempty"`
	Counts Counts `json:"counts"`
	// Problems are the first MaxProblems failures a replay did not send
	// for a problem, each "<commandId>: <why>": a publish that failed, or
	// a refusal (another command was sent for the failure first).
	Problems []string `json:"problems,omitempty"`
	// User is who started it, From where from ("cli@host", "console").
	User  string `json:"user"`
	From  string `json:"from,omitempty"`
	State State  `json:"state"`
	Error string `json:"error,omitempty"`
	// Owner is the process that runs it, LeaseUntil when its lease ends
	// unless renewed.
	Owner      string    `json:"owner,omitempty"`
	LeaseUntil time.Time `json:"leaseUntil,omitzero"`
	Created    time.Time `json:"created"`
	Updated    time.Time `json:"updated"`
	Finished   time.Time `json:"finished,omitzero"`

	rev uint64
}

// Over reports whether the job has ended (done or failed).
func (j *Job) Over() bool { return j.State == Done || j.State == Failed }

// Held reports whether a process holds the job's lease at now: one that
// runs it, or that was asked to stop and has not yet said it did.
func (j *Job) Held(now time.Time) bool {
	return j.Owner != "" && now.Before(j.LeaseUntil)
}

// Errors callers branch on.
var (
	// ErrNotFound reports a job the bucket does not hold.
	ErrNotFound = errors.New("no such job")
	// ErrNoBucket reports that the bucket does not exist.
	ErrNoBucket = errors.New("the bucket " + provision.JobBucket + " does not exist: run 'consumer setup' (or start the service)")
	// ErrFinished reports a job that has ended: it cannot be resumed.
	ErrFinished = errors.New("the job has finished")
	// ErrStopped reports that the job was stopped while it ran.
	ErrStopped = errors.New("the job was stopped")
	// ErrLeaseLost reports that another process took the job over.
	ErrLeaseLost = errors.New("another process took the job over")
	// errConflict reports a write that lost the compare-and-set.
	errConflict = errors.New("the job changed meanwhile")
)

// LeasedError reports a job another process runs.
type LeasedError struct {
	ID    string
	Owner string
	Until time.Time
}

func (e *LeasedError) Error() string {
	return fmt.Sprintf("job %s is running in %s, whose lease lasts until %s (renewed while it runs): stop it with 'consumer jobs stop %s', or, if that process died, resume it after then",
		e.ID, e.Owner, e.Until.UTC().Format(time.RFC3339), e.ID)
}

// Store reads and writes the job bucket. It is safe for concurrent use.
type Store struct {
	kv jetstream.KeyValue
	// Now is the clock; default time.Now.
	Now func() time.Time
}

// OpenStore binds to the job bucket, which setup creates.
func OpenStore(ctx context.Context, js jetstream.JetStream) (*Store, error) {
	kv, err := js.KeyValue(ctx, provision.JobBucket)
	if errors.Is(err, jetstream.ErrBucketNotFound) {
		return nil, ErrNoBucket
	}
	if err != nil {
		return nil, fmt.Errorf("open bucket %s: %w", provision.JobBucket, err)
	}
	return &Store{kv: kv, Now: time.Now}, nil
}

func (s *Store) now() time.Time { return s.Now() }

// NewID returns a new job id: 16 hex digits.
func NewID() string {
	b := make([]byte, 8)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// Get returns the job id.
func (s *Store) Get(ctx context.Context, id string) (*Job, error) {
	if !validID(id) {
		return nil, fmt.Errorf("job %q: %w", id, ErrNotFound)
	}
	e, err := s.kv.Get(ctx, id)
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return nil, fmt.Errorf("job %s: %w", id, ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("read job %s: %w", id, err)
	}
	return decode(e)
}

// validID reports whether id can be a key: the ids NewID makes are.
func validID(id string) bool {
	if id == "" || len(id) > 64 {
		return false
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
			return false
		}
	}
	return true
}

func decode(e jetstream.KeyValueEntry) (*Job, error) {
	j := &Job{}
	if err := json.Unmarshal(e.Value(), j); err != nil {
		return nil, fmt.Errorf("read job %s: %w", e.Key(), err)
	}
	j.rev = e.Revision()
	return j, nil
}

// List returns every job the bucket holds, the newest first.
func (s *Store) List(ctx context.Context) ([]*Job, error) {
	lister, err := s.kv.ListKeys(ctx)
	if err != nil {
		return nil, fmt.Errorf("list jobs: %w", err)
	}
	defer func() { _ = lister.Stop() }()
	var out []*Job
	for key := range lister.Keys() {
		j, err := s.Get(ctx, key)
		if errors.Is(err, ErrNotFound) {
			continue // pruned meanwhile
		}
		if err != nil {
			return nil, err
		}
		out = append(out, j)
	}
	slices.SortFunc(out, func(a, b *Job) int { return b.Created.Compare(a.Created) })
	return out, nil
}

// create writes a new job's entry.
func (s *Store) create(ctx context.Context, j *Job) error {
	b, err := json.Marshal(j)
	if err != nil {
		return fmt.Errorf("encode job %s: %w", j.ID, err)
	}
	rev, err := s.kv.Create(ctx, j.ID, b)
	if err != nil {
		return fmt.Errorf("create job %s: %w", j.ID, err)
	}
	j.rev = rev
	return nil
}

// update writes j over the revision it was read at; errConflict when
// the entry changed since.
func (s *Store) update(ctx context.Context, j *Job) error {
	j.Updated = s.now()
	b, err := json.Marshal(j)
	if err != nil {
		return fmt.Errorf("encode job %s: %w", j.ID, err)
	}
	rev, err := s.kv.Update(ctx, j.ID, b, j.rev)
	if err != nil {
		var apiErr *jetstream.APIError
		if errors.As(err, &apiErr) && apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequence {
			return errConflict
		}
		return fmt.Errorf("save job %s: %w", j.ID, err)
	}
	j.rev = rev
	return nil
}

// Stop stops a running job: its owner sees the change at its next save
// (within a second) and ends, keeping its cursor, so that the job can be
// resumed. A job that is stopped already is no error; one that has
// finished is ErrFinished.
func (s *Store) Stop(ctx context.Context, id string) (*Job, error) {
	for {
		j, err := s.Get(ctx, id)
		if err != nil {
			return nil, err
		}
		switch j.State {
		case Stopped:
			return j, nil
		case Done, Failed:
			return j, fmt.Errorf("job %s: %w (%s)", id, ErrFinished, j.State)
		}
		j.State = Stopped
		err = s.update(ctx, j)
		if errors.Is(err, errConflict) {
			continue
		}
		return j, err
	}
}

// Prune removes the entries of jobs that finished more than Keep ago,
// and returns how many.
func (s *Store) Prune(ctx context.Context) (int, error) {
	all, err := s.List(ctx)
	if err != nil {
		return 0, err
	}
	n := 0
	for _, j := range all {
		if !j.Over() || s.now().Sub(j.Finished) < Keep {
			continue
		}
		if err := s.kv.Purge(ctx, j.ID, jetstream.LastRevision(j.rev)); err != nil {
			continue // changed meanwhile: the next prune sees it
		}
		n++
	}
	if n > 0 {
		// The purges' markers go too (those older than the default 30
		// minutes: the next prune's).
		_ = s.kv.PurgeDeletes(ctx)
	}
	return n, nil
}
