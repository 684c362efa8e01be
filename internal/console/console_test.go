package console

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"mime/multipart"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/contactrelay/contactrelay/contact"
	"github.com/contactrelay/contactrelay/internal/events"
	"github.com/contactrelay/contactrelay/internal/failstore"
	"github.com/contactrelay/contactrelay/internal/natstest"
	"github.com/contactrelay/contactrelay/internal/pause"
	"github.com/contactrelay/contactrelay/internal/provision"
	"github.com/contactrelay/contactrelay/internal/status"
	"github.com/contactrelay/contactrelay/record"
)

// seed stores n open failures, the i-th by make(i), asynchronously.
func seed(tb testing.TB, js jetstream.JetStream, n int, make func(i int) (contact.Failed, time.Time)) {
	tb.Helper()
	for i := range n {
		f, at := make(i)
		ev, err := events.NewEvent("", contact.SubjectFailed, f.CommandID, "", at, f)
		require.NoError(tb, err)
		body, err := json.Marshal(ev)
		require.NoError(tb, err)
		e, err := failstore.NewEntry(&ev, body, false)
		require.NoError(tb, err)
		_, err = js.PublishMsgAsync(e.Msg)
		require.NoError(tb, err)
		if i%5000 == 4999 {
			<-js.PublishAsyncComplete()
		}
	}
	select {
	case <-js.PublishAsyncComplete():
	case <-time.After(time.Minute):
		tb.Fatal("seeding the store took over a minute")
	}
}

func exhausted(i int) (contact.Failed, time.Time) {
	cmd := fmt.Sprintf(`{"name":"Person %d","email":"p%d@example.com","mobile":"+9198765%05d","tagId":"t"}`, i, i, i%100000)
	provider, msg := "instantpay", "InstantPay kept failing: 503 Service Unavailable"
	if i%10 == 0 {
		provider, msg = "pik", "PIK kept failing: connection refused"
	}
	return contact.Failed{CommandID: fmt.Sprintf("cmd-%06d", i), Provider: provider, Reason: contact.ReasonExhausted, Retryable: true,
		Message: msg, Attempts: 3, Command: json.RawMessage(cmd)}, time.Now().Add(-time.Duration(i) * time.Second)
}

type fixture struct {
	js  jetstream.JetStream
	srv *Server
	web *httptest.Server
}

func newFixture(t testing.TB, cfg Config) *fixture {
	t.Helper()
	ns := natstest.Start(t, nil)
	_, js := ns.Connect(t)
	_, err := js.CreateOrUpdateStream(context.Background(), failstore.StreamConfig(1))
	require.NoError(t, err)
	cfg.JS = js
	srv, err := New(cfg)
	require.NoError(t, err)
	web := httptest.NewServer(srv.Handler())
	t.Cleanup(web.Close)
	return &fixture{js: js, srv: srv, web: web}
}

func (f *fixture) client(t testing.TB) *http.Client {
	jar, err := cookiejar.New(nil)
	require.NoError(t, err)
	return &http.Client{Jar: jar, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
}

func get(t testing.TB, c *http.Client, u string) (*http.Response, string) {
	t.Helper()
	resp, err := c.Get(u)
	require.NoError(t, err)
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	return resp, string(b)
}

func post(t testing.TB, c *http.Client, u string, form url.Values, hdr ...string) (*http.Response, string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, u, strings.NewReader(form.Encode()))
	require.NoError(t, err)
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := c.Do(req)
	require.NoError(t, err)
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	return resp, string(b)
}

var hiddenField = regexp.MustCompile(`<input type="hidden" name="([^"]+)" value="([^"]*)">`)

var csrfField = regexp.MustCompile(`name="csrf" value="([^"]+)"`)

func csrfOf(t testing.TB, page string) string {
	t.Helper()
	m := csrfField.FindStringSubmatch(page)
	require.NotNil(t, m, "the page has a CSRF field")
	return m[1]
}

func TestConfigRefusesNoAuthOffLoopback(t *testing.T) {
	for _, tc := range []struct {
		name string
		cfg  Config
		ok   bool
	}{
		{"loopback without auth", Config{NoAuth: true, Addr: "127.0.0.1:8081"}, true},
		{"localhost without auth", Config{NoAuth: true, Addr: "localhost:8081"}, true},
		{"ipv6 loopback without auth", Config{NoAuth: true, Addr: "[::1]:8081"}, true},
		{"every interface without auth", Config{NoAuth: true, Addr: ":8081"}, false},
		{"a public address without auth", Config{NoAuth: true, Addr: "10.0.0.5:8081"}, false},
		{"no auth asked for, none given", Config{Addr: "127.0.0.1:8081"}, false},
		{"user without password", Config{User: "ops", Addr: "0.0.0.0:8081"}, false},
		{"password without user", Config{Password: "long enough", Addr: "0.0.0.0:8081"}, false},
		{"short password", Config{User: "ops", Password: "short", Addr: "0.0.0.0:8081"}, false},
		{"user and password anywhere", Config{User: "ops", Password: "long enough", Addr: "0.0.0.0:8081"}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.cfg.JS = fakeJS{}
			err := tc.cfg.Validate()
			if tc.ok {
				assert.NoError(t, err)
			} else {
				assert.Error(t, err)
			}
		})
	}
	t.Run("a missing password is said once", func(t *testing.T) {
		err := Config{JS: fakeJS{}, User: "ops", Addr: "0.0.0.0:8081"}.Validate()
		require.Error(t, err)
		assert.Equal(t, "CONSOLE_USER and CONSOLE_PASSWORD go together: set both, or neither to run without authentication on loopback", err.Error(),
			"no word of a password's length when there is none")
	})
}

// fakeJS stands for a JetStream context in configuration checks, which
// make no call.
type fakeJS struct{ jetstream.JetStream }

func TestSignInCSRFAndHeaders(t *testing.T) {
	f := newFixture(t, Config{User: "ops", Password: "correct horse"})
	seed(t, f.js, 3, exhausted)
	f.srv.follow.Load(context.Background())
	c := f.client(t)

	resp, body := get(t, c, f.web.URL+"/failures")
	assert.Equal(t, http.StatusSeeOther, resp.StatusCode, "a page needs a sign-in")
	assert.Equal(t, "/login?next=%2Ffailures", resp.Header.Get("Location"))
	assert.NotContains(t, body, "cmd-000001", "no failure leaks to a visitor who has not signed in")
	resp, _ = post(t, c, f.web.URL+"/discard", url.Values{"command": {"cmd-000001"}})
	assert.Equal(t, http.StatusUnauthorized, resp.StatusCode, "an action needs a sign-in")

	resp, login := get(t, c, f.web.URL+"/login")
	require.Equal(t, http.StatusOK, resp.StatusCode)
	csp := resp.Header.Get("Content-Security-Policy")
	assert.Contains(t, csp, "script-src 'self'")
	assert.Contains(t, csp, "default-src 'none'")
	assert.NotContains(t, csp, "unsafe-inline")
	assert.Equal(t, "nosniff", resp.Header.Get("X-Content-Type-Options"))
	assert.Equal(t, "DENY", resp.Header.Get("X-Frame-Options"))

	resp, _ = post(t, c, f.web.URL+"/login", url.Values{"user": {"ops"}, "password": {"correct horse"}})
	assert.Equal(t, http.StatusForbidden, resp.StatusCode, "a sign-in without the form's CSRF token is refused")
	resp, body = post(t, c, f.web.URL+"/login", url.Values{"user": {"ops"}, "password": {"wrong horse"}, "csrf": {csrfOf(t, login)}})
	assert.Equal(t, http.StatusUnauthorized, resp.StatusCode)
	assert.Contains(t, body, "wrong user or password")
	resp, _ = post(t, c, f.web.URL+"/login", url.Values{"user": {"ops"}, "password": {"correct horse"}, "csrf": {csrfOf(t, login)}, "next": {"//evil.example/"}})
	require.Equal(t, http.StatusSeeOther, resp.StatusCode)
	assert.Equal(t, "/", resp.Header.Get("Location"), "a sign-in never sends the browser to another site")

	resp, page := get(t, c, f.web.URL+"/failures")
	require.Equal(t, http.StatusOK, resp.StatusCode)
	assert.Contains(t, page, "cmd-000001")
	token := csrfOf(t, page)
	assert.NotEqual(t, csrfOf(t, login), token, "signing in gives a new session and token")

	sel := url.Values{"command": {"cmd-000001"}}
	resp, _ = post(t, c, f.web.URL+"/discard", sel)
	assert.Equal(t, http.StatusForbidden, resp.StatusCode, "a POST without the CSRF token is refused")
	resp, _ = post(t, c, f.web.URL+"/discard", url.Values{"command": {"cmd-000001"}, "csrf": {"forged"}})
	assert.Equal(t, http.StatusForbidden, resp.StatusCode, "a POST with a wrong token is refused")
	resp, _ = post(t, c, f.web.URL+"/discard", url.Values{"command": {"cmd-000001"}, "csrf": {token}}, "Sec-Fetch-Site", "cross-site")
	assert.Equal(t, http.StatusForbidden, resp.StatusCode, "a cross-site POST is refused, token or not")
	snap, err := failstore.Load(context.Background(), f.js, failstore.Select{})
	require.NoError(t, err)
	assert.Len(t, snap.Failures, 3, "no refused request discarded anything")

	resp, body = post(t, c, f.web.URL+"/discard", url.Values{"command": {"cmd-000001"}, "csrf": {token}})
	require.Equal(t, http.StatusOK, resp.StatusCode, body)
	assert.Contains(t, body, "1 of 1 discarded")
	snap, err = failstore.Load(context.Background(), f.js, failstore.Select{})
	require.NoError(t, err)
	assert.Len(t, snap.Failures, 2)

	resp, _ = get(t, c, f.web.URL+"/discard?command=cmd-000002")
	assert.Equal(t, http.StatusOK, resp.StatusCode)
	snap, err = failstore.Load(context.Background(), f.js, failstore.Select{})
	require.NoError(t, err)
	assert.Len(t, snap.Failures, 2, "a GET only previews")

	resp, _ = post(t, c, f.web.URL+"/logout", url.Values{"csrf": {token}})
	require.Equal(t, http.StatusSeeOther, resp.StatusCode)
	resp, _ = get(t, c, f.web.URL+"/failures")
	assert.Equal(t, http.StatusSeeOther, resp.StatusCode, "signed out")
}

// A POST's body is read up to maxFormBytes, before the session's token is
// looked for in it: a visitor with no more than the sign-in page's cookie
// cannot make the console hold a large form in memory, or write a large
// multipart file to its temporary directory.
func TestLargePostBodyIsRefused(t *testing.T) {
	f := newFixture(t, Config{User: "ops", Password: "correct horse"})
	c := f.client(t)
	_, login := get(t, c, f.web.URL+"/login")
	token := csrfOf(t, login)

	form := url.Values{"csrf": {token}, "user": {"ops"}, "password": {"wrong horse"}, "pad": {strings.Repeat("a", maxFormBytes)}}
	resp, _ := post(t, c, f.web.URL+"/login", form)
	assert.Equal(t, http.StatusRequestEntityTooLarge, resp.StatusCode, "a form over the limit")

	var body bytes.Buffer
	mw := multipart.NewWriter(&body)
	require.NoError(t, mw.WriteField("csrf", token))
	fw, err := mw.CreateFormFile("upload", "big")
	require.NoError(t, err)
	_, err = fw.Write(bytes.Repeat([]byte("x"), 2*maxFormBytes))
	require.NoError(t, err)
	require.NoError(t, mw.Close())
	req, err := http.NewRequest(http.MethodPost, f.web.URL+"/login", &body)
	require.NoError(t, err)
	req.Header.Set("Content-Type", mw.FormDataContentType())
	resp, err = c.Do(req)
	require.NoError(t, err)
	resp.Body.Close()
	assert.Equal(t, http.StatusRequestEntityTooLarge, resp.StatusCode, "a multipart body over the limit")

	resp, body2 := post(t, c, f.web.URL+"/login", url.Values{"csrf": {token}, "user": {"ops"}, "password": {"wrong horse"}})
	assert.Equal(t, http.StatusUnauthorized, resp.StatusCode, "a form within the limit is read: %s", body2)
}

// A console without authentication answers only to a loopback address or
// localhost in the Host header: a page of another site whose name was
// made to resolve to 127.0.0.1 (DNS rebinding) is the same origin to the
// browser, and could otherwise read every page, its CSRF token with it,
// and post actions.
func TestNoAuthConsoleRefusesAnotherHost(t *testing.T) {
	f := newFixture(t, Config{NoAuth: true})
	seed(t, f.js, 1, exhausted)
	f.srv.follow.Load(context.Background())
	port := f.web.URL[strings.LastIndex(f.web.URL, ":"):]
	for _, host := range []string{"rebound.example" + port, "rebound.example", "127.0.0.1.nip.io" + port, "localhost.rebound.example" + port} {
		req, err := http.NewRequest(http.MethodGet, f.web.URL+"/failures", nil)
		require.NoError(t, err)
		req.Host = host
		resp, err := f.client(t).Do(req)
		require.NoError(t, err)
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		assert.Equal(t, http.StatusMisdirectedRequest, resp.StatusCode, host)
		assert.NotContains(t, string(body), "cmd-000000", host)
		assert.Empty(t, resp.Cookies(), "%s: no session", host)
	}
	for _, host := range []string{"127.0.0.1" + port, "localhost" + port, "LOCALHOST" + port, "[::1]" + port, "127.0.0.2" + port} {
		req, err := http.NewRequest(http.MethodGet, f.web.URL+"/failures", nil)
		require.NoError(t, err)
		req.Host = host
		resp, err := f.client(t).Do(req)
		require.NoError(t, err)
		resp.Body.Close()
		assert.Equal(t, http.StatusOK, resp.StatusCode, host)
	}
}

func TestHostileCommandRendersAsText(t *testing.T) {
	f := newFixture(t, Config{NoAuth: true})
	script, img := `<script>alert(1)</script>`, `"><img src=x onerror=alert(2)>`
	seed(t, f.js, 1, func(int) (contact.Failed, time.Time) {
		cmd, _ := json.Marshal(map[string]string{"name": script, "email": "x@example.com", "mobile": "+919876543210", "tagId": img, "companyName": img})
		return contact.Failed{CommandID: "hostile" + img, Reason: contact.ReasonInvalid, Message: "name " + script,
			Errors: []contact.FieldError{{Field: "name", Rule: "printable", Message: "bad " + img}}, Command: cmd}, time.Now()
	})
	f.srv.follow.Load(context.Background())
	c := f.client(t)
	for _, path := range []string{"/failures", "/failures?view=groups", "/failure?id=" + url.QueryEscape("hostile"+img), "/failure/repair?id=" + url.QueryEscape("hostile"+img), "/"} {
		resp, body := get(t, c, f.web.URL+path)
		require.Equal(t, http.StatusOK, resp.StatusCode, path)
		assert.NotContains(t, body, "<script>alert", path)
		assert.NotContains(t, body, "<img src=x", path)
		assert.NotContains(t, body, "x@example.com", "%s: email masked", path)
	}
	_, body := get(t, c, f.web.URL+"/failure?id="+url.QueryEscape("hostile"+img))
	assert.Contains(t, body, "&lt;script&gt;alert(1)&lt;/script&gt;", "shown as text")
}

// BenchmarkFailuresPage100k measures the failures page, whole and
// filtered, with 100,000 open failures (docs/PERFORMANCE.md):
//
//	go test -run '^$' -bench FailuresPage100k -benchtime 20x ./internal/console
func BenchmarkFailuresPage100k(b *testing.B) {
	f := newFixture(b, Config{NoAuth: true})
	seed(b, f.js, 100_000, exhausted)
	start := time.Now()
	v := f.srv.follow.Load(context.Background())
	_, err, _ := v.State()
	require.NoError(b, err)
	require.Equal(b, 100_000, v.Open())
	b.Logf("loading 100,000 open failures into the view took %s", time.Since(start))
	c := f.client(b)
	for _, page := range []struct{ name, path string }{
		{"first page", "/failures"},
		{"last page", "/failures?page=2000"},
		{"reason and provider", "/failures?reason=exhausted&provider=pik"},
		{"free text", "/failures?q=cmd-09999"},
		{"time range", "/failures?since=2h&until=1h"},
		{"grouped", "/failures?view=groups"},
		{"overview", "/"},
	} {
		b.Run(page.name, func(b *testing.B) {
			for b.Loop() {
				resp, body := get(b, c, f.web.URL+page.path)
				if resp.StatusCode != http.StatusOK || !strings.Contains(body, "open failures") {
					b.Fatalf("%s: %d", page.path, resp.StatusCode)
				}
			}
		})
	}
}

// A replay of 1,000 failures started from the console streams its progress
// to the job's page as it goes, and ends with every one sent.
func TestReplayOfAThousandStreamsItsProgress(t *testing.T) {
	ns := natstest.Start(t, nil)
	_, js := ns.Connect(t)
	ctx := context.Background()
	require.NoError(t, provision.Setup(ctx, js, provision.Topology{}))
	srv, err := New(Config{JS: js, NoAuth: true, Addr: "127.0.0.1:8081"})
	require.NoError(t, err)
	web := httptest.NewServer(srv.Handler())
	t.Cleanup(web.Close)
	const n = 1000
	seed(t, js, n, exhausted)
	require.Equal(t, n, srv.follow.Load(ctx).Open())

	c := (&fixture{}).client(t)
	resp, preview := get(t, c, web.URL+"/replay?reason=exhausted")
	require.Equal(t, http.StatusOK, resp.StatusCode, preview)
	assert.Contains(t, preview, `id="will-send">1000<`, "the preview says all will be sent")
	form := url.Values{"rate": {"400"}} // the form as the preview made it, at 400 a second
	for _, m := range hiddenField.FindAllStringSubmatch(preview, -1) {
		form.Set(m[1], m[2])
	}
	resp, _ = post(t, c, web.URL+"/replay", form)
	require.Equal(t, http.StatusSeeOther, resp.StatusCode)
	jobURL := resp.Header.Get("Location")
	require.True(t, strings.HasPrefix(jobURL, "/jobs/"), jobURL)

	start := time.Now()
	resp, err = c.Get(web.URL + jobURL + "/events")
	require.NoError(t, err)
	defer resp.Body.Close()
	assert.Equal(t, "text/event-stream", resp.Header.Get("Content-Type"))
	var states []jobState
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		data, ok := strings.CutPrefix(sc.Text(), "data: ")
		if !ok {
			continue
		}
		var st jobState
		require.NoError(t, json.Unmarshal([]byte(data), &st))
		if len(states) > 0 {
			assert.GreaterOrEqual(t, st.Done, states[len(states)-1].Done, "progress never goes back")
		}
		states = append(states, st)
	}
	require.NoError(t, sc.Err())
	require.NotEmpty(t, states)
	last := states[len(states)-1]
	assert.True(t, last.Over, "the stream ends when the replay does")
	assert.Equal(t, "done", last.Phase, last.Error)
	assert.Equal(t, n, last.Done)
	assert.Equal(t, n, last.Replayed)
	cs, err := js.Stream(ctx, provision.CommandStream)
	require.NoError(t, err)
	info, err := cs.Info(ctx)
	require.NoError(t, err)
	assert.EqualValues(t, n, info.State.Msgs, "every command was sent")
	t.Logf("%d failures replayed at 400/s in %s; %d progress events streamed", n, time.Since(start).Round(time.Millisecond), len(states))
}

// The overview's figures count events by the server, and an hour that has
// ended is counted once: a later load counts the current hour and the
// last hour and day, five counting consumers instead of 28.
func TestStatsCountEndedHoursOnce(t *testing.T) {
	ns := natstest.Start(t, nil)
	_, js := ns.Connect(t)
	ctx := context.Background()
	require.NoError(t, provision.Setup(ctx, js, provision.Topology{}))
	now := time.Now()
	srv, err := New(Config{JS: js, NoAuth: true, Addr: "127.0.0.1:8081", Now: func() time.Time { return now }})
	require.NoError(t, err)
	for i := range 5 {
		typ := contact.SubjectFailed
		if i%5 == 4 {
			typ = contact.SubjectCreated
		}
		_, err := js.Publish(ctx, typ, []byte(`{}`))
		require.NoError(t, err)
	}
	sum := func(h [24]uint64) (n uint64) {
		for _, v := range h {
			n += v
		}
		return n
	}

	first := srv.loadStats(ctx)
	require.NoError(t, first.Err)
	assert.EqualValues(t, 4, first.FailedHour)
	assert.EqualValues(t, 4, first.FailedDay)
	assert.EqualValues(t, 1, first.CreatedHour)
	assert.EqualValues(t, 4, sum(first.FailedHourly), "the day's failures, hour by hour")
	assert.Equal(t, 4+24, srv.countCalls, "the first load counts from the start of every hour")

	srv.countCalls = 0
	second := srv.loadStats(ctx)
	require.NoError(t, second.Err)
	assert.Equal(t, first.FailedHourly, second.FailedHourly)
	assert.Equal(t, 4+1, srv.countCalls, "the ended hours are not counted again")

	// An hour later (by the console's clock) the hour of the events has
	// ended: counted once more, then kept.
	now = now.Add(time.Hour)
	srv.countCalls = 0
	third := srv.loadStats(ctx)
	require.NoError(t, third.Err)
	assert.Equal(t, first.FailedHourly[:23], append([]uint64{0}, third.FailedHourly[:22]...), "the hours moved by one")
	assert.Equal(t, first.FailedHourly[23], third.FailedHourly[22]+third.FailedHourly[23], "the first load's current hour, now ended (or the hour after, had the clock just passed one)")
	assert.Equal(t, 4+2, srv.countCalls)
}

// A filter naming thousands of providers or unknown reasons is cut to a
// filter's size, and says so once, not once a name.
func TestQueryListsAreBounded(t *testing.T) {
	v := url.Values{}
	for i := range 10000 {
		v.Add("provider", fmt.Sprintf("p%d", i))
		v.Add("reason", fmt.Sprintf("r%d", i))
	}
	v.Add("reason", "invalid")
	v.Add("reason", "invalid")
	q, errs := parseQuery(v, time.Now())
	assert.Len(t, q.Providers, maxProviders)
	assert.Equal(t, []string{"invalid"}, q.Reasons, "known reasons, once each")
	assert.Len(t, errs, 5, "three unknown reasons named, the rest counted, and the providers cut: %q", errs)
	assert.Contains(t, errs, "and 9997 more unknown reasons")
}

// The console keeps the pages of its last 100 ended replays, not every
// replay since it started; one under way is never dropped.
func TestEndedReplaysAreForgottenOldestFirst(t *testing.T) {
	js := newJobs()
	release := make(chan struct{})
	running := &job{}
	js.start(context.Background(), running, func(context.Context, *job) { <-release })
	var ids []string
	for i := range keptJobs + 20 {
		j := &job{}
		js.start(context.Background(), j, func(_ context.Context, j *job) {
			j.update(func(st *jobState) { st.Over, st.Finished = true, time.Unix(int64(i), 0) })
		})
		awaitOver(t, j)
		ids = append(ids, j.ID)
	}
	assert.NotNil(t, js.get(running.ID), "a replay under way stays")
	assert.Nil(t, js.get(ids[0]), "the oldest ended replay is forgotten")
	assert.NotNil(t, js.get(ids[len(ids)-1]))
	kept := 0
	for _, id := range ids {
		if js.get(id) != nil {
			kept++
		}
	}
	assert.LessOrEqual(t, kept, keptJobs)
	assert.GreaterOrEqual(t, kept, keptJobs-1)
	close(release)
	js.wait()
}

// awaitOver waits until j has ended.
func awaitOver(t *testing.T, j *job) {
	t.Helper()
	require.Eventually(t, func() bool { return j.snapshot().Over }, 10*time.Second, time.Millisecond)
}

// A group of failures that a replay unchanged would not mend (invalid,
// rejected…) is not offered "Replay this group…": the page says why and
// offers to repair them one by one. Counts agree with their nouns.
func TestGroupsAReplayWouldNotMendAndPlurals(t *testing.T) {
	f := newFixture(t, Config{NoAuth: true})
	seed(t, f.js, 3, func(i int) (contact.Failed, time.Time) {
		if i == 0 {
			return exhausted(i)
		}
		return contact.Failed{CommandID: fmt.Sprintf("inv-%d", i), Provider: "instantpay", Reason: contact.ReasonInvalid,
			Message: "the command breaks 1 rule: email must be a valid email address",
			Errors:  []contact.FieldError{{Field: "email", Rule: "email", Message: "email must be a valid email address"}},
			Command: json.RawMessage(`{"name":"A","email":"nope","mobile":"+919876543210","tagId":"65a1b2c3d4e5f6a7b8c9d0e1"}`)}, time.Now()
	})
	f.srv.follow.Load(context.Background())
	c := f.client(t)

	_, page := get(t, c, f.web.URL+"/failures?view=groups")
	rows := map[string]string{}
	for _, row := range strings.Split(page, "<tr>")[1:] {
		for _, r := range []string{"invalid", "exhausted"} {
			if strings.Contains(row, "<td>"+r+"</td>") {
				rows[r] = row
			}
		}
	}
	require.Len(t, rows, 2, "a group of each reason")
	assert.Contains(t, rows["exhausted"], "Replay this group…", "a retryable group is replayed")
	assert.NotContains(t, rows["invalid"], "Replay this group", "an invalid group replayed unchanged fails again")
	assert.NotContains(t, rows["invalid"], `href="/replay?`)
	assert.Contains(t, rows["invalid"], "Replayed unchanged, these fail again.")
	assert.Contains(t, rows["invalid"], "Repair one by one…")

	_, page = get(t, c, f.web.URL+"/failures?reason=exhausted")
	assert.Contains(t, page, "<strong>1</strong> of 3 open failures matches")
	assert.Contains(t, page, "Replay it…")
	_, page = get(t, c, f.web.URL+"/failures?reason=invalid")
	assert.Contains(t, page, "<strong>2</strong> of 3 open failures match ")
	assert.Contains(t, page, "Replay these 2…")

	_, page = get(t, c, f.web.URL+"/failure/repair?id=inv-1")
	assert.Contains(t, page, `<label for="extra" class="text">Other fields`, "the label is one run of text")
	resp, page := post(t, c, f.web.URL+"/failure/repair", url.Values{"csrf": {csrfOf(t, page)}, "id": {"inv-1"}, "name": {"A"},
		"email": {"still-bad"}, "tagId": {"65a1b2c3d4e5f6a7b8c9d0e1"}})
	require.Equal(t, http.StatusUnprocessableEntity, resp.StatusCode, page)
	_, page = get(t, c, f.web.URL+"/activity")
	assert.Contains(t, page, "refused: 1 rule broken, nothing sent")
}

// The screens that went stale (issue 28): a failure page after a repair
// said "Open failure" beside "Contact … exists"; the replay page lit
// Activity in the nav and its start time was text that never moved.
func TestStaleScreens(t *testing.T) {
	ns := natstest.Start(t, nil)
	_, js := ns.Connect(t)
	ctx := context.Background()
	require.NoError(t, provision.Setup(ctx, js, provision.Topology{}))
	srv, err := New(Config{JS: js, NoAuth: true, Addr: "127.0.0.1:8081"})
	require.NoError(t, err)
	web := httptest.NewServer(srv.Handler())
	t.Cleanup(web.Close)
	seed(t, js, 2, exhausted) // cmd-000000, cmd-000001
	require.Equal(t, 2, srv.follow.Load(ctx).Open())
	kv, err := js.KeyValue(ctx, provision.RecordBucket)
	require.NoError(t, err)
	outcome := func(typ, gen string) json.RawMessage {
		ev, err := events.NewEvent("", typ, "cmd-000000", gen, time.Now(), map[string]string{"commandId": "cmd-000000"})
		require.NoError(t, err)
		b, err := json.Marshal(ev)
		require.NoError(t, err)
		return b
	}
	rec := record.Record{CommandID: "cmd-000000", Order: 1, Generations: map[string]*record.Generation{
		"": {Attempts: 3, Order: 1, Outcome: outcome(contact.SubjectFailed, ""), Reason: contact.ReasonExhausted, Provider: "instantpay"},
	}}
	put := func() {
		val, err := record.Encode(&rec, "")
		require.NoError(t, err)
		_, err = kv.Put(ctx, record.Key("cmd-000000"), val)
		require.NoError(t, err)
	}
	put()
	c := (&fixture{}).client(t)
	_, page := get(t, c, web.URL+"/failure?id=cmd-000000")
	assert.Contains(t, page, `<h2 id="f0">Open failure`, "the failure is open while its newest outcome is the failure")

	// Repaired: a new generation created the contact; the open failures
	// have not caught up yet.
	rec.Order = 2
	rec.Generations["r1"] = &record.Generation{Attempts: 1, Order: 2, Outcome: outcome(contact.SubjectCreated, "r1"), Provider: "instantpay"}
	rec.Contact = &record.StoredContact{Provider: "instantpay", ID: "c-1", CreatedAt: time.Now()}
	put()
	_, page = get(t, c, web.URL+"/failure?id=cmd-000000")
	assert.NotContains(t, page, `<h2 id="f0">`, "no open failure beside the contact that exists")
	assert.NotContains(t, page, `id="replay-one"`, "nor its actions")
	assert.Contains(t, page, `id="no-open"`)
	assert.Contains(t, page, "its contact exists")

	// A replay's page belongs to Failures, and says when it started in a
	// time the page's script moves on.
	resp, preview := get(t, c, web.URL+"/replay?q=cmd-000001")
	require.Equal(t, http.StatusOK, resp.StatusCode, preview)
	form := url.Values{"rate": {"50"}}
	for _, m := range hiddenField.FindAllStringSubmatch(preview, -1) {
		form.Set(m[1], m[2])
	}
	resp, body := post(t, c, web.URL+"/replay", form)
	require.Equal(t, http.StatusSeeOther, resp.StatusCode, body)
	_, page = get(t, c, web.URL+resp.Header.Get("Location"))
	assert.Regexp(t, `<a href="/failures" aria-current="page">Failures</a>`, page, "the nav lights Failures on a replay's page")
	assert.NotContains(t, page, `aria-current="page">Activity`)
	assert.Regexp(t, `<time id="job-started" datetime="[0-9T:.Z-]+"`, page)
}

// The Providers page pauses and resumes a provider through the console's
// action path: CSRF-checked, in Activity, told to the audit hook first,
// and written where every instance watches (CONTACT_PAUSES).
func TestPauseAndResumeFromTheConsole(t *testing.T) {
	ns := natstest.Start(t, nil)
	_, js := ns.Connect(t)
	ctx := context.Background()
	require.NoError(t, provision.Setup(ctx, js, provision.Topology{}))
	var audited []string
	srv, err := New(Config{JS: js, NoAuth: true, Addr: "127.0.0.1:8081", PauseAudit: func(_ context.Context, action string, s pause.State) error {
		audited = append(audited, action+" "+s.Provider+" "+s.Reason)
		return nil
	}})
	require.NoError(t, err)
	web := httptest.NewServer(srv.Handler())
	t.Cleanup(web.Close)
	c := (&fixture{}).client(t)
	resp, page := get(t, c, web.URL+"/pauses")
	require.Equal(t, http.StatusOK, resp.StatusCode, page)
	assert.Contains(t, page, `<span id="state-pik">running</span>`)
	assert.Contains(t, page, `<a href="/pauses" aria-current="page">Providers</a>`)
	csrf := csrfOf(t, page)

	resp, _ = post(t, c, web.URL+"/pauses", url.Values{"provider": {"pik"}, "action": {"pause"}, "reason": {"maintenance"}})
	assert.Equal(t, http.StatusForbidden, resp.StatusCode, "refused without the CSRF token")
	resp, page = post(t, c, web.URL+"/pauses", url.Values{"csrf": {csrf}, "provider": {"pik"}, "action": {"pause"}, "reason": {"maintenance"}})
	require.Equal(t, http.StatusOK, resp.StatusCode, page)
	assert.Contains(t, page, `id="state-pik">paused<`)
	assert.Contains(t, page, "maintenance")
	assert.Contains(t, page, `id="resume-pik"`)
	st, err := pause.Open(ctx, js)
	require.NoError(t, err)
	got, ok, err := st.Get(ctx, "pik")
	require.NoError(t, err)
	require.True(t, ok, "the pause is in CONTACT_PAUSES")
	assert.Equal(t, "maintenance", got.Reason)

	resp, page = post(t, c, web.URL+"/pauses", url.Values{"csrf": {csrf}, "provider": {"pik"}, "action": {"resume"}})
	require.Equal(t, http.StatusOK, resp.StatusCode, page)
	assert.Contains(t, page, `<span id="state-pik">running</span>`)
	_, ok, err = st.Get(ctx, "pik")
	require.NoError(t, err)
	assert.False(t, ok, "resumed")
	assert.Equal(t, []string{"pause pik maintenance", "resume pik maintenance"}, audited, "each change told to the audit hook, in order")
	_, page = get(t, c, web.URL+"/activity")
	assert.Contains(t, page, "pause")
	assert.Contains(t, page, "resume")

	resp, _ = post(t, c, web.URL+"/pauses", url.Values{"csrf": {csrf}, "provider": {"paypal"}, "action": {"pause"}})
	assert.Equal(t, http.StatusBadRequest, resp.StatusCode, "an unknown provider is refused")
}

// The Status page shows what each instance answers on contactrelay.status:
// its commands in flight with their commandIds, its circuits, the pauses.
func TestStatusPageShowsTheInstances(t *testing.T) {
	ns := natstest.Start(t, nil)
	nc, js := ns.Connect(t)
	ctx := context.Background()
	require.NoError(t, provision.Setup(ctx, js, provision.Topology{}))
	tr := status.NewTracker([]string{"instantpay", "pik"}, nil)
	tr.Routed(7, "slow-7", "instantpay")
	tr.Routed(8, "slow-8", "instantpay")
	t0 := time.Date(2026, 12, 7, 10, 0, 0, 0, time.UTC)
	tr.Attempted(8, "create", t0, "transient")
	tr.Retrying(8, t0.Add(2*time.Second))
	tr.Routed(9, "gone-9", "instantpay")
	tr.Settled(9)
	tr.CircuitChange("pik", "closed", "open")
	tr.Outcome(true)
	tr.Outcome(true)
	tr.Outcome(true)
	tr.Outcome(false)
	sub, err := status.Serve(nc, tr)
	require.NoError(t, err)
	t.Cleanup(func() { _ = sub.Unsubscribe() })
	st, err := pause.Open(ctx, js)
	require.NoError(t, err)
	_, err = st.Pause(ctx, "pik", "incident", "ana")
	require.NoError(t, err)

	srv, err := New(Config{JS: js, NoAuth: true, Addr: "127.0.0.1:8081"})
	require.NoError(t, err)
	web := httptest.NewServer(srv.Handler())
	t.Cleanup(web.Close)
	resp, page := get(t, (&fixture{}).client(t), web.URL+"/status")
	require.Equal(t, http.StatusOK, resp.StatusCode, page)
	assert.Contains(t, page, `<a href="/status" aria-current="page">Status</a>`)
	assert.Contains(t, page, `id="instances">1<`, "one instance answered")
	assert.Contains(t, page, `<td class="num in-flight">2</td>`, "two InstantPay commands in flight")
	assert.Contains(t, page, `>slow-7</a>`)
	assert.Contains(t, page, `>slow-8</a>`)
	assert.NotContains(t, page, "gone-9", "a settled command is not in flight")
	assert.Contains(t, page, `<td class="circuit-open">open</td>`, "PIK's circuit")
	assert.Contains(t, page, "<strong>pik</strong> paused")
	assert.Contains(t, page, "incident")
	assert.Contains(t, page, "1 call so far; next try due 2026-12-07 10:00:02Z", "a command's attempts so far and its next try")
	assert.Contains(t, page, `2026-12-07 10:00:00Z: create, <span class="class-transient">transient</span>`)
	assert.Contains(t, page, "3 contact.created events in 1 h", "the outcomes per minute, charted")
	assert.Contains(t, page, "1 contact.failed event in 1 h")
	assert.Contains(t, page, `aria-label="contact.created events per minute over the last hour: 3 in all`)
}
