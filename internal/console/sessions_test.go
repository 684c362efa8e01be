package console

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/contactrelay/contactrelay/internal/fakeclock"
	"github.com/contactrelay/contactrelay/internal/provision"
)

// keyFile writes a session key file.
func keyFile(t testing.TB, key string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "session-key")
	require.NoError(t, os.WriteFile(path, []byte(key+"\n"), 0o600))
	return path
}

// another serves a second console on f's JetStream, as a replica or a
// restarted console would.
func (f *fixture) another(t testing.TB, cfg Config) *httptest.Server {
	t.Helper()
	cfg.JS = f.js
	srv, err := New(cfg)
	require.NoError(t, err)
	web := httptest.NewServer(srv.Handler())
	t.Cleanup(web.Close)
	return web
}

// onto sends c's cookies for one console to another: a browser sends the
// same cookie to every port of a host, as it does behind one load
// balancer.
func onto(t testing.TB, c *http.Client, from, to string) {
	t.Helper()
	fu, err := url.Parse(from)
	require.NoError(t, err)
	tu, err := url.Parse(to)
	require.NoError(t, err)
	c.Jar.SetCookies(tu, c.Jar.Cookies(fu))
}

// A session signed with the key of CONSOLE_SESSION_KEY_FILE is valid on a
// restarted console and on a second replica sharing the key, not on one
// with another key; signing out on one replica ends it on every other,
// through the shared bucket.
func TestSessionsSurviveRestartsAndReplicas(t *testing.T) {
	users := usersFile(t, "", "ana", "ana's password")
	key := keyFile(t, "0123456789abcdef0123456789abcdef-shared")
	f := newFixture(t, Config{UsersFile: users, Operators: []string{"ana"}, SessionKeyFile: key})
	kv, err := provision.EnsureConsoleSessions(context.Background(), f.js, 1, nil)
	require.NoError(t, err)
	f.srv.sessions.kv = kv

	c := f.client(t)
	f.signIn(t, c, "ana", "ana's password")
	stolen := f.client(t) // the same cookie, kept after sign-out
	stolen.Jar.SetCookies(mustURL(t, f.web.URL), c.Jar.Cookies(mustURL(t, f.web.URL)))

	replica := f.another(t, Config{UsersFile: users, Operators: []string{"ana"}, SessionKeyFile: key, Revocations: kv})
	onto(t, c, f.web.URL, replica.URL)
	resp, page := get(t, c, replica.URL+"/failures")
	require.Equal(t, http.StatusOK, resp.StatusCode, "the session is valid on a replica sharing the key")
	assert.Contains(t, page, "ana")

	stranger := f.another(t, Config{UsersFile: users, SessionKeyFile: keyFile(t, "another key, another key, another key")})
	onto(t, c, f.web.URL, stranger.URL)
	resp, _ = get(t, c, stranger.URL+"/failures")
	assert.Equal(t, http.StatusSeeOther, resp.StatusCode, "a console with another key signs it in nowhere")
	noKey := f.another(t, Config{UsersFile: users})
	onto(t, c, f.web.URL, noKey.URL)
	resp, _ = get(t, c, noKey.URL+"/failures")
	assert.Equal(t, http.StatusSeeOther, resp.StatusCode, "nor does a console with a key of its own")

	// Sign out on the replica: the first console refuses the session too.
	_, page = get(t, c, replica.URL+"/failures")
	resp, _ = post(t, c, replica.URL+"/logout", url.Values{"csrf": {csrfOf(t, page)}})
	require.Equal(t, http.StatusSeeOther, resp.StatusCode)
	onto(t, stolen, f.web.URL, replica.URL)
	for _, base := range []string{f.web.URL, replica.URL} {
		resp, _ = get(t, stolen, base+"/failures")
		assert.Equal(t, http.StatusSeeOther, resp.StatusCode, "%s: a session signed out anywhere is over everywhere", base)
	}
	e, err := kv.Get(context.Background(), sessionOfJar(t, stolen, f.web.URL).Nonce)
	require.NoError(t, err, "the sign-out is in the bucket")
	assert.Equal(t, "ana", string(e.Value()))
}

// A session ends when unused for CONSOLE_SESSION_IDLE, and in any case
// CONSOLE_SESSION_MAX after its sign-in.
func TestSessionsExpireIdleAndAbsolute(t *testing.T) {
	clock := fakeclock.New(time.Now()) // the cookie jar drops a cookie whose expiry has passed in real time
	f := newFixture(t, Config{User: "ops", Password: "correct horse", SessionIdle: 30 * time.Minute, SessionMax: 2 * time.Hour, Now: clock.Now})

	c := f.client(t)
	f.signIn(t, c, "ops", "correct horse")
	clock.Advance(31 * time.Minute)
	resp, _ := get(t, c, f.web.URL+"/activity")
	assert.Equal(t, http.StatusSeeOther, resp.StatusCode, "idle for 31 minutes: over")

	c = f.client(t)
	f.signIn(t, c, "ops", "correct horse")
	for i := range 4 { // used every 25 minutes: alive for 1h40m, longer than idle
		clock.Advance(25 * time.Minute)
		resp, _ = get(t, c, f.web.URL+"/activity")
		require.Equal(t, http.StatusOK, resp.StatusCode, "a session in use stays: %d", i)
	}
	clock.Advance(25 * time.Minute) // 2h05m after sign-in
	resp, _ = get(t, c, f.web.URL+"/activity")
	assert.Equal(t, http.StatusSeeOther, resp.StatusCode, "past its absolute expiry, however used")
}

func TestSessionKeyFileMustHoldAKey(t *testing.T) {
	_, err := New(Config{JS: fakeJS{}, User: "ops", Password: "correct horse", SessionKeyFile: keyFile(t, "short")})
	assert.ErrorContains(t, err, "fewer than 32")
	_, err = New(Config{JS: fakeJS{}, User: "ops", Password: "correct horse", SessionKeyFile: filepath.Join(t.TempDir(), "missing")})
	assert.ErrorContains(t, err, "CONSOLE_SESSION_KEY_FILE")
}

func mustURL(t testing.TB, s string) *url.URL {
	t.Helper()
	u, err := url.Parse(s)
	require.NoError(t, err)
	return u
}

// sessionOfJar decodes the session a client's cookie holds (its payload,
// unchecked).
func sessionOfJar(t testing.TB, c *http.Client, base string) session {
	t.Helper()
	for _, ck := range c.Jar.Cookies(mustURL(t, base)) {
		if ck.Name != cookieName {
			continue
		}
		p, _, _ := strings.Cut(ck.Value, ".")
		b, err := base64.RawURLEncoding.DecodeString(p)
		require.NoError(t, err)
		var s session
		require.NoError(t, json.Unmarshal(b, &s))
		return s
	}
	t.Fatal("no session cookie")
	return session{}
}
