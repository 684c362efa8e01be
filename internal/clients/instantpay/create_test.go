package instantpay_test

import (
	"context"
	"encoding/json"
	"net/http"
	"testing"
	"time"

	"github.com/contactrelay/contactrelay/internal/clients/provider"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/contactrelay/contactrelay/internal/clients/instantpay"
	"github.com/contactrelay/contactrelay/internal/sandbox"
)

const successReply = `{
	"statuscode": "TXN", "actcode": null, "status": "Contact Added Successfully",
	"data": {"userId": 189590, "name": "Sample Name", "email": "sample@example.com",
		"mobile": "7428585742", "callingCode": "91", "_id": "645b283b9b2e5a7f1c0d3e4f"},
	"timestamp": "2023-05-10 10:44:35", "ipay_uuid": "h0069abc", "orderid": null,
	"environment": "LIVE", "internalCode": null
}`

func TestNew(t *testing.T) {
	tests := []struct {
		name    string
		cfg     instantpay.Config
		wantErr string
	}{
		{name: "defaults", cfg: instantpay.Config{ClientID: "id", ClientSecret: "secret"}},
		{name: "missing id", cfg: instantpay.Config{ClientSecret: "secret"}, wantErr: "client id"},
		{name: "missing secret", cfg: instantpay.Config{ClientID: "id"}, wantErr: "client secret"},
		{name: "bad base URL", cfg: instantpay.Config{ClientID: "id", ClientSecret: "secret", BaseURL: "ftp://x"}, wantErr: "base URL"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := instantpay.New(tt.cfg)
			if tt.wantErr == "" {
				require.NoError(t, err, "a valid config should build a client")
				assert.NotNil(t, c, "the client should be returned")
				return
			}
			require.Error(t, err, "an invalid config should be refused")
			assert.Contains(t, err.Error(), tt.wantErr, "the error should name the problem")
		})
	}
}

func TestValidate(t *testing.T) {
	c := newClient(t, "http://127.0.0.1:1")
	tests := []struct {
		name  string
		tagID string
		want  bool
	}{
		{name: "24 lowercase hex", tagID: "645b280e95335f08eb021aa2", want: true},
		{name: "24 uppercase hex", tagID: "645B280E95335F08EB021AA2", want: true},
		{name: "empty is left to the common rules", tagID: "", want: true},
		{name: "too short", tagID: "645b280e", want: false},
		{name: "too long", tagID: "645b280e95335f08eb021aa2f", want: false},
		{name: "not hex", tagID: "645b280e95335f08eb021aaz", want: false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cmd := testCommand()
			cmd.TagID = tt.tagID
			errs := c.Validate(cmd)
			if tt.want {
				assert.Empty(t, errs, "tagId %q should be accepted", tt.tagID)
				return
			}
			require.Len(t, errs, 1, "tagId %q should break one rule", tt.tagID)
			assert.Equal(t, "tagId", errs[0].Field, "the broken field")
			assert.Equal(t, "hexadecimal24", errs[0].Rule, "the broken rule")
			assert.NotEmpty(t, errs[0].Message, "a message for people")
		})
	}
}

func TestCreateRequest(t *testing.T) {
	tests := []struct {
		name     string
		company  string
		wantBody string
	}{
		{
			name:    "with company",
			company: "Business & Co",
			wantBody: `{"name":"Sample Name","email":"Sample@Example.com","mobile":"+917428585742",
				"companyName":"Business & Co","tagDetails":[{"tagId":"645b280e95335f08eb021aa2"}]}`,
		},
		{
			name:    "company omitted when empty",
			company: "",
			wantBody: `{"name":"Sample Name","email":"Sample@Example.com","mobile":"+917428585742",
				"tagDetails":[{"tagId":"645b280e95335f08eb021aa2"}]}`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newStandIn(t, sandbox.Reply(http.StatusOK, successReply))
			cmd := testCommand()
			cmd.CompanyName = tt.company
			_, err := newClient(t, s.URL).Create(context.Background(), cmd)
			require.NoError(t, err, "the create should succeed")

			got := s.requests()
			require.Len(t, got, 1, "one request should be made")
			req := got[0]
			assert.Equal(t, http.MethodPost, req.Method, "method")
			assert.Equal(t, "/contacts/profile", req.Path, "path")
			assert.Equal(t, "1", req.Header.Get("X-Ipay-Auth-Code"), "auth code defaults to 1")
			assert.Equal(t, testClientID, req.Header.Get("X-Ipay-Client-Id"), "client id header")
			assert.Equal(t, testSecret, req.Header.Get("X-Ipay-Client-Secret"), "client secret header")
			assert.Equal(t, "203.0.113.7", req.Header.Get("X-Ipay-Endpoint-Ip"), "endpoint ip header")
			assert.Equal(t, "application/json", req.Header.Get("Content-Type"), "content type")
			assert.Equal(t, "application/json", req.Header.Get("Accept"), "accept")
			assert.JSONEq(t, tt.wantBody, string(req.Body), "request body")
		})
	}
}

func TestCreateSuccess(t *testing.T) {
	s := newStandIn(t, sandbox.Reply(http.StatusOK, successReply))
	contact, err := newClient(t, s.URL).Create(context.Background(), testCommand())
	require.NoError(t, err, "a TXN reply is a success")
	assert.Equal(t, "645b283b9b2e5a7f1c0d3e4f", contact.ID, "the contact id is data._id")
	assert.Equal(t, map[string]any{
		"contactId":   "645b283b9b2e5a7f1c0d3e4f",
		"userId":      json.Number("189590"),
		"ipayUuid":    "h0069abc",
		"environment": "LIVE",
		"timestamp":   "2023-05-10 10:44:35",
	}, contact.Upstream, "upstream holds every identifier given, and no empty ones (orderid was null)")
}

func TestCreateFailures(t *testing.T) {
	failed := func(code, status string) string {
		return `{"statuscode":"` + code + `","actcode":null,"status":"` + status + `","data":null,
			"timestamp":"2023-05-10 10:44:35","ipay_uuid":"h00uuid","orderid":null,"environment":"LIVE"}`
	}
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
		{name: "ISE system error", handler: sandbox.Reply(200, failed("ISE", "System Error")), want: want{class: provider.Transient, httpStatus: 200, code: "ISE", message: "System Error", requestID: "h00uuid"}},
		{name: "IPE internal processing error", handler: sandbox.Reply(200, failed("IPE", "Internal Processing Error")), want: want{class: provider.Transient, httpStatus: 200, code: "IPE", message: "Internal Processing Error", requestID: "h00uuid"}},
		{name: "SPE service provider error", handler: sandbox.Reply(200, failed("SPE", "Service Provider Error")), want: want{class: provider.Transient, httpStatus: 200, code: "SPE", message: "Service Provider Error", requestID: "h00uuid"}},
		{name: "SPD service provider downtime", handler: sandbox.Reply(200, failed("SPD", "Service Provider Downtime")), want: want{class: provider.Transient, httpStatus: 200, code: "SPD", message: "Service Provider Downtime", requestID: "h00uuid"}},
		{name: "TSU status unavailable", handler: sandbox.Reply(200, failed("TSU", "Transaction Status Unavailable")), want: want{class: provider.Transient, httpStatus: 200, code: "TSU", message: "Transaction Status Unavailable", requestID: "h00uuid"}},
		{name: "USM", handler: sandbox.Reply(200, failed("USM", "Under maintenance")), want: want{class: provider.Transient, httpStatus: 200, code: "USM", message: "Under maintenance", requestID: "h00uuid"}},
		{name: "status text says try later", handler: sandbox.Reply(200, failed("ERR", "Please try later")), want: want{class: provider.Transient, httpStatus: 200, code: "ERR", message: "Please try later", requestID: "h00uuid"}},
		{name: "status text says try again", handler: sandbox.Reply(200, failed("IAC", "Something went wrong, Try Again")), want: want{class: provider.Transient, httpStatus: 200, code: "IAC", message: "Something went wrong, Try Again", requestID: "h00uuid"}},
		{name: "TUP pending is ambiguous", handler: sandbox.Reply(200, failed("TUP", "Transaction Under Process")), want: want{class: provider.Ambiguous, httpStatus: 200, code: "TUP", message: "Transaction Under Process", requestID: "h00uuid"}},
		{name: "RPI invalid parameters", handler: sandbox.Reply(200, failed("RPI", "Request Parameters are Invalid or Incomplete")), want: want{class: provider.Permanent, httpStatus: 200, code: "RPI", message: "Request Parameters are Invalid or Incomplete", requestID: "h00uuid"}},
		{name: "IAT invalid access token", handler: sandbox.Reply(200, failed("IAT", "Invalid Access Token")), want: want{class: provider.Permanent, httpStatus: 200, code: "IAT", message: "Invalid Access Token", requestID: "h00uuid"}},
		{name: "IAC invalid credentials", handler: sandbox.Reply(200, failed("IAC", "Invalid Dealer Credentials")), want: want{class: provider.Permanent, httpStatus: 200, code: "IAC", message: "Invalid Dealer Credentials", requestID: "h00uuid"}},
		{name: "UAD access denied", handler: sandbox.Reply(200, failed("UAD", "User Access Denied")), want: want{class: provider.Permanent, httpStatus: 200, code: "UAD", message: "User Access Denied", requestID: "h00uuid"}},
		{name: "AAB account blocked", handler: sandbox.Reply(200, failed("AAB", "Account Blocked")), want: want{class: provider.Permanent, httpStatus: 200, code: "AAB", message: "Account Blocked", requestID: "h00uuid"}},
		{name: "ANF account not found", handler: sandbox.Reply(200, failed("ANF", "Account not found")), want: want{class: provider.Permanent, httpStatus: 200, code: "ANF", message: "Account not found", requestID: "h00uuid"}},
		{name: "OUI outlet unauthorized", handler: sandbox.Reply(200, failed("OUI", "Outlet Unauthorized or Inactive")), want: want{class: provider.Permanent, httpStatus: 200, code: "OUI", message: "Outlet Unauthorized or Inactive", requestID: "h00uuid"}},
		{name: "ODI outlet data incorrect", handler: sandbox.Reply(200, failed("ODI", "Outlet Data Incorrect")), want: want{class: provider.Permanent, httpStatus: 200, code: "ODI", message: "Outlet Data Incorrect", requestID: "h00uuid"}},
		{name: "KYC", handler: sandbox.Reply(200, failed("KYC", "KYC pending")), want: want{class: provider.Permanent, httpStatus: 200, code: "KYC", message: "KYC pending", requestID: "h00uuid"}},
		{name: "SNA service not available", handler: sandbox.Reply(200, failed("SNA", "Service not available")), want: want{class: provider.Permanent, httpStatus: 200, code: "SNA", message: "Service not available", requestID: "h00uuid"}},
		{name: "CNL", handler: sandbox.Reply(200, failed("CNL", "Cancelled")), want: want{class: provider.Permanent, httpStatus: 200, code: "CNL", message: "Cancelled", requestID: "h00uuid"}},
		{name: "unknown code", handler: sandbox.Reply(200, failed("ZZZ", "Something")), want: want{class: provider.Permanent, httpStatus: 200, code: "ZZZ", message: "Something", requestID: "h00uuid"}},
		{
			name:    "request id from orderid",
			handler: sandbox.Reply(200, `{"statuscode":"RPI","status":"bad","orderid":"ORD1","ipay_uuid":null}`),
			want:    want{class: provider.Permanent, httpStatus: 200, code: "RPI", message: "bad", requestID: "ORD1"},
		},
		{
			name:    "HTTP 429 with Retry-After",
			handler: sandbox.Reply(http.StatusTooManyRequests, `{"statuscode":"ERR","status":"Too many requests"}`, "Retry-After", "7", "X-Request-Id", "req-429"),
			want:    want{class: provider.Transient, httpStatus: 429, code: "ERR", message: "Too many requests", requestID: "req-429", retryAfter: 7 * time.Second},
		},
		{
			name:    "HTTP 503 without a body",
			handler: sandbox.Reply(http.StatusServiceUnavailable, ``, "Retry-After", "2"),
			want:    want{class: provider.Transient, httpStatus: 503, message: "Service Unavailable", retryAfter: 2 * time.Second},
		},
		{
			name:    "HTTP 400",
			handler: sandbox.Reply(http.StatusBadRequest, `{"statuscode":"RPI","status":"Invalid mobile"}`, "X-Request-Id", "req-400"),
			want:    want{class: provider.Permanent, httpStatus: 400, code: "RPI", message: "Invalid mobile", requestID: "req-400"},
		},
		{
			name:    "unparseable 2xx",
			handler: sandbox.Reply(http.StatusOK, `<html>gateway says hi</html>`),
			want:    want{class: provider.Ambiguous, httpStatus: 200},
		},
		{
			name:    "2xx without statuscode",
			handler: sandbox.Reply(http.StatusOK, `{"data":{}}`),
			want:    want{class: provider.Ambiguous, httpStatus: 200},
		},
		{
			name:    "TXN without data._id",
			handler: sandbox.Reply(http.StatusOK, `{"statuscode":"TXN","status":"ok","data":{"userId":1},"ipay_uuid":"h00x"}`),
			want:    want{class: provider.Ambiguous, httpStatus: 200, code: "TXN", requestID: "h00x"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newStandIn(t, tt.handler)
			_, err := newClient(t, s.URL).Create(context.Background(), testCommand())
			pe := asProviderError(t, err)
			assert.Equal(t, tt.want.class, pe.Class, "class of %v", err)
			assert.Equal(t, instantpay.Name, pe.Provider, "provider")
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
			assert.NotContains(t, err.Error(), testSecret, "the secret must never be in an error")
		})
	}
}

func TestCreateNoAnswer(t *testing.T) {
	tests := []struct {
		name      string
		baseURL   func(t *testing.T) string
		wantClass provider.Class
		wantCode  string
	}{
		{
			name:      "timeout after the server got the request",
			baseURL:   func(t *testing.T) string { return newStandIn(t, sandbox.Hang).URL },
			wantClass: provider.Ambiguous,
			wantCode:  "timeout",
		},
		{
			name:      "connection closed after the server got the request",
			baseURL:   func(t *testing.T) string { return newStandIn(t, sandbox.HangUp).URL },
			wantClass: provider.Ambiguous,
			wantCode:  "connection",
		},
		{
			name:      "connection refused",
			baseURL:   func(t *testing.T) string { return sandbox.ClosedURL() },
			wantClass: provider.Transient,
			wantCode:  "connection",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			start := time.Now()
			_, err := newClient(t, tt.baseURL(t)).Create(context.Background(), testCommand())
			pe := asProviderError(t, err)
			assert.Equal(t, tt.wantClass, pe.Class, "class of %v", err)
			assert.Equal(t, tt.wantCode, pe.Code, "code of %v", err)
			assert.Equal(t, "create", pe.Op, "op")
			assert.Less(t, time.Since(start), 2*time.Second, "the client timeout should bound the call")
			assert.NotContains(t, err.Error(), testSecret, "the secret must never be in an error")
		})
	}
}
