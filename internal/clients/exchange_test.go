package clients_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/contactrelay/contactrelay/internal/clients/provider"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/contactrelay/contactrelay/internal/clients"
)

func TestNewHTTPClient(t *testing.T) {
	tests := []struct {
		name        string
		concurrency int
		wantIdle    int
	}{
		{name: "sized for the concurrency", concurrency: 200, wantIdle: 200},
		{name: "zero means the default", concurrency: 0, wantIdle: clients.DefaultConcurrency},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			hc := clients.NewHTTPClient(tt.concurrency)
			assert.Zero(t, hc.Timeout, "requests are bounded by their context, not by the client")
			tr, ok := hc.Transport.(*http.Transport)
			require.True(t, ok, "the transport should be an *http.Transport")
			assert.Equal(t, tt.wantIdle, tr.MaxIdleConnsPerHost, "idle connections per host should match the concurrency")
			assert.GreaterOrEqual(t, tr.MaxConnsPerHost, tt.wantIdle, "connections per host should allow the concurrency")
			assert.GreaterOrEqual(t, tr.MaxIdleConns, 2*tt.wantIdle, "the total idle bound should fit two providers")
			assert.NotNil(t, tr.Proxy, "the clone should keep the default proxy setting")
		})
	}
}

func TestRetryAfter(t *testing.T) {
	now := time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)
	tests := []struct {
		name   string
		header string
		want   time.Duration
	}{
		{name: "missing", header: "", want: 0},
		{name: "seconds", header: "7", want: 7 * time.Second},
		{name: "negative seconds", header: "-3", want: 0},
		{name: "huge seconds are capped", header: "99999999999", want: 24 * time.Hour},
		{name: "http date", header: now.Add(90 * time.Second).Format(http.TimeFormat), want: 90 * time.Second},
		{name: "date in the past", header: now.Add(-time.Minute).Format(http.TimeFormat), want: 0},
		{name: "garbage", header: "soon", want: 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := http.Header{}
			if tt.header != "" {
				h.Set("Retry-After", tt.header)
			}
			assert.Equal(t, tt.want, clients.RetryAfter(h, now), "Retry-After %q", tt.header)
		})
	}
}

func TestClassOfStatus(t *testing.T) {
	tests := []struct {
		status int
		want   provider.Class
	}{
		{http.StatusTooManyRequests, provider.Transient},
		{http.StatusInternalServerError, provider.Transient},
		{http.StatusBadGateway, provider.Transient},
		{http.StatusBadRequest, provider.Permanent},
		{http.StatusUnauthorized, provider.Permanent},
		{http.StatusNotFound, provider.Permanent},
	}
	for _, tt := range tests {
		t.Run(http.StatusText(tt.status), func(t *testing.T) {
			assert.Equal(t, tt.want, clients.ClassOfStatus(tt.status), "class of HTTP %d", tt.status)
		})
	}
}

func TestCallDo(t *testing.T) {
	hang := func(w http.ResponseWriter, r *http.Request) {
		// The server notices the client hanging up only once the body is read.
		_, _ = io.Copy(io.Discard, r.Body)
		select {
		case <-r.Context().Done():
		case <-time.After(5 * time.Second):
		}
	}
	hangUp := func(w http.ResponseWriter, r *http.Request) {
		conn, _, err := w.(http.Hijacker).Hijack()
		if err == nil {
			_ = conn.Close()
		}
	}
	big := func(w http.ResponseWriter, r *http.Request) {
		_, _ = w.Write([]byte(strings.Repeat("x", 2048)))
	}
	tests := []struct {
		name      string
		handler   http.HandlerFunc // nil: no server listening
		safe      bool
		wantClass provider.Class
		wantCode  string
		wantErr   bool
	}{
		{name: "connection refused is transient", handler: nil, wantClass: provider.Transient, wantCode: clients.CodeConnection, wantErr: true},
		{name: "timeout after sending is ambiguous", handler: hang, wantClass: provider.Ambiguous, wantCode: clients.CodeTimeout, wantErr: true},
		{name: "timeout of a safe call is transient", handler: hang, safe: true, wantClass: provider.Transient, wantCode: clients.CodeTimeout, wantErr: true},
		{name: "connection lost after sending is ambiguous", handler: hangUp, wantClass: provider.Ambiguous, wantCode: clients.CodeConnection, wantErr: true},
		{name: "reply too large is ambiguous", handler: big, wantClass: provider.Ambiguous, wantCode: clients.CodeConnection, wantErr: true},
		{name: "a status is a reply", handler: func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusBadGateway) }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var url string
			if tt.handler == nil {
				srv := httptest.NewServer(http.NotFoundHandler())
				url = srv.URL
				srv.Close()
			} else {
				srv := httptest.NewServer(tt.handler)
				t.Cleanup(srv.Close)
				url = srv.URL
			}
			ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
			defer cancel()
			req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, strings.NewReader(`{}`))
			require.NoError(t, err, "building the request")
			call := clients.Call{Provider: "test", Op: "create", Safe: tt.safe, MaxReplyBytes: 1024}

			reply, err := call.Do(&http.Client{}, req)
			if !tt.wantErr {
				require.NoError(t, err, "a non-2xx status should be a reply")
				assert.Equal(t, http.StatusBadGateway, reply.Status, "the status should be kept")
				return
			}
			var pe *provider.Error
			require.True(t, errors.As(err, &pe), "the error should be a provider.Error, got %v", err)
			assert.Equal(t, tt.wantClass, pe.Class, "class of %v", err)
			assert.Equal(t, tt.wantCode, pe.Code, "code of %v", err)
			assert.Equal(t, "test", pe.Provider, "provider should be filled in")
			assert.Equal(t, "create", pe.Op, "op should be filled in")
		})
	}
}

func TestItems(t *testing.T) {
	tests := []struct {
		name    string
		data    string
		want    int
		wantErr bool
	}{
		{name: "array", data: `[{"a":1},{"a":2}]`, want: 2},
		{name: "null", data: `null`, want: 0},
		{name: "missing", data: ``, want: 0},
		{name: "object with list", data: `{"total":1,"list":[{"a":1}]}`, want: 1},
		{name: "object with null list", data: `{"rows":null}`, want: 0},
		{name: "object without a known key", data: `{"total":0}`, wantErr: true},
		{name: "list that is not an array", data: `{"list":{"a":1}}`, wantErr: true},
		{name: "string", data: `"x"`, wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			items, err := clients.Items(json.RawMessage(tt.data), "list", "rows")
			if tt.wantErr {
				assert.Error(t, err, "data %s should not be read as a list", tt.data)
				return
			}
			require.NoError(t, err, "data %s should be a list", tt.data)
			assert.Len(t, items, tt.want, "items of %s", tt.data)
		})
	}
}

func TestTextAndScalar(t *testing.T) {
	tests := []struct {
		name       string
		raw        string
		wantText   string
		wantScalar any
		wantOK     bool
	}{
		{name: "string", raw: `"TXN"`, wantText: "TXN", wantScalar: "TXN", wantOK: true},
		{name: "number", raw: `189590`, wantText: "189590", wantScalar: json.Number("189590"), wantOK: true},
		{name: "big number keeps its digits", raw: `12345678901234567890`, wantText: "12345678901234567890", wantScalar: json.Number("12345678901234567890"), wantOK: true},
		{name: "bool", raw: `true`, wantText: "true", wantScalar: true, wantOK: true},
		{name: "null", raw: `null`, wantText: "", wantOK: false},
		{name: "empty string", raw: `""`, wantText: "", wantOK: false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var text clients.Text
			require.NoError(t, json.Unmarshal([]byte(tt.raw), &text), "Text should accept %s", tt.raw)
			assert.Equal(t, tt.wantText, text.String(), "text of %s", tt.raw)
			v, ok := clients.Scalar(json.RawMessage(tt.raw))
			assert.Equal(t, tt.wantOK, ok, "Scalar ok of %s", tt.raw)
			assert.Equal(t, tt.wantScalar, v, "Scalar of %s", tt.raw)
		})
	}
	t.Run("object is not text", func(t *testing.T) {
		var text clients.Text
		assert.Error(t, json.Unmarshal([]byte(`{"a":1}`), &text), "an object should not be read as text")
	})
}

func TestEncodeJSON(t *testing.T) {
	b, err := clients.EncodeJSON(map[string]string{"name": "A & B <c>"})
	require.NoError(t, err, "encoding a map")
	assert.Equal(t, `{"name":"A & B <c>"}`, string(b), "HTML characters should be kept and no newline added")
}
