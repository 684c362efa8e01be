package main

import (
	"context"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/chromedp"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/contactrelay/contactrelay/internal/console"
	"github.com/contactrelay/contactrelay/internal/fakeclock"
	"github.com/contactrelay/contactrelay/internal/provision"
)

// TestConsoleSessionsInABrowser: with CONSOLE_SESSION_KEY_FILE, a session
// survives a console restart and is valid on a second console sharing the
// key; signing out on one ends it on the other. Then, behind a trusted
// proxy: 20 wrong passwords for one account do not stop another account,
// nor the right password from another address.
func TestConsoleSessionsInABrowser(t *testing.T) {
	alerts := new(atomic.Int32)
	ctx := browser(t, alerts)
	e := newTestEnv(t)
	e.quietLogs = true
	e.start(t)
	users := writeUsers(t, "ana", "ana's long password", "vic", "vic's long password")
	key := filepath.Join(t.TempDir(), "session-key")
	require.NoError(t, os.WriteFile(key, []byte("c2Vzc2lvbiBrZXkgZm9yIHRoZSBjb25zb2xlIHRlc3Q=\n"), 0o600))
	kv, err := provision.EnsureConsoleSessions(context.Background(), e.js, 1, nil)
	require.NoError(t, err)
	cfg := console.Config{UsersFile: users, Operators: []string{"ana"}, SessionKeyFile: key, Revocations: kv}

	first, stopFirst := startConsoleWith(t, e, cfg)
	signIn(t, ctx, first+"/failures", "ana", "ana's long password")
	assert.Contains(t, text(t, ctx, "#role"), "operator")
	got, err := chromedp.Call(ctx, network.GetCookies, network.GetCookiesParams{URLs: []string{first}})
	require.NoError(t, err)
	require.Len(t, got.Cookies, 1)
	cookie := got.Cookies[0]

	// A restart: the session holds. (A browser sends a host's cookie to
	// each of its ports, as it would through one load balancer.)
	stopFirst()
	restarted, _ := startConsoleWith(t, e, cfg)
	require.NoError(t, chromedp.Do(ctx, chromedp.Navigate(restarted+"/failures"), chromedp.WaitVisible(chromedp.ID("matched"))))
	assert.Contains(t, text(t, ctx, "header"), "ana", "still signed in after a restart")

	// A second console with the same key: the session is valid there too.
	second, _ := startConsoleWith(t, e, cfg)
	require.NoError(t, chromedp.Do(ctx, chromedp.Navigate(second+"/failures"), chromedp.WaitVisible(chromedp.ID("matched"))))
	assert.Contains(t, text(t, ctx, "header"), "ana", "signed in on a second console")

	// Signing out on the second ends the session on the restarted one.
	clickAndLoad(t, ctx, "header form button")
	req, err := http.NewRequest(http.MethodGet, restarted+"/failures", nil)
	require.NoError(t, err)
	req.AddCookie(&http.Cookie{Name: cookie.Name, Value: cookie.Value})
	noRedirect := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := noRedirect.Do(req)
	require.NoError(t, err)
	resp.Body.Close()
	assert.Equal(t, http.StatusSeeOther, resp.StatusCode, "the signed-out session is refused by the other console")

	// Throttling, behind a trusted proxy that names the client's address;
	// the console's clock moves only when told, so that no shut-out ends
	// while the guesses are made.
	cfg.TrustedProxies = []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}
	cfg.Now = fakeclock.New(time.Now()).Now
	proxied, _ := startConsoleWith(t, e, cfg)
	from := func(addr string) {
		_, err := chromedp.Call(ctx, network.SetExtraHTTPHeaders, network.SetExtraHTTPHeadersParams{Headers: network.Headers{"X-Forwarded-For": addr}})
		require.NoError(t, err)
	}
	attempt := func(user, password string) string {
		signIn(t, ctx, proxied+"/login", user, password)
		s, err := chromedp.Run(ctx, chromedp.Evaluate[string](`document.title`))
		require.NoError(t, err)
		return s
	}
	from("203.0.113.9")
	refused := 0
	for range 20 {
		title := attempt("vic", "a wrong guess")
		require.Contains(t, title, "Sign in", "a wrong password does not sign in")
		if strings.Contains(text(t, ctx, "main"), "too many wrong sign-ins") {
			refused++
		}
	}
	assert.Equal(t, 15, refused, "after 5 wrong guesses the guesser's next ones are not checked")
	assert.True(t, strings.HasPrefix(attempt("ana", "ana's long password"), "Overview"), "another account signs in from the guesser's address")
	clickAndLoad(t, ctx, "header form button")
	from("198.51.100.4")
	assert.True(t, strings.HasPrefix(attempt("vic", "vic's long password"), "Overview"), "the right password signs in from another address")
	assert.Zero(t, alerts.Load())
}
