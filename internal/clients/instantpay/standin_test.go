package instantpay_test

import (
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"sync"
	"testing"
	"time"

	"github.com/contactrelay/contactrelay/internal/clients/provider"

	"github.com/stretchr/testify/require"

	"github.com/contactrelay/contactrelay/internal/clients/instantpay"
	"github.com/contactrelay/contactrelay/internal/events"
)

const (
	testClientID = "client-id-1"
	testSecret   = "s3cr3t-value-that-must-not-leak"
	testTagID    = "645b280e95335f08eb021aa2"
)

// recorded is one request the stand-in received.
type recorded struct {
	Method string
	Path   string
	Query  url.Values
	Header http.Header
	Body   []byte
}

// standIn is an InstantPay stand-in that records every request and answers
// with handler.
type standIn struct {
	URL string
	mu  sync.Mutex
	got []recorded
}

func newStandIn(tb testing.TB, handler http.HandlerFunc) *standIn {
	tb.Helper()
	s := &standIn{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		s.mu.Lock()
		s.got = append(s.got, recorded{Method: r.Method, Path: r.URL.Path, Query: r.URL.Query(), Header: r.Header.Clone(), Body: body})
		s.mu.Unlock()
		handler(w, r)
	}))
	tb.Cleanup(srv.Close)
	s.URL = srv.URL
	return s
}

func (s *standIn) requests() []recorded {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]recorded(nil), s.got...)
}

// reply answers with a status, a JSON body and optional headers.
func reply(status int, body string, headers ...string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		for i := 0; i+1 < len(headers); i += 2 {
			w.Header().Set(headers[i], headers[i+1])
		}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		_, _ = io.WriteString(w, body)
	}
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

// refusedURL returns the URL of a server that is no longer listening.
func refusedURL() string {
	srv := httptest.NewServer(http.NotFoundHandler())
	srv.Close()
	return srv.URL
}

func newClient(tb testing.TB, baseURL string) *instantpay.Client {
	tb.Helper()
	c, err := instantpay.New(instantpay.Config{
		BaseURL:      baseURL,
		ClientID:     testClientID,
		ClientSecret: testSecret,
		EndpointIP:   "203.0.113.7",
		Timeout:      200 * time.Millisecond,
	})
	require.NoError(tb, err, "building the client")
	return c
}

func testCommand() events.Command {
	return events.Command{
		CommandID:   "cmd-1",
		Provider:    instantpay.Name,
		Name:        "Sample Name",
		Email:       "Sample@Example.com",
		Mobile:      "+917428585742",
		TagID:       testTagID,
		CompanyName: "Business & Co",
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
