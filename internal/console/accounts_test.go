package console

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/netip"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/crypto/bcrypt"
)

// usersFile writes htpasswd lines for user/password pairs (bcrypt, at the
// lowest cost to keep tests quick) to a file in the test's folder.
func usersFile(t testing.TB, path string, pairs ...string) string {
	t.Helper()
	if path == "" {
		path = filepath.Join(t.TempDir(), "users")
	}
	var b strings.Builder
	b.WriteString("# console users\n\n")
	for i := 0; i+1 < len(pairs); i += 2 {
		h, err := bcrypt.GenerateFromPassword([]byte(pairs[i+1]), bcrypt.MinCost)
		require.NoError(t, err)
		fmt.Fprintf(&b, "%s:%s\n", pairs[i], h)
	}
	require.NoError(t, os.WriteFile(path, []byte(b.String()), 0o600))
	return path
}

// signedIn signs c in as user and returns a page's CSRF token.
func (f *fixture) signIn(t testing.TB, c *http.Client, user, password string) string {
	t.Helper()
	_, login := get(t, c, f.web.URL+"/login")
	resp, body := post(t, c, f.web.URL+"/login", url.Values{"user": {user}, "password": {password}, "csrf": {csrfOf(t, login)}})
	require.Equal(t, http.StatusSeeOther, resp.StatusCode, "%s signs in: %s", user, body)
	_, page := get(t, c, f.web.URL+"/activity")
	return csrfOf(t, page)
}

// actionButtons are the ids and paths of the pages' action buttons and
// links.
var actionButtons = []string{`id="replay-one"`, `id="repair"`, `id="discard-one"`, `id="unmask"`, `id="replay-picked"`, `id="discard-picked"`, `href="/replay`, `href="/discard`, `href="/failure/repair`}

// A users file gives several accounts: operators (CONSOLE_OPERATORS) act;
// viewers read every page, see no action button, and are refused (403)
// an action posted directly and the action forms; CONSOLE_READ_ONLY makes
// everyone a viewer, the single account too.
func TestViewersReadAndOperatorsAct(t *testing.T) {
	file := usersFile(t, "", "ana", "ana's password", "vic", "vic's password")
	for _, tc := range []struct {
		name     string
		readOnly bool
	}{{"roles", false}, {"read-only", true}} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t, Config{UsersFile: file, Operators: []string{"ana"}, User: "ops", Password: "correct horse", ReadOnly: tc.readOnly})
			seed(t, f.js, 3, exhausted)
			f.srv.follow.Load(context.Background())

			viewers := []string{"vic"}
			if tc.readOnly {
				viewers = []string{"vic", "ana", "ops"}
			}
			passwords := map[string]string{"vic": "vic's password", "ana": "ana's password", "ops": "correct horse"}
			for _, user := range viewers {
				c := f.client(t)
				token := f.signIn(t, c, user, passwords[user])
				for _, u := range []string{"/", "/failures", "/failures?view=groups", "/failure?id=cmd-000001", "/activity"} {
					resp, page := get(t, c, f.web.URL+u)
					require.Equal(t, http.StatusOK, resp.StatusCode, "%s reads %s", user, u)
					for _, b := range actionButtons {
						assert.NotContains(t, page, b, "%s sees no action button on %s", user, u)
					}
				}
				_, page := get(t, c, f.web.URL+"/failure?id=cmd-000001")
				assert.Contains(t, page, "cmd-000001", "a viewer reads the failure")
				assert.Contains(t, page, "p***@example.com", "masked")
				for _, u := range []string{"/replay?command=cmd-000001", "/discard?command=cmd-000001", "/failure/repair?id=cmd-000001"} {
					resp, _ := get(t, c, f.web.URL+u)
					assert.Equal(t, http.StatusForbidden, resp.StatusCode, "%s opens no action form: %s", user, u)
				}
				for _, a := range []struct {
					path string
					form url.Values
				}{
					{"/discard", url.Values{"command": {"cmd-000001"}}},
					{"/replay", url.Values{"command": {"cmd-000001"}, "rate": {"10"}}},
					{"/failure/unmask", url.Values{"id": {"cmd-000001"}}},
					{"/failure/repair", url.Values{"id": {"cmd-000001"}, "name": {"X"}}},
					{"/jobs/1/cancel", url.Values{}},
				} {
					a.form.Set("csrf", token)
					resp, body := post(t, c, f.web.URL+a.path, a.form)
					assert.Equal(t, http.StatusForbidden, resp.StatusCode, "%s posting %s directly is refused", user, a.path)
					assert.Contains(t, body, "only an operator may")
					if tc.readOnly {
						assert.Contains(t, body, "CONSOLE_READ_ONLY")
					}
				}
			}
			if tc.readOnly {
				return
			}
			for _, user := range []string{"ana", "ops"} {
				c := f.client(t)
				f.signIn(t, c, user, passwords[user])
				_, page := get(t, c, f.web.URL+"/failure?id=cmd-000001")
				assert.Contains(t, page, `id="discard-one"`, "%s, an operator, sees the actions", user)
				assert.Contains(t, page, `id="unmask"`)
				resp, _ := get(t, c, f.web.URL+"/discard?command=cmd-000001")
				assert.Equal(t, http.StatusOK, resp.StatusCode, "%s opens the discard form", user)
			}
			c := f.client(t)
			token := f.signIn(t, c, "ana", "ana's password")
			resp, body := post(t, c, f.web.URL+"/discard", url.Values{"command": {"cmd-000001"}, "csrf": {token}})
			require.Equal(t, http.StatusOK, resp.StatusCode, body)
			assert.Contains(t, body, "1 of 1 discarded", "an operator discards")
		})
	}
}

// The users file is re-read when it changes: a user added signs in, a
// user taken out is signed out; a wrong password and an unknown user are
// refused alike.
func TestUsersFileIsReReadWhenItChanges(t *testing.T) {
	file := usersFile(t, "", "ana", "ana's password")
	f := newFixture(t, Config{UsersFile: file})
	c := f.client(t)
	f.signIn(t, c, "ana", "ana's password")

	for _, tc := range [][2]string{{"ana", "wrong"}, {"bob", "bob's password"}} {
		cc := f.client(t)
		_, login := get(t, cc, f.web.URL+"/login")
		resp, body := post(t, cc, f.web.URL+"/login", url.Values{"user": {tc[0]}, "password": {tc[1]}, "csrf": {csrfOf(t, login)}})
		assert.Equal(t, http.StatusUnauthorized, resp.StatusCode, "%s/%s", tc[0], tc[1])
		assert.Contains(t, body, "wrong user or password")
	}

	usersFile(t, file, "bob", "bob's password")
	// A file rewritten within the file system's time granularity keeps its
	// time: move it forward, as a later write would.
	later := time.Now().Add(time.Minute)
	require.NoError(t, os.Chtimes(file, later, later))
	f.signIn(t, f.client(t), "bob", "bob's password")
	resp, _ := get(t, c, f.web.URL+"/failures")
	assert.Equal(t, http.StatusSeeOther, resp.StatusCode, "ana, taken out of the file, is signed out")

	require.NoError(t, os.WriteFile(file, []byte("bob:not-a-hash\n"), 0o600))
	later = later.Add(time.Minute)
	require.NoError(t, os.Chtimes(file, later, later))
	cc := f.client(t)
	f.signIn(t, cc, "bob", "bob's password") // a broken file keeps the users read before
}

func TestUsersFileMustHoldBcryptHashes(t *testing.T) {
	for name, content := range map[string]string{
		"apr1 (htpasswd without -B)": "ana:$apr1$abc$def\n",
		"no hash":                    "ana\n",
	} {
		t.Run(name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "users")
			require.NoError(t, os.WriteFile(path, []byte(content), 0o600))
			_, err := New(Config{JS: fakeJS{}, UsersFile: path})
			require.Error(t, err)
			assert.Contains(t, err.Error(), "line 1")
			assert.NotContains(t, err.Error(), "$apr1$abc$def", "a hash is never shown")
		})
	}
	_, err := New(Config{JS: fakeJS{}, UsersFile: filepath.Join(t.TempDir(), "missing")})
	assert.ErrorContains(t, err, "CONSOLE_USERS_FILE")
}

// Behind an authenticating proxy, the user and groups come from its
// headers, believed only from the trusted proxies: a group of
// CONSOLE_OPERATOR_GROUPS makes an operator, others are viewers; the same
// headers from any other address sign no one in.
func TestProxyHeadersFromTrustedProxiesOnly(t *testing.T) {
	proxied := func(t *testing.T, trusted string) *fixture {
		f := newFixture(t, Config{ProxyUserHeader: "X-Forwarded-User", ProxyGroupsHeader: "X-Forwarded-Groups",
			TrustedProxies: []netip.Prefix{netip.MustParsePrefix(trusted)}, OperatorGroups: []string{"payments-ops"}})
		seed(t, f.js, 2, exhausted)
		f.srv.follow.Load(context.Background())
		return f
	}
	req := func(t *testing.T, c *http.Client, method, u string, form url.Values, user, groups string) (*http.Response, string) {
		t.Helper()
		var body *strings.Reader
		if form != nil {
			body = strings.NewReader(form.Encode())
		} else {
			body = strings.NewReader("")
		}
		r, err := http.NewRequest(method, u, body)
		require.NoError(t, err)
		if form != nil {
			r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		}
		r.Header.Set("X-Forwarded-User", user)
		r.Header.Set("X-Forwarded-Groups", groups)
		resp, err := c.Do(r)
		require.NoError(t, err)
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		return resp, string(b)
	}

	t.Run("trusted", func(t *testing.T) {
		f := proxied(t, "127.0.0.0/8")
		c := f.client(t)
		resp, page := req(t, c, http.MethodGet, f.web.URL+"/failure?id=cmd-000001", nil, "vic@example.com", "everyone")
		require.Equal(t, http.StatusOK, resp.StatusCode)
		assert.Contains(t, page, "vic@example.com")
		assert.Contains(t, page, "(viewer)")
		assert.NotContains(t, page, `id="discard-one"`)
		resp, _ = req(t, c, http.MethodPost, f.web.URL+"/discard", url.Values{"command": {"cmd-000001"}, "csrf": {csrfOf(t, page)}}, "vic@example.com", "everyone")
		assert.Equal(t, http.StatusForbidden, resp.StatusCode, "a viewer's action is refused")

		c = f.client(t)
		resp, page = req(t, c, http.MethodGet, f.web.URL+"/failure?id=cmd-000001", nil, "ana@example.com", "everyone, payments-ops")
		require.Equal(t, http.StatusOK, resp.StatusCode)
		assert.Contains(t, page, "(operator)")
		resp, body := req(t, c, http.MethodPost, f.web.URL+"/discard", url.Values{"command": {"cmd-000001"}, "csrf": {csrfOf(t, page)}}, "ana@example.com", "payments-ops")
		require.Equal(t, http.StatusOK, resp.StatusCode, body)
		assert.Contains(t, body, "1 of 1 discarded")

		// The session of one user is not another's: a request naming
		// another user gets a session of its own, and an action it posts
		// with the first one's token is refused.
		resp, _ = req(t, c, http.MethodPost, f.web.URL+"/discard", url.Values{"command": {"cmd-000002"}, "csrf": {csrfOf(t, page)}}, "mallory", "payments-ops")
		assert.Equal(t, http.StatusForbidden, resp.StatusCode)
	})
	t.Run("untrusted", func(t *testing.T) {
		f := proxied(t, "10.0.0.0/8")
		resp, page := req(t, f.client(t), http.MethodGet, f.web.URL+"/failures", nil, "ana@example.com", "payments-ops")
		assert.Equal(t, http.StatusUnauthorized, resp.StatusCode, "headers from an address not trusted sign no one in")
		assert.NotContains(t, page, "cmd-000001")
	})
}

// A users file or a proxy header is authentication too: the console may
// listen beyond loopback with either alone; a proxy header needs trusted
// addresses.
func TestConfigTakesAccountsForAuthentication(t *testing.T) {
	trusted := []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}
	for _, tc := range []struct {
		name string
		cfg  Config
		want string
	}{
		{"a users file anywhere", Config{UsersFile: "users", Addr: "0.0.0.0:8081"}, ""},
		{"a proxy anywhere", Config{ProxyUserHeader: "X-Forwarded-User", TrustedProxies: trusted, Addr: "0.0.0.0:8081"}, ""},
		{"a proxy trusted from nowhere", Config{ProxyUserHeader: "X-Forwarded-User", Addr: "0.0.0.0:8081"}, "CONSOLE_TRUSTED_PROXIES"},
		{"accounts and no authentication", Config{UsersFile: "users", NoAuth: true, Addr: "127.0.0.1:8081"}, "no authentication asked for"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.cfg.JS = fakeJS{}
			err := tc.cfg.Validate()
			if tc.want == "" {
				assert.NoError(t, err)
			} else {
				assert.ErrorContains(t, err, tc.want)
			}
		})
	}
}
