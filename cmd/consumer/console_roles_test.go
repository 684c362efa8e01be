package main

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/crypto/bcrypt"

	"github.com/contactrelay/contactrelay/internal/audit"
	"github.com/contactrelay/contactrelay/internal/config"
	"github.com/contactrelay/contactrelay/internal/console"
)

// startConsoleWith serves a console configured by cfg on the test's
// JetStream, with its audit trail, reloading every 300ms, and returns its URL and a function
// that stops it (also called at the test's end).
func startConsoleWith(t *testing.T, e *testEnv, cfg console.Config) (string, func()) {
	t.Helper()
	cfg.JS = e.js
	cfg.Audit = &audit.Writer{JS: e.js}
	cfg.Refresh, cfg.StatsRefresh = 300*time.Millisecond, time.Second
	cfg.Log = config.NewLogger(testWriter{t}, 0, "text")
	srv, err := console.New(cfg)
	require.NoError(t, err)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	hs := &http.Server{Handler: srv.Handler(), ReadHeaderTimeout: 5 * time.Second, BaseContext: func(net.Listener) context.Context { return ctx }}
	ran := make(chan struct{})
	go func() { defer close(ran); _ = srv.Run(ctx) }()
	go func() { _ = hs.Serve(ln) }()
	var stopped atomic.Bool
	stop := func() {
		if stopped.CompareAndSwap(false, true) {
			cancel()
			_ = hs.Close()
			<-ran
		}
	}
	t.Cleanup(stop)
	return "http://" + ln.Addr().String(), stop
}

// writeUsers writes a users file of user/password pairs, as htpasswd -B
// makes one (at bcrypt's lowest cost, to keep the test quick).
func writeUsers(t *testing.T, pairs ...string) string {
	t.Helper()
	var b strings.Builder
	for i := 0; i+1 < len(pairs); i += 2 {
		h, err := bcrypt.GenerateFromPassword([]byte(pairs[i+1]), bcrypt.MinCost)
		require.NoError(t, err)
		fmt.Fprintf(&b, "%s:%s\n", pairs[i], h)
	}
	path := filepath.Join(t.TempDir(), "users")
	require.NoError(t, os.WriteFile(path, []byte(b.String()), 0o600))
	return path
}

// actionsShown counts the action buttons and links of the page in the
// browser.
func actionsShown(t *testing.T, ctx context.Context) int {
	t.Helper()
	n, err := chromedp.Run(ctx, chromedp.Evaluate[int](
		`document.querySelectorAll('#replay-one, #repair, #discard-one, #unmask, #replay-picked, #discard-picked, #cancel-job, a[href^="/replay"], a[href^="/discard"], a[href^="/failure/repair"]').length`))
	require.NoError(t, err)
	return n
}

// postFromPage posts an action from the page itself, with the page's own
// CSRF token, and returns the answer's status.
func postFromPage(t *testing.T, ctx context.Context, path, form string) int {
	t.Helper()
	status, err := chromedp.Run(ctx, chromedp.Evaluate[int](fmt.Sprintf(
		`fetch(%q, {method: 'POST', body: new URLSearchParams(%s + '&csrf=' + encodeURIComponent(document.querySelector('input[name=csrf]').value))}).then(r => r.status)`,
		path, "'"+form+"'"), chromedp.EvalAwaitPromise))
	require.NoError(t, err)
	return status
}

// TestConsoleRolesInABrowser: with a users file, a viewer reads every page
// but sees no action button, and an action posted directly from its page
// (with its own CSRF token) is refused 403; an operator replays; with
// CONSOLE_READ_ONLY=true the operator is a viewer too.
func TestConsoleRolesInABrowser(t *testing.T) {
	alerts := new(atomic.Int32)
	ctx := browser(t, alerts)
	e := newTestEnv(t)
	e.quietLogs = true
	e.start(t)
	users := writeUsers(t, "ana", "ana's long password", "vic", "vic's long password")
	base, stop := startConsoleWith(t, e, console.Config{UsersFile: users, Operators: []string{"ana"}})

	e.ipay.SetDown(true)
	for i := range 2 {
		e.publish(t, fmt.Sprintf(`{"commandId":"roles-%d","name":"Person %d","email":"r%d@example.com","mobile":"+91987654322%d","tagId":"65a1b2c3d4e5f6a7b8c9d0e1"}`, i, i, i, i))
	}

	// The viewer.
	signIn(t, ctx, base+"/failures", "vic", "vic's long password")
	awaitText(t, ctx, base+"/failures", "#matched", "2 of 2", time.Minute)
	assert.Contains(t, text(t, ctx, "#role"), "viewer")
	for _, u := range []string{"/", "/failures", "/failures?view=groups", "/failure?id=roles-0", "/activity"} {
		require.NoError(t, chromedp.Do(ctx, chromedp.Navigate(base+u), chromedp.WaitReady("main")))
		assert.Zero(t, actionsShown(t, ctx), "a viewer sees no action button on %s", u)
	}
	require.NoError(t, chromedp.Do(ctx, chromedp.Navigate(base+"/failure?id=roles-0"), chromedp.WaitVisible(chromedp.ID("command"))))
	assert.Contains(t, text(t, ctx, "#command"), "r***@example.com", "a viewer reads the failure, masked")
	assert.Contains(t, text(t, ctx, "#viewer-note"), "an operator's")
	for _, a := range [][2]string{{"/replay", "command=roles-0&rate=10"}, {"/discard", "command=roles-0"}, {"/failure/unmask", "id=roles-0"}, {"/failure/repair", "id=roles-0&name=X"}} {
		assert.Equal(t, http.StatusForbidden, postFromPage(t, ctx, a[0], a[1]), "a viewer posting %s directly is refused", a[0])
	}
	clickAndLoad(t, ctx, "header form button")
	e.ipay.SetDown(false)

	// The operator replays.
	signIn(t, ctx, base+"/failures", "ana", "ana's long password")
	assert.Contains(t, text(t, ctx, "#role"), "operator")
	require.NoError(t, chromedp.Do(ctx, chromedp.Navigate(base+"/failure?id=roles-0"), chromedp.WaitVisible(chromedp.ID("replay-one"))))
	assert.Positive(t, actionsShown(t, ctx), "an operator sees the actions")
	clickAndLoad(t, ctx, "#replay-one")
	clickAndLoad(t, ctx, "#confirm")
	_, err := chromedp.Run(ctx, chromedp.Poll[bool](`document.getElementById('job-phase').textContent === 'done'`, chromedp.WithPollingTimeout(30*time.Second)))
	require.NoError(t, err, "the replay finishes")
	assert.Equal(t, "1", text(t, ctx, "#job-replayed"))
	awaitText(t, ctx, base+"/failure?id=roles-0", "main", "has no open failure: its contact exists", 30*time.Second)

	// The read-only switch holds, for the operator too.
	ro, _ := startConsoleWith(t, e, console.Config{UsersFile: users, Operators: []string{"ana"}, ReadOnly: true})
	signIn(t, ctx, ro+"/failures", "ana", "ana's long password")
	assert.Contains(t, text(t, ctx, "#role"), "viewer", "read-only: the operator is a viewer")
	require.NoError(t, chromedp.Do(ctx, chromedp.Navigate(ro+"/failure?id=roles-1"), chromedp.WaitVisible(chromedp.ID("command"))))
	assert.Zero(t, actionsShown(t, ctx), "no action button on a read-only console")
	assert.Equal(t, http.StatusForbidden, postFromPage(t, ctx, "/discard", "command=roles-1"), "a read-only console refuses a discard")

	// The audit trail holds one entry per action done: the replay, by
	// ana from her address; the refused ones wrote none.
	p, err := audit.List(context.Background(), e.js, audit.Query{})
	require.NoError(t, err)
	require.Len(t, p.Entries, 1, "one entry per action done")
	assert.Equal(t, audit.ActionReplay, p.Entries[0].Action)
	assert.Equal(t, "ana", p.Entries[0].User)
	assert.Equal(t, "127.0.0.1", p.Entries[0].From)
	assert.Equal(t, []string{"roles-0"}, p.Entries[0].CommandIDs)

	// A restarted console and a second replica show the same activity.
	stop()
	restarted, _ := startConsoleWith(t, e, console.Config{UsersFile: users, Operators: []string{"ana"}})
	replica, _ := startConsoleWith(t, e, console.Config{UsersFile: users, Operators: []string{"ana"}})
	var seen []string
	for _, base := range []string{restarted, replica} {
		signIn(t, ctx, base+"/activity", "vic", "vic's long password")
		require.NoError(t, chromedp.Do(ctx, chromedp.Navigate(base+"/activity"), chromedp.WaitVisible(chromedp.ID("activity"))))
		rows := text(t, ctx, "#activity tbody")
		assert.Contains(t, rows, "ana")
		assert.Contains(t, rows, "replay")
		assert.Contains(t, rows, "commandId roles-0")
		seen = append(seen, rows)
	}
	assert.Equal(t, seen[0], seen[1], "every console shows the same activity")
	require.NoError(t, chromedp.Do(ctx, chromedp.Navigate(replica+"/failure?id=roles-1"), chromedp.WaitVisible(chromedp.ID("history-none"))))
	assert.Zero(t, alerts.Load())
}
