package console

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/contactrelay/contactrelay/contact"
	"github.com/contactrelay/contactrelay/internal/failstore"
	jobrun "github.com/contactrelay/contactrelay/internal/jobs"
	"github.com/contactrelay/contactrelay/internal/natstest"
	"github.com/contactrelay/contactrelay/internal/provision"
)

// A replay by filter started on one console replica is a shared job: its
// progress shows on another replica, and when the first stops it hands
// the job over; the other takes it over and finishes it, each failure
// sent once.
func TestReplayByFilterSurvivesAConsoleRestart(t *testing.T) {
	ns := natstest.Start(t, nil)
	_, js := ns.Connect(t)
	ctx := context.Background()
	require.NoError(t, provision.Setup(ctx, js, provision.Topology{}))
	const n = 300
	seed(t, js, n, exhausted)

	replica := func() (*Server, *httptest.Server, context.CancelFunc, chan struct{}) {
		srv, err := New(Config{JS: js, NoAuth: true, Addr: "127.0.0.1:8081", JobLease: time.Second})
		require.NoError(t, err)
		web := httptest.NewServer(srv.Handler())
		t.Cleanup(web.Close)
		rctx, cancel := context.WithCancel(ctx)
		ran := make(chan struct{})
		go func() {
			_ = srv.Run(rctx)
			close(ran)
		}()
		t.Cleanup(func() { cancel(); <-ran })
		return srv, web, cancel, ran
	}
	a, webA, stopA, ranA := replica()
	_, webB, _, _ := replica()
	require.Eventually(t, func() bool {
		v := a.current()
		if v == nil {
			return false
		}
		_, _, ready := v.State()
		return ready && v.Open() == n
	}, 20*time.Second, 10*time.Millisecond, "replica A has read the open failures")

	c := (&fixture{}).client(t)
	resp, preview := get(t, c, webA.URL+"/replay?reason=exhausted")
	require.Equal(t, http.StatusOK, resp.StatusCode, preview)
	form := url.Values{"rate": {"100"}}
	for _, m := range hiddenField.FindAllStringSubmatch(preview, -1) {
		form.Set(m[1], m[2])
	}
	resp, _ = post(t, c, webA.URL+"/replay", form)
	require.Equal(t, http.StatusSeeOther, resp.StatusCode)
	id := strings.TrimPrefix(resp.Header.Get("Location"), "/jobs/")
	st, err := jobrun.OpenStore(ctx, js)
	require.NoError(t, err)
	kj, err := st.Get(ctx, id)
	require.NoError(t, err, "the replay is a job in %s", provision.JobBucket)
	assert.Equal(t, "console", kj.From)
	assert.Equal(t, n, kj.Total)

	require.Eventually(t, func() bool {
		kj, err = st.Get(ctx, id)
		return err == nil && kj.Counts.Selected >= 30
	}, 30*time.Second, 10*time.Millisecond)
	ownerA := kj.Owner
	require.NotEmpty(t, ownerA, "replica A runs it")
	resp, page := get(t, c, webB.URL+"/jobs/"+id)
	require.Equal(t, http.StatusOK, resp.StatusCode, "replica B shows the job")
	assert.Contains(t, page, `id="job-phase">sending<`)

	stopA()
	<-ranA
	kj, err = st.Get(ctx, id)
	require.NoError(t, err)
	assert.Equal(t, jobrun.Running, kj.State, "handed over, not stopped")
	// Let go: no owner, or replica B's already (it looks every half
	// lease, and A's other parts may take that long to stop).
	assert.NotEqual(t, ownerA, kj.Owner, "let go")
	require.Less(t, kj.Counts.Selected, n, "replica A stopped it half-way")
	handed := kj.Counts.Selected

	require.Eventually(t, func() bool {
		kj, err = st.Get(ctx, id)
		return err == nil && kj.State == jobrun.Done
	}, 30*time.Second, 20*time.Millisecond, "replica B takes the job over and finishes it")
	assert.Equal(t, n, kj.Counts.Selected)
	assert.Equal(t, n, kj.Counts.Sent+kj.Counts.AlreadySent)
	t.Logf("handed over at %d of %d; finished: %d sent, %d already sent", handed, n, kj.Counts.Sent, kj.Counts.AlreadySent)
	cs, err := js.Stream(ctx, provision.CommandStream)
	require.NoError(t, err)
	info, err := cs.Info(ctx)
	require.NoError(t, err)
	assert.EqualValues(t, n, info.State.Msgs, "one command per failure")
	assert.EqualValues(t, n, info.State.LastSeq, "none stored twice")

	resp, page = get(t, c, webB.URL+"/jobs/"+id)
	require.Equal(t, http.StatusOK, resp.StatusCode)
	assert.Contains(t, page, `id="job-phase">done<`)
}

// A discard by filter is a shared job too: it runs a page at a time, its
// page says what it discarded, and the open set empties.
func TestDiscardByFilterIsAJob(t *testing.T) {
	ns := natstest.Start(t, nil)
	_, js := ns.Connect(t)
	ctx := context.Background()
	require.NoError(t, provision.Setup(ctx, js, provision.Topology{}))
	const n = 250
	seed(t, js, n, exhausted)
	srv, err := New(Config{JS: js, NoAuth: true, Addr: "127.0.0.1:8081", JobLease: time.Second})
	require.NoError(t, err)
	web := httptest.NewServer(srv.Handler())
	t.Cleanup(web.Close)
	rctx, cancel := context.WithCancel(ctx)
	ran := make(chan struct{})
	go func() { _ = srv.Run(rctx); close(ran) }()
	t.Cleanup(func() { cancel(); <-ran })
	require.Eventually(t, func() bool {
		v := srv.current()
		if v == nil {
			return false
		}
		_, _, ready := v.State()
		return ready && v.Open() == n
	}, 20*time.Second, 10*time.Millisecond)

	c := (&fixture{}).client(t)
	resp, preview := get(t, c, web.URL+"/discard?reason=exhausted&provider=instantpay")
	require.Equal(t, http.StatusOK, resp.StatusCode, preview)
	form := url.Values{}
	for _, m := range hiddenField.FindAllStringSubmatch(preview, -1) {
		form.Set(m[1], m[2])
	}
	resp, body := post(t, c, web.URL+"/discard", form)
	require.Equal(t, http.StatusSeeOther, resp.StatusCode, body)
	id := strings.TrimPrefix(resp.Header.Get("Location"), "/jobs/")
	st, err := jobrun.OpenStore(ctx, js)
	require.NoError(t, err)
	var kj *jobrun.Job
	require.Eventually(t, func() bool {
		kj, err = st.Get(ctx, id)
		return err == nil && kj.State == jobrun.Done
	}, 30*time.Second, 20*time.Millisecond, "the discard is a job in %s, and it finishes", provision.JobBucket)
	assert.Equal(t, jobrun.KindDiscard, kj.Kind)
	assert.Equal(t, 225, kj.Counts.Discarded, "every InstantPay failure (one in ten is PIK's)")
	left, err := failstore.Count(ctx, js, failstore.Select{})
	require.NoError(t, err)
	assert.Equal(t, map[contact.Reason]int{contact.ReasonExhausted: 25}, left, "PIK's stay open")
	resp, page := get(t, c, web.URL+"/jobs/"+id)
	require.Equal(t, http.StatusOK, resp.StatusCode)
	assert.Contains(t, page, "<h1>Discard</h1>")
	assert.Contains(t, page, `<span id="job-replayed">225</span> discarded`)
}

// A selection of a filter larger than maxWhole is counted from the
// index, not listed nor read whole: the previews say so, and the counts
// are the store's.
func TestLargeSelectionsAreCounted(t *testing.T) {
	f := newFixture(t, Config{NoAuth: true, Addr: "127.0.0.1:8081"})
	n := maxWhole + 200
	seed(t, f.js, n, func(i int) (contact.Failed, time.Time) {
		fl, at := exhausted(i)
		if i%4 == 0 {
			fl.Reason, fl.Retryable = contact.ReasonRejected, false
		}
		return fl, at
	})
	f.srv.follow.Load(context.Background())
	c := f.client(t)

	resp, page := get(t, c, f.web.URL+"/replay?reason=exhausted&reason=rejected")
	require.Equal(t, http.StatusOK, resp.StatusCode, page)
	assert.Contains(t, page, `id="counted"`, "counted from the index")
	assert.Contains(t, page, fmt.Sprintf(`<strong id="will-send">%d</strong> of %d selected`, n-n/4, n))
	assert.Contains(t, page, fmt.Sprintf("<li>%d not retryable</li>", n/4))

	resp, page = get(t, c, f.web.URL+"/replay?reason=exhausted&reason=rejected&all=1")
	require.Equal(t, http.StatusOK, resp.StatusCode, page)
	assert.Contains(t, page, fmt.Sprintf(`<strong id="will-send">%d</strong> of %d selected`, n, n), "with --all, every one")

	resp, page = get(t, c, f.web.URL+"/discard?reason=rejected")
	require.Equal(t, http.StatusOK, resp.StatusCode, page)
	assert.NotContains(t, page, `id="counted"`, "a selection of at most maxWhole is listed as before")
	resp, page = get(t, c, f.web.URL+"/discard?provider=instantpay")
	require.Equal(t, http.StatusOK, resp.StatusCode, page)
	assert.Contains(t, page, fmt.Sprint(n-n/10), "the discard preview counts the filter's failures")

	resp, page = get(t, c, f.web.URL+"/replay?command=cmd-000001")
	require.Equal(t, http.StatusOK, resp.StatusCode, page)
	assert.NotContains(t, page, `id="counted"`, "picked failures are read whole")
}
