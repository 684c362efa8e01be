package console

import (
	"net/http"
	"net/netip"
	"net/url"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/contactrelay/contactrelay/internal/fakeclock"
)

// Wrong sign-ins shut out the account-and-address pair that makes them,
// then the address: 20 wrong passwords for one account do not stop
// another account from the same address, nor the right password from
// another address; the guesser waits longer after each guess. The
// address comes from X-Forwarded-For only through a trusted proxy.
func TestSignInThrottleSlowsTheGuesserOnly(t *testing.T) {
	clock := fakeclock.New(time.Now())
	users := usersFile(t, "", "ana", "ana's password", "vic", "vic's password")
	f := newFixture(t, Config{UsersFile: users, TrustedProxies: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}, Now: clock.Now})
	signIn := func(user, password, from string) *http.Response {
		t.Helper()
		c := f.client(t)
		_, login := get(t, c, f.web.URL+"/login")
		resp, _ := post(t, c, f.web.URL+"/login", url.Values{"user": {user}, "password": {password}, "csrf": {csrfOf(t, login)}}, "X-Forwarded-For", from+", 127.0.0.1")
		return resp
	}
	const guesser, elsewhere = "203.0.113.9", "198.51.100.4"

	var statuses []int
	for range 20 {
		statuses = append(statuses, signIn("ana", "guess", guesser).StatusCode)
	}
	for i, s := range statuses {
		want := http.StatusUnauthorized
		if i >= pairFree {
			want = http.StatusTooManyRequests
		}
		assert.Equal(t, want, s, "guess %d", i+1)
	}
	resp := signIn("ana", "ana's password", guesser)
	assert.Equal(t, http.StatusTooManyRequests, resp.StatusCode, "the pair is shut out, the right password unchecked")
	assert.Equal(t, "1", resp.Header.Get("Retry-After"))
	assert.Equal(t, http.StatusSeeOther, signIn("ana", "ana's password", elsewhere).StatusCode, "the owner signs in from elsewhere")
	assert.Equal(t, http.StatusSeeOther, signIn("vic", "vic's password", guesser).StatusCode, "another account signs in from the guesser's address")

	// The guesser waits longer after each guess: 1 s, then 2 s.
	clock.Advance(time.Second)
	assert.Equal(t, http.StatusUnauthorized, signIn("ana", "guess", guesser).StatusCode, "checked again after a second")
	assert.Equal(t, "2", signIn("ana", "guess", guesser).Header.Get("Retry-After"), "and then shut out for two")

	// An address guessing at many accounts is shut out whole.
	for i := range addressFree {
		signIn("nobody-"+string(rune('a'+i%26))+string(rune('a'+i/26)), "guess", "192.0.2.77")
	}
	assert.Equal(t, http.StatusTooManyRequests, signIn("vic", "vic's password", "192.0.2.77").StatusCode, "an address past its free guesses")
	clock.Advance(forgetAfter)
	assert.Equal(t, http.StatusSeeOther, signIn("vic", "vic's password", "192.0.2.77").StatusCode, "forgotten in time")
}

func TestClientAddrBelievesTrustedProxiesOnly(t *testing.T) {
	a := &accounts{cfg: &Config{TrustedProxies: []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}}}
	for _, tc := range []struct{ remote, xff, want string }{
		{"192.0.2.1:5000", "203.0.113.9", "192.0.2.1"},           // not a proxy: its header is not believed
		{"10.0.0.2:5000", "203.0.113.9", "203.0.113.9"},          // a proxy names the client
		{"10.0.0.2:5000", "6.6.6.6, 203.0.113.9", "203.0.113.9"}, // the client's own header is not believed
		{"10.0.0.2:5000", "203.0.113.9, 10.0.0.7", "203.0.113.9"},
		{"10.0.0.2:5000", "", "10.0.0.2"},
		{"10.0.0.2:5000", "not-an-address", "10.0.0.2"},
	} {
		r := &http.Request{RemoteAddr: tc.remote, Header: http.Header{}}
		if tc.xff != "" {
			r.Header.Set("X-Forwarded-For", tc.xff)
		}
		require.Equal(t, tc.want, a.clientAddr(r), "%s with X-Forwarded-For %q", tc.remote, tc.xff)
	}
}
