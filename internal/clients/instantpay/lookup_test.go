package instantpay_test

import (
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"testing"

	"github.com/contactrelay/contactrelay/internal/clients/provider"
	"github.com/contactrelay/contactrelay/internal/sandbox"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func listReply(contacts string) string {
	return `{"statuscode":"TXN","actcode":null,"status":"Transaction Successful","data":` + contacts +
		`,"timestamp":"2023-05-10 10:44:35","ipay_uuid":"h00list","orderid":null,"environment":"LIVE"}`
}

func TestLookupRequest(t *testing.T) {
	s := newStandIn(t, sandbox.Reply(http.StatusOK, listReply(`[]`)))
	_, _, err := newClient(t, s.URL).Lookup(context.Background(), testCommand())
	require.NoError(t, err, "an empty list is an answer")

	got := s.requests()
	require.Len(t, got, 1, "one request should be made")
	req := got[0]
	assert.Equal(t, http.MethodGet, req.Method, "method")
	assert.Equal(t, "/contacts/profile", req.Path, "path")
	assert.Equal(t, url.Values{"page": {"1"}, "limit": {"100"}}, req.Query,
		"the first page is asked for; a mixed-case email is not sent as a filter")
	assert.Equal(t, "1", req.Header.Get("X-Ipay-Auth-Code"), "auth code header")
	assert.Equal(t, testClientID, req.Header.Get("X-Ipay-Client-Id"), "client id header")
	assert.Equal(t, testSecret, req.Header.Get("X-Ipay-Client-Secret"), "client secret header")
	assert.Equal(t, "203.0.113.7", req.Header.Get("X-Ipay-Endpoint-Ip"), "endpoint ip header")
	assert.Empty(t, req.Header.Get("Content-Type"), "a GET has no body to type")
	assert.Empty(t, req.Body, "a GET has no body")
}

func TestLookupMatching(t *testing.T) {
	other := `{"_id":"000000000000000000000001","name":"Other","email":"other@example.com","mobile":"9999999999","tagId":["645b280e95335f08eb021aa2"]}`
	tests := []struct {
		name      string
		data      string
		mobile    string
		wantFound bool
		wantID    string
		wantUp    map[string]any
	}{
		{
			name:      "email differs in case, mobile without country code",
			data:      `[` + other + `,{"_id":"645b283b9b2e5a7f1c0d3e4f","userId":189590,"name":"Sample Name","email":"sample@example.COM","mobile":"7428585742","tagId":["645b280e95335f08eb021aa2"]}]`,
			mobile:    "+917428585742",
			wantFound: true,
			wantID:    "645b283b9b2e5a7f1c0d3e4f",
			wantUp:    map[string]any{"contactId": "645b283b9b2e5a7f1c0d3e4f", "userId": json.Number("189590"), "reconciled": true},
		},
		{
			name:      "mobile as a number with punctuation in the command",
			data:      `[{"_id":"645b283b9b2e5a7f1c0d3e4f","email":"sample@example.com","mobile":917428585742}]`,
			mobile:    "+91 74285-85742",
			wantFound: true,
			wantID:    "645b283b9b2e5a7f1c0d3e4f",
			wantUp:    map[string]any{"contactId": "645b283b9b2e5a7f1c0d3e4f", "reconciled": true},
		},
		{
			name:   "same email, other mobile",
			data:   `[{"_id":"645b283b9b2e5a7f1c0d3e4f","email":"sample@example.com","mobile":"7428585743"}]`,
			mobile: "+917428585742",
		},
		{
			name:   "same mobile, other email",
			data:   `[{"_id":"645b283b9b2e5a7f1c0d3e4f","email":"someone@example.com","mobile":"7428585742"}]`,
			mobile: "+917428585742",
		},
		{
			name:   "a suffix shorter than 10 digits does not match",
			data:   `[{"_id":"645b283b9b2e5a7f1c0d3e4f","email":"sample@example.com","mobile":"428585742"}]`,
			mobile: "+917428585742",
		},
		{name: "no contacts", data: `[]`, mobile: "+917428585742"},
		{name: "data null", data: `null`, mobile: "+917428585742"},
		{name: "list under an object", data: `{"contacts":[` + other + `]}`, mobile: "+917428585742"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newStandIn(t, sandbox.Reply(http.StatusOK, listReply(tt.data)))
			cmd := testCommand()
			cmd.Mobile = tt.mobile
			contact, found, err := newClient(t, s.URL).Lookup(context.Background(), cmd)
			require.NoError(t, err, "the list is an answer")
			assert.Equal(t, tt.wantFound, found, "found")
			assert.Equal(t, tt.wantID, contact.ID, "contact id")
			if tt.wantFound {
				assert.Equal(t, tt.wantUp, contact.Upstream, "upstream of a reconciled contact")
			}
		})
	}
	t.Run("RNF means not found", func(t *testing.T) {
		s := newStandIn(t, sandbox.Reply(http.StatusOK, `{"statuscode":"RNF","status":"Record Not Found","data":null}`))
		_, found, err := newClient(t, s.URL).Lookup(context.Background(), testCommand())
		require.NoError(t, err, "RNF is an answer")
		assert.False(t, found, "RNF should mean no contact")
	})
}

func TestLookupFailures(t *testing.T) {
	tests := []struct {
		name      string
		baseURL   func(t *testing.T) string
		wantClass provider.Class
		wantCode  string
	}{
		{name: "HTTP 503", baseURL: func(t *testing.T) string { return newStandIn(t, sandbox.Reply(503, ``)).URL }, wantClass: provider.Transient},
		{name: "HTTP 403", baseURL: func(t *testing.T) string {
			return newStandIn(t, sandbox.Reply(403, `{"statuscode":"UAD","status":"User Access Denied"}`)).URL
		}, wantClass: provider.Permanent, wantCode: "UAD"},
		{name: "IAC invalid credentials", baseURL: func(t *testing.T) string {
			return newStandIn(t, sandbox.Reply(200, `{"statuscode":"IAC","status":"Invalid Dealer Credentials"}`)).URL
		}, wantClass: provider.Permanent, wantCode: "IAC"},
		{name: "ISE system error", baseURL: func(t *testing.T) string {
			return newStandIn(t, sandbox.Reply(200, `{"statuscode":"ISE","status":"System Error"}`)).URL
		}, wantClass: provider.Transient, wantCode: "ISE"},
		{name: "TUP is transient for a lookup", baseURL: func(t *testing.T) string {
			return newStandIn(t, sandbox.Reply(200, `{"statuscode":"TUP","status":"Under Process"}`)).URL
		}, wantClass: provider.Transient, wantCode: "TUP"},
		{name: "unparseable 2xx is transient for a lookup", baseURL: func(t *testing.T) string {
			return newStandIn(t, sandbox.Reply(200, `not json`)).URL
		}, wantClass: provider.Transient},
		{name: "unexpected data shape is permanent: reading again would not help", baseURL: func(t *testing.T) string {
			return newStandIn(t, sandbox.Reply(200, listReply(`"nope"`))).URL
		}, wantClass: provider.Permanent, wantCode: "TXN"},
		{name: "timeout is transient for a lookup", baseURL: func(t *testing.T) string { return newStandIn(t, sandbox.Hang).URL }, wantClass: provider.Transient, wantCode: "timeout"},
		{name: "connection refused", baseURL: func(t *testing.T) string { return sandbox.ClosedURL() }, wantClass: provider.Transient, wantCode: "connection"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, found, err := newClient(t, tt.baseURL(t)).Lookup(context.Background(), testCommand())
			pe := asProviderError(t, err)
			assert.False(t, found, "a failed lookup finds nothing")
			assert.Equal(t, tt.wantClass, pe.Class, "class of %v", err)
			assert.Equal(t, tt.wantCode, pe.Code, "code of %v", err)
			assert.Equal(t, "lookup", pe.Op, "op")
			assert.ErrorIs(t, err, provider.ErrIncompleteLookup, "a failed lookup never proves absence")
			assert.NotContains(t, err.Error(), testSecret, "the secret must never be in an error")
		})
	}
}
