package console

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/contactrelay/contactrelay/contact"
	"github.com/contactrelay/contactrelay/internal/failstore"
	jobrun "github.com/contactrelay/contactrelay/internal/jobs"
	"github.com/contactrelay/contactrelay/internal/provision"
	"github.com/contactrelay/contactrelay/internal/replay"
)

// job is a replay under way or done, shown on its page as it goes.
type job struct {
	ID   string
	User string
	What string
	Rate float64
	// Kind is "discard" for a discard, else a replay.
	Kind   string
	cancel context.CancelFunc

	mu    sync.Mutex
	state jobState
}

// jobState is what a job's page shows, and its event stream sends.
type jobState struct {
	Phase    string `json:"phase"` // reading, sending, done, cancelled, failed
	Total    int    `json:"total"`
	Done     int    `json:"done"`
	Replayed int    `json:"replayed"`
	// AlreadySent and Refused count the replays the command stream
	// dropped as duplicates (replay.Summary): not sent by this job.
	AlreadySent int            `json:"alreadySent"`
	Refused     int            `json:"refused"`
	Skipped     int            `json:"skipped"`
	Failed      int            `json:"failed"`
	Reasons     map[string]int `json:"reasons,omitempty"`
	Errors      []string       `json:"errors,omitempty"`
	Error       string         `json:"error,omitempty"`
	Started     time.Time      `json:"started"`
	Finished    time.Time      `json:"finished,omitzero"`
	// Over is set once the job has ended, however.
	Over bool `json:"over"`
}

func (j *job) snapshot() jobState {
	j.mu.Lock()
	defer j.mu.Unlock()
	s := j.state
	s.Reasons = make(map[string]int, len(j.state.Reasons))
	for k, v := range j.state.Reasons {
		s.Reasons[k] = v
	}
	s.Errors = append([]string(nil), j.state.Errors...)
	return s
}

func (j *job) update(f func(*jobState)) {
	j.mu.Lock()
	defer j.mu.Unlock()
	f(&j.state)
}

// progress takes a replay's progress into the job.
func (j *job) progress(done int, s replay.Summary) {
	j.update(func(st *jobState) {
		st.Phase = "sending"
		st.Done, st.Replayed, st.Skipped, st.Failed = done, s.Replayed, s.SkippedTotal(), s.PublishFailed
		st.AlreadySent, st.Refused = s.AlreadySent, s.Refused
		st.Reasons = map[string]int{}
		for k, v := range s.Skipped {
			st.Reasons[string(k)] = v
		}
	})
}

// jobs are the replays started since the console started, kept for their
// pages; each runs under the server's Run context.
type jobs struct {
	mu  sync.Mutex
	all map[string]*job
	wg  sync.WaitGroup
	// runner runs the shared jobs (jobRunner), once the bucket exists.
	runner *jobrun.Runner
}

func newJobs() *jobs { return &jobs{all: map[string]*job{}} }

func (js *jobs) start(parent context.Context, j *job, run func(ctx context.Context, j *job)) {
	b := make([]byte, 8)
	_, _ = rand.Read(b)
	j.ID = hex.EncodeToString(b)
	ctx, cancel := context.WithCancel(parent)
	j.cancel = cancel
	j.state.Started = time.Now()
	j.state.Phase = "reading"
	js.mu.Lock()
	js.forgetOld()
	js.all[j.ID] = j
	js.mu.Unlock()
	js.wg.Go(func() {
		defer cancel()
		run(ctx, j)
	})
}

// keptJobs is how many replays that have ended the console keeps for
// their pages; the oldest go first.
const keptJobs = 100

// forgetOld drops the oldest ended replays beyond keptJobs. The caller
// holds js.mu.
func (js *jobs) forgetOld() {
	var ended []*job
	for _, j := range js.all {
		if st := j.snapshot(); st.Over {
			ended = append(ended, j)
		}
	}
	if len(ended) < keptJobs {
		return
	}
	slices.SortFunc(ended, func(a, b *job) int { return a.snapshot().Finished.Compare(b.snapshot().Finished) })
	for _, j := range ended[:len(ended)-keptJobs+1] {
		delete(js.all, j.ID)
	}
}

func (js *jobs) get(id string) *job {
	js.mu.Lock()
	defer js.mu.Unlock()
	return js.all[id]
}

func (js *jobs) wait() { js.wg.Wait() }

// A replay whose selection is a filter (reasons, providers, times; no
// text, group or picked failures) runs as a shared job (package jobs):
// its state lives in the bucket CONTACT_JOBS, so that every replica shows
// its progress, and a replica that stops hands it to the others, one of
// which takes it over (adoptJobs) once it is let go or its owner's lease
// has run out.

// jobFilter returns the filter of a selection that a shared job can run,
// and whether it is one.
func jobFilter(q query) (replay.Filter, bool) {
	if q.Text != "" || len(q.Seqs) > 0 || q.Group != nil || q.CommandID != "" {
		return replay.Filter{}, false
	}
	flt := replay.Filter{Providers: q.Providers, Since: q.Since, Until: q.Until}
	for _, r := range q.Reasons {
		flt.Reasons = append(flt.Reasons, contact.Reason(r))
	}
	return flt, true
}

// jobRunner returns the console's runner of shared jobs, creating the
// bucket when create is set and it does not exist.
func (srv *Server) jobRunner(ctx context.Context, create bool) (*jobrun.Runner, error) {
	srv.jobs.mu.Lock()
	defer srv.jobs.mu.Unlock()
	if srv.jobs.runner != nil {
		return srv.jobs.runner, nil
	}
	if create {
		if err := provision.EnsureJobs(ctx, srv.cfg.JS, 1, nil); err != nil {
			return nil, err
		}
	}
	st, err := jobrun.OpenStore(ctx, srv.cfg.JS)
	if err != nil {
		return nil, err
	}
	st.Now = srv.cfg.Now
	srv.jobs.runner = &jobrun.Runner{JS: srv.cfg.JS, Store: st, Lease: srv.cfg.JobLease, Validator: srv.validator, Handoff: true,
		// The index closes what its own discards remove, as a discard of
		// picked failures does, instead of reading the store again.
		OnDiscard: func(sum failstore.Summary) { srv.follow.Forget([]failstore.Summary{sum}) }}
	return srv.jobs.runner, nil
}

// startShared creates a shared job of spec and runs it under parent; seq
// is its audit entry's sequence.
func (srv *Server) startShared(ctx, parent context.Context, spec jobrun.Spec, seq uint64) (string, error) {
	r, err := srv.jobRunner(ctx, true)
	if err != nil {
		return "", err
	}
	j, err := r.Create(ctx, spec)
	if err != nil {
		return "", err
	}
	srv.jobs.wg.Go(func() { srv.runShared(parent, r, j, seq) })
	return j.ID, nil
}

// runShared runs a shared job to its end, and records the result; a job
// handed off (the console stopping) is recorded by whoever finishes it.
func (srv *Server) runShared(ctx context.Context, r *jobrun.Runner, j *jobrun.Job, seq uint64) {
	done, err := r.Run(ctx, j)
	srv.Reload()
	if done == nil || ctx.Err() != nil || errors.Is(err, jobrun.ErrLeaseLost) {
		return
	}
	c := done.Counts
	result := fmt.Sprintf("job %s %s: %d replayed, %d already sent, %d refused, %d skipped, %d failed to publish",
		done.ID, done.State, c.Sent, c.AlreadySent, c.Refused, c.SkippedTotal(), c.PublishFailed)
	if done.Kind == jobrun.KindDiscard {
		result = fmt.Sprintf("job %s %s: %d of %d discarded", done.ID, done.State, c.Discarded, c.Selected)
	}
	if err != nil {
		result += ": " + err.Error()
	}
	srv.recordAs(done.User, seq, string(done.Kind), done.Described, done.Counts.Selected, result, err == nil && c.PublishFailed == 0 && c.Refused == 0)
}

// adoptJobs takes over, every lease period until ctx is done, the
// console's shared jobs that no process holds (their console stopped or
// died), and runs them.
func (srv *Server) adoptJobs(ctx context.Context) {
	period := srv.cfg.JobLease
	if period <= 0 {
		period = jobrun.DefaultLease
	}
	t := time.NewTicker(period / 2)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		r, err := srv.jobRunner(ctx, false)
		if err != nil {
			continue // no bucket yet: no job to adopt
		}
		all, err := r.Store.List(ctx)
		if err != nil {
			continue
		}
		for _, j := range all {
			if j.From != "console" || j.State != jobrun.Running || j.Held(srv.cfg.Now()) {
				continue
			}
			taken, err := r.Take(ctx, j.ID)
			if err != nil {
				continue // another replica was first
			}
			srv.cfg.Log.Info("took over a job", "job", j.ID, "kind", j.Kind, "from", j.Owner, "done", j.Counts.Selected)
			srv.jobs.wg.Go(func() { srv.runShared(ctx, r, taken, 0) })
		}
	}
}

// sharedJob returns a shared job as a job's page shows it.
func (srv *Server) sharedJob(ctx context.Context, id string) (*job, jobState, bool) {
	r, err := srv.jobRunner(ctx, false)
	if err != nil {
		return nil, jobState{}, false
	}
	kj, err := r.Store.Get(ctx, id)
	if err != nil {
		return nil, jobState{}, false
	}
	what := kj.Described
	if kj.All {
		what += ", not retryable too"
	}
	return &job{ID: kj.ID, User: kj.User, What: what, Rate: kj.Rate, Kind: string(kj.Kind)}, stateOf(kj), true
}

// stateOf is a shared job's state as a job's page shows it.
func stateOf(kj *jobrun.Job) jobState {
	c := kj.Counts
	s := jobState{Phase: "sending", Total: max(kj.Total, c.Selected), Done: c.Selected, Replayed: c.Sent + c.Discarded,
		AlreadySent: c.AlreadySent, Refused: c.Refused, Skipped: c.SkippedTotal(), Failed: c.PublishFailed,
		Reasons: c.Skipped, Errors: kj.Problems, Error: kj.Error, Started: kj.Created}
	switch kj.State {
	case jobrun.Running:
		if c.Selected == 0 {
			s.Phase = "reading"
		}
	case jobrun.Stopped:
		s.Phase, s.Over, s.Finished = "cancelled", true, kj.Updated
		if s.Error == "" {
			s.Error = "stopped before it finished"
		}
	default:
		s.Phase, s.Over, s.Finished = string(kj.State), true, kj.Finished
	}
	return s
}

// jobSnapshot returns what tells a job's state now, in memory or shared;
// nil when there is no such job.
func (srv *Server) jobSnapshot(ctx context.Context, id string) (*job, func() jobState) {
	if j := srv.jobs.get(id); j != nil {
		return j, j.snapshot
	}
	j, last, ok := srv.sharedJob(ctx, id)
	if !ok {
		return nil, nil
	}
	return j, func() jobState {
		if _, st, ok := srv.sharedJob(ctx, id); ok {
			last = st
		}
		return last
	}
}
