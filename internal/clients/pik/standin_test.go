package pik_test

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/contactrelay/contactrelay/internal/clients/provider"

	"github.com/stretchr/testify/require"

	"github.com/contactrelay/contactrelay/internal/clients/pik"
	"github.com/contactrelay/contactrelay/internal/events"
	"github.com/contactrelay/contactrelay/internal/fakeclock"
)

const (
	testAppID  = "app-1"
	testSecret = "app-s3cr3t-that-must-not-leak"
)

// recorded is one request the stand-in received.
type recorded struct {
	Method string
	Path   string
	Query  string
	Header http.Header
	Body   []byte
}

// standIn is a PIK stand-in. It counts token requests, records every
// request, and answers each path with its handler; a nil handler gets the
// default answer: tokens "tok-<n>" valid for 30 minutes, a create that
// echoes the contactCode, an empty list.
type standIn struct {
	URL    string
	Token  func(w http.ResponseWriter, r *http.Request, n int)
	Create http.HandlerFunc
	List   http.HandlerFunc

	tokens  atomic.Int32
	creates atomic.Int32
	mu      sync.Mutex
	got     []recorded
}

func newStandIn(tb testing.TB, s *standIn) *standIn {
	tb.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		r.Body = io.NopCloser(strings.NewReader(string(body)))
		s.mu.Lock()
		s.got = append(s.got, recorded{Method: r.Method, Path: r.URL.Path, Query: r.URL.RawQuery, Header: r.Header.Clone(), Body: body})
		s.mu.Unlock()
		switch r.URL.Path {
		case "/auth/token":
			n := int(s.tokens.Add(1))
			if s.Token == nil {
				writeJSON(w, http.StatusOK, fmt.Sprintf(`{"code":200,"message":"success","data":{"token":"tok-%d","expiresIn":1800}}`, n))
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
				writeJSON(w, http.StatusOK, `{"code":200,"message":"success","data":[]}`)
				return
			}
			s.List(w, r)
		default:
			http.NotFound(w, r)
		}
	}))
	tb.Cleanup(srv.Close)
	s.URL = srv.URL
	return s
}

func (s *standIn) requests(path string) []recorded {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []recorded
	for _, r := range s.got {
		if r.Path == path {
			out = append(out, r)
		}
	}
	return out
}

// echoCreate answers a create with the contactCode it was sent.
func echoCreate(w http.ResponseWriter, r *http.Request) {
	var body struct {
		ContactCode string `json:"contactCode"`
	}
	_ = json.NewDecoder(r.Body).Decode(&body)
	writeJSON(w, http.StatusOK, `{"code":200,"message":"success","data":{"id":42,"contactCode":"`+body.ContactCode+`"}}`)
}

func writeJSON(w http.ResponseWriter, status int, body string, headers ...string) {
	for i := 0; i+1 < len(headers); i += 2 {
		w.Header().Set(headers[i], headers[i+1])
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, _ = io.WriteString(w, body)
}

// reply answers with a fixed status, body and headers.
func reply(status int, body string, headers ...string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) { writeJSON(w, status, body, headers...) }
}

// tokenReply answers every token request with a fixed status and body.
func tokenReply(status int, body string, headers ...string) func(http.ResponseWriter, *http.Request, int) {
	return func(w http.ResponseWriter, r *http.Request, _ int) { writeJSON(w, status, body, headers...) }
}

// hang answers only after the client has given up.
func hang(w http.ResponseWriter, r *http.Request) {
	select {
	case <-r.Context().Done():
	case <-time.After(5 * time.Second):
	}
}

// hangUp closes the connection without answering.
func hangUp(w http.ResponseWriter, r *http.Request) {
	if conn, _, err := w.(http.Hijacker).Hijack(); err == nil {
		_ = conn.Close()
	}
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

func testCommand() events.Command {
	return events.Command{
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

// refusedURL returns the URL of a server that is no longer listening.
func refusedURL() string {
	srv := httptest.NewServer(http.NotFoundHandler())
	srv.Close()
	return srv.URL
}
