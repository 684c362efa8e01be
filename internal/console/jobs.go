package console

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"slices"
	"sync"
	"time"

	"github.com/contactrelay/contactrelay/internal/replay"
)

// job is a replay under way or done, shown on its page as it goes.
type job struct {
	ID     string
	User   string
	What   string
	Rate   float64
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
