package main

import (
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/contactrelay/contactrelay/internal/sandbox"
)

var consoleCSRF = regexp.MustCompile(`name="csrf" value="([^"]+)"`)

// consoleSession signs in to the console at base, as a browser would, and
// returns a client that keeps the session (redirects not followed) and the
// session's CSRF token.
func consoleSession(t *testing.T, base, user, password string) (*http.Client, string) {
	t.Helper()
	jar, err := cookiejar.New(nil)
	require.NoError(t, err)
	c := &http.Client{Jar: jar, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	_, login := consoleGet(t, c, base+"/login")
	m := consoleCSRF.FindStringSubmatch(login)
	require.NotNil(t, m, "the sign-in page has a CSRF field")
	resp, _ := consolePost(t, c, base+"/login", url.Values{"user": {user}, "password": {password}, "csrf": {m[1]}})
	require.Equal(t, http.StatusSeeOther, resp.StatusCode, "signed in")
	_, page := consoleGet(t, c, base+"/activity")
	m = consoleCSRF.FindStringSubmatch(page)
	require.NotNil(t, m, "a page of the session has its CSRF token")
	return c, m[1]
}

func consoleGet(t *testing.T, c *http.Client, u string) (*http.Response, string) {
	t.Helper()
	resp, err := c.Get(u)
	require.NoError(t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return resp, string(b)
}

func consolePost(t *testing.T, c *http.Client, u string, form url.Values) (*http.Response, string) {
	t.Helper()
	resp, err := c.PostForm(u, form)
	require.NoError(t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return resp, string(b)
}

// awaitConsole reads the console page u until it holds want: the console
// reloads the open failures in the background.
func awaitConsole(t *testing.T, c *http.Client, u, want string) {
	t.Helper()
	require.Eventually(t, func() bool {
		_, page := consoleGet(t, c, u)
		return strings.Contains(page, want)
	}, 30*time.Second, 50*time.Millisecond, "%s shows %q", u, want)
}

// TestEchoedPersonalDataIsMaskedEverywhere has the provider refuse a
// command with a message that echoes its email and mobile, and reads every
// console page and every command-line output that masks: none shows them,
// in any form; only the explicit unmask does.
func TestEchoedPersonalDataIsMaskedEverywhere(t *testing.T) {
	e := newTestEnv(t)
	e.quietLogs = true
	e.ipay.Inject(sandbox.Fault{Code: "RPI",
		Message: "contact ravi.kumar@example.com exists already (mobile +919876543210, also known as 98765 43210)"})
	e.start(t)
	e.publish(t, `{"commandId":"echo-1","name":"Ravi Kumar","email":"ravi.kumar@example.com","mobile":"+919876543210","tagId":"65a1b2c3d4e5f6a7b8c9d0e1"}`)
	evs := e.awaitEvents(t, 1, 20*time.Second)
	require.Contains(t, string(evs[0].Data), "ravi.kumar@example.com exists already", "the failed event echoes the provider's message")

	// The unmasked forms, written as they may reach a page: as text, in a
	// URL's query, in JSON.
	leaks := []string{"ravi.kumar@", "ravi.kumar%40", "9876543210", "98765 43210", "98765+43210", "98765%2043210"}
	assertMasked := func(t *testing.T, where, text string) {
		t.Helper()
		for _, leak := range leaks {
			assert.NotContains(t, text, leak, "%s shows the email or mobile unmasked", where)
		}
	}

	t.Run("console", func(t *testing.T) {
		base := startTestConsole(t, e, "ops", "correct horse battery")
		c, csrf := consoleSession(t, base, "ops", "correct horse battery")
		awaitConsole(t, c, base+"/failures", "echo-1")

		pages := []string{"/", "/failures", "/failures?view=groups", "/failures?reason=rejected&view=groups",
			"/failure?id=echo-1", "/failure/repair?id=echo-1", "/replay?command=echo-1", "/replay?command=echo-1&all=1",
			"/discard?command=echo-1"}
		for _, p := range pages {
			resp, page := consoleGet(t, c, base+p)
			require.Equal(t, http.StatusOK, resp.StatusCode, p)
			assertMasked(t, p, page)
		}
		_, page := consoleGet(t, c, base+"/failure?id=echo-1")
		assert.Contains(t, page, "r***@example.com exists already (mobile ***10, also known as ***10)", "the message, masked")

		// Only the explicit unmask shows them.
		_, page = consolePost(t, c, base+"/failure/unmask", url.Values{"csrf": {csrf}, "id": {"echo-1"}})
		assert.Contains(t, page, "ravi.kumar@example.com", "the unmask shows the command")

		// A refused repair shows the form again; a replay runs as a job.
		resp, page := consolePost(t, c, base+"/failure/repair", url.Values{"csrf": {csrf}, "id": {"echo-1"}, "name": {"Ravi K"}, "email": {"nope"}})
		require.Equal(t, http.StatusUnprocessableEntity, resp.StatusCode)
		assertMasked(t, "the repair form shown again", page)
		resp, _ = consolePost(t, c, base+"/replay", url.Values{"csrf": {csrf}, "command": {"echo-1"}, "all": {"1"}, "rate": {"100"}})
		require.Equal(t, http.StatusSeeOther, resp.StatusCode)
		job := resp.Header.Get("Location")
		awaitConsole(t, c, base+job, "data-over=\"true\"")
		_, page = consoleGet(t, c, base+job)
		assertMasked(t, job, page)
		_, page = consoleGet(t, c, base+job+"/events")
		assertMasked(t, job+"/events", page)
		_, page = consoleGet(t, c, base+"/activity")
		assertMasked(t, "/activity", page)
	})

	t.Run("command line", func(t *testing.T) {
		for _, args := range [][]string{
			{"failures"},
			{"failures", "--json"},
			{"failures", "--command-id", "echo-1"},
			{"failures", "--history"},
			{"failures", "--history", "--json"},
			{"failures", "--history", "--command-id", "echo-1"},
			{"replay", "--dry-run", "--all"},
			{"replay", "--dry-run", "--all", "--history", "--command-id", "echo-1"},
		} {
			out, errOut, err := e.cli(t, args...)
			require.NoError(t, err, "%v", args)
			assertMasked(t, strings.Join(args, " "), out+errOut)
		}
		out, _, err := e.cli(t, "failures", "--command-id", "echo-1")
		require.NoError(t, err)
		assert.Contains(t, out, "r***@example.com exists already (mobile ***10, also known as ***10)", "the message, masked")
		out, _, err = e.cli(t, "failures", "--command-id", "echo-1", "--unmask")
		require.NoError(t, err)
		assert.Contains(t, out, "ravi.kumar@example.com exists already", "--unmask shows them")
	})
}
