package sandbox

import (
	"bytes"
	"io"
	"net"
	"net/http"
	"net/url"
	"sync"
	"time"
)

// Request is one request a Script received, as it came.
type Request struct {
	Method string
	Path   string
	// Query is the URL's query, decoded; RawQuery is it as it was sent.
	Query    url.Values
	RawQuery string
	Header   http.Header
	Body     []byte
}

// Script is a provider stand-in whose every answer the test writes, for
// what the provider sandboxes never say: a malformed body, an unknown
// status code, a reply of an odd shape, a token numbered by the test. It
// records each request, then hands it to its answer with the body still
// to be read. It is an http.Handler, safe for concurrent use.
type Script struct {
	answer http.Handler
	mu     sync.Mutex
	got    []Request
}

// NewScript returns a Script that answers every request with answer.
func NewScript(answer http.Handler) *Script { return &Script{answer: answer} }

// ServeHTTP records r, then answers it.
func (s *Script) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body) // a body cut short is recorded as far as it came
	r.Body = io.NopCloser(bytes.NewReader(body))
	s.mu.Lock()
	s.got = append(s.got, Request{Method: r.Method, Path: r.URL.Path, Query: r.URL.Query(), RawQuery: r.URL.RawQuery,
		Header: r.Header.Clone(), Body: body})
	s.mu.Unlock()
	s.answer.ServeHTTP(w, r)
}

// Requests returns the requests received for path, in the order they
// came; every request when path is "".
func (s *Script) Requests(path string) []Request {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []Request
	for _, r := range s.got {
		if path == "" || r.Path == path {
			out = append(out, r)
		}
	}
	return out
}

// WriteReply answers with status and body, as it is, with the content
// type application/json and headers, given as name and value pairs.
func WriteReply(w http.ResponseWriter, status int, body string, headers ...string) {
	for i := 0; i+1 < len(headers); i += 2 {
		w.Header().Set(headers[i], headers[i+1])
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, _ = io.WriteString(w, body) // a write error means the client is gone
}

// Reply returns a handler that answers every request as WriteReply does.
func Reply(status int, body string, headers ...string) http.HandlerFunc {
	return func(w http.ResponseWriter, _ *http.Request) { WriteReply(w, status, body, headers...) }
}

// Hang answers nothing until the client gives up, or five seconds have
// passed (so that a test whose client never gives up still ends).
func Hang(_ http.ResponseWriter, r *http.Request) {
	t := time.NewTimer(5 * time.Second)
	defer t.Stop()
	select {
	case <-r.Context().Done():
	case <-t.C:
	}
}

// HangUp closes the connection without an answer.
func HangUp(w http.ResponseWriter, _ *http.Request) { drop(w) }

// ClosedURL returns the URL of a loopback address that was listening and
// no longer is: a connection to it is refused.
func ClosedURL() string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		panic("sandbox: ClosedURL: " + err.Error())
	}
	addr := l.Addr().String()
	_ = l.Close()
	return "http://" + addr
}
