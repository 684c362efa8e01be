package instantpay_test

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/contactrelay/contactrelay/internal/clients/provider"
	"github.com/contactrelay/contactrelay/internal/sandbox"
)

// escapeAll writes every character of s as a JSON \u escape, as an
// encoder that escapes everything would.
func escapeAll(s string) string {
	var b strings.Builder
	for _, r := range s {
		fmt.Fprintf(&b, `\u%04x`, r)
	}
	return b.String()
}

// shown is everything a client's answer puts in logs, events and /readyz:
// the error's text and fields (and its wrapped error's text), the failed
// event's upstream, the contact's id and upstream.
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

func TestAnswersAreScrubbedOfTheClientSecret(t *testing.T) {
	tests := []struct {
		name    string
		handler http.HandlerFunc
		lookup  bool
	}{
		{
			name:    "status echoes the secret",
			handler: sandbox.Reply(http.StatusOK, `{"statuscode":"IAC","status":"Invalid client secret `+testSecret+`"}`),
		},
		{
			name:    "status echoes it JSON-escaped",
			handler: sandbox.Reply(http.StatusOK, `{"statuscode":"IAC","status":"Invalid client secret `+escapeAll(testSecret)+`"}`),
		},
		{
			name:    "as part of a longer string",
			handler: sandbox.Reply(http.StatusOK, `{"statuscode":"IAC","status":"secret=x`+testSecret+`y is invalid"}`),
		},
		{
			name:    "statuscode and ipay_uuid echo it",
			handler: sandbox.Reply(http.StatusOK, `{"statuscode":"`+testSecret+`","status":"bad","ipay_uuid":"`+testSecret+`"}`),
		},
		{
			name:    "a request-id header and an HTML page echo it",
			handler: sandbox.Reply(http.StatusServiceUnavailable, `<html>down for `+testSecret+`</html>`, "X-Request-Id", testSecret),
		},
		{
			name:    "a pending answer echoes it",
			handler: sandbox.Reply(http.StatusOK, `{"statuscode":"TUP","status":"pending for `+testSecret+`","orderid":"o-`+testSecret+`"}`),
		},
		{
			name: "a created contact echoes it in every upstream field",
			handler: sandbox.Reply(http.StatusOK, `{"statuscode":"TXN","status":"ok","data":{"_id":"c-`+testSecret+`","userId":"`+
				escapeAll(testSecret)+`"},"ipay_uuid":"`+testSecret+`","orderid":"`+testSecret+`","environment":"`+
				testSecret+`","timestamp":"`+testSecret+`"}`),
		},
		{
			name:    "a refused lookup echoes it",
			lookup:  true,
			handler: sandbox.Reply(http.StatusInternalServerError, `{"statuscode":"ISE","status":"`+testSecret+`"}`, "X-Correlation-Id", testSecret),
		},
		{
			name:   "a found contact echoes it",
			lookup: true,
			handler: sandbox.Reply(http.StatusOK, `{"statuscode":"TXN","status":"ok","data":[{"_id":"c-`+testSecret+
				`","userId":"`+testSecret+`","email":"sample@example.com","mobile":"917428585742"}]}`),
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := newClient(t, newStandIn(t, tt.handler).URL)
			var (
				contact provider.Contact
				err     error
			)
			if tt.lookup {
				contact, _, err = c.Lookup(t.Context(), testCommand())
			} else {
				contact, err = c.Create(t.Context(), testCommand())
			}
			out := shown(t, contact, err)
			assert.NotContains(t, out, testSecret, "the client secret must not survive in what the client returns")
			assert.Contains(t, out, "[REDACTED]", "the echoed secret is replaced by the marker")
		})
	}
}

// TestTransportErrorsAreScrubbed has a server answer with a malformed
// header line holding the secret: Go's HTTP client quotes the line in its
// error.
func TestTransportErrorsAreScrubbed(t *testing.T) {
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
				rd := bufio.NewReader(conn)
				if _, err := http.ReadRequest(rd); err != nil {
					return
				}
				_, _ = fmt.Fprintf(conn, "HTTP/1.1 200 OK\r\n%s\r\n\r\n", testSecret)
			}()
		}
	}()
	c := newClient(t, "http://"+ln.Addr().String())
	contact, err := c.Create(t.Context(), testCommand())
	require.Error(t, err)
	out := shown(t, contact, err)
	assert.NotContains(t, out, testSecret, "a transport error quoting the answer is scrubbed")
	assert.Contains(t, out, "[REDACTED]", "the quoted secret is replaced by the marker")
}
