package sandbox

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestScriptRecordsThenAnswers(t *testing.T) {
	var seen string
	s := NewScript(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		seen = string(b)
		WriteReply(w, http.StatusTeapot, `{"odd":`, "X-Request-Id", "r-1")
	}))
	srv := httptest.NewServer(s)
	t.Cleanup(srv.Close)

	req, err := http.NewRequest(http.MethodPost, srv.URL+"/a/b?x=1&y=two%20words", strings.NewReader(`{"k":"v"}`))
	require.NoError(t, err)
	req.Header.Set("X-Token", "t-1")
	resp, err := srv.Client().Do(req)
	require.NoError(t, err)
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	assert.Equal(t, http.StatusTeapot, resp.StatusCode, "the answer's status")
	assert.Equal(t, `{"odd":`, string(body), "the answer's body, as it is")
	assert.Equal(t, "application/json", resp.Header.Get("Content-Type"))
	assert.Equal(t, "r-1", resp.Header.Get("X-Request-Id"), "headers in pairs")
	assert.Equal(t, `{"k":"v"}`, seen, "the answer reads the body the script recorded")

	_, err = srv.Client().Get(srv.URL + "/c")
	require.NoError(t, err)
	got := s.Requests("/a/b")
	require.Len(t, got, 1, "one request to /a/b")
	assert.Equal(t, http.MethodPost, got[0].Method)
	assert.Equal(t, url.Values{"x": {"1"}, "y": {"two words"}}, got[0].Query)
	assert.Equal(t, "x=1&y=two%20words", got[0].RawQuery)
	assert.Equal(t, "t-1", got[0].Header.Get("X-Token"))
	assert.Equal(t, `{"k":"v"}`, string(got[0].Body))
	assert.Len(t, s.Requests(""), 2, "every request, whatever its path")
	assert.Empty(t, s.Requests("/nowhere"))
}

func TestScriptFailures(t *testing.T) {
	client := &http.Client{Timeout: 100 * time.Millisecond}
	t.Run("Hang answers nothing until the client gives up", func(t *testing.T) {
		srv := httptest.NewServer(NewScript(http.HandlerFunc(Hang)))
		t.Cleanup(srv.Close)
		_, err := client.Get(srv.URL)
		require.Error(t, err)
		assert.ErrorIs(t, err, context.DeadlineExceeded, "the client timed out")
	})
	t.Run("HangUp closes the connection", func(t *testing.T) {
		srv := httptest.NewServer(NewScript(http.HandlerFunc(HangUp)))
		t.Cleanup(srv.Close)
		_, err := client.Get(srv.URL)
		require.Error(t, err)
		assert.NotErrorIs(t, err, context.DeadlineExceeded, "no wait: the connection is closed")
	})
	t.Run("ClosedURL refuses connections", func(t *testing.T) {
		_, err := client.Get(ClosedURL())
		require.Error(t, err)
		assert.Contains(t, err.Error(), "connection refused")
	})
}
