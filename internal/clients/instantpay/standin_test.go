package instantpay_test

import (
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/contactrelay/contactrelay/contact"
	"github.com/contactrelay/contactrelay/internal/clients/provider"

	"github.com/stretchr/testify/require"

	"github.com/contactrelay/contactrelay/internal/clients/instantpay"
	"github.com/contactrelay/contactrelay/internal/sandbox"
)

const (
	testClientID = "client-id-1"
	testSecret   = "s3cr3t-value-that-must-not-leak"
	testTagID    = "645b280e95335f08eb021aa2"
)

// standIn is an InstantPay stand-in that records every request and answers
// with its handler (sandbox.Script).
type standIn struct {
	URL    string
	script *sandbox.Script
}

func newStandIn(tb testing.TB, handler http.HandlerFunc) *standIn {
	tb.Helper()
	s := &standIn{script: sandbox.NewScript(handler)}
	srv := httptest.NewServer(s.script)
	tb.Cleanup(srv.Close)
	s.URL = srv.URL
	return s
}

// requests returns every request the stand-in received, in order.
func (s *standIn) requests() []sandbox.Request { return s.script.Requests("") }

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

func testCommand() contact.Command {
	return contact.Command{
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
