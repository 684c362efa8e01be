package console

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/contactrelay/contactrelay/contact"
	"github.com/contactrelay/contactrelay/internal/failstore"
	"github.com/contactrelay/contactrelay/internal/natstest"
	"github.com/contactrelay/contactrelay/internal/openfailures"
)

// While the first read is under way, the failures page's first page comes
// from the store, newest first, with the store's counts; a filter the
// server does not select by says it answers later.
func TestFirstPageWhileLoading(t *testing.T) {
	f := newFixture(t, Config{NoAuth: true, Addr: "127.0.0.1:0"})
	seed(t, f.js, 120, exhausted)
	// A first read that stopped part way (its context cancelled) leaves
	// the view a load under way shows: not read yet, and no error.
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	v := f.srv.follow.Load(ctx)
	_, err, ready := v.State()
	require.False(t, ready, "a load under way")
	require.NoError(t, err, "a load under way has no error")
	require.Same(t, v, f.srv.current(), "the pages see the load under way")
	c := f.client(t)
	resp, body := get(t, c, f.web.URL+"/failures")
	require.Equal(t, 200, resp.StatusCode)
	assert.Contains(t, body, "<strong>120</strong> of 120 open failures", "the store's count")
	assert.Contains(t, body, "cmd-000119", "the newest stored is on the first page")
	assert.NotContains(t, body, "cmd-000069", "only a page is read")
	assert.Contains(t, body, "being read for the first time")

	_, body = get(t, c, f.web.URL+"/failures?provider=pik")
	assert.Contains(t, body, "<strong>12</strong> of 120 open failures", "a provider's count, from the server")
	assert.Contains(t, body, "cmd-000110")
	assert.NotContains(t, body, "cmd-000119", "not pik's")

	_, body = get(t, c, f.web.URL+"/failures?since=2h")
	assert.Contains(t, body, "this filter answers once the open failures are read")
}

// A text filter is answered by the search hook when it answers for the
// text, and by the index's own match otherwise.
func TestTextFilterSeam(t *testing.T) {
	f := newFixture(t, Config{NoAuth: true, Addr: "127.0.0.1:0"})
	seed(t, f.js, 10, exhausted)
	v := f.srv.follow.Load(context.Background())
	seqOf := map[string]uint64{}
	for _, s := range v.Selected(&openfailures.Query{}, nil) {
		seqOf[s.CommandID] = s.Seq
	}
	f.srv.search = func(_ context.Context, text string) (map[uint64]bool, bool) {
		if text != "p3@example.com" {
			return nil, false
		}
		return map[uint64]bool{seqOf["cmd-000003"]: true}, true
	}
	c := f.client(t)
	_, body := get(t, c, f.web.URL+"/failures?q=p3@example.com")
	assert.Contains(t, body, "<strong>1</strong> of 10", "the hook's answer")
	assert.Contains(t, body, "cmd-000003")
	_, body = get(t, c, f.web.URL+"/failures?q=CMD-00000")
	assert.Contains(t, body, "<strong>10</strong> of 10", "the index's own match, ignoring case")
}

// A discard from the console's own page, a job of a filter, closes its
// failures in the view as it makes them (Forget): the view is kept, not
// read again, and its counts are the store's.
func TestConsoleDiscardIsFollowed(t *testing.T) {
	f := newFixture(t, Config{NoAuth: true, Addr: "127.0.0.1:0"})
	seed(t, f.js, 30, func(i int) (contact.Failed, time.Time) {
		fl, at := exhausted(i)
		if i < 5 {
			fl.Reason, fl.Retryable = contact.ReasonRejected, false
		}
		return fl, at
	})
	ctx := context.Background()
	first := f.srv.follow.Load(ctx)
	require.Equal(t, 30, first.Open())

	c := f.client(t)
	resp, preview := get(t, c, f.web.URL+"/discard?reason=rejected")
	require.Equal(t, 200, resp.StatusCode, preview)
	form := map[string][]string{}
	for _, m := range hiddenField.FindAllStringSubmatch(preview, -1) {
		form[m[1]] = append(form[m[1]], m[2])
	}
	resp, body := post(t, c, f.web.URL+"/discard", form)
	require.Equal(t, http.StatusSeeOther, resp.StatusCode, body)
	require.Eventually(t, func() bool {
		_, page := get(t, c, f.web.URL+resp.Header.Get("Location"))
		return strings.Contains(page, `<span id="job-replayed">5</span> discarded`)
	}, 20*time.Second, 10*time.Millisecond, "the discard job removes the 5")

	v := f.srv.follow.Load(ctx)
	assert.Same(t, first, v, "its own discards are not read again")
	_, err, _ := v.State()
	require.NoError(t, err)
	stored, err := failstore.Count(ctx, f.js, failstore.Select{})
	require.NoError(t, err)
	assert.Equal(t, map[contact.Reason]int{contact.ReasonExhausted: 25}, stored, "the store holds the 25 left")
	assert.Equal(t, map[string]int{"exhausted": 25}, v.Overview(time.Now()).ByReason, "the view counts the store's")
	assert.Equal(t, 25, v.Open())
}

// Without a store the pages say so once, and the console reads it once it
// is made.
func TestNoStoreYet(t *testing.T) {
	ns := natstest.Start(t, nil)
	_, js := ns.Connect(t)
	srv, err := New(Config{JS: js, NoAuth: true, Addr: "127.0.0.1:8081"})
	require.NoError(t, err)
	v := srv.follow.Load(context.Background())
	_, err, _ = v.State()
	require.ErrorIs(t, err, failstore.ErrNoStore)
	web := httptest.NewServer(srv.Handler())
	t.Cleanup(web.Close)
	resp, body := get(t, (&fixture{}).client(t), web.URL+"/failures")
	require.Equal(t, 200, resp.StatusCode)
	assert.Equal(t, 1, strings.Count(body, "does not exist yet"), "said once: %s", body)
	assert.NotContains(t, body, `class="error"`)

	_, err = js.CreateOrUpdateStream(context.Background(), failstore.StreamConfig(1))
	require.NoError(t, err)
	seed(t, js, 2, exhausted)
	v = srv.follow.Load(context.Background())
	_, err, _ = v.State()
	require.NoError(t, err)
	assert.Equal(t, 2, v.Open())
}
