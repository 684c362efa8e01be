package pik_test

import (
	"context"
	"encoding/json"
	"net/http"
	"testing"
	"time"

	"github.com/contactrelay/contactrelay/internal/clients/provider"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/contactrelay/contactrelay/internal/clients/pik"
	"github.com/contactrelay/contactrelay/internal/sandbox"
)

func TestCreateRequest(t *testing.T) {
	nested := `{
		"contactType": "INDIVIDUAL",
		"firstName": "Ada",
		"lastName": "Lovelace",
		"countryCode": "GB",
		"displayName": "overridden by name",
		"companyName": "kept when the command has none",
		"paymentContactAddress": {"line1": "12 St James's Sq", "city": "London", "geo": {"lat": 51.5, "lng": -0.13}},
		"paymentContactAccount": {"accountNo": "0012345678", "routing": [{"type": "SWIFT", "code": "BARCGB22"}], "primary": true, "limit": null},
		"futureField": [1, "two", {"three": 3}]
	}`
	tests := []struct {
		name     string
		pik      string
		company  string
		wantBody string
	}{
		{
			name: "pik fields passed through, command fields mapped",
			pik:  nested,
			wantBody: `{
				"contactType": "INDIVIDUAL", "firstName": "Ada", "lastName": "Lovelace", "countryCode": "GB",
				"companyName": "kept when the command has none",
				"paymentContactAddress": {"line1": "12 St James's Sq", "city": "London", "geo": {"lat": 51.5, "lng": -0.13}},
				"paymentContactAccount": {"accountNo": "0012345678", "routing": [{"type": "SWIFT", "code": "BARCGB22"}], "primary": true, "limit": null},
				"futureField": [1, "two", {"three": 3}],
				"displayName": "Ada Lovelace", "email": "ada@example.com", "phone": "+447700900123",
				"contactCode": "CRF41E12C4BEF4365AC2E54792"
			}`,
		},
		{
			name:    "command company wins, given contactCode kept",
			pik:     `{"contactCode":"ADA-1","companyName":"from pik"}`,
			company: "Analytical Engines & Co <Ltd>",
			wantBody: `{"displayName":"Ada Lovelace","email":"ada@example.com","phone":"+447700900123",
				"companyName":"Analytical Engines & Co <Ltd>","contactCode":"ADA-1"}`,
		},
		{
			name: "no pik fields",
			wantBody: `{"displayName":"Ada Lovelace","email":"ada@example.com","phone":"+447700900123",
				"contactCode":"CRF41E12C4BEF4365AC2E54792"}`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newStandIn(t, &standIn{})
			cmd := testCommand()
			cmd.CompanyName = tt.company
			if tt.pik != "" {
				require.NoError(t, json.Unmarshal([]byte(tt.pik), &cmd.PIK), "test pik fields should decode")
			}
			_, err := newClient(t, s.URL, nil).Create(context.Background(), cmd)
			require.NoError(t, err, "the create should succeed")

			tokens := s.requests("/auth/token")
			require.Len(t, tokens, 1, "one token request")
			assert.JSONEq(t, `{"appId":"app-1","appSecret":"`+testSecret+`"}`, string(tokens[0].Body), "token request body")
			assert.Equal(t, http.MethodPost, tokens[0].Method, "token request method")

			creates := s.requests("/api/v1/contact/create")
			require.Len(t, creates, 1, "one create request")
			req := creates[0]
			assert.Equal(t, http.MethodPost, req.Method, "method")
			assert.Equal(t, "Bearer tok-1", req.Header.Get("Authorization"), "bearer token")
			assert.Equal(t, "application/json", req.Header.Get("Content-Type"), "content type")
			assert.JSONEq(t, tt.wantBody, string(req.Body), "request body")
		})
	}
}

func TestCreateSuccess(t *testing.T) {
	tests := []struct {
		name   string
		data   string
		wantID string
		wantUp map[string]any
	}{
		{
			name:   "identifiers collected",
			data:   `{"id":9007199254740993,"contactCode":"CRF41E12C4BEF4365AC2E54792","accountId":"acc-7","bank_id":"b-1","name":"Ada","walletId":null,"nested":{"innerId":"x"},"valid":true}`,
			wantID: "CRF41E12C4BEF4365AC2E54792",
			wantUp: map[string]any{"contactCode": "CRF41E12C4BEF4365AC2E54792", "id": json.Number("9007199254740993"), "accountId": "acc-7", "bank_id": "b-1"},
		},
		{
			name:   "contactCode from the reply wins",
			data:   `{"contactCode":"PIK-NORMALISED"}`,
			wantID: "PIK-NORMALISED",
			wantUp: map[string]any{"contactCode": "PIK-NORMALISED"},
		},
		{
			name:   "no data: the code sent",
			data:   `null`,
			wantID: "CRF41E12C4BEF4365AC2E54792",
			wantUp: map[string]any{"contactCode": "CRF41E12C4BEF4365AC2E54792"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newStandIn(t, &standIn{Create: sandbox.Reply(200, `{"code":200,"message":"success","data":`+tt.data+`}`)})
			contact, err := newClient(t, s.URL, nil).Create(context.Background(), testCommand())
			require.NoError(t, err, "code 200 is a success")
			assert.Equal(t, tt.wantID, contact.ID, "the contact id is the contactCode")
			assert.Equal(t, tt.wantUp, contact.Upstream, "upstream holds the contactCode and the ids")
		})
	}
}

func TestCreateFailures(t *testing.T) {
	type want struct {
		class      provider.Class
		httpStatus int
		code       string
		message    string
		requestID  string
		retryAfter time.Duration
	}
	tests := []struct {
		name    string
		handler http.HandlerFunc
		want    want
	}{
		{
			name:    "HTTP 500",
			handler: sandbox.Reply(500, `{"code":500,"message":"internal error"}`, "X-Request-Id", "r-500"),
			want:    want{class: provider.Transient, httpStatus: 500, code: "500", message: "internal error", requestID: "r-500"},
		},
		{
			name:    "HTTP 502 from a gateway",
			handler: sandbox.Reply(502, `<html>bad gateway</html>`),
			want:    want{class: provider.Transient, httpStatus: 502, message: "Bad Gateway"},
		},
		{
			name:    "HTTP 429 with Retry-After",
			handler: sandbox.Reply(429, `{"code":429,"message":"slow down"}`, "Retry-After", "3"),
			want:    want{class: provider.Transient, httpStatus: 429, code: "429", message: "slow down", retryAfter: 3 * time.Second},
		},
		{
			name:    "HTTP 400",
			handler: sandbox.Reply(400, `{"code":400,"message":"email is invalid"}`, "X-Request-Id", "r-400"),
			want:    want{class: provider.Permanent, httpStatus: 400, code: "400", message: "email is invalid", requestID: "r-400"},
		},
		{
			name:    "HTTP 403",
			handler: sandbox.Reply(403, `{"code":403,"message":"forbidden"}`),
			want:    want{class: provider.Permanent, httpStatus: 403, code: "403", message: "forbidden"},
		},
		{
			name:    "body code 500",
			handler: sandbox.Reply(200, `{"code":500,"message":"system busy"}`),
			want:    want{class: provider.Transient, httpStatus: 200, code: "500", message: "system busy"},
		},
		{
			name:    "body code 429 as a string",
			handler: sandbox.Reply(200, `{"code":"429","msg":"rate limited"}`, "Retry-After", "1"),
			want:    want{class: provider.Transient, httpStatus: 200, code: "429", message: "rate limited", retryAfter: time.Second},
		},
		{
			name:    "body code 400",
			handler: sandbox.Reply(200, `{"code":400,"message":"contactCode already exists"}`),
			want:    want{class: provider.Permanent, httpStatus: 200, code: "400", message: "contactCode already exists"},
		},
		{
			name:    "body code not numeric",
			handler: sandbox.Reply(200, `{"code":"E1001","message":"bad country"}`),
			want:    want{class: provider.Permanent, httpStatus: 200, code: "E1001", message: "bad country"},
		},
		{
			name:    "unparseable 2xx",
			handler: sandbox.Reply(200, `{"code":200,"data":`),
			want:    want{class: provider.Ambiguous, httpStatus: 200},
		},
		{
			name:    "2xx without a code",
			handler: sandbox.Reply(200, `{"data":{"contactCode":"X"}}`),
			want:    want{class: provider.Ambiguous, httpStatus: 200},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newStandIn(t, &standIn{Create: tt.handler})
			_, err := newClient(t, s.URL, nil).Create(context.Background(), testCommand())
			pe := asProviderError(t, err)
			assert.Equal(t, tt.want.class, pe.Class, "class of %v", err)
			assert.Equal(t, pik.Name, pe.Provider, "provider")
			assert.Equal(t, "create", pe.Op, "op")
			assert.Equal(t, tt.want.httpStatus, pe.HTTPStatus, "HTTP status")
			assert.Equal(t, tt.want.code, pe.Code, "code")
			if tt.want.message != "" {
				assert.Equal(t, tt.want.message, pe.Message, "message")
			} else {
				assert.NotEmpty(t, pe.Message, "a message should explain the failure")
			}
			assert.Equal(t, tt.want.requestID, pe.RequestID, "request id")
			assert.Equal(t, tt.want.retryAfter, pe.RetryAfter, "retry after")
			assert.Equal(t, int32(1), s.creates.Load(), "a failure other than 401 is not retried by the client")
		})
	}
}

func TestCreateNoAnswer(t *testing.T) {
	tests := []struct {
		name      string
		stand     func(t *testing.T) string
		wantClass provider.Class
		wantCode  string
		wantOp    string
	}{
		{
			name:      "timeout after the server got the request",
			stand:     func(t *testing.T) string { return newStandIn(t, &standIn{Create: sandbox.Hang}).URL },
			wantClass: provider.Ambiguous, wantCode: "timeout", wantOp: "create",
		},
		{
			name:      "connection closed after the server got the request",
			stand:     func(t *testing.T) string { return newStandIn(t, &standIn{Create: sandbox.HangUp}).URL },
			wantClass: provider.Ambiguous, wantCode: "connection", wantOp: "create",
		},
		{
			name:      "connection refused",
			stand:     func(t *testing.T) string { return sandbox.ClosedURL() },
			wantClass: provider.Transient, wantCode: "connection", wantOp: "token",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			start := time.Now()
			_, err := newClient(t, tt.stand(t), nil).Create(context.Background(), testCommand())
			pe := asProviderError(t, err)
			assert.Equal(t, tt.wantClass, pe.Class, "class of %v", err)
			assert.Equal(t, tt.wantCode, pe.Code, "code of %v", err)
			assert.Equal(t, tt.wantOp, pe.Op, "op of %v", err)
			assert.Less(t, time.Since(start), 2*time.Second, "the client timeout should bound the call")
		})
	}
}
