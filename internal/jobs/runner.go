package jobs

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"os"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"golang.org/x/time/rate"

	"github.com/contactrelay/contactrelay/internal/failstore"
	"github.com/contactrelay/contactrelay/internal/replay"
	"github.com/contactrelay/contactrelay/rules"
)

// Defaults of a Runner.
const (
	DefaultLease     = 10 * time.Second
	DefaultPageSize  = 200
	DefaultSaveEvery = 100 * time.Millisecond
)

// Runner creates, takes over and runs jobs in this process. Its zero
// value, with JS and Store set, uses the defaults above and an owner name
// of the host, the process id and a random suffix. A Runner runs one job
// at a time per Run call; it is safe for concurrent use by several Run
// calls when OnItem and Progress are.
type Runner struct {
	JS    jetstream.JetStream
	Store *Store
	// Owner names this process in the jobs it runs.
	Owner string
	// Lease is how long the owner's hold lasts unless renewed; it is
	// renewed with every save and by a heartbeat every third of it.
	Lease time.Duration
	// PageSize is how many failures a page reads (the memory a job
	// holds).
	PageSize int
	// SaveEvery is the most time between two saves of the cursor while
	// failures go by.
	SaveEvery time.Duration
	// Validator checks replayed commands; default a new one.
	Validator *rules.Validator
	// OnItem, if set, is told the fate of each replayed failure.
	OnItem func(replay.Item)
	// OnDiscard, if set, is told each failure a discard removed.
	OnDiscard func(failstore.Summary)
	// Progress, if set, is told the job as it goes: after each failure
	// and each save.
	Progress func(Job)
	// Handoff, when set, leaves a job whose Run ctx is cancelled running
	// and let go (no owner), for another process to take over at once,
	// instead of stopped: a console replica shutting down hands its jobs
	// to the others.
	Handoff bool

	once sync.Once
}

func (r *Runner) setDefaults() {
	r.once.Do(func() {
		if r.Owner == "" {
			host, _ := os.Hostname()
			r.Owner = host + ":" + strconv.Itoa(os.Getpid()) + ":" + NewID()[:6]
		}
		if r.Lease <= 0 {
			r.Lease = DefaultLease
		}
		if r.PageSize <= 0 {
			r.PageSize = DefaultPageSize
		}
		if r.SaveEvery <= 0 {
			r.SaveEvery = DefaultSaveEvery
		}
		if r.Validator == nil {
			r.Validator = rules.NewValidator()
		}
	})
}

// Spec is what a new job is to do.
type Spec struct {
	Kind      Kind
	Filter    replay.Filter
	Described string
	All       bool
	// Rate is the most failures a second; a replay needs one above 0, a
	// discard of 0 goes as fast as the server answers.
	Rate       float64
	User, From string
	// UpTo, when set and below the store's last sequence, is the newest
	// sequence the job covers (what a preview showed).
	UpTo uint64
}

// Create writes a new job, held by this runner, covering the open
// failures stored so far; Run runs it. It prunes finished jobs first. It
// returns failstore.ErrNoStore when the store does not exist.
func (r *Runner) Create(ctx context.Context, spec Spec) (*Job, error) {
	r.setDefaults()
	if spec.Kind == KindReplay && spec.Rate <= 0 {
		return nil, errors.New("a replay job needs a rate above 0")
	}
	_, _ = r.Store.Prune(ctx) // best effort: the next job prunes again
	s, err := r.JS.Stream(ctx, failstore.Stream)
	if errors.Is(err, jetstream.ErrStreamNotFound) {
		return nil, failstore.ErrNoStore
	}
	if err != nil {
		return nil, fmt.Errorf("look up stream %s: %w", failstore.Stream, err)
	}
	info, err := s.Info(ctx)
	if err != nil {
		return nil, fmt.Errorf("look up stream %s: %w", failstore.Stream, err)
	}
	now := r.Store.now()
	j := &Job{
		ID: NewID(), Kind: spec.Kind, Filter: spec.Filter, Described: spec.Described, All: spec.All, Rate: spec.Rate,
		StartSeq: info.State.LastSeq, User: spec.User, From: spec.From,
		State: Running, Owner: r.Owner, LeaseUntil: now.Add(r.Lease),
		Created: now, Updated: now,
	}
	if spec.UpTo > 0 && spec.UpTo < j.StartSeq {
		j.StartSeq = spec.UpTo
	}
	j.Cursor = j.StartSeq + 1
	if q := spec.Filter.Select(); q.ServerCounted() {
		counts, err := failstore.Count(ctx, r.JS, q)
		if err != nil {
			return nil, err
		}
		for _, n := range counts {
			j.Total += n
		}
		if spec.Filter.Limit > 0 {
			j.Total = min(j.Total, spec.Filter.Limit)
		}
	}
	if err := r.Store.create(ctx, j); err != nil {
		return nil, err
	}
	return j, nil
}

// Take takes the job id over for this runner: one that is stopped, or
// running under a lease that has expired (its process died). It returns
// a *LeasedError when another process holds it, and ErrFinished when it
// has ended.
func (r *Runner) Take(ctx context.Context, id string) (*Job, error) {
	r.setDefaults()
	for {
		j, err := r.Store.Get(ctx, id)
		if err != nil {
			return nil, err
		}
		now := r.Store.now()
		if j.Over() {
			return j, fmt.Errorf("job %s: %w (%s)", id, ErrFinished, j.State)
		}
		if j.Held(now) && j.Owner != r.Owner {
			return j, &LeasedError{ID: j.ID, Owner: j.Owner, Until: j.LeaseUntil}
		}
		j.State, j.Owner, j.LeaseUntil, j.Error = Running, r.Owner, now.Add(r.Lease), ""
		err = r.Store.update(ctx, j)
		if errors.Is(err, errConflict) {
			continue // changed meanwhile: look again
		}
		if err != nil {
			return nil, err
		}
		return j, nil
	}
}

// run is one Run call's state: the job, guarded by mu, which the
// heartbeat saves too.
type run struct {
	r        *Runner
	mu       sync.Mutex
	j        *Job
	lastSave time.Time
	// err, once set, is why the run ends (stopped, taken over, a save
	// that failed).
	err    error
	cancel context.CancelFunc
}

// Run runs j, which this runner holds (Create, Take), until it is done,
// stopped, taken over or ctx is cancelled, saving its cursor and counts as
// it goes; it returns the job as last saved. It returns nil when the job
// is done; ErrStopped when it was stopped ('consumer jobs stop', the
// console), ErrLeaseLost when another process took it over, and ctx's
// error when ctx was cancelled (the job is saved as stopped, to be
// resumed). Another error leaves the job stopped with the error, to be
// resumed, or failed when the store is gone.
func (r *Runner) Run(ctx context.Context, j *Job) (*Job, error) {
	r.setDefaults()
	rctx, cancel := context.WithCancel(ctx)
	defer cancel()
	x := &run{r: r, j: j, lastSave: r.Store.now(), cancel: cancel}
	if j.Counts.Skipped == nil {
		j.Counts.Skipped = map[string]int{}
	}
	// Renew the lease first: a runner that lost it sends nothing.
	x.mu.Lock()
	err := x.saveLocked(rctx, true)
	x.mu.Unlock()
	var beat sync.WaitGroup
	if err == nil {
		beat.Go(func() { x.heartbeat(rctx) })
		err = x.walk(rctx)
	}
	cancel()
	beat.Wait()

	x.mu.Lock()
	defer x.mu.Unlock()
	if x.err != nil {
		// Stopped or taken over: the heartbeat or a save has said so, and
		// saved what there was to save.
		return x.snapshot(), x.err
	}
	now := r.Store.now()
	switch {
	case err == nil:
		j.State, j.Finished, j.Owner, j.LeaseUntil = Done, now, "", time.Time{}
	case ctx.Err() != nil && r.Handoff:
		j.Owner, j.LeaseUntil = "", time.Time{}
		err = ctx.Err()
	case ctx.Err() != nil:
		j.State, j.Owner, j.LeaseUntil = Stopped, "", time.Time{}
		err = ctx.Err()
	case errors.Is(err, failstore.ErrNoStore):
		j.State, j.Finished, j.Error, j.Owner, j.LeaseUntil = Failed, now, err.Error(), "", time.Time{}
	default:
		j.State, j.Error, j.Owner, j.LeaseUntil = Stopped, err.Error(), "", time.Time{}
	}
	sctx, scancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer scancel()
	if serr := x.saveLocked(sctx, false); serr != nil && err == nil {
		err = serr
	}
	if r.Progress != nil {
		r.Progress(*x.snapshot())
	}
	return x.snapshot(), err
}

// snapshot returns a copy of the job. The caller holds mu.
func (x *run) snapshot() *Job {
	c := *x.j
	c.Counts.Skipped = maps.Clone(x.j.Counts.Skipped)
	c.Problems = slices.Clone(x.j.Problems)
	return &c
}

// heartbeat renews the lease every third of it while the run lasts.
func (x *run) heartbeat(ctx context.Context) {
	t := time.NewTicker(x.r.Lease / 3)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			x.mu.Lock()
			_ = x.saveLocked(ctx, true)
			x.mu.Unlock()
		}
	}
}

// maybeSave saves when SaveEvery has passed since the last save, and
// tells Progress.
func (x *run) maybeSave(ctx context.Context) {
	x.mu.Lock()
	if x.r.Store.now().Sub(x.lastSave) >= x.r.SaveEvery {
		_ = x.saveLocked(ctx, true)
	}
	var snap *Job
	if x.r.Progress != nil {
		snap = x.snapshot()
	}
	x.mu.Unlock()
	if snap != nil {
		x.r.Progress(*snap)
	}
}

// saveLocked writes the job with compare-and-set, renewing the lease
// when renew is set. A write that loses finds out why: a stop (the job's
// progress is saved as stopped, and the run ends with ErrStopped) or
// another owner (the run ends with ErrLeaseLost, writing nothing). A
// failed save ends the run too: the lease runs out, and a resume goes on
// from the last save. The caller holds mu.
func (x *run) saveLocked(ctx context.Context, renew bool) error {
	if x.err != nil {
		return x.err
	}
	if err := ctx.Err(); err != nil {
		return err // the run is ending: Run saves it once more
	}
	st := x.r.Store
	if renew {
		x.j.LeaseUntil = st.now().Add(x.r.Lease)
	}
	err := st.update(ctx, x.j)
	if errors.Is(err, errConflict) {
		cur, gerr := st.Get(ctx, x.j.ID)
		switch {
		case gerr != nil:
			err = gerr
		case cur.Owner != x.r.Owner:
			err = ErrLeaseLost
		case cur.State == Stopped:
			x.j.rev, x.j.State, x.j.Owner, x.j.LeaseUntil = cur.rev, Stopped, "", time.Time{}
			if err = st.update(ctx, x.j); err == nil {
				err = ErrStopped
			}
		default:
			x.j.rev = cur.rev
			err = st.update(ctx, x.j)
		}
	}
	if err != nil {
		x.err = err
		x.cancel()
		return err
	}
	x.lastSave = st.now()
	return nil
}

// walk goes down the store from the job's cursor, page by page, until
// the filter's limit or the store's oldest entry.
func (x *run) walk(ctx context.Context) error {
	j, r := x.j, x.r
	q := j.Filter.Select()
	var limiter *rate.Limiter
	if j.Rate > 0 {
		limiter = rate.NewLimiter(rate.Limit(j.Rate), 1)
	}
	for {
		x.mu.Lock()
		size, cursor := r.PageSize, j.Cursor
		if j.Filter.Limit > 0 {
			size = min(size, j.Filter.Limit-j.Counts.Selected)
		}
		x.mu.Unlock()
		if size <= 0 || cursor <= 1 {
			return nil
		}
		page, err := failstore.LoadPage(ctx, r.JS, q, size, cursor)
		if err != nil {
			return err
		}
		if len(page.Failures) == 0 {
			return nil
		}
		switch j.Kind {
		case KindReplay:
			err = x.replayPage(ctx, page.Failures, limiter)
		case KindDiscard:
			err = x.discardPage(ctx, page.Failures, limiter)
		default:
			err = fmt.Errorf("job %s: unknown kind %q", j.ID, j.Kind)
		}
		if err != nil {
			return err
		}
		// The page's entries gone before they were reached are passed too.
		x.mu.Lock()
		j.Cursor = min(j.Cursor, page.Failures[len(page.Failures)-1].Seq)
		err = x.saveLocked(ctx, true)
		x.mu.Unlock()
		if err != nil {
			return err
		}
		if page.Next == 0 {
			return nil
		}
	}
}

// replayPage replays a page's failures: those still open, at the rate.
func (x *run) replayPage(ctx context.Context, page []failstore.Summary, limiter *rate.Limiter) error {
	j, r := x.j, x.r
	whole, err := failstore.Get(ctx, r.JS, page)
	if err != nil {
		return err
	}
	_, err = replay.Replay(ctx, r.JS, replay.FromOpen(whole), replay.Options{
		All: j.All, Limiter: limiter, Validator: r.Validator,
		OnItem: func(it replay.Item) {
			x.mu.Lock()
			if x.err != nil || (it.Err != nil && ctx.Err() != nil) {
				// Cut short by the run ending (stopped, taken over, or
				// this publish interrupted): not counted, and not passed,
				// so that what was saved stands and a resume sends it
				// again (the stream drops it if it was stored).
				x.mu.Unlock()
				return
			}
			c := &j.Counts
			c.Selected++
			switch {
			case it.Skip != "":
				c.Skipped[string(it.Skip)]++
			case it.Err != nil:
				c.PublishFailed++
				x.problem(it.Failure.CommandID() + ": " + it.Err.Error())
			case it.Refused:
				c.Refused++
				x.problem(it.Failure.CommandID() + ": not sent: it " + it.Earlier.What() + ", and that command's outcome stands")
			case it.Earlier != nil:
				c.AlreadySent++
			default:
				c.Sent++
			}
			j.Cursor = min(j.Cursor, it.Failure.Seq)
			x.mu.Unlock()
			if r.OnItem != nil {
				r.OnItem(it)
			}
			x.maybeSave(ctx)
		},
	})
	return err
}

// problem notes a failure not sent, up to MaxProblems. The caller holds
// mu.
func (x *run) problem(p string) {
	if len(x.j.Problems) < MaxProblems {
		x.j.Problems = append(x.j.Problems, p)
	}
}

// discardPage removes a page's failures, each by its sequence (a newer
// failure of the command stays), at the rate if there is one.
func (x *run) discardPage(ctx context.Context, page []failstore.Summary, limiter *rate.Limiter) error {
	j, r := x.j, x.r
	for _, sum := range page {
		if limiter != nil {
			if err := limiter.Wait(ctx); err != nil {
				return err
			}
		}
		n, err := failstore.Discard(ctx, r.JS, []failstore.Summary{sum})
		if err != nil {
			return err
		}
		x.mu.Lock()
		j.Counts.Selected++
		if n == 1 {
			j.Counts.Discarded++
		} else {
			j.Counts.Skipped[SkipGone]++
		}
		j.Cursor = min(j.Cursor, sum.Seq)
		x.mu.Unlock()
		if n == 1 && r.OnDiscard != nil {
			r.OnDiscard(sum)
		}
		x.maybeSave(ctx)
	}
	return nil
}
