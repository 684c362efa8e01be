package pik_test

import (
	"errors"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/contactrelay/contactrelay/internal/clients/pik"
	"github.com/contactrelay/contactrelay/internal/clients/provider"
	"github.com/contactrelay/contactrelay/internal/sandbox"
)

// tokenCalls records what OnTokenRequest is told.
type tokenCalls struct {
	mu   sync.Mutex
	errs []error
}

func (tc *tokenCalls) record(_ time.Duration, err error) {
	tc.mu.Lock()
	defer tc.mu.Unlock()
	tc.errs = append(tc.errs, err)
}

// results returns how many calls were told of, by result.
func (tc *tokenCalls) results() map[string]int {
	tc.mu.Lock()
	defer tc.mu.Unlock()
	out := map[string]int{}
	for _, err := range tc.errs {
		var pe *provider.Error
		switch {
		case err == nil:
			out["ok"]++
		case errors.As(err, &pe) && pe.Op == "token":
			out[pe.Class.String()]++
		default:
			out["other"]++
		}
	}
	return out
}

func newHookedClient(tb testing.TB, baseURL string, tc *tokenCalls) *pik.Client {
	tb.Helper()
	c, err := pik.New(pik.Config{
		BaseURL:        baseURL,
		AppID:          testAppID,
		AppSecret:      testSecret,
		Timeout:        time.Second,
		OnTokenRequest: tc.record,
	})
	require.NoError(tb, err, "building the client")
	return c
}

func TestOnTokenRequestIsToldOfEveryRequestOnce(t *testing.T) {
	t.Run("refused requests, one per call", func(t *testing.T) {
		s := newStandIn(t, &standIn{Token: tokenReply(http.StatusUnauthorized, `{"code":401,"message":"invalid appSecret"}`)})
		var tc tokenCalls
		c := newHookedClient(t, s.URL, &tc)
		for range 3 {
			assert.Error(t, c.Authenticate(t.Context()))
		}
		for range 2 {
			_, err := c.Create(t.Context(), testCommand())
			assert.Error(t, err)
		}
		assert.EqualValues(t, 5, s.tokens.Load(), "each call found no token and asked for one")
		assert.Equal(t, map[string]int{"permanent": 5}, tc.results(), "every refused request is told of once")
	})

	t.Run("a request shared by concurrent calls", func(t *testing.T) {
		release := make(chan struct{})
		s := newStandIn(t, &standIn{Token: func(w http.ResponseWriter, r *http.Request, n int) {
			<-release
			issueLongTokens(w, r, n)
		}})
		var tc tokenCalls
		c := newHookedClient(t, s.URL, &tc)
		var wg sync.WaitGroup
		for range 16 {
			wg.Go(func() {
				_, err := c.Create(t.Context(), testCommand())
				assert.NoError(t, err)
			})
		}
		close(release)
		wg.Wait()
		n := int(s.tokens.Load())
		require.Positive(t, n)
		assert.Equal(t, map[string]int{"ok": n}, tc.results(), "one call per token request, however many callers waited for it")
	})

	t.Run("a token refused by a create is replaced", func(t *testing.T) {
		s := newStandIn(t, &standIn{
			Token: issueLongTokens,
			Create: func(w http.ResponseWriter, r *http.Request) {
				if bearer(r) == longToken(1) {
					sandbox.WriteReply(w, http.StatusUnauthorized, `{"code":401,"message":"token expired"}`)
					return
				}
				echoCreate(w, r)
			},
		})
		var tc tokenCalls
		c := newHookedClient(t, s.URL, &tc)
		_, err := c.Create(t.Context(), testCommand())
		require.NoError(t, err)
		assert.EqualValues(t, 2, s.tokens.Load())
		assert.Equal(t, map[string]int{"ok": 2}, tc.results(), "the replacement is a request of its own")
	})
}
