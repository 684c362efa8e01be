package pik_test

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/contactrelay/contactrelay/internal/clients/pik"
	"github.com/contactrelay/contactrelay/internal/clients/provider"
	"github.com/contactrelay/contactrelay/internal/health"
	"github.com/contactrelay/contactrelay/internal/sandbox"
)

// longToken is the n-th token the stand-ins of these tests issue: long
// enough to be scrubbed (redact.MinSecretLen).
func longToken(n int) string { return fmt.Sprintf("eyJ0b2tlbi0%d.payload.signature", n) }

// issueLongTokens answers every token request with the next longToken.
func issueLongTokens(w http.ResponseWriter, _ *http.Request, n int) {
	sandbox.WriteReply(w, http.StatusOK, `{"code":200,"message":"success","data":{"token":"`+longToken(n)+`","expiresIn":1800}}`)
}

// bearer returns the token a request carries.
func bearer(r *http.Request) string {
	return strings.TrimPrefix(r.Header.Get("Authorization"), "Bearer ")
}

// escapeAll writes every character of s as a JSON \u escape.
func escapeAll(s string) string {
	var b strings.Builder
	for _, r := range s {
		fmt.Fprintf(&b, `\u%04X`, r)
	}
	return b.String()
}

// shown is everything a client's answer puts in logs, events and /readyz.
func shown(t *testing.T, contact provider.Contact, err error) string {
	t.Helper()
	var parts []string
	if err != nil {
		parts = append(parts, err.Error())
		var pe *provider.Error
		if errors.As(err, &pe) {
			up, jerr := json.Marshal(pe.Upstream())
			require.NoError(t, jerr)
			parts = append(parts, pe.Message, pe.Code, pe.RequestID, string(up))
			if pe.Err != nil {
				parts = append(parts, pe.Err.Error())
			}
		}
	}
	up, jerr := json.Marshal(contact.Upstream)
	require.NoError(t, jerr)
	parts = append(parts, contact.ID, string(up))
	return strings.Join(parts, "\n")
}

// assertScrubbed checks that out holds none of secrets and the marker.
func assertScrubbed(t *testing.T, out string, secrets ...string) {
	t.Helper()
	for _, s := range secrets {
		assert.NotContains(t, out, s, "no secret or token survives in what the client returns")
	}
	assert.Contains(t, out, "[REDACTED]", "an echoed secret is replaced by the marker")
}

func TestContactAnswersAreScrubbedOfSecretsAndTokens(t *testing.T) {
	tests := []struct {
		name   string
		create func(w http.ResponseWriter, r *http.Request)
		list   func(w http.ResponseWriter, r *http.Request)
	}{
		{
			name: "a refusal echoes the token and the app secret",
			create: func(w http.ResponseWriter, r *http.Request) {
				sandbox.WriteReply(w, http.StatusOK, `{"code":400,"message":"token `+bearer(r)+` of app `+testSecret+` may not"}`)
			},
		},
		{
			name: "a refusal echoes them JSON-escaped",
			create: func(w http.ResponseWriter, r *http.Request) {
				sandbox.WriteReply(w, http.StatusOK, `{"code":400,"message":"token `+escapeAll(bearer(r))+` app `+escapeAll(testSecret)+`"}`)
			},
		},
		{
			name: "a request-id header echoes the token",
			create: func(w http.ResponseWriter, r *http.Request) {
				sandbox.WriteReply(w, http.StatusBadGateway, `<html>bad gateway</html>`, "X-Request-Id", "req-"+bearer(r), "Retry-After", "1")
			},
		},
		{
			name: "the code echoes the app secret",
			create: func(w http.ResponseWriter, r *http.Request) {
				sandbox.WriteReply(w, http.StatusOK, `{"code":"E-`+testSecret+`","msg":"refused"}`)
			},
		},
		{
			name: "a created contact echoes them in its ids",
			create: func(w http.ResponseWriter, r *http.Request) {
				sandbox.WriteReply(w, http.StatusOK, `{"code":200,"message":"success","data":{"contactCode":"CR-`+testSecret+
					`","id":"`+bearer(r)+`","userId":"u-`+escapeAll(testSecret)+`"}}`)
			},
		},
		{
			name: "a failed lookup echoes the token",
			list: func(w http.ResponseWriter, r *http.Request) {
				sandbox.WriteReply(w, http.StatusInternalServerError, `{"code":500,"message":"no list for `+bearer(r)+`"}`)
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newStandIn(t, &standIn{Token: issueLongTokens, Create: tt.create, List: tt.list})
			c := newClient(t, s.URL, nil)
			var (
				contact provider.Contact
				err     error
			)
			if tt.list != nil {
				contact, _, err = c.Lookup(t.Context(), testCommand())
			} else {
				contact, err = c.Create(t.Context(), testCommand())
			}
			assertScrubbed(t, shown(t, contact, err), testSecret, longToken(1))
		})
	}
}

// TestPastTokensAreScrubbed has PIK refuse the first token, so the client
// fetches a second, and then echo the first one.
func TestPastTokensAreScrubbed(t *testing.T) {
	s := newStandIn(t, &standIn{
		Token: issueLongTokens,
		Create: func(w http.ResponseWriter, r *http.Request) {
			if bearer(r) == longToken(1) {
				sandbox.WriteReply(w, http.StatusUnauthorized, `{"code":401,"message":"token expired"}`)
				return
			}
			sandbox.WriteReply(w, http.StatusOK, `{"code":400,"message":"`+longToken(1)+` was revoked, `+bearer(r)+` is new"}`)
		},
	})
	c := newClient(t, s.URL, nil)
	contact, err := c.Create(t.Context(), testCommand())
	require.Error(t, err)
	require.EqualValues(t, 2, s.tokens.Load(), "the refused token was replaced")
	assertScrubbed(t, shown(t, contact, err), longToken(1), longToken(2))
}

func TestTokenErrorsAreScrubbed(t *testing.T) {
	tests := []struct {
		name  string
		token func(w http.ResponseWriter, r *http.Request, n int)
	}{
		{"credentials refused", tokenReply(http.StatusUnauthorized, `{"code":401,"message":"invalid appSecret `+testSecret+`"}`)},
		{"refused in the body, escaped", tokenReply(http.StatusOK, `{"code":403,"message":"invalid appSecret `+escapeAll(testSecret)+`"}`)},
		{"unavailable, said in a header", tokenReply(http.StatusServiceUnavailable, `down`, "X-Amzn-Requestid", testSecret)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := newClient(t, newStandIn(t, &standIn{Token: tt.token}).URL, nil)
			err := c.Authenticate(t.Context())
			require.Error(t, err)
			assertScrubbed(t, shown(t, provider.Contact{}, err), testSecret)
			_, lastErr := c.TokenState()
			require.Error(t, lastErr)
			assertScrubbed(t, shown(t, provider.Contact{}, lastErr), testSecret)

			_, err = c.Create(t.Context(), testCommand())
			require.Error(t, err)
			assertScrubbed(t, shown(t, provider.Contact{}, err), testSecret)
		})
	}
}

// TestTokenTransportErrorsAreScrubbed has the token endpoint answer with a
// malformed header line holding the secret, which Go's HTTP client quotes
// in its error.
func TestTokenTransportErrorsAreScrubbed(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	t.Cleanup(func() { _ = ln.Close() })
	go func() {
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer conn.Close()
				if _, err := http.ReadRequest(bufio.NewReader(conn)); err != nil {
					return
				}
				_, _ = fmt.Fprintf(conn, "HTTP/1.1 200 OK\r\n%s\r\n\r\n", testSecret)
			}()
		}
	}()
	c := newClient(t, "http://"+ln.Addr().String(), nil)
	err = c.Authenticate(t.Context())
	require.Error(t, err)
	assertScrubbed(t, shown(t, provider.Contact{}, err), testSecret)
}

// TestReadyzServesNoSecret feeds what the client returns to the health
// tracker, as the service does, and reads /readyz: neither lastError nor
// problems may hold the app secret or a token.
func TestReadyzServesNoSecret(t *testing.T) {
	s := newStandIn(t, &standIn{
		Token: func(w http.ResponseWriter, r *http.Request, n int) {
			if n == 1 {
				issueLongTokens(w, r, n)
				return
			}
			sandbox.WriteReply(w, http.StatusForbidden, `{"code":403,"message":"app `+testSecret+` is blocked; `+longToken(1)+` revoked"}`)
		},
		Create: func(w http.ResponseWriter, r *http.Request) {
			sandbox.WriteReply(w, http.StatusUnauthorized, `{"code":401,"message":"token `+bearer(r)+` expired"}`)
		},
	})
	c := newClient(t, s.URL, nil)
	tracker := health.NewProviders([]string{pik.Name}, nil)
	srv := httptest.NewServer(health.Handler(nil, tracker))
	t.Cleanup(srv.Close)
	readyz := func() (int, string) {
		res, err := http.Get(srv.URL + "/readyz")
		require.NoError(t, err)
		defer res.Body.Close()
		body, err := io.ReadAll(res.Body)
		require.NoError(t, err)
		return res.StatusCode, string(body)
	}

	require.NoError(t, c.Authenticate(t.Context()))
	tracker.ProviderCall(pik.Name, "token", 0, nil)
	// The token is refused; its replacement too, with the secret and the
	// old token in the message.
	_, err := c.Create(t.Context(), testCommand())
	require.Error(t, err)
	tracker.ProviderCall(pik.Name, "create", 0, err)

	code, body := readyz()
	assert.Equal(t, http.StatusServiceUnavailable, code, "refused credentials make the service not ready")
	assert.Contains(t, body, `"problems"`, "the body says what is wrong")
	assertScrubbed(t, body, testSecret, longToken(1))
}
