package pik_test

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"github.com/contactrelay/contactrelay/contact"
	"github.com/contactrelay/contactrelay/internal/clients/provider"

	"github.com/stretchr/testify/require"

	"github.com/contactrelay/contactrelay/internal/clients/pik"
	"github.com/contactrelay/contactrelay/internal/fakeclock"
	"github.com/contactrelay/contactrelay/internal/sandbox"
)

const (
	testAppID  = "app-1"
	testSecret = "app-s3cr3t-that-must-not-leak"
)

// standIn is a PIK stand-in. It counts token requests, records every
// request (sandbox.Script), and answers each path with its handler; a nil
// handler gets the default answer: tokens "tok-<n>" valid for 30 minutes,
// a create that echoes the contactCode, an empty list.
type standIn struct {
	URL    string
	Token  func(w http.ResponseWriter, r *http.Request, n int)
	Create http.HandlerFunc
	List   http.HandlerFunc

	tokens  atomic.Int32
	creates atomic.Int32
	script  *sandbox.Script
}

func newStandIn(tb testing.TB, s *standIn) *standIn {
	tb.Helper()
	s.script = sandbox.NewScript(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/auth/token":
			n := int(s.tokens.Add(1))
			if s.Token == nil {
				sandbox.WriteReply(w, http.StatusOK, fmt.Sprintf(`{"code":200,"message":"success","data":{"token":"tok-%d","expiresIn":1800}}`, n))
				return
			}
			s.Token(w, r, n)
		case "/api/v1/contact/create":
			s.creates.Add(1)
			if s.Create == nil {
				echoCreate(w, r)
				return
			}
			s.Create(w, r)
		case "/api/v1/contact/list":
			if s.List == nil {
				sandbox.WriteReply(w, http.StatusOK, `{"code":200,"message":"success","data":[]}`)
				return
			}
			s.List(w, r)
		default:
			http.NotFound(w, r)
		}
	}))
	srv := httptest.NewServer(s.script)
	tb.Cleanup(srv.Close)
	s.URL = srv.URL
	return s
}

// requests returns the requests the stand-in received for path, in order.
func (s *standIn) requests(path string) []sandbox.Request { return s.script.Requests(path) }

// echoCreate answers a create with the contactCode it was sent.
func echoCreate(w http.ResponseWriter, r *http.Request) {
	var body struct {
		ContactCode string `json:"contactCode"`
	}
	_ = json.NewDecoder(r.Body).Decode(&body)
	sandbox.WriteReply(w, http.StatusOK, `{"code":200,"message":"success","data":{"id":42,"contactCode":"`+body.ContactCode+`"}}`)
}

// tokenReply answers every token request with a fixed status and body.
func tokenReply(status int, body string, headers ...string) func(http.ResponseWriter, *http.Request, int) {
	return func(w http.ResponseWriter, r *http.Request, _ int) { sandbox.WriteReply(w, status, body, headers...) }
}

// newClock returns the clock of the token expiry tests.
func newClock() *fakeclock.Clock { return fakeclock.New(time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)) }

// jwt returns an unsigned JWT with the given exp claim.
func jwt(exp time.Time) string {
	enc := base64.RawURLEncoding
	header := enc.EncodeToString([]byte(`{"alg":"HS256","typ":"JWT"}`))
	payload := enc.EncodeToString([]byte(fmt.Sprintf(`{"sub":"app-1","exp":%d}`, exp.Unix())))
	return header + "." + payload + ".c2lnbmF0dXJl"
}

func newClient(tb testing.TB, baseURL string, now func() time.Time) *pik.Client {
	tb.Helper()
	c, err := pik.New(pik.Config{
		BaseURL:   baseURL,
		AppID:     testAppID,
		AppSecret: testSecret,
		Timeout:   200 * time.Millisecond,
		Now:       now,
	})
	require.NoError(tb, err, "building the client")
	return c
}

func testCommand() contact.Command {
	return contact.Command{
		CommandID: "cmd-1",
		Provider:  pik.Name,
		Name:      "Ada Lovelace",
		Email:     "ada@example.com",
		Mobile:    "+447700900123",
		TagID:     "tag-1",
	}
}

// asProviderError returns err as a provider.Error, failing the test if it is
// not one.
func asProviderError(tb testing.TB, err error) *provider.Error {
	tb.Helper()
	require.Error(tb, err, "a failure was expected")
	pe, ok := err.(*provider.Error)
	require.True(tb, ok, "the error should be a *provider.Error, got %T: %v", err, err)
	return pe
}
