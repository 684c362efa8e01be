package pik_test

import (
	"context"
	"fmt"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/contactrelay/contactrelay/internal/clients/pik"
	"github.com/contactrelay/contactrelay/internal/clients/provider"
	"github.com/contactrelay/contactrelay/internal/sandbox"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestTokenCachedAcrossCalls(t *testing.T) {
	s := newStandIn(t, &standIn{})
	c := newClient(t, s.URL, nil)
	for i := range 20 {
		cmd := testCommand()
		cmd.CommandID = fmt.Sprintf("cmd-%d", i)
		_, err := c.Create(context.Background(), cmd)
		require.NoError(t, err, "create %d should succeed", i)
		_, _, err = c.Lookup(context.Background(), cmd)
		require.NoError(t, err, "lookup %d should succeed", i)
	}
	assert.Equal(t, int32(1), s.tokens.Load(), "40 calls should share one token request")
	ok, err := c.TokenState()
	assert.True(t, ok, "the token request succeeded")
	assert.NoError(t, err, "no token error")
}

func TestTokenExpiry(t *testing.T) {
	start := newClock().Now()
	tests := []struct {
		name string
		data string
		// stale is how long after issue the token must have been replaced
		// (RefreshBefore, one minute, ahead of its expiry); it is still
		// used a second before that.
		stale time.Duration
	}{
		{name: "expiresIn seconds", data: `{"token":"%s","expiresIn":600}`, stale: 9 * time.Minute},
		{name: "expiresIn as a string", data: `{"accessToken":"%s","expiresIn":"600"}`, stale: 9 * time.Minute},
		{name: "JWT exp claim", data: `{"access_token":"` + jwt(start.Add(20*time.Minute)) + `","n":"%s"}`, stale: 19 * time.Minute},
		{name: "default of 30 minutes", data: `{"token":"%s"}`, stale: 29 * time.Minute},
		{name: "data is the token", data: `"%s"`, stale: 29 * time.Minute},
		{name: "short lifetime refreshes at half life", data: `{"token":"%s","expiresIn":60}`, stale: 30 * time.Second},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			clk := newClock()
			s := newStandIn(t, &standIn{Token: func(w http.ResponseWriter, r *http.Request, n int) {
				sandbox.WriteReply(w, 200, `{"code":200,"message":"success","data":`+fmt.Sprintf(tt.data, fmt.Sprintf("tok-%d", n))+`}`)
			}})
			c := newClient(t, s.URL, clk.Now)

			require.NoError(t, c.Authenticate(context.Background()), "the first token request")
			require.Equal(t, int32(1), s.tokens.Load(), "one token request at start")

			clk.Advance(tt.stale - time.Second)
			_, err := c.Create(context.Background(), testCommand())
			require.NoError(t, err, "create with the cached token")
			assert.Equal(t, int32(1), s.tokens.Load(), "the token is still fresh a second before its refresh time")

			clk.Advance(time.Second)
			_, err = c.Create(context.Background(), testCommand())
			require.NoError(t, err, "create with a refreshed token")
			assert.Equal(t, int32(2), s.tokens.Load(), "the token is replaced ahead of its expiry")
		})
	}
}

func TestTokenRefreshOn401(t *testing.T) {
	tests := []struct {
		name        string
		create      func(w http.ResponseWriter, r *http.Request)
		wantErr     bool
		wantTokens  int32
		wantCreates int32
	}{
		{
			name: "HTTP 401 on a stale token",
			create: func(w http.ResponseWriter, r *http.Request) {
				if r.Header.Get("Authorization") == "Bearer tok-1" {
					sandbox.WriteReply(w, 401, `{"code":401,"message":"token expired"}`)
					return
				}
				echoCreate(w, r)
			},
			wantTokens: 2, wantCreates: 2,
		},
		{
			name: "body code 401 on a stale token",
			create: func(w http.ResponseWriter, r *http.Request) {
				if r.Header.Get("Authorization") == "Bearer tok-1" {
					sandbox.WriteReply(w, 200, `{"code":401,"message":"token invalid"}`)
					return
				}
				echoCreate(w, r)
			},
			wantTokens: 2, wantCreates: 2,
		},
		{
			name:        "401 again after the refresh is permanent",
			create:      sandbox.Reply(401, `{"code":401,"message":"token invalid"}`),
			wantErr:     true,
			wantTokens:  2,
			wantCreates: 2,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newStandIn(t, &standIn{Create: tt.create})
			contact, err := newClient(t, s.URL, nil).Create(context.Background(), testCommand())
			if tt.wantErr {
				pe := asProviderError(t, err)
				assert.Equal(t, provider.Permanent, pe.Class, "a second 401 is permanent")
				assert.Equal(t, http.StatusUnauthorized, pe.HTTPStatus, "HTTP status")
			} else {
				require.NoError(t, err, "the retry with a new token should succeed")
				assert.NotEmpty(t, contact.ID, "a contact id")
				creates := s.requests("/api/v1/contact/create")
				require.Len(t, creates, 2, "two create requests")
				assert.Equal(t, "Bearer tok-2", creates[1].Header.Get("Authorization"), "the retry uses the new token")
			}
			assert.Equal(t, tt.wantTokens, s.tokens.Load(), "token requests")
			assert.Equal(t, tt.wantCreates, s.creates.Load(), "create requests: the call is retried once")
		})
	}
}

func TestTokenConcurrentCallersShareOneFetch(t *testing.T) {
	release := make(chan struct{})
	s := newStandIn(t, &standIn{Token: func(w http.ResponseWriter, r *http.Request, n int) {
		<-release // in flight until every caller has asked
		sandbox.WriteReply(w, 200, fmt.Sprintf(`{"code":200,"data":{"token":"tok-%d"}}`, n))
	}})
	// The token request waits for the test, not for a timeout.
	c, err := pik.New(pik.Config{BaseURL: s.URL, AppID: testAppID, AppSecret: testSecret, Timeout: 30 * time.Second})
	require.NoError(t, err)

	const callers = 50
	var asked, wg sync.WaitGroup
	asked.Add(callers)
	errs := make(chan error, callers)
	for i := range callers {
		wg.Go(func() {
			asked.Done()
			cmd := testCommand()
			cmd.CommandID = fmt.Sprintf("cmd-%d", i)
			_, err := c.Create(context.Background(), cmd)
			errs <- err
		})
	}
	asked.Wait()
	require.Eventually(t, func() bool { return s.tokens.Load() > 0 }, 10*time.Second, time.Millisecond, "a token request reaches PIK")
	close(release)
	wg.Wait()
	close(errs)
	for err := range errs {
		assert.NoError(t, err, "every concurrent create should succeed")
	}
	assert.Equal(t, int32(1), s.tokens.Load(), "50 concurrent callers should wait for one token request")
	assert.Equal(t, int32(callers), s.creates.Load(), "every caller creates once")
}

func TestTokenWaiterGivesUp(t *testing.T) {
	release := make(chan struct{})
	s := newStandIn(t, &standIn{Token: func(w http.ResponseWriter, r *http.Request, n int) {
		<-release
		sandbox.WriteReply(w, 200, fmt.Sprintf(`{"code":200,"data":{"token":"tok-%d"}}`, n))
	}})
	c := newClient(t, s.URL, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	_, err := c.Create(ctx, testCommand())
	pe := asProviderError(t, err)
	assert.Equal(t, provider.Transient, pe.Class, "giving up on the token is transient: nothing was sent")
	assert.Equal(t, "token", pe.Op, "op")
	assert.Equal(t, "timeout", pe.Code, "code")

	close(release)
	_, err = c.Create(context.Background(), testCommand())
	require.NoError(t, err, "the token request the first caller started still serves the next")
	assert.Equal(t, int32(1), s.tokens.Load(), "one token request in all")
}

func TestTokenFailures(t *testing.T) {
	tests := []struct {
		name        string
		token       func(http.ResponseWriter, *http.Request, int)
		baseURL     string
		wantClass   provider.Class
		wantCode    string
		wantMessage string
		wantWait    time.Duration
	}{
		{
			name:        "HTTP 401",
			token:       tokenReply(401, `{"code":401,"message":"invalid appId or appSecret"}`),
			wantClass:   provider.Permanent,
			wantCode:    "401",
			wantMessage: "PIK rejected the app credentials: invalid appId or appSecret",
		},
		{
			name:        "HTTP 403 without a body",
			token:       tokenReply(403, ``),
			wantClass:   provider.Permanent,
			wantMessage: "PIK rejected the app credentials: Forbidden",
		},
		{
			name:        "body code refusal",
			token:       tokenReply(200, `{"code":10002,"message":"app secret mismatch"}`),
			wantClass:   provider.Permanent,
			wantCode:    "10002",
			wantMessage: "PIK rejected the app credentials: app secret mismatch",
		},
		{
			name:      "HTTP 503",
			token:     tokenReply(503, `{"code":503,"message":"maintenance"}`, "Retry-After", "5"),
			wantClass: provider.Transient,
			wantCode:  "503",
			wantWait:  5 * time.Second,
		},
		{
			name:      "HTTP 429",
			token:     tokenReply(429, ``),
			wantClass: provider.Transient,
		},
		{
			name:      "body code 500",
			token:     tokenReply(200, `{"code":500,"message":"busy"}`),
			wantClass: provider.Transient,
			wantCode:  "500",
		},
		{
			name:      "reply without a token",
			token:     tokenReply(200, `{"code":200,"data":{"jwt":"x"}}`),
			wantClass: provider.Transient,
			wantCode:  "200",
		},
		{
			name:      "unparseable reply",
			token:     tokenReply(200, `<html>`),
			wantClass: provider.Transient,
		},
		{
			name:      "timeout",
			token:     func(w http.ResponseWriter, r *http.Request, _ int) { sandbox.Hang(w, r) },
			wantClass: provider.Transient,
			wantCode:  "timeout",
		},
		{
			name:      "connection refused",
			baseURL:   sandbox.ClosedURL(),
			wantClass: provider.Transient,
			wantCode:  "connection",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			base := tt.baseURL
			var s *standIn
			if base == "" {
				s = newStandIn(t, &standIn{Token: tt.token})
				base = s.URL
			}
			c := newClient(t, base, nil)
			_, err := c.Create(context.Background(), testCommand())
			pe := asProviderError(t, err)
			assert.Equal(t, tt.wantClass, pe.Class, "class of %v", err)
			assert.Equal(t, "token", pe.Op, "op")
			assert.Equal(t, tt.wantCode, pe.Code, "code")
			if tt.wantMessage != "" {
				assert.Equal(t, tt.wantMessage, pe.Message, "message")
			}
			assert.Equal(t, tt.wantWait, pe.RetryAfter, "retry after")
			assert.NotContains(t, err.Error(), testSecret, "the app secret must never be in an error")
			if s != nil {
				assert.Zero(t, s.creates.Load(), "no create without a token")
			}
			ok, lastErr := c.TokenState()
			assert.False(t, ok, "the token state reports the failure")
			assert.ErrorIs(t, lastErr, err, "the token state holds the last error")
		})
	}
}

func TestTokenFailedRefreshKeepsValidToken(t *testing.T) {
	clk := newClock()
	s := newStandIn(t, &standIn{Token: func(w http.ResponseWriter, r *http.Request, n int) {
		if n == 1 {
			sandbox.WriteReply(w, 200, `{"code":200,"data":{"token":"tok-1","expiresIn":600}}`)
			return
		}
		sandbox.WriteReply(w, 503, `{"code":503,"message":"down"}`)
	}})
	c := newClient(t, s.URL, clk.Now)
	require.NoError(t, c.Authenticate(context.Background()), "the first token request")

	clk.Advance(9*time.Minute + 30*time.Second) // in the refresh window, not expired
	_, err := c.Create(context.Background(), testCommand())
	require.NoError(t, err, "a failed refresh keeps using the token until it expires")
	ok, lastErr := c.TokenState()
	assert.False(t, ok, "the failed refresh is reported")
	assert.Error(t, lastErr, "the refresh error is kept")

	clk.Advance(time.Minute) // expired
	_, err = c.Create(context.Background(), testCommand())
	pe := asProviderError(t, err)
	assert.Equal(t, provider.Transient, pe.Class, "with no usable token, the refresh failure is the answer")
	assert.Equal(t, "token", pe.Op, "op")
}
